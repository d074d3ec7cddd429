"""The in-memory companion of a non-terminal call, shared by the manager and its collaborators.

A :class:`LiveCall` holds what must not be in the store (a lock, timer handles, the futures of
agents waiting on a turn, the attached media stream) plus the next transcript sequence number.
That number is always derived from the store when a call is (re)loaded, so a restarted server or
a standby that took over continues a call's transcript after its last line instead of writing
over it (the store refuses to overwrite a line anyway).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from voicecall.calls.channel import SpeechChannel
from voicecall.calls.lineorder import LineOrder
from voicecall.calls.model import CallRecord, Speaker, TranscriptEntry


@dataclass(slots=True, eq=False)
class LiveCall:
    """One live call's memory. Every field but ``record`` is process-local."""

    record: CallRecord
    next_seq: int
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    timers: dict[str, asyncio.TimerHandle] = field(default_factory=dict)
    waiters: dict[int, asyncio.Future[str]] = field(default_factory=dict)
    channel: SpeechChannel | None = None
    reply_task: asyncio.Task[None] | None = None
    attached: asyncio.Event = field(default_factory=asyncio.Event)
    #: the turn whose Gather has heard the caller start speaking (partial results), if any
    speech_turn: int | None = None
    #: bot lines said by call updates (no stream), one after another (calls/lineorder.py)
    lines: LineOrder = field(default_factory=LineOrder)

    @property
    def call_id(self) -> str:
        return self.record.call_id

    def line(
        self,
        speaker: Speaker,
        text: str,
        *,
        at: float,
        turn: int | None,
        offset: int = 0,
        final: bool = True,
    ) -> TranscriptEntry:
        """The next transcript line (``offset`` lines after the next free one); the caller
        stores it and then calls :meth:`advance`."""
        return TranscriptEntry(
            call_id=self.record.call_id,
            seq=self.next_seq + offset,
            speaker=speaker,
            text=text,
            at=at,
            final=final,
            turn=turn,
        )

    def advance(self, lines: int) -> None:
        """``lines`` lines were stored: move the sequence on."""
        self.next_seq += lines


def next_seq_after(lines: list[TranscriptEntry]) -> int:
    """The sequence number that follows a call's stored transcript."""
    return max((ln.seq for ln in lines), default=-1) + 1
