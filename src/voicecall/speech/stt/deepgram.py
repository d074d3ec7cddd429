"""Deepgram live transcription over WebSocket, fed raw μ-law 8 kHz frames.

Wire protocol (``wss://api.deepgram.com/v1/listen?encoding=mulaw&sample_rate=8000&channels=1&
interim_results=true&punctuate=true&model=…``, header ``Authorization: Token …``):

- client → binary frames of raw audio; text ``{"type":"KeepAlive"}`` during pauses (the
  service closes with 1011 ``NET-0001`` after 10 s without data); ``{"type":"CloseStream"}`` to
  finish (the service sends the last results and a ``Metadata`` message, then closes with 1000).
  An empty binary frame is never sent (it used to mean "close");
- server → ``Results`` messages: ``channel.alternatives[0].transcript``, ``start`` and
  ``duration`` (seconds), ``is_final`` (this span will not change) and ``speech_final`` (the
  speaker paused: the utterance is over); ``UtteranceEnd`` when ``utterance_end_ms`` is set;
- a rejected key is an HTTP 401 on the upgrade, with a ``dg-error`` header;
  undecodable audio closes with 1008 ``DATA-0000``.

The codec joins the ``is_final`` spans of one utterance and reports the whole utterance as a
final :class:`Transcript` at ``speech_final``; everything before that is a partial.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import urlencode

from voicecall.speech.errors import (
    SpeechError,
    SpeechRequestRejected,
    SpeechUnavailable,
    clip_detail,
)
from voicecall.speech.stt._websocket import WebSocketSttSession
from voicecall.speech.stt.base import DEFAULT_MAX_PENDING_FRAMES, SttNotice, Transcript

__all__ = ["DeepgramCodec", "DeepgramStt", "listen_query"]

PROVIDER: Final = "deepgram"
KEEPALIVE_INTERVAL: Final = 4.0
_KEEPALIVE: Final = json.dumps({"type": "KeepAlive"})
_CLOSE_STREAM: Final = json.dumps({"type": "CloseStream"})


def listen_query(
    model: str,
    *,
    language: str | None = None,
    endpointing_ms: int | None = None,
    utterance_end_ms: int | None = None,
) -> str:
    """The query string of a live session for Twilio audio."""
    params: dict[str, str] = {
        "model": model,
        "encoding": "mulaw",
        "sample_rate": "8000",
        "channels": "1",
        "interim_results": "true",
        "punctuate": "true",
    }
    if language:
        params["language"] = language
    if endpointing_ms is not None:
        params["endpointing"] = str(endpointing_ms)
    if utterance_end_ms is not None:
        params["utterance_end_ms"] = str(utterance_end_ms)
    return urlencode(params)


def _ms(seconds: object) -> int | None:
    if isinstance(seconds, bool) or not isinstance(seconds, int | float):
        return None
    if seconds != seconds or seconds < 0 or seconds > 1e7:  # NaN or absurd
        return None
    return round(seconds * 1000)


@dataclass
class DeepgramCodec:
    """Parses ``Results`` into partial and final transcripts (one instance per session)."""

    provider: str = PROVIDER
    _spans: list[str] = field(default_factory=list, repr=False)
    _start_ms: int | None = field(default=None, repr=False)
    _end_ms: int | None = field(default=None, repr=False)

    def opening_messages(self) -> list[str]:
        return []

    def audio_message(self, frame: bytes) -> bytes:
        return frame

    def keepalive_message(self) -> str | None:
        return _KEEPALIVE

    def closing_messages(self) -> list[str]:
        return [_CLOSE_STREAM]

    def receive(self, message: str | bytes) -> list[Transcript | SttNotice]:
        if isinstance(message, bytes):
            return [SttNotice("unexpected_binary", f"{len(message)}-byte binary message ignored")]
        try:
            event = json.loads(message)
        except ValueError:
            return [SttNotice("malformed", "message is not JSON")]
        if not isinstance(event, dict):
            return [SttNotice("malformed", "message is not an object")]
        kind = event.get("type")
        if kind == "Results":
            return self._on_results(event)
        if kind == "UtteranceEnd":
            return list(self._finish())
        if kind == "Error" or "err_code" in event:
            detail = event.get("description") or event.get("err_msg") or "no details"
            return [SttNotice(str(event.get("err_code") or "error"), clip_detail(str(detail)))]
        return []  # Metadata, SpeechStarted …

    def _on_results(self, event: dict[str, Any]) -> list[Transcript | SttNotice]:
        try:
            alternative = event["channel"]["alternatives"][0]
            text = alternative["transcript"]
        except (KeyError, IndexError, TypeError):
            return [SttNotice("malformed", "Results without channel.alternatives[0].transcript")]
        if not isinstance(text, str):
            return [SttNotice("malformed", "transcript is not a string")]
        text = text.strip()
        start = _ms(event.get("start"))
        duration = _ms(event.get("duration"))
        end = start + duration if start is not None and duration is not None else None
        out: list[Transcript | SttNotice] = []
        if text:
            if self._start_ms is None:
                self._start_ms = start
            if end is not None:
                self._end_ms = end
        if event.get("is_final") is True:
            if text:
                self._spans.append(text)
            if event.get("speech_final") is True:
                out.extend(self._finish())
            elif self._spans:
                out.append(self._make(" ".join(self._spans), final=False))
        elif text:
            out.append(self._make(" ".join([*self._spans, text]), final=False))
        return out

    def _make(self, text: str, *, final: bool) -> Transcript:
        start, end = self._start_ms, self._end_ms
        if start is not None and end is not None and end < start:
            end = None
        return Transcript(text, final, start, end)

    def _finish(self) -> list[Transcript]:
        if not self._spans:
            self._start_ms = self._end_ms = None
            return []
        transcript = self._make(" ".join(self._spans), final=True)
        self._spans.clear()
        self._start_ms = self._end_ms = None
        return [transcript]

    def end_of_stream(self) -> list[Transcript]:
        return self._finish()

    def close_error(self, code: int | None, reason: str, *, requested: bool) -> SpeechError | None:
        if code in (1000, None) and requested:
            return None
        if code in (1002, 1003, 1007, 1008):
            return SpeechRequestRejected(
                f"audio refused (close {code} {clip_detail(reason)})", provider=self.provider
            )
        return SpeechUnavailable(
            f"connection closed by the service ({code} {clip_detail(reason)})",
            provider=self.provider,
        )


class DeepgramStt:
    """Streaming STT through Deepgram's live ``/v1/listen`` WebSocket."""

    name: Final = PROVIDER

    def __init__(
        self,
        api_key: str,
        *,
        base_url: str = "wss://api.deepgram.com/v1/listen",
        model: str = "nova-2",
        language: str | None = None,
        endpointing_ms: int | None = None,
        utterance_end_ms: int | None = None,
        max_pending_frames: int = DEFAULT_MAX_PENDING_FRAMES,
        open_timeout: float = 10.0,
        keepalive_interval: float = KEEPALIVE_INTERVAL,
    ) -> None:
        if not api_key:
            raise ValueError("a Deepgram API key is required")
        self._api_key = api_key
        self.base_url: Final = base_url.rstrip("?")
        self.model: Final = model
        self.language: Final = language
        self.endpointing_ms: Final = endpointing_ms
        self.utterance_end_ms: Final = utterance_end_ms
        self.max_pending_frames: Final = max_pending_frames
        self.open_timeout: Final = open_timeout
        self.keepalive_interval: Final = keepalive_interval

    def __repr__(self) -> str:
        return f"DeepgramStt(base_url={self.base_url!r}, model={self.model!r})"

    @property
    def url(self) -> str:
        query = listen_query(
            self.model,
            language=self.language,
            endpointing_ms=self.endpointing_ms,
            utterance_end_ms=self.utterance_end_ms,
        )
        separator = "&" if "?" in self.base_url else "?"
        return f"{self.base_url}{separator}{query}"

    async def open_session(self) -> WebSocketSttSession:
        return WebSocketSttSession(
            DeepgramCodec(),
            self.url,
            {"Authorization": f"Token {self._api_key}"},
            max_pending_frames=self.max_pending_frames,
            open_timeout=self.open_timeout,
            keepalive_interval=self.keepalive_interval,
        ).start()

    async def aclose(self) -> None:
        return None
