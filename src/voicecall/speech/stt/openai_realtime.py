"""OpenAI Realtime transcription over WebSocket, fed G.711 μ-law directly (no resampling).

Wire protocol (``wss://api.openai.com/v1/realtime?intent=transcription``, headers
``Authorization: Bearer …`` and ``OpenAI-Beta: realtime=v1``):

- client → ``transcription_session.update`` with ``input_audio_format: "g711_ulaw"``, the
  transcription model and ``server_vad`` turn detection; then one
  ``input_audio_buffer.append`` (``audio``: base64) per frame;
- server → ``input_audio_buffer.speech_started`` / ``speech_stopped`` (``audio_start_ms`` /
  ``audio_end_ms``, ``item_id``), ``conversation.item.input_audio_transcription.delta``
  (``item_id``, ``delta``) for partials and ``…completed`` (``item_id``, ``transcript``) for finals;
  ``error`` events (``error.type``, ``error.code``, ``error.message``) are mostly recoverable;
- a rejected key is not an HTTP refusal: the socket opens, an ``error`` event arrives and the
  server closes with code 3000, reason ``invalid_request_error.invalid_api_key``.

:class:`OpenAiRealtimeCodec` is the sans-I/O part; :class:`OpenAiRealtimeStt` the provider.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from typing import Any, Final

from voicecall.speech.errors import (
    SpeechAuthError,
    SpeechError,
    SpeechRequestRejected,
    SpeechUnavailable,
    clip_detail,
)
from voicecall.speech.stt._websocket import WebSocketSttSession
from voicecall.speech.stt.base import DEFAULT_MAX_PENDING_FRAMES, SttNotice, Transcript

__all__ = ["OpenAiRealtimeCodec", "OpenAiRealtimeStt", "ServerVad"]

PROVIDER: Final = "openai-realtime"
_CLOSE_INVALID_REQUEST: Final = 3000
_FATAL_CODES: Final = frozenset({"invalid_api_key", "insufficient_quota", "session_expired"})


@dataclass(frozen=True, slots=True)
class ServerVad:
    """OpenAI's server-side turn detection parameters."""

    threshold: float = 0.5
    prefix_padding_ms: int = 300
    silence_duration_ms: int = 500

    def __post_init__(self) -> None:
        if not 0.0 <= self.threshold <= 1.0:
            raise ValueError("threshold must be in [0, 1]")
        if self.prefix_padding_ms < 0 or self.silence_duration_ms < 0:
            raise ValueError("durations must be >= 0")

    def as_json(self) -> dict[str, Any]:
        return {
            "type": "server_vad",
            "threshold": self.threshold,
            "prefix_padding_ms": self.prefix_padding_ms,
            "silence_duration_ms": self.silence_duration_ms,
        }


@dataclass
class _Item:
    text: str = ""
    started_at_ms: int | None = None
    ended_at_ms: int | None = None


