"""Audio at the emulator's edges: ``<Play>`` downloads and recordings rendered to WAV (I/O).

* :func:`fetch_audio`: GET a ``<Play>`` URL with the emulator's shared HTTP client. 16-bit PCM
  WAV (any rate, mono or stereo) and raw 8 kHz μ-law (``audio/basic``) are played; anything else
  (MP3 ...) is refused with a one-line :class:`MediaError` (the call records a warning and skips
  the ``<Play>``).
* :func:`render_recording`: a :class:`~voicecall.emulator.recording.Recording` as a 16-bit 8 kHz
  WAV: its speech segments spoken by espeak-ng (a tone when espeak-ng is missing), WAV replies,
  keypad tones, beeps and hold music synthesised, ``<Play>`` audio as downloaded, and the audio
  that crossed Media Streams during it, each on its channel (mono: mixed; dual: left the
  person, right the call's side).
"""

from __future__ import annotations

import io
import wave
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import httpx
import numpy as np
import numpy.typing as npt

from voicecall.audio.g711 import ulaw_decode
from voicecall.emulator.recording import Recording, Segment
from voicecall.emulator.speech_audio import cached_speech
from voicecall.emulator.tones import dtmf_pcm, hold_music, tone
from voicecall.emulator.voices import VoiceError, decode_wav, load_wav
from voicecall.emulator.webhooks import USER_AGENT, WebhookSender

__all__ = ["MAX_MEDIA_BYTES", "MediaError", "StreamAudio", "fetch_audio", "render_recording"]

SAMPLE_RATE = 8000
MAX_MEDIA_BYTES = 16 * 1024 * 1024
_WAV_TYPES = frozenset({"audio/wav", "audio/x-wav", "audio/wave", "audio/vnd.wave"})
_ULAW_TYPES = frozenset({"audio/basic", "audio/x-mulaw", "audio/ulaw", "audio/mulaw"})


class MediaError(Exception):
    """A ``<Play>`` URL gave no playable audio (one line: why)."""


@dataclass(frozen=True, slots=True)
class StreamAudio:
    """One Media Stream's two tracks, from ``started_at`` (emulator clock) on."""

    started_at: float
    spoken: bytes  # the person (inbound), μ-law
    heard: bytes  # the app's audio as played (outbound), μ-law


async def fetch_audio(sender: WebhookSender | None, url: str) -> bytes:
    """Download ``url`` and return 8 kHz μ-law. Raises :class:`MediaError`."""
    if sender is None:
        raise MediaError("the emulator is not running")
    try:
        async with sender.client.stream(
            "GET", url, headers={"User-Agent": USER_AGENT}, timeout=15.0
        ) as resp:
            if not 200 <= resp.status_code < 300:
                raise MediaError(f"HTTP {resp.status_code}")
            ctype = resp.headers.get("content-type", "").split(";")[0].strip().lower()
            body = bytearray()
            async for chunk in resp.aiter_bytes():
                body += chunk
                if len(body) > MAX_MEDIA_BYTES:
                    raise MediaError(f"larger than {MAX_MEDIA_BYTES} bytes")
    except httpx.HTTPError as exc:
        raise MediaError(f"cannot fetch: {type(exc).__name__}") from None
    data = bytes(body)
    if ctype in _ULAW_TYPES:
        return data
    if ctype in _WAV_TYPES or (data[:4] == b"RIFF" and data[8:12] == b"WAVE"):
        try:
            return decode_wav(url, data).ulaw
        except VoiceError as exc:
            raise MediaError(str(exc)) from None
    raise MediaError(
        f"unsupported content type {ctype or 'none'} (the emulator plays 16-bit PCM WAV and "
        "audio/basic μ-law)"
    )


async def _segment_pcm(
    seg: Segment, play_audio: Callable[[str], bytes | None]
) -> npt.NDArray[np.int16]:
    seconds = max(0.0, seg.end - seg.start)
    if seg.kind in {"speech", "say", "app-error"} and seg.text and seg.wav is None:
        return ulaw_decode(await cached_speech(seg.text, 160.0))
    if seg.wav is not None:
        try:
            return ulaw_decode(load_wav(seg.wav).ulaw)
        except VoiceError:
            return np.zeros(0, dtype=np.int16)
    if seg.kind in {"digits", "tone"} and seg.text:
        digits = "".join(d for d in seg.text if d in "0123456789*#ABCDwW")
        return dtmf_pcm(digits) if digits else np.zeros(0, dtype=np.int16)
    if seg.kind == "beep":
        return tone(seg.frequency_hz or 1000.0, seconds * 1000.0)
    if seg.kind == "music":
        return hold_music(seconds, seg.style or "chords")
    if seg.kind == "play" and seg.url:
        audio = play_audio(seg.url)
        return ulaw_decode(audio) if audio else np.zeros(0, dtype=np.int16)
    return np.zeros(0, dtype=np.int16)


def _place(
    track: npt.NDArray[np.float64],
    pcm: npt.NDArray[np.int16],
    offset: float,
    limit: float | None = None,
) -> None:
    start = round(offset * SAMPLE_RATE)
    pcm_f = pcm.astype(np.float64)
    if limit is not None:
        pcm_f = pcm_f[: max(0, round(limit * SAMPLE_RATE))]
    if start < 0:
        pcm_f, start = pcm_f[-start:], 0
    end = min(len(track), start + len(pcm_f))
    if end > start:
        track[start:end] += pcm_f[: end - start]


async def render_recording(
    rec: Recording,
    streams: Sequence[StreamAudio] = (),
    play_audio: Callable[[str], bytes | None] = lambda url: None,
) -> bytes:
    """The recording as a 16-bit 8 kHz WAV (mono, or stereo when ``channels`` is 2)."""
    a, b = rec.span
    n = max(0, round((b - a) * SAMPLE_RATE))
    person = np.zeros(n, dtype=np.float64)
    app = np.zeros(n, dtype=np.float64)
    # Media Streams carried the real audio of a call recording while they were open.
    windows = (
        []
        if rec.source != "OutboundAPI"
        else [
            (s.started_at, s.started_at + max(len(s.spoken), len(s.heard)) / SAMPLE_RATE)
            for s in streams
        ]
    )
    for seg in rec.segments:
        if any(w0 <= seg.start < w1 for w0, w1 in windows):
            continue
        pcm = await _segment_pcm(seg, play_audio)
        track = person if seg.channel == "callee" else app
        _place(track, pcm, seg.start - a, seg.end - seg.start)
    if rec.source == "OutboundAPI":
        for s in streams:
            if rec.track in {"both", "inbound"}:
                _place(person, ulaw_decode(s.spoken), s.started_at - a)
            if rec.track in {"both", "outbound"}:
                _place(app, ulaw_decode(s.heard), s.started_at - a)
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setsampwidth(2)
        w.setframerate(SAMPLE_RATE)
        if rec.channels == 2:
            w.setnchannels(2)
            frames = np.stack([person, app], axis=1)
        else:
            w.setnchannels(1)
            frames = person + app
        w.writeframes(np.clip(np.rint(frames), -32768, 32767).astype("<i2").tobytes())
    return buf.getvalue()
