"""One utterance of the bot on a Media Stream, and what the caller heard of it.

:class:`Utterance` is the :class:`~voicecall.voice.session.VoiceSession`'s bookkeeping of a
``say()``: its marks, how far its audio was sent and echoed, and the :class:`SpokenResult` it
ends with: played out (its end mark echoed), cut (barge-in, a clear, the stream closing: what
was heard, from the mark echoes), or never spoken (dropped from the queue).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Final

from voicecall.audio.g711 import BYTES_PER_SECOND
from voicecall.calls.channel import SpokenResult
from voicecall.voice.bargein import estimate_total_ms, heard_bytes, heard_text
from voicecall.voice.latency import TurnLatency, TurnStamps

__all__ = ["Utterance", "never_spoken", "prepared"]

_BYTES_PER_MS: Final = BYTES_PER_SECOND // 1000


@dataclass(eq=False)
class Utterance:
    number: int
    text: str
    future: asyncio.Future[SpokenResult]
    start_pos: int | None = None  # pacer position where its audio starts (start mark)
    sent_pos: int = 0  # pacer position after its last chunk sent
    bytes_pushed: int = 0
    audio_sent: bool = False
    synth_done: bool = False
    failed: bool = False
    played_pos: int | None = None  # last echoed mark position within this utterance
    played_at: float = 0.0
    synth_task: asyncio.Task[None] | None = field(default=None, repr=False)
    #: prepared μ-law audio (keypad tones) instead of synthesized text; never cut by barge-in
    audio: bytes | None = field(default=None, repr=False)
    #: False: the caller's speech does not cut it (a goodbye: the call ends after it anyway)
    interruptible: bool = True
    turn: TurnStamps | None = None  # the caller's turn this utterance answers (latency)
    #: told the latency record as soon as it is whole (the first frame went out)
    on_latency: Callable[[TurnLatency], None] | None = field(default=None, repr=False)

    @property
    def start_mark(self) -> str:
        return f"u{self.number}s"

    @property
    def end_mark(self) -> str:
        return f"u{self.number}e"

    def _latency(self) -> TurnLatency | None:
        return None if self.turn is None else self.turn.build()

    def played_out(self) -> SpokenResult:
        """Its end mark was echoed: all of it was heard (unless its synthesis failed part-way:
        then what was sent, against the length the whole text would have had)."""
        sent_ms = self.bytes_pushed // _BYTES_PER_MS
        if not self.failed:
            return SpokenResult(True, sent_ms, sent_ms, self.text, self._latency())
        total_ms = estimate_total_ms(self.text, sent_ms, False)
        return SpokenResult(
            False, sent_ms, total_ms, heard_text(self.text, sent_ms, total_ms), self._latency()
        )

    def cut_at(self, now: float, mark_every_ms: int | None) -> SpokenResult:
        """Cut at ``now`` (player clock): what was heard, from the last echoed mark and the time
        since (never extrapolated past 1.5 mark intervals)."""
        cap = math.inf if mark_every_ms is None else mark_every_ms * 1.5
        heard = (
            0
            if self.start_pos is None
            else heard_bytes(
                start_pos=self.start_pos,
                sent_pos=self.sent_pos,
                played_pos=self.played_pos,
                since_played_ms=(now - self.played_at) * 1000.0,
                max_extrapolate_ms=cap,
            )
        )
        heard_ms = heard // _BYTES_PER_MS
        total_ms = estimate_total_ms(self.text, self.bytes_pushed // _BYTES_PER_MS, self.synth_done)
        return SpokenResult(
            False, heard_ms, total_ms, heard_text(self.text, heard_ms, total_ms), self._latency()
        )


def never_spoken(text: str) -> SpokenResult:
    """The result of an utterance dropped before any of it was sent."""
    return SpokenResult(False, 0, estimate_total_ms(text, 0, False), "")


async def prepared(ulaw: bytes, chunk: int = 1600) -> AsyncIterator[bytes]:
    """Prepared audio in pacer-sized chunks (200 ms), as a TTS stream would deliver it."""
    for start in range(0, len(ulaw), chunk):
        yield ulaw[start : start + chunk]
