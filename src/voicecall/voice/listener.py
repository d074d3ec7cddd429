"""Inbound caller audio: μ-law frames → 8 kHz PCM → VAD → barge-in decision.

Pure (no task, no socket): the session feeds every inbound media payload, in order, from the
first frame after ``start``; the STT session gets the same payloads separately (it never waits
for the VAD). Payloads of any length are re-framed into 20 ms VAD frames.
"""

from __future__ import annotations

from typing import Final

from voicecall.audio.g711 import FRAME_BYTES, ulaw_decode
from voicecall.audio.vad import UlawVad, Vad, VadEvent, VadEventKind
from voicecall.voice.bargein import BargeInDetector, frame_rms

__all__ = ["Listener"]


class Listener:
    """Runs the VAD on caller audio and asks the :class:`BargeInDetector` about each start."""

    def __init__(self, vad: Vad | None, detector: BargeInDetector) -> None:
        self.vad: Final = vad
        self.detector: Final = detector
        self.samples = 0
        """Inbound 8 kHz samples received so far (the VAD's timeline)."""
        self.speech_starts = 0
        self._partial = b""
        self._feed_ulaw = vad.feed_ulaw if isinstance(vad, UlawVad) else None

    def feed(self, ulaw: bytes, *, bot_rms: float = 0.0) -> int | None:
        """Account for one payload; the onset sample of a barge-in it completed, if any."""
        self.samples += len(ulaw)
        if self.vad is None:
            return None
        if not self._partial and len(ulaw) == FRAME_BYTES:  # Twilio's 20 ms frame
            feed_ulaw = self._feed_ulaw
            if feed_ulaw is not None and self.detector.energy_ratio is None:
                event = feed_ulaw(ulaw)  # the common case, inline: most frames end here
                if event is None:
                    return None
                self.speech_starts += event.kind is VadEventKind.SPEECH_START
                return self.detector.update(event, caller_rms=0.0, bot_rms=bot_rms)
            return self._frame(ulaw, bot_rms)
        data = self._partial + ulaw if self._partial else ulaw
        whole = len(data) - len(data) % FRAME_BYTES
        self._partial = data[whole:]
        onset: int | None = None
        for offset in range(0, whole, FRAME_BYTES):
            got = self._frame(data[offset : offset + FRAME_BYTES], bot_rms)
            if got is not None and onset is None:
                onset = got
        return onset

    def _frame(self, frame: bytes, bot_rms: float) -> int | None:
        assert self.vad is not None
        if self._feed_ulaw is not None:
            event: VadEvent | None = self._feed_ulaw(frame)
            if event is None:
                return None
            pcm = ulaw_decode(frame) if self.detector.energy_ratio is not None else None
        else:
            pcm = ulaw_decode(frame)
            event = self.vad.feed(pcm)
            if event is None:
                return None
        self.speech_starts += event.kind.value == "speech_start"
        rms = frame_rms(pcm) if pcm is not None and self.detector.energy_ratio is not None else 0.0
        return self.detector.update(event, caller_rms=rms, bot_rms=bot_rms)
