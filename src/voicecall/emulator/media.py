"""Media Streams for the emulator: the pure session plus a thin WebSocket runner.

:class:`MediaSession` (pure) produces Twilio's messages (``connected``, ``start``, ``media``,
``dtmf``, ``mark``, ``stop``; ``sequenceNumber``/``chunk``/``timestamp`` as strings, the
sequence starting at 1 on ``start``) and consumes the app's (``media``, ``mark``, ``clear``):
outbound audio goes into a playback buffer drained 160 bytes per 20 ms tick; a ``mark`` is echoed
when all audio sent before it has played (at once if nothing is buffered); ``clear`` drops the
buffer and echoes every pending mark. Malformed JSON, binary frames and a wrong ``streamSid``
are counted and ignored, as Twilio does.

Underruns: an *utterance* is the app's audio between two marks/clears. When the buffer runs dry
inside an utterance and more audio of the same utterance arrives later, that gap is an underrun
(counted, with its length). Apps that mark the end of each utterance get no false underruns.

The callee's speech comes from WAV files or from text (``espeak-ng`` when installed, else a tone
of the same length; or Piper), see :mod:`voicecall.emulator.voices`, and is queued on the inbound
track; the session records the exact sample where each utterance
starts, so barge-in latency (``clear`` time minus onset) is measured from it.

Turns, as the caller sees them (``turns`` in the summary): for each utterance, where its last
voiced frame ends on the stream clock (``speech_end_ms``: the last 20 ms frame whose level is
above :data:`VOICED_RMS`), when that frame was sent (``speech_end_sent_ms``) and when the first
frame of the app's next audio arrived (``reply_ms``; the runner's clock, ms since sample 0), so
``voice_to_voice_ms`` is what a caller waits between its last word and the bot's first sound.
A turn that ends while the bot's audio is still playing (the two talk at once) has no reply
of its own (``overlap``; its ``reply_ms`` stays ``None``).

:func:`run_stream` is the I/O edge: it opens the WebSocket with ``X-Twilio-Signature`` over the
stream URL exactly as given in the TwiML, paces frames on an absolute monotonic schedule and
records its own send lateness.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from voicecall.audio.g711 import ulaw_decode
from voicecall.emulator.lateness import LatenessHistogram
from voicecall.emulator.speech_audio import (
    Utterance,
    _utterance,
    cached_speech,
    peek_speech,
    speech_ulaw,
    utterance_ulaw,
    wav_bytes,
)
from voicecall.emulator.ticker import FrameTicker
from voicecall.emulator.voices import Voice
from voicecall.emulator.wsclient import WebSocketClient, WebSocketConnectError, open_websocket

__all__ = [
    "FRAME_BYTES",
    "FRAME_MS",
    "MediaSession",
    "MediaStats",
    "StreamPlan",
    "Utterance",
    "cached_speech",
    "run_stream",
    "speech_ulaw",
    "wav_bytes",
]

FRAME_BYTES = 160
FRAME_MS = 20
SAMPLE_RATE = 8000
SILENCE = b"\xff" * FRAME_BYTES
SILENCE_B64 = base64.b64encode(SILENCE).decode("ascii")
MAX_MESSAGE_CHARS = 1 << 20
VOICED_RMS = 300.0
"""A frame louder than this (int16 RMS, about -40 dBFS) is voiced (turn measurements)."""


def last_voiced_frame(ulaw: bytes) -> int | None:
    """Index of the last 20 ms frame of ``ulaw`` above :data:`VOICED_RMS` (None: all quiet)."""
    n = -(-len(ulaw) // FRAME_BYTES)
    if n == 0:
        return None
    pcm = ulaw_decode(ulaw + SILENCE[: n * FRAME_BYTES - len(ulaw)]).astype(np.float64)
    rms = np.sqrt(np.mean(pcm.reshape(n, FRAME_BYTES) ** 2, axis=1))
    voiced = np.flatnonzero(rms > VOICED_RMS)
    return int(voiced[-1]) if voiced.size else None


@dataclass(slots=True)
class MediaStats:
    frames_sent: int = 0  # inbound media messages sent to the app
    media_received: int = 0  # media messages from the app
    bytes_received: int = 0
    frames_played: int = 0  # 20 ms ticks with app audio
    underruns: int = 0
    underrun_ms: float = 0.0
    marks_received: int = 0
    marks_echoed: int = 0
    clears: int = 0
    malformed: int = 0
    ignored: int = 0
    dtmf_sent: int = 0
    max_lateness_ms: float = 0.0
    late_frames: int = 0  # sent more than one frame late

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__slots__}


@dataclass(slots=True)
class _Utterance:
    text: str
    sample: int  # first sample on the inbound track
    ms: float


@dataclass
class MediaSession:
    account_sid: str
    call_sid: str
    stream_sid: str
    custom_parameters: dict[str, str] = field(default_factory=dict)
    tracks: tuple[str, ...] = ("inbound",)
    stats: MediaStats = field(default_factory=MediaStats)
    onsets: list[dict[str, Any]] = field(default_factory=list)
    clear_latencies_ms: list[float] = field(default_factory=list)
    app_utterances: list[dict[str, float]] = field(default_factory=list)
    marks: list[dict[str, Any]] = field(default_factory=list)
    turns: list[dict[str, Any]] = field(default_factory=list)  # see the module docs
    lateness: LatenessHistogram = field(default_factory=LatenessHistogram)  # per sent frame
    started_at: float | None = None  # emulator clock of sample 0 (set by the runner)
    started_mono: float | None = None  # time.monotonic() of sample 0
    bidirectional: bool = True  # a <Start> fork: the app's media/mark/clear are ignored

    def __post_init__(self) -> None:
        self._seq = 0
        self._chunk = 0
        self._buffer = bytearray()
        self._enqueued = 0
        self._played = 0
        self._pending_marks: list[tuple[int, str]] = []
        self._utterance_open = False
        self._dry_since: float | None = None
        self._playing = False
        self._inbound = bytearray()
        self._inbound_queue: list[tuple[bytes, str]] = []
        self._last_onset_ms: float | None = None
        self._voiced_left: int | None = None  # frames until the current utterance's last voiced
        self._voiced_label = ""
        self._turn_ended: dict[str, Any] | None = None  # reached in the frame being sent
        self.heard = bytearray()  # outbound track as the callee hears it (silence included)
        self.spoken = bytearray()  # inbound track: what the callee said (silence included)
        self._sid_json = json.dumps(self.stream_sid)

    # ---------------------------------------------------------------- Twilio -> app

    def _next_seq(self) -> str:
        self._seq += 1
        return str(self._seq)

    def connected(self) -> str:
        return json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"})

    def start(self) -> str:
        return json.dumps(
            {
                "event": "start",
                "sequenceNumber": self._next_seq(),
                "streamSid": self.stream_sid,
                "start": {
                    "accountSid": self.account_sid,
                    "streamSid": self.stream_sid,
                    "callSid": self.call_sid,
                    "tracks": list(self.tracks),
                    "mediaFormat": {
                        "encoding": "audio/x-mulaw",
                        "sampleRate": SAMPLE_RATE,
                        "channels": 1,
                    },
                    "customParameters": dict(self.custom_parameters),
                },
            }
        )

    def say(self, ulaw: bytes, label: str) -> None:
        """Queue callee speech on the inbound track (its onset is recorded when it starts)."""
        if ulaw:
            self._inbound_queue.append((ulaw, label))

    def hush(self) -> None:
        """The callee stops talking at once (drops what was queued on the inbound track)."""
        self._inbound.clear()
        self._inbound_queue.clear()

    @property
    def callee_speaking(self) -> bool:
        return bool(self._inbound) or bool(self._inbound_queue)

    def _next_inbound(self) -> tuple[bytes, str]:
        """Advance the inbound track by one frame: (frame, base64 payload)."""
        if not self._inbound and self._inbound_queue:
            ulaw, label = self._inbound_queue.pop(0)
            sample = self._chunk * FRAME_BYTES
            ms = self._chunk * FRAME_MS
            self.onsets.append({"text": label, "sample": sample, "ms": ms})
            self._last_onset_ms = float(ms)
            self._inbound += ulaw
            self._voiced_left, self._voiced_label = last_voiced_frame(ulaw), label
        self._turn_ended = None
        if self._voiced_left is not None:
            if self._voiced_left == 0:
                end = (self._chunk + 1) * FRAME_MS
                self._turn_ended = {"text": self._voiced_label, "speech_end_ms": end}
                self._voiced_left = None
            else:
                self._voiced_left -= 1
        if self._inbound:
            frame = bytes(self._inbound[:FRAME_BYTES])
            del self._inbound[:FRAME_BYTES]
            if len(frame) < FRAME_BYTES:
                frame += SILENCE[len(frame) :]
            self.spoken += frame
            return frame, base64.b64encode(frame).decode("ascii")
        self.spoken += SILENCE
        return SILENCE, SILENCE_B64

    def _media_message(self, track: str, chunk: int, timestamp: int, payload: str) -> str:
        self._seq += 1
        # Byte for byte what json.dumps gives for the message dict (tested), without building
        # and encoding a dict per frame: every value here is a digit string or base64.
        return (
            f'{{"event": "media", "sequenceNumber": "{self._seq}", "streamSid": '
            f'{self._sid_json}, "media": {{"track": "{track}", "chunk": "{chunk}", '
            f'"timestamp": "{timestamp}", "payload": "{payload}"}}}}'
        )

    def _sent(self, now_ms: float | None) -> None:
        """The frame just built is being sent at ``now_ms``: note a turn's speech end."""
        if self._turn_ended is not None:
            self.turns.append(
                {
                    **self._turn_ended,
                    "speech_end_sent_ms": now_ms,
                    "reply_ms": None,
                    "voice_to_voice_ms": None,
                    "overlap": bool(self._buffer) or self._utterance_open,
                }
            )
            self._turn_ended = None

    def media(self, now_ms: float | None = None) -> str:
        """The next inbound frame (callee speech or silence) as a ``media`` message;
        ``now_ms``: when it is sent (the runner's clock), for the turn measurements."""
        _, payload = self._next_inbound()
        self._sent(now_ms)
        timestamp = self._chunk * FRAME_MS
        self._chunk += 1
        self.stats.frames_sent += 1
        return self._media_message("inbound", self._chunk, timestamp, payload)

    def media_tracks(self, outbound: bytes, now_ms: float | None = None) -> list[str]:
        """The next frame of every track this stream carries (``outbound``: what the callee
        hears now). A fork with ``outbound_track`` only still advances the inbound track."""
        _, payload = self._next_inbound()
        self._sent(now_ms)
        timestamp = self._chunk * FRAME_MS
        self._chunk += 1
        out: list[str] = []
        if "inbound" in self.tracks:
            self.stats.frames_sent += 1
            out.append(self._media_message("inbound", self._chunk, timestamp, payload))
        if "outbound" in self.tracks:
            self.stats.frames_sent += 1
            frame = outbound[:FRAME_BYTES] + SILENCE[len(outbound) :]
            b64 = base64.b64encode(frame).decode("ascii")
            out.append(self._media_message("outbound", self._chunk, timestamp, b64))
        return out

    def dtmf(self, digit: str) -> str:
        self.stats.dtmf_sent += 1
        return json.dumps(
            {
                "event": "dtmf",
                "sequenceNumber": self._next_seq(),
                "streamSid": self.stream_sid,
                "dtmf": {"track": "inbound_track", "digit": digit},
            }
        )

    def _mark_message(self, name: str) -> str:
        self.stats.marks_echoed += 1
        return json.dumps(
            {
                "event": "mark",
                "sequenceNumber": self._next_seq(),
                "streamSid": self.stream_sid,
                "mark": {"name": name},
            }
        )

    def stop(self) -> str:
        return json.dumps(
            {
                "event": "stop",
                "sequenceNumber": self._next_seq(),
                "streamSid": self.stream_sid,
                "stop": {"accountSid": self.account_sid, "callSid": self.call_sid},
            }
        )

    # ---------------------------------------------------------------- app -> Twilio

    def receive(self, message: str | bytes, now_ms: float) -> list[str]:
        """Handle one message from the app; return messages to send back (mark echoes)."""
        if isinstance(message, bytes) or len(message) > MAX_MESSAGE_CHARS:
            self.stats.ignored += 1
            return []
        try:
            data = json.loads(message)
        except ValueError:
            self.stats.malformed += 1
            return []
        if not isinstance(data, dict):
            self.stats.malformed += 1
            return []
        event = data.get("event")
        if data.get("streamSid") != self.stream_sid or not self.bidirectional:
            self.stats.ignored += 1
            return []
        if event == "media":
            media = data.get("media")
            payload = media.get("payload") if isinstance(media, dict) else None
            if not isinstance(payload, str):
                self.stats.malformed += 1
                return []
            try:
                audio = base64.b64decode(payload, validate=True)
            except (binascii.Error, ValueError):
                self.stats.malformed += 1
                return []
            self.stats.media_received += 1
            self.stats.bytes_received += len(audio)
            if not audio:
                return []
            if (
                not self._utterance_open
                and self.turns
                and self.turns[-1]["reply_ms"] is None
                and not self.turns[-1]["overlap"]
            ):
                turn = self.turns[-1]  # the first frame of the app's audio after the turn
                turn["reply_ms"] = now_ms
                if turn["speech_end_sent_ms"] is not None:
                    turn["voice_to_voice_ms"] = round(now_ms - turn["speech_end_sent_ms"], 3)
            if self._utterance_open and self._dry_since is not None:
                self.stats.underruns += 1
                self.stats.underrun_ms += max(0.0, now_ms - self._dry_since)
            self._dry_since = None
            self._utterance_open = True
            self._buffer += audio
            self._enqueued += len(audio)
            return []
        if event == "mark":
            mark = data.get("mark")
            name = mark.get("name") if isinstance(mark, dict) else None
            if not isinstance(name, str):
                self.stats.malformed += 1
                return []
            self.stats.marks_received += 1
            self._utterance_open = False
            self._dry_since = None
            self.marks.append({"name": name, "received_ms": now_ms, "echoed_ms": None})
            if self._played >= self._enqueued:
                self.marks[-1]["echoed_ms"] = now_ms
                return [self._mark_message(name)]
            self._pending_marks.append((self._enqueued, name))
            return []
        if event == "clear":
            self.stats.clears += 1
            if self._last_onset_ms is not None:
                self.clear_latencies_ms.append(now_ms - self._last_onset_ms)
                self._last_onset_ms = None
            self._buffer.clear()
            self._enqueued = self._played
            self._utterance_open = False
            self._dry_since = None
            out = [self._echo(name, now_ms) for _, name in self._pending_marks]
            self._pending_marks.clear()
            return out
        self.stats.ignored += 1
        return []

    def _echo(self, name: str, now_ms: float) -> str:
        for m in self.marks:
            if m["name"] == name and m["echoed_ms"] is None:
                m["echoed_ms"] = now_ms
                break
        return self._mark_message(name)

    def play(self, now_ms: float) -> list[str]:
        """One 20 ms playback tick: drain a frame to the callee; return mark echoes due."""
        if self._buffer:
            frame = bytes(self._buffer[:FRAME_BYTES])
            del self._buffer[:FRAME_BYTES]
            self._played += len(frame)
            self.heard += frame + SILENCE[len(frame) :]
            self.stats.frames_played += 1
            if not self._playing:
                self._playing = True
                self.app_utterances.append({"start_ms": now_ms, "end_ms": now_ms})
            self.app_utterances[-1]["end_ms"] = now_ms + FRAME_MS
        else:
            self.heard += SILENCE
            if self._playing:
                self._playing = False
                if self._utterance_open:
                    self._dry_since = now_ms
        out: list[str] = []
        while self._pending_marks and self._pending_marks[0][0] <= self._played:
            _, name = self._pending_marks.pop(0)
            out.append(self._echo(name, now_ms))
        return out

    @property
    def app_playing(self) -> bool:
        return bool(self._buffer)

    def summary(self) -> dict[str, Any]:
        return {
            "stream_sid": self.stream_sid,
            "stats": self.stats.to_dict(),
            "onsets": list(self.onsets),
            "clear_latencies_ms": list(self.clear_latencies_ms),
            "app_utterances": list(self.app_utterances),
            "turns": [dict(t) for t in self.turns],
            "marks": list(self.marks),
            "lateness_ms": self.lateness.summary(),
        }


