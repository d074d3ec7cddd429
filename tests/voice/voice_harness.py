"""Test doubles for the voice pipeline: a StreamHost, a deterministic TTS, the Twilio side of a
Media Stream in memory, and caller speech from espeak-ng."""

from __future__ import annotations

import asyncio
import base64
import json
import math
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest

from voicecall.audio.g711 import FRAME_BYTES, ulaw_encode
from voicecall.calls.channel import SpeechChannel, SpokenResult, StreamRejected
from voicecall.speech.errors import SpeechUnavailable
from voicecall.twilio.media import MediaSession

needs_espeak = pytest.mark.skipif(
    shutil.which("espeak-ng") is None, reason="espeak-ng not installed (apt install espeak-ng)"
)

CALL_SID = "CA" + "1" * 32
ACCOUNT_SID = "AC" + "2" * 32
STREAM_SID = "MZ" + "3" * 32


def start_message(token: str | None = "tok-1", call_sid: str = CALL_SID) -> str:
    params = {} if token is None else {"token": token}
    return json.dumps(
        {
            "event": "start",
            "sequenceNumber": "1",
            "streamSid": STREAM_SID,
            "start": {
                "accountSid": ACCOUNT_SID,
                "streamSid": STREAM_SID,
                "callSid": call_sid,
                "tracks": ["inbound"],
                "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
                "customParameters": params,
            },
        }
    )


class Wire:
    """Builds the Twilio → server messages of one stream (sequence numbers, chunks)."""

    def __init__(self) -> None:
        self.seq = 1
        self.chunk = 0

    def _next(self) -> str:
        self.seq += 1
        return str(self.seq)

    def media(self, ulaw: bytes) -> str:
        self.chunk += 1
        return json.dumps(
            {
                "event": "media",
                "sequenceNumber": self._next(),
                "streamSid": STREAM_SID,
                "media": {
                    "track": "inbound",
                    "chunk": str(self.chunk),
                    "timestamp": str(self.chunk * 20),
                    "payload": base64.b64encode(ulaw).decode(),
                },
            }
        )

    def mark(self, name: str) -> str:
        return json.dumps(
            {
                "event": "mark",
                "sequenceNumber": self._next(),
                "streamSid": STREAM_SID,
                "mark": {"name": name},
            }
        )

    def dtmf(self, digit: str) -> str:
        return json.dumps(
            {
                "event": "dtmf",
                "sequenceNumber": self._next(),
                "streamSid": STREAM_SID,
                "dtmf": {"track": "inbound_track", "digit": digit},
            }
        )

    def stop(self) -> str:
        return json.dumps(
            {
                "event": "stop",
                "sequenceNumber": self._next(),
                "streamSid": STREAM_SID,
                "stop": {"accountSid": ACCOUNT_SID, "callSid": CALL_SID},
            }
        )


@dataclass
class FakeHost:
    """A StreamHost: single-use tokens bound to a CallSid; records every callback."""

    tokens: dict[str, tuple[str, str]] = field(
        default_factory=lambda: {"tok-1": (CALL_SID, "call-1")}
    )
    claims: list[tuple[str, str]] = field(default_factory=list)
    attached: dict[str, SpeechChannel] = field(default_factory=dict)
    detached: list[tuple[str, str]] = field(default_factory=list)
    said: list[tuple[str, str, bool]] = field(default_factory=list)
    resumed: list[bool] = field(default_factory=list)
    """``resumed`` of each ``caller_said``, in the same order as ``said``."""
    pressed: list[tuple[str, str]] = field(default_factory=list)
    interrupted: list[tuple[str, SpokenResult]] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def _poke(self) -> None:
        self.changed.set()

    async def wait_for(self, predicate: Any, timeout: float = 20.0) -> None:
        async with asyncio.timeout(timeout):
            while not predicate():
                self.changed.clear()
                await self.changed.wait()

    async def claim_stream(self, *, token: str, call_sid: str) -> str:
        self.claims.append((token, call_sid))
        bound = self.tokens.pop(token, None)
        if bound is None:
            raise StreamRejected("unknown or used token")
        if bound[0] != call_sid:
            raise StreamRejected("token bound to another call")
        return bound[1]

    async def stream_attached(self, call_id: str, channel: SpeechChannel) -> None:
        self.attached[call_id] = channel
        self._poke()

    async def stream_detached(self, call_id: str, *, reason: str) -> None:
        self.detached.append((call_id, reason))
        self._poke()

    async def caller_said(
        self, call_id: str, text: str, *, final: bool, resumed: bool = False
    ) -> None:
        self.said.append((call_id, text, final))
        self.resumed.append(resumed)
        self._poke()

    async def caller_pressed(self, call_id: str, digit: str) -> None:
        self.pressed.append((call_id, digit))
        self._poke()

    async def bot_interrupted(self, call_id: str, result: SpokenResult) -> None:
        self.interrupted.append((call_id, result))
        self._poke()


def tone(ms: int, freq: float = 440.0, amplitude: int = 6000) -> bytes:
    t = np.arange(ms * 8) / 8000
    return ulaw_encode((np.sin(2 * math.pi * freq * t) * amplitude).astype(np.int16))