@dataclass
class OpenAiRealtimeCodec:
    """Builds the client events and turns server events into transcripts (one per session)."""

    model: str = "gpt-4o-transcribe"
    language: str | None = None
    prompt: str | None = None
    vad: ServerVad = field(default_factory=ServerVad)
    provider: str = PROVIDER
    _items: dict[str, _Item] = field(default_factory=dict, repr=False)

    # --- client → server -------------------------------------------------------------------
    def opening_messages(self) -> list[str]:
        transcription: dict[str, Any] = {"model": self.model}
        if self.language:
            transcription["language"] = self.language
        if self.prompt:
            transcription["prompt"] = self.prompt
        update = {
            "type": "transcription_session.update",
            "session": {
                "input_audio_format": "g711_ulaw",
                "input_audio_transcription": transcription,
                "turn_detection": self.vad.as_json(),
            },
        }
        return [json.dumps(update)]

    def audio_message(self, frame: bytes) -> str:
        audio = base64.b64encode(frame).decode("ascii")
        return json.dumps({"type": "input_audio_buffer.append", "audio": audio})

    def keepalive_message(self) -> str | None:
        return None

    def closing_messages(self) -> list[str]:
        return []

    # --- server → client -------------------------------------------------------------------
    def receive(self, message: str | bytes) -> list[Transcript | SttNotice]:
        if isinstance(message, bytes):
            return [SttNotice("unexpected_binary", f"{len(message)}-byte binary message ignored")]
        try:
            event = json.loads(message)
        except ValueError:
            return [SttNotice("malformed", "message is not JSON")]
        if not isinstance(event, dict) or not isinstance(event.get("type"), str):
            return [SttNotice("malformed", "message has no type")]
        handler = _HANDLERS.get(event["type"])
        if handler is None:
            return []  # session.created, committed, item.created …: nothing to do
        return handler(self, event)

    def end_of_stream(self) -> list[Transcript]:
        self._items.clear()  # partial items never completed: nothing final to report
        return []

    def close_error(self, code: int | None, reason: str, *, requested: bool) -> SpeechError | None:
        if code == _CLOSE_INVALID_REQUEST:
            if reason.endswith("invalid_api_key"):
                return SpeechAuthError("API key rejected (close 3000)", provider=self.provider)
            return SpeechRequestRejected(
                f"session refused: {clip_detail(reason)}", provider=self.provider
            )
        if requested and code in (1000, None):
            return None
        return SpeechUnavailable(
            f"connection closed by the service ({code} {clip_detail(reason)})".rstrip(),
            provider=self.provider,
        )

    # --- handlers ----------------------------------------------------------------------------
    def _item(self, event: dict[str, Any]) -> _Item | None:
        item_id = event.get("item_id")
        if not isinstance(item_id, str):
            return None
        return self._items.setdefault(item_id, _Item())

    def _on_speech_started(self, event: dict[str, Any]) -> list[Transcript | SttNotice]:
        item = self._item(event)
        start = event.get("audio_start_ms")
        if item is not None and isinstance(start, int) and start >= 0:
            item.started_at_ms = start
        return []

    def _on_speech_stopped(self, event: dict[str, Any]) -> list[Transcript | SttNotice]:
        item = self._item(event)
        end = event.get("audio_end_ms")
        if item is not None and isinstance(end, int) and end >= 0:
            item.ended_at_ms = end
        return []

    def _on_delta(self, event: dict[str, Any]) -> list[Transcript | SttNotice]:
        item = self._item(event)
        delta = event.get("delta")
        if item is None or not isinstance(delta, str):
            return [SttNotice("malformed", "transcription delta without item_id or delta")]
        item.text += delta
        if not item.text.strip():
            return []
        return [self._transcript(item, item.text, final=False)]

    def _on_completed(self, event: dict[str, Any]) -> list[Transcript | SttNotice]:
        item_id = event.get("item_id")
        text = event.get("transcript")
        if not isinstance(item_id, str) or not isinstance(text, str):
            return [SttNotice("malformed", "transcription completed without item_id or transcript")]
        item = self._items.pop(item_id, _Item())
        if not text.strip():
            return []
        return [self._transcript(item, text.strip(), final=True)]

    def _on_failed(self, event: dict[str, Any]) -> list[Transcript | SttNotice]:
        item_id = event.get("item_id")
        if isinstance(item_id, str):
            self._items.pop(item_id, None)
        return [SttNotice("transcription_failed", _error_text(event.get("error")))]

    def _on_error(self, event: dict[str, Any]) -> list[Transcript | SttNotice]:
        error = event.get("error")
        code = error.get("code") if isinstance(error, dict) else None
        if code == "invalid_api_key":
            raise SpeechAuthError("API key rejected", provider=self.provider)
        if code in _FATAL_CODES:
            raise SpeechRequestRejected(str(code), provider=self.provider)
        return [SttNotice(str(code or "error"), _error_text(error))]

    @staticmethod
    def _transcript(item: _Item, text: str, *, final: bool) -> Transcript:
        start, end = item.started_at_ms, item.ended_at_ms
        if start is not None and end is not None and end < start:
            end = None
        return Transcript(text, final, start, end)


def _error_text(error: object) -> str:
    if isinstance(error, dict):
        message = error.get("message")
        if isinstance(message, str):
            return clip_detail(message)
    return "no details"


_HANDLERS: Final = {
    "input_audio_buffer.speech_started": OpenAiRealtimeCodec._on_speech_started,
    "input_audio_buffer.speech_stopped": OpenAiRealtimeCodec._on_speech_stopped,
    "conversation.item.input_audio_transcription.delta": OpenAiRealtimeCodec._on_delta,
    "conversation.item.input_audio_transcription.completed": OpenAiRealtimeCodec._on_completed,
    "conversation.item.input_audio_transcription.failed": OpenAiRealtimeCodec._on_failed,
    "error": OpenAiRealtimeCodec._on_error,
}


class OpenAiRealtimeStt:
    """Streaming STT through OpenAI's Realtime transcription sessions."""

    name: Final = PROVIDER

    def __init__(
        self,
        api_key: str,
        *,
        base_url: str = "wss://api.openai.com/v1/realtime?intent=transcription",
        model: str = "gpt-4o-transcribe",
        language: str | None = None,
        prompt: str | None = None,
        vad: ServerVad | None = None,
        max_pending_frames: int = DEFAULT_MAX_PENDING_FRAMES,
        open_timeout: float = 10.0,
    ) -> None:
        if not api_key:
            raise ValueError("an OpenAI API key is required")
        self._api_key = api_key
        self.base_url: Final = base_url
        self.model: Final = model
        self.language: Final = language
        self.prompt: Final = prompt
        self.vad: Final = vad or ServerVad()
        self.max_pending_frames: Final = max_pending_frames
        self.open_timeout: Final = open_timeout

    def __repr__(self) -> str:
        return f"OpenAiRealtimeStt(base_url={self.base_url!r}, model={self.model!r})"

    async def open_session(self) -> WebSocketSttSession:
        codec = OpenAiRealtimeCodec(
            model=self.model, language=self.language, prompt=self.prompt, vad=self.vad
        )
        headers = {"Authorization": f"Bearer {self._api_key}", "OpenAI-Beta": "realtime=v1"}
        return WebSocketSttSession(
            codec,
            self.base_url,
            headers,
            max_pending_frames=self.max_pending_frames,
            open_timeout=self.open_timeout,
        ).start()

    async def aclose(self) -> None:
        return None
