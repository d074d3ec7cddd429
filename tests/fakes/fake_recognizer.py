"""A scripted "speech recognizer" for the fake STT services.

It does what a real service's turn detection does, with an energy threshold: speech starts at
the first loud 20 ms block once ``min_speech_ms`` of loud audio has accumulated, and ends after
``silence_ms`` of quiet. Each utterance is "recognized" as the next line of the script.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True)
class SpeechStarted:
    start_ms: int


@dataclass(frozen=True)
class SpeechProgress:
    """Emitted every ``progress_ms`` of speech: the words a streaming recognizer has so far."""

    start_ms: int
    now_ms: int
    words: list[str]


@dataclass(frozen=True)
class SpeechStopped:
    start_ms: int
    end_ms: int
    text: str


RecognizerEvent = SpeechStarted | SpeechProgress | SpeechStopped


@dataclass
class ScriptedRecognizer:
    script: list[str]
    sample_rate: int = 8000
    threshold_rms: float = 300.0
    min_speech_ms: int = 60
    silence_ms: int = 300
    progress_ms: int = 200
    block_ms: int = 20
    samples_seen: int = 0
    utterances: int = 0
    _rest: npt.NDArray[np.int16] = field(default_factory=lambda: np.zeros(0, np.int16))
    _loud_ms: int = 0
    _first_loud_ms: int | None = None
    _last_loud_end_ms: int = 0
    _started: bool = False
    _quiet_ms: int = 0
    _next_progress_ms: int = 0

    @property
    def audio_ms(self) -> int:
        return self.samples_seen * 1000 // self.sample_rate

    def _text(self) -> str:
        return self.script[self.utterances] if self.utterances < len(self.script) else ""

    def feed(self, samples: npt.NDArray[np.int16]) -> list[RecognizerEvent]:
        block = self.sample_rate * self.block_ms // 1000
        data = np.concatenate([self._rest, samples.astype(np.int16)])
        events: list[RecognizerEvent] = []
        n_blocks = len(data) // block
        for i in range(n_blocks):
            chunk = data[i * block : (i + 1) * block].astype(np.float64)
            start_ms = self.samples_seen * 1000 // self.sample_rate
            self.samples_seen += block
            end_ms = self.samples_seen * 1000 // self.sample_rate
            loud = float(np.sqrt(np.mean(chunk * chunk))) >= self.threshold_rms
            events.extend(self._step(loud, start_ms, end_ms))
        self._rest = data[n_blocks * block :]
        return events

    def _step(self, loud: bool, start_ms: int, end_ms: int) -> list[RecognizerEvent]:
        out: list[RecognizerEvent] = []
        if loud:
            if self._first_loud_ms is None:
                self._first_loud_ms = start_ms
            self._loud_ms += self.block_ms
            self._last_loud_end_ms = end_ms
            self._quiet_ms = 0
            if not self._started and self._loud_ms >= self.min_speech_ms:
                self._started = True
                self._next_progress_ms = end_ms + self.progress_ms
                out.append(SpeechStarted(self._first_loud_ms))
        elif self._first_loud_ms is not None:
            self._quiet_ms += self.block_ms
            if not self._started and self._quiet_ms >= self.silence_ms:
                self._reset()  # a click, not speech
        if self._started and end_ms >= self._next_progress_ms:
            self._next_progress_ms = end_ms + self.progress_ms
            words = self._text().split()
            spoken = (end_ms - (self._first_loud_ms or 0)) // self.progress_ms
            out.append(SpeechProgress(self._first_loud_ms or 0, end_ms, words[: max(1, spoken)]))
        if self._started and self._quiet_ms >= self.silence_ms:
            out.append(self.stop())
        return out

    def stop(self) -> SpeechStopped:
        """End the current utterance now (stream closing)."""
        event = SpeechStopped(self._first_loud_ms or 0, self._last_loud_end_ms, self._text())
        self.utterances += 1
        self._reset()
        return event

    @property
    def in_speech(self) -> bool:
        return self._started

    def _reset(self) -> None:
        self._loud_ms = 0
        self._first_loud_ms = None
        self._started = False
        self._quiet_ms = 0
