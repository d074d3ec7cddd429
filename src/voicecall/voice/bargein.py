"""Pure turn-taking arithmetic: when caller speech is a barge-in, and what the caller heard.

No clock, no socket. Inbound time is counted in 8 kHz samples received since the stream opened
(the VAD's own timeline), so the echo guard needs no wall clock either.
"""

from __future__ import annotations

import math
from typing import Final

import numpy as np
import numpy.typing as npt

from voicecall.audio.g711 import BYTES_PER_SECOND, SAMPLE_RATE
from voicecall.audio.vad import VadEvent, VadEventKind

__all__ = ["BargeInDetector", "estimate_total_ms", "frame_rms", "heard_bytes", "heard_text"]

_SAMPLES_PER_MS: Final = SAMPLE_RATE // 1000
_BYTES_PER_MS: Final = BYTES_PER_SECOND // 1000
_CHARS_PER_SECOND: Final = 14.0  # ~170 words a minute, for utterances cut before synthesis ended


def frame_rms(pcm: npt.NDArray[np.int16]) -> float:
    """Root mean square of int16 samples (0.0 for an empty frame)."""
    if pcm.size == 0:
        return 0.0
    x = pcm.astype(np.float32)
    return float(np.sqrt(np.mean(x * x)))


class BargeInDetector:
    """Decides, per VAD event, whether caller speech interrupts the bot.

    A ``SPEECH_START`` is a barge-in when the bot's audio is playing (:meth:`bot_started` …
    :meth:`bot_stopped`), the speech began at least ``echo_guard_ms`` after the bot's audio
    started (its own echo and webrtcvad's noise-floor transient come first), and, when
    ``energy_ratio`` is set, the caller is at least that many times louder (RMS) than the bot's
    audio. Speech that began while it could not count is never promoted later: the detector
    waits for the next start.
    """

    def __init__(self, *, echo_guard_ms: int = 300, energy_ratio: float | None = None) -> None:
        if echo_guard_ms < 0:
            raise ValueError("echo_guard_ms must be >= 0")
        if energy_ratio is not None and energy_ratio <= 0:
            raise ValueError("energy_ratio must be > 0")
        self.echo_guard_samples: Final = echo_guard_ms * _SAMPLES_PER_MS
        self.energy_ratio: Final = energy_ratio
        self._guard_until: int | None = None  # inbound sample; None: bot silent

    @property
    def bot_speaking(self) -> bool:
        return self._guard_until is not None

    def bot_started(self, inbound_sample: int) -> None:
        """The bot's audio started (first media of an utterance sent) at this inbound offset."""
        if self._guard_until is None:
            self._guard_until = inbound_sample + self.echo_guard_samples

    def bot_stopped(self) -> None:
        """The bot's audio ended (end mark echoed) or was cleared."""
        self._guard_until = None

    def update(
        self, event: VadEvent | None, *, caller_rms: float = 0.0, bot_rms: float = 0.0
    ) -> int | None:
        """The onset sample of a barge-in, or ``None``."""
        if event is None or event.kind is not VadEventKind.SPEECH_START:
            return None
        if self._guard_until is None or event.sample < self._guard_until:
            return None
        if self.energy_ratio is not None and caller_rms < self.energy_ratio * bot_rms:
            return None
        return event.sample


def heard_bytes(
    *,
    start_pos: int,
    sent_pos: int,
    played_pos: int | None,
    since_played_ms: float,
    max_extrapolate_ms: float,
) -> int:
    """Bytes of one utterance the caller heard before a cut.

    ``played_pos`` is the position of the last mark Twilio echoed as played (``None``: none yet
    in this utterance); playout continued for ``since_played_ms`` since that echo, counted at most
    ``max_extrapolate_ms`` (the mark interval: beyond it a missing echo means it had not played)
    and never beyond what was sent (``sent_pos``). Positions are pacer byte positions.
    """
    if played_pos is None:
        return 0  # no echo yet: nothing is known to have played
    base = max(played_pos, start_pos)
    extra = int(max(0.0, min(since_played_ms, max_extrapolate_ms)) * _BYTES_PER_MS)
    return max(0, min(sent_pos, base + extra) - start_pos)


def estimate_total_ms(text: str, synthesized_ms: int, finished: bool) -> int:
    """Length of the whole utterance: exact when synthesis finished, else estimated from text."""
    if finished:
        return synthesized_ms
    return max(synthesized_ms, math.ceil(len(text) / _CHARS_PER_SECOND * 1000))


def heard_text(text: str, heard_ms: int, total_ms: int) -> str:
    """The words played before the cut, proportionally to time (approximate)."""
    words = text.split()
    if total_ms <= 0 or heard_ms <= 0 or not words:
        return ""
    if heard_ms >= total_ms:
        return " ".join(words)
    return " ".join(words[: int(len(words) * heard_ms / total_ms)])