# -------------------------------------------------------------------- the I/O edge


@dataclass
class StreamPlan:
    """What the callee does on the stream (from the script), in ms after the stream starts.

    ``say_at`` and ``replies`` take plain strings too (spoken text), for convenience.
    """

    say_at: list[tuple[int, Utterance | str]] = field(default_factory=list)
    # ("speech", Utterance | text) | ("digits", "123#") | ("silence", "")
    replies: list[tuple[str, Utterance | str]] = field(default_factory=list)
    reply_delay_ms: int = 400
    drop_after_s: float | None = None
    words_per_minute: float = 150.0
    voice: Voice = Voice.ESPEAK
    listener: StreamListener | None = None  # a scripted callee (see callee_stream)
    outbound: Callable[[float], bytes] | None = None  # emulator time -> what the callee hears


class StreamListener(Protocol):
    """What a scripted callee needs from the stream driver (``callee_stream.CalleeOnStream``)."""

    def tick(self, t_ms: float, heard: bytes) -> None: ...

    def mark_echoed(self, t_ms: float, buffered: bool) -> None: ...

    async def close(self) -> None: ...


class _StreamDriver:
    """One stream's per-frame work, called by the shared :class:`FrameTicker` (no awaits)."""

    def __init__(
        self,
        client: WebSocketClient,
        session: MediaSession,
        plan: StreamPlan,
        record: Callable[..., None],
        ticker: FrameTicker,
    ) -> None:
        self.ticker = ticker
        self.client = client
        self.session = session
        self.plan = plan
        self.record = record
        self.due = 0.0
        self.t0 = time.monotonic()
        self.n = 0
        self.done: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self.finished = False
        self._say_at = sorted(
            ((at, _utterance(item)) for at, item in plan.say_at), key=lambda x: x[0]
        )
        self._replies = list(plan.replies)
        self._quiet_since: float | None = None
        self._heard_app = False
        self._say_queue: list[Utterance] = []
        self._say_task: asyncio.Task[None] | None = None
        self._drop_ms = None if plan.drop_after_s is None else plan.drop_after_s * 1000.0

    def now_ms(self) -> float:
        return (time.monotonic() - self.t0) * 1000.0

    def started(self, first_due: float) -> None:
        self.t0 = first_due - FRAME_MS / 1000.0

    def on_message(self, message: str | bytes) -> None:
        replies = self.session.receive(message, self.now_ms())
        for reply in replies:
            self.client.send_text(reply)
        if replies and self.plan.listener is not None:
            self.plan.listener.mark_echoed(self.now_ms(), self.session.app_playing)

    def _say(self, item: Utterance | str) -> None:
        u = _utterance(item)
        audio = peek_speech(u, self.plan.words_per_minute, self.plan.voice)
        if audio is not None and self._say_task is None:
            self._spoken(u, audio)
            return
        self._say_queue.append(u)  # load/synthesise off the ticker, in order
        if self._say_task is None:
            self._say_task = asyncio.get_running_loop().create_task(self._say_later())

    def _spoken(self, u: Utterance, audio: bytes) -> None:
        self.session.say(audio, u.label)
        extra = {"wav": u.wav} if u.wav is not None else {"voice": str(self.plan.voice)}
        self.record(
            "callee-stream-speech", text=u.label, stream_sid=self.session.stream_sid, **extra
        )

    async def _say_later(self) -> None:
        try:
            while self._say_queue:
                u = self._say_queue[0]
                try:
                    audio = await utterance_ulaw(u, self.plan.words_per_minute, self.plan.voice)
                except Exception as exc:  # a file gone since load, a broken voice: not fatal
                    self._say_queue.pop(0)
                    self.record(
                        "callee-speech-error",
                        text=u.label,
                        error=f"{type(exc).__name__}: {exc}",
                        stream_sid=self.session.stream_sid,
                    )
                    continue
                self._say_queue.pop(0)
                self._spoken(u, audio)
        finally:
            self._say_task = None

    def tick(self) -> None:
        session, client = self.session, self.client
        now = time.monotonic()
        lateness = (now - self.due) * 1000.0
        self.n += 1
        self.due = self.t0 + (self.n + 1) * (FRAME_MS / 1000.0)
        if self.finished or not client.is_open:
            return
        stats = session.stats
        session.lateness.add(lateness)
        self.ticker.window.add(lateness)
        if lateness > stats.max_lateness_ms:
            stats.max_lateness_ms = lateness
            if lateness > FRAME_MS:
                stats.late_frames += 1
        elif lateness > FRAME_MS:
            stats.late_frames += 1
        t = (now - self.t0) * 1000.0
        say_at = self._say_at
        while say_at and say_at[0][0] <= t:
            self._say(say_at.pop(0)[1])
        if self.plan.outbound is None:
            client.send_text(session.media(t))
        else:
            now = (session.started_at or 0.0) + t / 1000.0
            for message in session.media_tracks(self.plan.outbound(now), t):
                client.send_text(message)
        echoes = session.play(t)
        for echo in echoes:
            client.send_text(echo)
        listener = self.plan.listener
        if listener is not None:
            if echoes:
                listener.mark_echoed(t, session.app_playing)
            listener.tick(t, bytes(session.heard[-FRAME_BYTES:]))
        # Turn taking: reply once the app has spoken and gone quiet for reply_delay_ms.
        if session.app_playing:
            self._heard_app, self._quiet_since = True, None
        elif self._heard_app and self._replies and not session.callee_speaking:
            if self._quiet_since is None:
                self._quiet_since = t
            if t - self._quiet_since >= self.plan.reply_delay_ms:
                kind, value = self._replies.pop(0)
                self._heard_app, self._quiet_since = False, None
                if kind == "speech":
                    self._say(value)
                elif kind == "digits" and isinstance(value, str):
                    for digit in value:
                        if digit != "w":
                            client.send_text(session.dtmf(digit))
        if self._drop_ms is not None and t >= self._drop_ms:
            self.record("fault", fault="ws-drop", stream_sid=session.stream_sid)
            client.abort()
            self._finish("fault: websocket dropped")

    def _finish(self, reason: str) -> None:
        if not self.finished:
            self.finished = True
            self.done.set_result(reason)

    def tick_failed(self, exc: Exception) -> None:
        self._finish(f"emulator error: {type(exc).__name__}: {exc}")

    def cancel_speech(self) -> None:
        if self._say_task is not None:
            self._say_task.cancel()


