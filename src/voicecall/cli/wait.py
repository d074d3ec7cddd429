"""``voicecall call --wait``: follow one call live until it ends (or, in a conversation, until
the callee first answers).

The server's event stream (``/api/events``) is opened *before* the call is placed, so nothing
is missed, and shows transcript lines the moment they are stored. The call's status document is
the reference: it is read at the start, whenever an event cannot be applied in order (a gap in
transcript sequence numbers, a state change) and once a second in any case, so a dropped event
only delays a line and lines are always shown in order, each once.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from voicecall.agent.client import CallInfo, Client
from voicecall.errors import VoicecallError

__all__ = ["CallWatcher", "WaitResult"]

POLL_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class WaitResult:
    info: CallInfo
    """The call's last status (with its transcript)."""
    answer: str | None
    """The callee's first words (conversation calls), if they came."""
    reached: bool
    """What was waited for happened: the first answer (conversation) or the end (notify)."""
    timed_out: bool = False


class CallWatcher:
    """Subscribe first (:meth:`start`), place the call, then :meth:`wait` for it."""

    def __init__(
        self,
        client: Client,
        *,
        on_line: Callable[[dict[str, Any]], None],
        on_state: Callable[[CallInfo], None] | None = None,
    ) -> None:
        self._client = client
        self._on_line = on_line
        self._on_state = on_state
        self._events: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._pump: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._pump = asyncio.create_task(self._read_events())
        await asyncio.sleep(0)  # let the stream request go out before the call is placed

    async def _read_events(self) -> None:
        with contextlib.suppress(VoicecallError):
            async for event in self._client.events():
                self._events.put_nowait(event)

    async def aclose(self) -> None:
        if self._pump is not None:
            self._pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pump

    async def __aenter__(self) -> CallWatcher:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def wait(self, call_id: str, *, timeout: float | None = None) -> WaitResult:
        """Show the call's transcript as it grows until the goal (see :class:`WaitResult`)."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        next_seq = 0
        state: str | None = None
        answer: str | None = None

        def show(line: dict[str, Any]) -> None:
            nonlocal next_seq, answer
            next_seq = int(line["seq"]) + 1
            if answer is None and line.get("speaker") == "user":
                answer = str(line.get("text", ""))
            self._on_line(line)

        while True:
            info = await self._client.status(call_id)
            for line in sorted(info.transcript, key=lambda ln: int(ln["seq"])):
                if int(line["seq"]) >= next_seq:
                    show(line)
            if info.state != state:
                state = info.state
                if self._on_state is not None:
                    self._on_state(info)
            conversation = info.mode == "conversation"
            if conversation and answer is not None:
                return WaitResult(info, answer, reached=True)
            if info.ended:
                return WaitResult(info, answer, reached=not conversation and info.answered)
            # wait for this call's next event (or the poll interval), applying lines in order
            while True:
                left = POLL_SECONDS
                if deadline is not None:
                    left = min(left, deadline - loop.time())
                    if left <= 0:
                        return WaitResult(info, answer, reached=False, timed_out=True)
                try:
                    event = await asyncio.wait_for(self._events.get(), left)
                except TimeoutError:
                    break  # poll
                doc = event.get("call") or {}
                if call_id not in (event.get("call_id"), doc.get("call_id")):
                    continue
                kind = event.get("type")
                if kind == "transcript" and event.get("seq") == next_seq:
                    show(event)
                    if conversation and answer is not None:
                        break  # read the status once more and return it
                    continue
                if kind == "transcript" or str(kind).startswith("call."):
                    break  # a gap in the lines or a state change: read the status
                # partial transcripts, stream and barge-in events change nothing shown here
