"""Voice pipeline tunables from :class:`~voicecall.config.Settings`, and provider configuration.

``[tts]``/``[stt]`` map onto :mod:`voicecall.speech.registry`'s ``TtsConfig``/``SttConfig``
(secrets unwrapped only here, at the edge that needs them). :func:`streaming_available` says
whether answered calls may use ``<Connect><Stream>``; when it is false the manager keeps the
TwiML ``<Say>``/``<Gather>`` path.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from pydantic import SecretStr

from voicecall.audio.pacer import Pacer
from voicecall.audio.vad import SileroVad, Vad, WebRtcVad
from voicecall.config import Settings
from voicecall.errors import ConfigError
from voicecall.speech.registry import (
    FALLBACK,
    DeepgramSttConfig,
    ElevenLabsTtsConfig,
    EspeakTtsConfig,
    OpenAiRealtimeSttConfig,
    OpenAiTtsConfig,
    PiperTtsConfig,
    SttConfig,
    TtsConfig,
    WhisperSttConfig,
    choose_stt,
    choose_tts,
)
from voicecall.speech.stt.whisper import WhisperDecode
from voicecall.speech.tts.elevenlabs import DEFAULT_MODEL_ID, DEFAULT_VOICE_ID
from voicecall.voice.endturn import TurnPolicy

__all__ = [
    "VoiceTuning",
    "fixed_phrases",
    "streaming_available",
    "streaming_problems",
    "stt_config",
    "tts_config",
    "whisper_config",
]


def _secret(value: SecretStr | None) -> str | None:
    return None if value is None else (value.get_secret_value() or None)


def tts_config(settings: Settings) -> TtsConfig:
    """``[tts]`` as the speech registry's :class:`TtsConfig`."""
    t = settings.tts
    return TtsConfig(
        provider=t.provider,
        openai=OpenAiTtsConfig(
            api_key=_secret(t.openai.api_key),
            base_url=t.openai.base_url,
            model=t.openai.model,
            voice=t.openai.voice,
            instructions=t.openai.instructions,
        ),
        elevenlabs=ElevenLabsTtsConfig(
            api_key=_secret(t.elevenlabs.api_key),
            base_url=t.elevenlabs.base_url,
            voice_id=t.elevenlabs.voice_id or DEFAULT_VOICE_ID,
            model_id=t.elevenlabs.model_id or DEFAULT_MODEL_ID,
        ),
        espeak=EspeakTtsConfig(voice=t.espeak.voice, rate_wpm=t.espeak.rate_wpm),
        piper=PiperTtsConfig(model_path=t.piper.model_path, length_scale=t.piper.length_scale),
    )


def fixed_phrases(settings: Settings) -> list[str]:
    """What is said word for word on many calls, synthesized ahead at start-up: the inbound
    greeting, the AI disclosure (task calls), the hold lines and ``[tts] cached_phrases``."""
    phrases = [settings.inbound_greeting]
    if settings.task.disclosure:
        phrases.append(settings.task.disclosure_text)
    phrases.extend(settings.task.hold_lines)
    phrases.extend(settings.tts.cached_phrases)
    return [p for p in dict.fromkeys(p.strip() for p in phrases) if p]


def stt_config(settings: Settings) -> SttConfig:
    """``[stt]`` as the speech registry's :class:`SttConfig`."""
    s = settings.stt
    return SttConfig(
        provider=s.provider,
        openai_realtime=OpenAiRealtimeSttConfig(
            api_key=_secret(s.openai_realtime.api_key),
            base_url=s.openai_realtime.base_url,
            model=s.openai_realtime.model,
            language=s.openai_realtime.language,
        ),
        deepgram=DeepgramSttConfig(
            api_key=_secret(s.deepgram.api_key),
            base_url=s.deepgram.base_url,
            model=s.deepgram.model,
            language=s.deepgram.language,
            endpointing_ms=s.deepgram.endpointing_ms,
        ),
        whisper=whisper_config(settings),
    )


def whisper_config(settings: Settings) -> WhisperSttConfig:
    """``[stt.whisper]``, ``[turn]`` and ``[vad]``: the local engine, its decoding, the end of
    the turn, and its segmentation (the ``[vad]`` engine and levels; speech ends after
    ``stt.whisper.pause_ms`` of silence, when the turn so far is transcribed)."""
    w, t = settings.stt.whisper, settings.turn
    segmentation = dataclasses.replace(
        VoiceTuning.from_settings(settings), min_silence_ms=w.pause_ms
    )
    return WhisperSttConfig(
        model_path=w.model_path,
        language=w.language,
        decode=WhisperDecode(
            beam_size=w.beam_size,
            temperature=w.temperature,
            without_timestamps=w.without_timestamps,
            no_speech_threshold=w.no_speech_threshold,
            compute_type=w.compute_type,
            cpu_threads=w.cpu_threads,
            fit_seconds=w.fit_seconds,
            check_endings=w.check_endings,
            conjunction_p=w.conjunction_p,
        ),
        turn=TurnPolicy(
            hangover_ms=t.hangover_ms,
            lead_in_ms=t.lead_in_ms,
            incomplete_ms=t.incomplete_ms,
            unsure_ms=t.unsure_ms,
            resume_ms=t.resume_ms,
        ),
        vad_factory=segmentation.vad_factory(),
    )