async def run_stream(
    *,
    url: str,
    signature: str,
    session: MediaSession,
    plan: StreamPlan,
    stop: asyncio.Event,
    record: Callable[..., None],
    clock: Callable[[], float] | None = None,
) -> str:
    """Run one stream until the app closes it, ``stop`` is set, or a drop fault fires.

    Frames are sent by the loop's shared :class:`~voicecall.emulator.ticker.FrameTicker` on an
    absolute 20 ms schedule; each frame's send lateness goes into ``session.lateness``.
    Returns why the stream ended. Any connection failure is returned as a reason, never raised.
    """
    holder: list[_StreamDriver] = []

    def on_message(message: str | bytes) -> None:
        if holder:
            holder[0].on_message(message)
        else:
            session.receive(message, 0.0)

    try:
        client = await open_websocket(
            url,
            headers={"X-Twilio-Signature": signature},
            on_message=on_message,
            max_size=MAX_MESSAGE_CHARS,
            timeout=5.0,
        )
    except WebSocketConnectError as exc:
        return f"connect failed: {exc}"
    ticker = FrameTicker.for_loop()
    driver = _StreamDriver(client, session, plan, record, ticker)
    holder.append(driver)
    stop_wait = asyncio.ensure_future(stop.wait())
    try:
        client.send_text(session.connected())
        client.send_text(session.start())
        driver.started(ticker.add(driver))
        session.started_mono = driver.t0
        if clock is not None:
            session.started_at = clock() - (time.monotonic() - driver.t0)
        waits: set[asyncio.Future[Any]] = {stop_wait, client.closed, driver.done}
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        ticker.remove(driver)
        if driver.done.done():
            return driver.done.result()
        if stop.is_set() and client.is_open:
            client.send_text(session.stop())
            await client.close(1000)
            return "call ended"
        return "app closed the stream"
    finally:
        ticker.remove(driver)
        stop_wait.cancel()
        driver.cancel_speech()
        client.abort()
        if plan.listener is not None:
            await plan.listener.close()
