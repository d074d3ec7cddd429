"""A scripted callee on a Media Stream (the I/O edge between :mod:`callee` and :mod:`media`).

Every 20 ms frame the stream driver hands over what the callee just heard (the app's audio as
played). :class:`CalleeOnStream` then

* plays the callee's scheduled sounds as audio when they fall due: speech (espeak-ng / Piper /
  WAV, synthesised a little ahead so it starts on time), beeps, hold music; a sound that was cut
  (an IVR prompt stopped by a key) is hushed at once. A sound already under way when the stream
  opened starts part-way, as a late listener would hear it;
* feeds the bot's audio to the callee: every frame to a voicemail (its recording), keypad tones
  found by the emulator's own DTMF detector to an IVR, and, for callees that understand speech,
  the bot's turns: utterances cut by marks/silence (:mod:`~voicecall.emulator.turns`) and
  transcribed with faster-whisper (:mod:`~voicecall.emulator.hearing`) in a worker thread;
* tells the call (``on_change``) when the callee's notes or hang-up time may have changed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from voicecall.emulator.callee import Callee, Sound
from voicecall.emulator.dtmf_detect import DtmfDetector
from voicecall.emulator.hearing import transcribe, warm_up, whisper_missing
from voicecall.emulator.media import MediaSession
from voicecall.emulator.speech_audio import Utterance, peek_speech, utterance_ulaw
from voicecall.emulator.tones import beep, hold_music, to_ulaw
from voicecall.emulator.turns import TurnCutter, TurnEvent, is_voiced
from voicecall.emulator.voicemail import VoicemailCallee
from voicecall.emulator.voices import Voice

__all__ = ["CalleeOnStream"]

SAMPLE_RATE = 8000
LOOKAHEAD = 3.0  # s: synthesise speech this long before it is due


class CalleeOnStream:
    def __init__(
        self,
        callee: Callee,
        session: MediaSession,
        *,
        voice: Voice,
        words_per_minute: float,
        listen: bool,
        hear: bool = True,
        record: Callable[..., None],
        on_change: Callable[[float], None],
        turn_gap_ms: float = 700.0,
    ) -> None:
        self.callee = callee
        self.session = session
        self.voice = voice
        self.wpm = words_per_minute
        self.hear = hear  # a fork only plays the callee's sounds: it hears nothing back
        self.listen = hear and listen and callee.listens
        self.record = record
        self.on_change = on_change
        self.cutter = TurnCutter(turn_gap_ms=turn_gap_ms) if self.listen else None
        self.detector = DtmfDetector() if hear and callee.hears_keys else None
        self._started: set[int] = set()
        self._audio: dict[int, bytes] = {}
        self._synth: dict[int, asyncio.Task[None]] = {}
        self._waiting: list[Sound] = []  # due, audio not ready yet
        self._playing: Sound | None = None
        self._utterances: list[asyncio.Task[str]] = []
        self._turns: list[asyncio.Task[None]] = []
        self._opened_at: float | None = None
        self._last_change = 0.0
        self._warm: asyncio.Task[None] | None = None
        if self.listen:  # load the speech model while the callee is still saying hello
            self._warm = asyncio.get_running_loop().create_task(warm_up())

    @staticmethod
    def hearing_missing() -> str | None:
        return whisper_missing()

    def _now(self, t_ms: float) -> float:
        started = self.session.started_at
        return (started if started is not None else 0.0) + t_ms / 1000.0

    # ------------------------------------------------------------------ per frame

    def tick(self, t_ms: float, heard: bytes) -> None:
        now = self._now(t_ms)
        if self._opened_at is None:
            self._opened_at = now
        changed = False
        callee = self.callee
        if callee.records and self.hear:
            voiced = is_voiced(heard)
            callee.heard_audio(now, heard, voiced)
            if voiced and now - self._last_change >= 0.5:
                changed = True
        if self.detector is not None:
            for press in self.detector.feed_ulaw(heard):
                self.record(
                    "callee-heard-key", digit=press.digit, stream_sid=self.session.stream_sid
                )
                callee.heard_digit(now, press.digit)
                changed = True
        if self.cutter is not None:
            for event in self.cutter.frame(t_ms, heard):
                self._on_turn_event(event)
        changed = self._play(now) or changed
        if changed:
            self._last_change = now
            self.on_change(now)

    def mark_echoed(self, t_ms: float, buffered: bool) -> None:
        if self.cutter is not None:
            for event in self.cutter.mark(t_ms, buffered):
                self._on_turn_event(event)

    # ------------------------------------------------------------------ speaking

    def _play(self, now: float) -> bool:
        callee, session = self.callee, self.session
        callee.advance(now)
        playing = self._playing
        if playing is not None and playing.cut and playing.end <= now:
            session.hush()
            self.record("callee-stream-hushed", text=playing.text, stream_sid=session.stream_sid)
            self._playing = None
        started = False
        for s in callee.sounds:
            if s.id in self._started:
                continue
            if s.start - LOOKAHEAD <= now and s.is_speech and s.id not in self._synth:
                self._prepare(s)
            if s.start <= now < s.end:
                self._started.add(s.id)
                self._waiting.append(s)
        for s in list(self._waiting):
            audio = self._audio_for(s)
            if audio is None:
                continue
            self._waiting.remove(s)
            assert self._opened_at is not None
            skip = max(0.0, self._opened_at - s.start)  # under way before the stream opened
            audio = audio[round(skip * SAMPLE_RATE) :]
            if s.cut:
                audio = audio[: max(0, round((s.end - max(s.start, self._opened_at)) * 8000))]
            session.say(audio, s.text or s.kind)
            self._playing = s
            started = True
            extra: dict[str, Any] = {"wav": s.wav} if s.wav else {"voice": str(self.voice)}
            if not s.is_speech:
                extra = {"sound": s.kind}
            self.record(
                "callee-stream-speech",
                text=s.text or s.kind,
                stream_sid=session.stream_sid,
                **extra,
            )
        return started

    def _audio_for(self, s: Sound) -> bytes | None:
        if s.kind == "beep" or s.kind == "tone":
            return beep(s.frequency_hz or 1000.0, s.seconds * 1000.0)
        if s.kind == "music":
            return to_ulaw(hold_music(s.seconds, s.style or "chords"))
        audio = self._audio.get(s.id)
        if audio is None:
            audio = peek_speech(Utterance(s.text, s.wav), self.wpm, self.voice)
        if audio is None and s.id not in self._synth:
            self._prepare(s)
        return audio

    def _prepare(self, s: Sound) -> None:
        async def synth() -> None:
            try:
                self._audio[s.id] = await utterance_ulaw(
                    Utterance(s.text, s.wav), self.wpm, self.voice
                )
            except Exception as exc:  # a broken voice: recorded, the callee stays silent
                self._audio[s.id] = b""
                self.record(
                    "callee-speech-error",
                    text=s.text,
                    error=f"{type(exc).__name__}: {exc}",
                    stream_sid=self.session.stream_sid,
                )

        self._synth[s.id] = asyncio.get_running_loop().create_task(synth())

    # ------------------------------------------------------------------ hearing

    def _on_turn_event(self, event: TurnEvent) -> None:
        if event.kind == "utterance":
            self._utterances.append(asyncio.get_running_loop().create_task(transcribe(event.audio)))
            return
        pending, self._utterances = self._utterances, []
        task = asyncio.get_running_loop().create_task(self._turn(pending, event))
        self._turns.append(task)

    async def _turn(self, pending: list[asyncio.Task[str]], event: TurnEvent) -> None:
        texts: list[str] = []
        for task in pending:
            try:
                texts.append(await task)
            except Exception as exc:
                self.record(
                    "callee-hearing-error",
                    error=f"{type(exc).__name__}: {exc}",
                    stream_sid=self.session.stream_sid,
                )
        text = " ".join(t for t in texts if t).strip()
        now = self._now_wall()
        self.record(
            "callee-stream-heard",
            text=text,
            stream_sid=self.session.stream_sid,
            start_ms=event.start_ms,
            end_ms=event.end_ms,
        )
        if text:
            self.callee.heard_text(now, text, self._now(event.end_ms))
        self.callee.turn_ended(now, at=self._now(event.end_ms))
        self.on_change(now)

    def _now_wall(self) -> float:
        started = self.session.started_at
        if started is None or self.session.started_mono is None:
            return time.time()
        return started + (time.monotonic() - self.session.started_mono)

    # ------------------------------------------------------------------ end

    async def close(self) -> None:
        """The stream ended: stop synthesis and listening; transcribe a voicemail's message."""
        tasks = [*self._synth.values(), *self._utterances, *self._turns]
        if self._warm is not None:
            tasks.append(self._warm)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        callee = self.callee
        message = callee.message if isinstance(callee, VoicemailCallee) else None
        if message is not None and message.audio and whisper_missing() is None:
            text = await transcribe(bytes(message.audio))
            message.transcript = text
            self.record("callee-voicemail-transcript", text=text, seconds=message.seconds)
