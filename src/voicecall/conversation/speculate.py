"""Start replying before the caller has surely finished (issue 10): a speculative run.

On a Media Stream the STT hands out partial transcripts before the final one. When a partial
looks like the whole turn, :class:`Speculator` starts the responder on it at once, with the
partial as the caller's last line, and keeps what it produces *without saying anything*. When
the final transcript comes:

- it says the same words (compared :func:`~voicecall.voice.endturn.normalize`\\ d: case and
  punctuation aside) → the run is *adopted*: the automatic reply takes its output (already made,
  or still coming) instead of starting the responder now;
- anything else → the run is dropped, and nothing it made is ever spoken.

Tools never run speculatively: the run gets the call's tool box as a held view
(:meth:`~voicecall.conversation.tools.ToolBox.held`); tools without side effects run as usual,
any other call is held, and a run that held one is not adopted (the reply is made afresh, for
real, on the final words). An adopted run's own exchanges are committed to the box.

Pure bookkeeping plus one task per speculation; one speculation per call at most.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import ipaddress
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from voicecall.agent.responder import ConversationContext, EndCall, Responder, ResponderOutput
from voicecall.conversation.tools import HeldTools, ToolBox
from voicecall.voice.endturn import normalize

__all__ = ["Speculation", "Speculator", "speculation_default"]


def speculation_default(*, stt: str | None, responder_kind: str, base_url: str) -> bool:
    """``[turn] speculate`` left unset: speculate when the extra runs are cheap.

    A speculative run is one more responder request for every partial transcript that sounds
    like the whole turn, wasted whenever the caller goes on (or the final words differ).

    - local Whisper (``stt == "whisper"``) hands out a partial only at a pause, so a wasted run
      costs one request per mid-turn pause that sounded finished; the saving is the
      responder's whole time to first output on every other turn: on;
    - an in-process responder (``scripted``, ``hook``) or a chat endpoint on this machine or
      a private network costs no money per request: on;
    - a streaming cloud STT (interim results several times a second) with a hosted chat
      endpoint would pay for a request per interim result that sounds complete: off (set
      ``speculate = true`` to trade that for the time to first token).
    """
    if stt == "whisper" or responder_kind in ("scripted", "hook"):
        return True
    if responder_kind != "chat":
        return False
    host = (urlsplit(base_url).hostname or "").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_loopback or address.is_private


@dataclass(eq=False)
class Speculation:
    """One speculative run: the words it answers and what it has produced so far."""

    said: str
    """The normalized partial transcript the run answers."""
    outputs: list[ResponderOutput] = field(default_factory=list)
    held: HeldTools | None = None
    finished: bool = False
    failed: bool = False
    task: asyncio.Task[None] | None = None
    _more: asyncio.Event = field(default_factory=asyncio.Event)
    _tools_known: asyncio.Event = field(default_factory=asyncio.Event)

    async def stream(self) -> AsyncIterator[ResponderOutput]:
        """The run's outputs, those made already at once, then as they come."""
        sent = 0
        while True:
            while sent < len(self.outputs):
                sent += 1
                yield self.outputs[sent - 1]
            if self.finished:
                return
            self._more.clear()
            await self._more.wait()

    def cancel(self) -> None:
        if self.task is not None and not self.task.done():
            self.task.cancel()
        if self.held is not None:
            with contextlib.suppress(RuntimeError):
                self.held.discard()


class Speculator:
    """The calls' speculative runs (at most one per call)."""

    def __init__(self) -> None:
        self._runs: dict[str, Speculation] = {}
        self.started = 0
        self.adopted = 0
        self.dropped = 0

    def running(self, call_id: str) -> Speculation | None:
        return self._runs.get(call_id)

    def start(
        self,
        call_id: str,
        text: str,
        responder: Responder,
        context: Callable[[], Awaitable[ConversationContext]],
    ) -> Speculation | None:
        """Answer ``text`` speculatively (unless a run on the same words is under way)."""
        said = normalize(text)
        if not said:
            return None
        current = self._runs.get(call_id)
        if current is not None and current.said == said and not current.failed:
            return current
        self.drop(call_id)
        spec = Speculation(said)
        spec.task = asyncio.get_running_loop().create_task(
            self._run(spec, text, responder, context), name="voicecall-speculate"
        )
        self._runs[call_id] = spec
        self.started += 1
        return spec

    async def _run(
        self,
        spec: Speculation,
        text: str,
        responder: Responder,
        context: Callable[[], Awaitable[ConversationContext]],
    ) -> None:
        try:
            ctx = await context()
            tools = ctx.tools
            if isinstance(tools, ToolBox):
                spec.held = tools.held()
                tools = spec.held
            spec._tools_known.set()
            ctx = dataclasses.replace(
                ctx, transcript=[*ctx.transcript, ("user", text.strip())], tools=tools
            )
            gen = responder.reply(ctx)
            try:
                async for out in gen:
                    spec.outputs.append(out)
                    spec._more.set()
                    if isinstance(out, EndCall):
                        break
            finally:
                await gen.aclose()  # type: ignore[attr-defined]
        except asyncio.CancelledError:
            spec.failed = True
            raise
        except Exception:  # a failed speculation is dropped; the real run reports errors
            spec.failed = True
        finally:
            spec.finished = True
            spec._more.set()
            spec._tools_known.set()

    async def adopt(self, call_id: str, final_text: str) -> Speculation | None:
        """The final transcript came: the run to use for the reply, if it answered the same
        words and held no tool call; every other run is dropped."""
        spec = self._runs.pop(call_id, None)
        if spec is None:
            return None
        if spec.said != normalize(final_text) or spec.failed:
            spec.cancel()
            self.dropped += 1
            return None
        await spec._tools_known.wait()  # the run's context is read first (a store read)
        if spec.failed:
            self.dropped += 1
            return None
        if spec.held is not None:
            # a tool call may come at any point of the run: wait for it to end to know
            if spec.task is not None:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await asyncio.shield(spec.task)
            if spec.failed or spec.held.holding:
                spec.cancel()
                self.dropped += 1
                return None
            await spec.held.commit()  # only side-effect-free exchanges: nothing is executed
        self.adopted += 1
        return spec

    def drop(self, call_id: str) -> None:
        """The caller went on, or the call ended: forget the run, say nothing of it."""
        spec = self._runs.pop(call_id, None)
        if spec is not None:
            spec.cancel()
            self.dropped += 1
