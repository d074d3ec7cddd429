"""The responder answering on its own: a turn the caller finished that no agent waits on.

An agent's ``continue`` takes precedence: it cancels a pending automatic reply, and a reply is
only started when nobody waits on the turn. On a stream, a partial transcript that sounds like a
whole turn starts the responder silently; the reply adopts that run when the final transcript
says the same words (:mod:`voicecall.conversation.speculate`). On a Media Stream the first
sentence is spoken while the rest is still being generated; on a ``<Gather>`` call the whole
reply goes out at once.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from typing import TYPE_CHECKING

from voicecall.agent.responder import ConversationContext, EndCall, Responder
from voicecall.calls.live import LiveCall
from voicecall.calls.model import CallMode, CallState, Direction
from voicecall.conversation.speculate import Speculator, speculation_default
from voicecall.errors import CallNotActive, StoreError
from voicecall.speech.registry import choose_stt
from voicecall.voice.endturn import Completeness, judge
from voicecall.voice.settings import stt_config

if TYPE_CHECKING:
    from voicecall.calls.manager import CallManager

log = logging.getLogger("voicecall.autoreply")


class AutoReplier:
    def __init__(self, core: CallManager) -> None:
        self.core = core
        self.speculator = Speculator()
        self._speculating: bool | None = None

    @property
    def speculating(self) -> bool:
        """``[turn] speculate``, or its default for this service's STT and responder."""
        if self._speculating is None:
            settings = self.core.settings
            chosen = settings.turn.speculate
            if chosen is None:
                r = settings.responder
                chosen = speculation_default(
                    stt=choose_stt(stt_config(settings), os.environ),
                    responder_kind=r.kind,
                    base_url=r.base_url,
                )
            self._speculating = chosen
        return self._speculating

    def _responder(self, live: LiveCall) -> Responder | None:
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
            return None
        return responder

    def maybe(self, live: LiveCall, said: str | None = None) -> None:
        """The caller finished a turn nobody is waiting for: let the responder answer
        (``said``: the caller's final words, to adopt a speculative run on the same words)."""
        responder = self._responder(live)
        if responder is None:
            self.speculator.drop(live.call_id)
            return
        self._cancel_reply(live)  # the caller spoke again: the old reply is stale
        live.reply_task = asyncio.create_task(self._reply(live, responder, said))

    def speculate(self, live: LiveCall, partial: str) -> None:
        """A partial transcript on a stream: if it sounds like the whole turn and nobody waits
        on the turn, start the responder on it silently (see ``conversation/speculate.py``)."""
        core = self.core
        responder = self._responder(live)
        if (
            responder is None
            or not self.speculating
            or not core.streams(live)
            or live.record.turn in live.waiters  # an agent's continue owns this turn
            or judge(partial) is not Completeness.COMPLETE
        ):
            self.speculator.drop(live.call_id)
            return
        self.speculator.start(live.call_id, partial, responder, lambda: self._context(live))

    def cancel(self, live: LiveCall) -> None:
        self.speculator.drop(live.call_id)
        self._cancel_reply(live)

    def _cancel_reply(self, live: LiveCall) -> None:
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
            allow_silence=core.hold.silence_ok(live),
            **await core.tasks.context(live),  # task calls: the brief and the tool box
        )

    async def _reply(self, live: LiveCall, responder: Responder, said: str | None) -> None:
        core = self.core
        turns = core.turns
        call_id = live.call_id
        streams = core.streams(live)
        sentences: list[str] = []
        goodbye: EndCall | None = None
        spec = None if said is None else await self.speculator.adopt(call_id, said)
        gen = spec.stream() if spec is not None else responder.reply(await self._context(live))
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
