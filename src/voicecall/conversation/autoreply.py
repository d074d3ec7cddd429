"""The responder answering on its own: a turn the caller finished that no agent waits on.

An agent's ``continue`` takes precedence: it cancels a pending automatic reply, and a reply is
only started when nobody waits on the turn. On a Media Stream the first sentence is spoken while
the rest is still being generated; on a ``<Gather>`` call the whole reply goes out at once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

from voicecall.agent.responder import ConversationContext, EndCall, Responder
from voicecall.calls.live import LiveCall
from voicecall.calls.model import CallMode, CallState, Direction
from voicecall.errors import CallNotActive, StoreError

if TYPE_CHECKING:
    from voicecall.calls.manager import CallManager

log = logging.getLogger("voicecall.autoreply")


class AutoReplier:
    def __init__(self, core: CallManager) -> None:
        self.core = core

    def maybe(self, live: LiveCall) -> None:
        """The caller finished a turn nobody is waiting for: let the responder answer."""
        rec = live.record
        # task calls: their own agent answers, and not while a tool's result (the owner's
        # answer) is pending: the hold lines keep the caller company meanwhile
        responder = self.core.tasks.responder_for(rec, self.core.responder)
        if (
            responder is None
            or rec.mode is CallMode.NOTIFY
            or rec.state is CallState.ENDING
            or self.core.tasks.holding(live)
        ):
            return
        self.cancel(live)  # the caller spoke again: the old reply is stale
        live.reply_task = asyncio.create_task(self._reply(live, responder))

    def cancel(self, live: LiveCall) -> None:
        task = live.reply_task
        if task is not None and not task.done() and task is not asyncio.current_task():
            task.cancel()
        live.reply_task = None

    async def _context(self, live: LiveCall) -> ConversationContext:
        core = self.core
        rec = live.record
        caller = rec.from_number if rec.direction is Direction.INBOUND else rec.to_number
        lines = await core.store.transcript(rec.call_id)
        memory: list[str] = []
        if core.memory is not None:
            try:
                memory = await core.memory.recall(caller)
            except StoreError as exc:  # a reply without memory beats no reply
                log.warning("caller memory unavailable for call %s: %s", rec.call_id, exc)
        return ConversationContext(
            call_id=rec.call_id,
            direction=rec.direction.value,
            caller=caller,
            transcript=[(ln.speaker.value, ln.text) for ln in lines],
            memory=memory,
            **await core.tasks.context(live),  # task calls: the brief and the tool box
        )

    async def _reply(self, live: LiveCall, responder: Responder) -> None:
        core = self.core
        turns = core.turns
        call_id = live.call_id
        streams = core.streams(live)
        sentences: list[str] = []
        goodbye: EndCall | None = None
        gen = responder.reply(await self._context(live))
        try:
            async for out in gen:
                produced_at = time.monotonic()  # the responder's output (latency record)
                if isinstance(out, EndCall):
                    goodbye = out
                    break
                if not out.text.strip():
                    continue
                if streams:
                    # speech starts with the first sentence while the rest is still generated
                    if not sentences:
                        line = (await turns.open_turn(live, out.text, wait=False)).line
                        assert line is not None  # never held back on a stream
                    else:
                        line = await turns.bot_line(live, out.text)
                    channel = await turns.channel(live)
                    core.spawn(
                        turns.say_on_stream(
                            live,
                            channel,
                            out.text,
                            line=line,
                            responder_at=None if sentences else produced_at,
                        )
                    )
                sentences.append(out.text)
        except CallNotActive:
            return
        finally:
            await gen.aclose()  # type: ignore[attr-defined]
        if live.record.is_terminal:
            return
        if streams:
            if goodbye is not None:
                await core.end_call(call_id, message=goodbye.goodbye)
            return
        text = " ".join(sentences)
        if goodbye is not None:
            farewell = " ".join(x for x in (text, goodbye.goodbye or "") if x).strip()
            await core.end_call(call_id, message=farewell or None)
        elif text:
            opened = await turns.open_turn(live, text, wait=False)
            await turns.deliver(live, opened, then="listen", wait=True)
