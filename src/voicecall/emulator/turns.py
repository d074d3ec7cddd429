"""Cutting the bot's audio into utterances and turns, as a scripted listener hears it (pure).

Fed one 20 ms frame at a time (what the callee heard: the app's audio as played, silence
included) plus the app's ``mark`` echoes, a :class:`TurnCutter` says when

* an **utterance** ends: a mark was echoed with nothing more to play, or ``pause_ms`` of quiet
  followed speech (each utterance can be transcribed at once, while the bot goes on), and
* the **turn** ends: ``turn_gap_ms`` of quiet after the last utterance (the bot has yielded the
  floor: the person may answer).

A frame is voiced when its RMS is above ``threshold`` (about -40 dBFS by default); an app that
streams silence frames between sentences is handled like one that sends nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from voicecall.audio.g711 import ulaw_decode

__all__ = ["TurnCutter", "TurnEvent", "is_voiced"]

FRAME_MS = 20
VOICE_RMS = 330.0  # about -40 dBFS


def is_voiced(frame: bytes, threshold: float = VOICE_RMS) -> bool:
    """A μ-law frame with sound in it (RMS above ``threshold``)."""
    if not frame or frame.count(0xFF) + frame.count(0x7F) == len(frame):
        return False
    pcm = ulaw_decode(frame).astype(np.float64)
    return float(np.sqrt(np.mean(pcm * pcm))) > threshold


@dataclass(frozen=True, slots=True)
class TurnEvent:
    kind: str  # utterance | turn
    start_ms: float
    end_ms: float
    audio: bytes = b""  # utterance: its μ-law (from its first voiced frame to its end)


@dataclass
class TurnCutter:
    pause_ms: float = 400.0
    turn_gap_ms: float = 700.0
    threshold: float = VOICE_RMS  # RMS of int16 samples
    max_utterance_ms: float = 30_000.0
    _audio: bytearray = field(default_factory=bytearray)
    _start: float | None = None  # current utterance
    _last_voice: float | None = None
    _turn_open: bool = False
    _turn_start: float = 0.0
    _turn_last: float = 0.0

    @property
    def speaking(self) -> bool:
        return self._start is not None

    def _close(self, end_ms: float) -> TurnEvent:
        assert self._start is not None
        event = TurnEvent("utterance", self._start, end_ms, bytes(self._audio))
        self._audio.clear()
        self._start = None
        self._turn_last = end_ms
        return event

    def frame(self, now_ms: float, frame: bytes) -> list[TurnEvent]:
        """One frame the callee heard, starting at ``now_ms`` (stream time)."""
        out: list[TurnEvent] = []
        if is_voiced(frame, self.threshold):
            if self._start is None:
                self._start = now_ms
                if not self._turn_open:
                    self._turn_open, self._turn_start = True, now_ms
            self._last_voice = now_ms + FRAME_MS
            self._audio += frame
            if now_ms + FRAME_MS - self._start >= self.max_utterance_ms:
                out.append(self._close(now_ms + FRAME_MS))
            return out
        if self._start is not None:
            self._audio += frame
            assert self._last_voice is not None
            if now_ms + FRAME_MS - self._last_voice >= self.pause_ms:
                keep = len(self._audio) - round((now_ms + FRAME_MS - self._last_voice) * 8)
                del self._audio[max(0, keep) :]
                out.append(self._close(self._last_voice))
            return out
        if self._turn_open and now_ms + FRAME_MS - self._turn_last >= self.turn_gap_ms:
            self._turn_open = False
            out.append(TurnEvent("turn", self._turn_start, self._turn_last))
        return out

    def mark(self, now_ms: float, buffered: bool) -> list[TurnEvent]:
        """A mark was echoed; ``buffered``: the app still has audio queued after it."""
        if self._start is not None and not buffered:
            assert self._last_voice is not None
            return [self._close(max(self._last_voice, now_ms))]
        return []