class ToneTts:
    """Deterministic TTS: ``ms_per_word`` of tone per word, yielded in ``chunk_ms`` pieces as
    fast as the consumer takes them. ``fail_after`` raises after that many chunks."""

    name = "tone"

    def __init__(
        self, *, ms_per_word: int = 100, chunk_ms: int = 100, fail_after: int | None = None
    ) -> None:
        self.ms_per_word = ms_per_word
        self.chunk_ms = chunk_ms
        self.fail_after = fail_after
        self.started: list[str] = []
        self.finished: list[str] = []
        self.closed_early: list[str] = []

    def total_bytes(self, text: str) -> int:
        return len(text.split()) * self.ms_per_word * 8

    async def synthesize(self, text: str) -> AsyncIterator[bytes]:
        self.started.append(text)
        audio = tone(len(text.split()) * self.ms_per_word)
        step = self.chunk_ms * 8
        sent = 0
        try:
            for i in range(0, len(audio), step):
                if self.fail_after is not None and sent >= self.fail_after:
                    raise SpeechUnavailable("tone engine broke", provider=self.name)
                await asyncio.sleep(0)
                yield audio[i : i + step]
                sent += 1
        except GeneratorExit:
            self.closed_early.append(text)
            raise
        self.finished.append(text)

    async def aclose(self) -> None:
        return None


_SPEECH_CACHE: dict[str, bytes] = {}


async def espeak_ulaw(text: str) -> bytes:
    """Caller speech: espeak-ng's voice as μ-law 8 kHz (cached per text)."""
    if text not in _SPEECH_CACHE:
        from voicecall.speech.tts.espeak import EspeakTts

        tts = EspeakTts()
        _SPEECH_CACHE[text] = b"".join([c async for c in tts.synthesize(text)])
    return _SPEECH_CACHE[text]


def frames(ulaw: bytes) -> list[bytes]:
    """Split into 20 ms frames, padding the last one with μ-law silence."""
    out = [ulaw[i : i + FRAME_BYTES] for i in range(0, len(ulaw), FRAME_BYTES)]
    if out and len(out[-1]) < FRAME_BYTES:
        out[-1] = out[-1] + b"\xff" * (FRAME_BYTES - len(out[-1]))
    return out


SILENCE_FRAME = b"\xff" * FRAME_BYTES


class TwilioPeer:
    """The Twilio side of one stream, in memory: the VoiceSession's Transport.

    Plays outbound audio on a nominal real-time buffer and echoes each mark when the audio before
    it has played (``hold_marks`` keeps them until :meth:`release_marks`); ``clear`` empties the
    buffer and echoes every pending mark at once, as Twilio does. Echoes and inbound frames go
    through the session's own :class:`MediaSession`, like frames off the socket would.
    """

    def __init__(self, *, hold_marks: bool = False, nowait: bool = True) -> None:
        self.nowait = nowait  # take frames synchronously, as the server's direct lane does
        self.loop = asyncio.get_running_loop()
        self.session: Any = None
        self.media: MediaSession | None = None
        self.wire = Wire()
        self.log: list[tuple[float, dict[str, Any]]] = []
        self.hold_marks = hold_marks
        self.closed: tuple[int, str] | None = None
        self._buffer_end = 0.0
        self._pending: list[tuple[str, asyncio.TimerHandle | None]] = []
        self.changed = asyncio.Event()

    # Transport
    def send_text_nowait(self, text: str) -> bool:
        if self.nowait:
            self.take(text)
        return self.nowait

    def send_texts_nowait(self, texts: list[str]) -> bool:
        if self.nowait:
            for text in texts:
                self.take(text)
        return self.nowait

    async def send_text(self, text: str) -> None:
        self.take(text)

    def take(self, text: str) -> None:
        now = self.loop.time()
        msg = json.loads(text)
        self.log.append((now, msg))
        event = msg["event"]
        if event == "media":
            n = len(base64.b64decode(msg["media"]["payload"]))
            self._buffer_end = max(now, self._buffer_end) + n / 8000
        elif event == "mark":
            name = msg["mark"]["name"]
            handle = None
            if not self.hold_marks:
                handle = self.loop.call_at(max(now, self._buffer_end), self._echo_later, name)
            self._pending.append((name, handle))
        elif event == "clear":
            self._buffer_end = now
            pending, self._pending = self._pending, []
            for name, handle in pending:
                if handle is not None:
                    handle.cancel()
                self._echo_later(name, remove=False)
        self.changed.set()

    async def close(self, code: int, reason: str) -> None:
        self.closed = (code, reason)

    # Twilio behaviour
    def _echo_later(self, name: str, remove: bool = True) -> None:
        if remove:
            self._pending = [(n, h) for n, h in self._pending if n != name]
        self.loop.create_task(self.deliver(self.wire.mark(name)))

    def release_marks(self) -> None:
        pending, self._pending = self._pending, []
        for name, _ in pending:
            self._echo_later(name, remove=False)

    async def deliver(self, text: str) -> None:
        assert self.media is not None and self.session is not None
        for event in self.media.receive_text(text):
            self.session.handle(event)

    async def speak(self, ulaw: bytes, *, realtime: bool = True) -> None:
        """Send caller audio in 20 ms frames (paced in real time unless told otherwise)."""
        for frame in frames(ulaw):
            await self.deliver(self.wire.media(frame))
            if realtime:
                await asyncio.sleep(0.02)
            else:
                await asyncio.sleep(0)

    # inspection
    def events(self, kind: str) -> list[dict[str, Any]]:
        return [m for _, m in self.log if m["event"] == kind]

    def media_bytes(self) -> int:
        return sum(len(base64.b64decode(m["media"]["payload"])) for m in self.events("media"))

    async def wait_for(self, predicate: Any, timeout: float = 20.0) -> None:
        async with asyncio.timeout(timeout):
            while not predicate():
                self.changed.clear()
                await self.changed.wait()
