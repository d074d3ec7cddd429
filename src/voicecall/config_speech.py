"""Settings of the speech path: ``[streaming]``, ``[tts]``, ``[stt]`` (with ``[stt.whisper]``),
``[vad]``, ``[turn]`` and ``[pacer]``.

Part of :mod:`voicecall.config` (which re-exports every class here and loads them as sections
of :class:`~voicecall.config.Settings`); kept apart so the service's settings stay readable.
:class:`Section` is the strict base of every settings section.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

__all__ = [
    "PacerSettings",
    "Section",
    "StreamingSettings",
    "SttDeepgramSettings",
    "SttOpenAiRealtimeSettings",
    "SttSettings",
    "SttWhisperSettings",
    "TtsElevenLabsSettings",
    "TtsEspeakSettings",
    "TtsOpenAiSettings",
    "TtsPiperSettings",
    "TtsSettings",
    "TurnSettings",
    "VadSettings",
]


class Section(BaseModel):
    """A settings section: unknown keys are an error (a typo never passes silently)."""

    model_config = ConfigDict(extra="forbid")


class StreamingSettings(Section):
    """``[streaming]``: answered calls talk over ``<Connect><Stream>`` when enabled."""

    enabled: bool = False
    start_timeout_seconds: float = Field(5.0, gt=0, le=60)
    max_frame_bytes: int = Field(64 * 1024, ge=1024, le=1024 * 1024)
    max_pending_per_ip: int = Field(16, ge=1, le=10_000)
    """WebSocket connections from one address that have not sent a valid ``start`` yet."""
    max_pending_total: int = Field(256, ge=1, le=100_000)
    max_streams: int = Field(1000, ge=1, le=100_000)
    """Open Media Streams sockets (attached or not) before new upgrades are refused."""
    max_queued_utterances: int = Field(8, ge=1, le=1000)


class TtsOpenAiSettings(Section):
    api_key: SecretStr | None = None
    base_url: str = "https://api.openai.com/v1"
    model: str = "gpt-4o-mini-tts"
    voice: str = "alloy"
    instructions: str | None = None


class TtsElevenLabsSettings(Section):
    api_key: SecretStr | None = None
    base_url: str = "https://api.elevenlabs.io"
    voice_id: str | None = None
    model_id: str | None = None


class TtsPiperSettings(Section):
    model_path: str | None = None
    length_scale: float = Field(1.0, gt=0.1, le=5.0)


class TtsEspeakSettings(Section):
    voice: str = "en-us"
    rate_wpm: int = Field(170, ge=80, le=500)


class TtsSettings(Section):
    """``[tts]``: ``provider`` unset chooses automatically (cloud key → local → ``<Say>``)."""

    provider: Literal["openai", "elevenlabs", "piper", "espeak", "twilio"] | None = None
    cached_phrases: list[str] = Field(
        default_factory=lambda: ["Okay.", "Sure.", "One moment, please."], max_length=100
    )
    """Said word for word often (acknowledgements): synthesized at start-up and played from
    memory, like the greeting, the disclosure and the hold lines."""
    openai: TtsOpenAiSettings = Field(default_factory=TtsOpenAiSettings)
    elevenlabs: TtsElevenLabsSettings = Field(default_factory=TtsElevenLabsSettings)
    piper: TtsPiperSettings = Field(default_factory=TtsPiperSettings)
    espeak: TtsEspeakSettings = Field(default_factory=TtsEspeakSettings)


class SttOpenAiRealtimeSettings(Section):
    api_key: SecretStr | None = None
    base_url: str = "wss://api.openai.com/v1/realtime?intent=transcription"
    model: str = "gpt-4o-transcribe"
    language: str | None = None


class SttDeepgramSettings(Section):
    api_key: SecretStr | None = None
    base_url: str = "wss://api.deepgram.com/v1/listen"
    model: str = "nova-2"
    language: str | None = None
    endpointing_ms: int | None = Field(None, ge=10, le=10_000)


class SttWhisperSettings(Section):
    """``[stt.whisper]``: local faster-whisper; its segmentation uses the ``[vad]`` engine and
    levels, with ``pause_ms`` as the silence that starts a transcription."""

    model_path: str | None = None
    language: str | None = "en"
    beam_size: int = Field(1, ge=1, le=10)
    temperature: float = Field(0.0, ge=0, le=1)
    """One temperature, no fallback (a fallback to hotter retries cost up to 1.9 s)."""
    without_timestamps: bool = True
    no_speech_threshold: float | None = Field(0.6, ge=0, le=1)
    compute_type: Literal["int8", "int8_float32", "float32"] = "int8"
    cpu_threads: int = Field(1, ge=0, le=64)
    """Threads per transcription; 0: CTranslate2's default (one was fastest on a busy 2-core
    box)."""
    fit_seconds: float | None = Field(6.0, ge=0.5, le=30)
    """Encode the audio plus this much silence, not Whisper's fixed 30 s window (3–5× faster on
    a CPU; a looping result is redone on the full window). Unset/false: always 30 s."""
    check_endings: bool = True
    """Read a finished-sounding transcript a second time, primed to keep unfinished words
    ("… for Friday and"), so a dropped "and" does not end the turn (~20 ms per reading)."""
    conjunction_p: float = Field(0.03, ge=0, le=1)
    """With ``check_endings``: Whisper's probability of " and"/" but"/" or"… where it put a
    sentence end, above which the end counts as dropped (the turn waits); 0: never."""
    pause_ms: int = Field(100, ge=20, le=2000)
    """Silence after which the turn so far is transcribed (early, while the caller pauses)."""

    @field_validator("fit_seconds", mode="before")
    @classmethod
    def _fit_off(cls, v: Any) -> Any:
        # TOML has no null: `false` (or "off") means the full 30 s window
        if v is False or (isinstance(v, str) and v.strip().lower() in ("false", "off", "none")):
            return None
        return v


class SttSettings(Section):
    """``[stt]``: ``provider`` unset chooses automatically (cloud key → whisper → ``<Gather>``)."""

    provider: Literal["openai-realtime", "deepgram", "whisper", "twilio"] | None = None
    openai_realtime: SttOpenAiRealtimeSettings = Field(default_factory=SttOpenAiRealtimeSettings)
    deepgram: SttDeepgramSettings = Field(default_factory=SttDeepgramSettings)
    whisper: SttWhisperSettings = Field(default_factory=SttWhisperSettings)


class VadSettings(Section):
    """``[vad]``: caller speech detection for barge-in."""

    engine: Literal["webrtc", "silero"] = "webrtc"
    aggressiveness: int = Field(2, ge=0, le=3)
    """webrtcvad only: 0 (lenient) … 3 (filters non-speech hardest)."""
    threshold: float = Field(0.5, gt=0, lt=1)
    """silero only: speech probability threshold."""
    min_speech_ms: int = Field(60, ge=20, le=2000)
    """Speech must last this long before it counts (barge-in)."""
    min_silence_ms: int = Field(400, ge=20, le=5000)
    min_peak_dbfs: float | None = Field(-45.0, ge=-96, le=0)
    """Frames quieter than this peak level are silence whatever the VAD model says (line hum
    kept webrtcvad "in speech" for seconds after the caller spoke); unset: no gate."""
    barge_in: bool = True
    echo_guard_ms: int = Field(300, ge=0, le=5000)
    """Caller speech starting within this long after the bot's audio started is not a barge-in
    (the bot's own echo, and webrtcvad's noise-floor transient at stream start)."""
    echo_energy_ratio: float | None = Field(None, gt=0, le=100)
    """If set, caller speech must be at least this many times the RMS of the bot audio playing
    to count as a barge-in while the bot speaks (rejects loud echo)."""


class TurnSettings(Section):
    """``[turn]``: when the caller's turn is over (local whisper; cloud engines endpoint on
    their own). The silence needed depends on the words so far."""

    hangover_ms: int = Field(400, ge=0, le=5000)
    """Silence that ends a turn whose words sound complete ("Two people, please.")."""
    lead_in_ms: int = Field(700, ge=0, le=10_000)
    """Silence that ends a turn of only a greeting or marker ("Hi!", "Well"): people go on."""
    incomplete_ms: int = Field(2000, ge=0, le=10_000)
    """Silence that ends an unfinished turn ("a table for", "um", a trailing comma): the cap."""
    unsure_ms: int = Field(1200, ge=0, le=10_000)
    """Silence that ends words Whisper left without a sentence end ("Two people please")."""
    resume_ms: int = Field(1500, ge=0, le=10_000)
    """Speech this soon after a committed turn is heard together with it (local whisper: a half
    sentence it took for a whole one is transcribed again with the rest); 0: never."""
    speculate: bool | None = None
    """Start the responder on a partial transcript that sounds complete; its reply is used only
    if the final transcript says the same words (tools never run speculatively). Unset: on with
    local Whisper (partials only at pauses) or a local/in-process responder, off for a
    streaming cloud STT with a hosted chat endpoint (a paid request per interim result)."""

    @model_validator(mode="after")
    def _order(self) -> TurnSettings:
        if not self.hangover_ms <= self.lead_in_ms <= self.incomplete_ms:
            raise ValueError("hangover_ms <= lead_in_ms <= incomplete_ms must hold")
        if not self.hangover_ms <= self.unsure_ms <= self.incomplete_ms:
            raise ValueError("hangover_ms <= unsure_ms <= incomplete_ms must hold")
        return self


class PacerSettings(Section):
    """``[pacer]``: outbound audio scheduling."""

    lead_ms: int = Field(120, ge=0, le=2000)
    message_ms: int = Field(200, ge=20, le=1000)
    """Audio per outbound media message. 200 ms (not Twilio's 20 ms inbound frame) cuts
    the send work per stream ten-fold, and carries one periodic mark each; first audio is not
    delayed (a partial message goes out when due), Twilio's buffer never holds less than
    ``lead_ms``, and `clear` still empties it at once."""
    mark_every_ms: int | None = Field(200, ge=20, le=10_000)
    """Periodic marks (what the caller heard, for barge-in); unset: only utterance-end marks."""
    max_queue_ms: int = Field(60_000, ge=1000, le=600_000)

    @model_validator(mode="after")
    def _multiples(self) -> PacerSettings:
        if self.message_ms % 20:
            raise ValueError("message_ms must be a multiple of 20")
        if self.mark_every_ms is not None and self.mark_every_ms % self.message_ms:
            raise ValueError("mark_every_ms must be a multiple of message_ms")
        return self