def streaming_problems(settings: Settings, env: Mapping[str, str] | None = None) -> list[str]:
    """Why answered calls cannot use Media Streams (empty: they can)."""
    env = os.environ if env is None else env
    problems: list[str] = []
    if not settings.streaming.enabled:
        problems.append("streaming.enabled is false")
    if not settings.public_url:
        problems.append("public_url is not set (the stream URL and its signature need it)")
    if settings.provider == "twilio" and settings.twilio.auth_token is None:
        problems.append("twilio.auth_token is not set (stream upgrades cannot be verified)")
    try:
        if choose_tts(tts_config(settings), env) == FALLBACK:
            problems.append("no TTS provider available (tts.provider resolves to twilio)")
        if choose_stt(stt_config(settings), env) == FALLBACK:
            problems.append("no STT provider available (stt.provider resolves to twilio)")
    except ConfigError as exc:
        problems.extend(exc.problems)
    return problems


def streaming_available(settings: Settings, env: Mapping[str, str] | None = None) -> bool:
    """True when answered calls connect ``<Connect><Stream>`` (else ``<Say>``/``<Gather>``)."""
    return not streaming_problems(settings, env)


@dataclass(frozen=True, slots=True)
class VoiceTuning:
    """Per-call pipeline tunables (``[pacer]``, ``[vad]``, ``[streaming]``)."""

    lead_ms: int = 120
    message_ms: int = 200
    mark_every_ms: int | None = 200
    max_queue_ms: int = 60_000
    max_queued_utterances: int = 8
    vad_engine: str = "webrtc"
    vad_aggressiveness: int = 2
    vad_threshold: float = 0.5
    min_speech_ms: int = 60
    min_silence_ms: int = 400
    min_peak_dbfs: float | None = -45.0
    barge_in: bool = True
    echo_guard_ms: int = 300
    echo_energy_ratio: float | None = None

    def __post_init__(self) -> None:
        if self.max_queued_utterances < 1:
            raise ValueError("max_queued_utterances must be >= 1")
        if self.echo_guard_ms < 0:
            raise ValueError("echo_guard_ms must be >= 0")
        if self.vad_engine not in ("webrtc", "silero"):
            raise ValueError("vad_engine must be webrtc or silero")

    @classmethod
    def from_settings(cls, settings: Settings) -> VoiceTuning:
        p, v = settings.pacer, settings.vad
        return cls(
            lead_ms=p.lead_ms,
            message_ms=p.message_ms,
            mark_every_ms=p.mark_every_ms,
            max_queue_ms=p.max_queue_ms,
            max_queued_utterances=settings.streaming.max_queued_utterances,
            vad_engine=v.engine,
            vad_aggressiveness=v.aggressiveness,
            vad_threshold=v.threshold,
            min_speech_ms=v.min_speech_ms,
            min_silence_ms=v.min_silence_ms,
            min_peak_dbfs=v.min_peak_dbfs,
            barge_in=v.barge_in,
            echo_guard_ms=v.echo_guard_ms,
            echo_energy_ratio=v.echo_energy_ratio,
        )

    def make_pacer(self) -> Pacer:
        return Pacer(
            lead_ms=self.lead_ms,
            message_ms=self.message_ms,
            max_queue_ms=self.max_queue_ms,
            mark_every_ms=self.mark_every_ms,
        )

    def vad_factory(self) -> Callable[[], Vad]:
        """A factory of fresh detectors (one per call); Silero is imported lazily."""
        if self.vad_engine == "silero":
            return lambda: SileroVad(
                threshold=self.vad_threshold,
                min_speech_ms=self.min_speech_ms,
                min_silence_ms=self.min_silence_ms,
                min_peak_dbfs=self.min_peak_dbfs,
            )
        return lambda: WebRtcVad(
            aggressiveness=self.vad_aggressiveness,
            min_speech_ms=self.min_speech_ms,
            min_silence_ms=self.min_silence_ms,
            min_peak_dbfs=self.min_peak_dbfs,
        )
