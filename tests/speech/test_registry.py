"""Provider registry: choice by name or automatically, keys from config or the environment."""

from __future__ import annotations

import pytest

from voicecall.errors import ConfigError
from voicecall.speech import registry
from voicecall.speech.registry import (
    STT_FACTORIES,
    TTS_FACTORIES,
    DeepgramSttConfig,
    OpenAiTtsConfig,
    SttConfig,
    TtsConfig,
    build_stt,
    build_tts,
    choose_stt,
    choose_tts,
)
from voicecall.speech.stt.deepgram import DeepgramStt
from voicecall.speech.stt.openai_realtime import OpenAiRealtimeStt
from voicecall.speech.stt.whisper import WhisperStt
from voicecall.speech.tts.elevenlabs import ElevenLabsTts
from voicecall.speech.tts.espeak import EspeakTts
from voicecall.speech.tts.openai import OpenAiTts
from voicecall.speech.voices import DEFAULT_POLLY_VOICE, polly_voice_for


def test_names_match_the_configuration_values() -> None:
    assert set(TTS_FACTORIES) == {"openai", "elevenlabs", "piper", "espeak", "twilio"}
    assert set(STT_FACTORIES) == {"openai-realtime", "deepgram", "whisper", "twilio"}


def test_auto_prefers_cloud_keys_from_the_environment() -> None:
    env = {"OPENAI_API_KEY": "sk-env"}
    assert choose_tts(TtsConfig(), env) == "openai"
    assert choose_stt(SttConfig(), env) == "openai-realtime"
    tts = build_tts(TtsConfig(), env=env)
    assert isinstance(tts, OpenAiTts)
    assert choose_tts(TtsConfig(), {"ELEVENLABS_API_KEY": "x"}) == "elevenlabs"
    assert choose_stt(SttConfig(), {"DEEPGRAM_API_KEY": "x"}) == "deepgram"
    assert isinstance(build_stt(SttConfig(), env={"DEEPGRAM_API_KEY": "x"}), DeepgramStt)


def test_auto_without_keys_chooses_local_engines(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "_espeak_installed", lambda: True)
    monkeypatch.setattr(registry, "_installed", lambda module: True)
    assert choose_tts(TtsConfig(), {}) == "espeak"
    assert isinstance(build_tts(TtsConfig(), env={}), EspeakTts)
    assert choose_stt(SttConfig(), {}) == "whisper"
    assert isinstance(build_stt(SttConfig(), env={}), WhisperStt)


def test_nothing_installed_falls_back_to_twiml(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "_espeak_installed", lambda: False)
    monkeypatch.setattr(registry, "_installed", lambda module: False)
    assert choose_tts(TtsConfig(), {}) == "twilio" and build_tts(TtsConfig(), env={}) is None
    assert choose_stt(SttConfig(), {}) == "twilio" and build_stt(SttConfig(), env={}) is None


def test_configured_key_wins_over_environment() -> None:
    cfg = TtsConfig(provider="openai", openai=OpenAiTtsConfig(api_key="sk-config"))
    tts = build_tts(cfg, env={"OPENAI_API_KEY": "sk-env"})
    assert isinstance(tts, OpenAiTts)
    assert tts._api_key == "sk-config"
    assert "sk-config" not in repr(cfg) and "sk-config" not in repr(tts)


def test_explicit_cloud_provider_without_key_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"tts\.elevenlabs\.api_key.*ELEVENLABS_API_KEY"):
        build_tts(TtsConfig(provider="elevenlabs"), env={})
    with pytest.raises(ConfigError, match=r"stt\.deepgram\.api_key"):
        build_stt(SttConfig(provider="deepgram", deepgram=DeepgramSttConfig()), env={})


def test_unknown_provider_is_a_config_error_listing_the_names() -> None:
    with pytest.raises(ConfigError, match="one of openai"):
        choose_tts(TtsConfig(provider="festival"), {})
    with pytest.raises(ConfigError, match="deepgram"):
        choose_stt(SttConfig(provider="sphinx"), {})


def test_explicit_choices_build_their_provider() -> None:
    env = {"OPENAI_API_KEY": "a", "ELEVENLABS_API_KEY": "b", "DEEPGRAM_API_KEY": "c"}
    assert isinstance(build_tts(TtsConfig(provider="elevenlabs"), env=env), ElevenLabsTts)
    assert build_tts(TtsConfig(provider="twilio"), env=env) is None
    assert isinstance(build_stt(SttConfig(provider="openai-realtime"), env=env), OpenAiRealtimeStt)
    assert build_stt(SttConfig(provider="twilio"), env=env) is None


@pytest.mark.parametrize(
    ("voice", "polly"),
    [
        ("alloy", "Polly.Joanna"),
        ("echo", "Polly.Matthew"),
        ("ONYX ", "Polly.Joey"),
        (None, DEFAULT_POLLY_VOICE),
        ("unknown", DEFAULT_POLLY_VOICE),
        ("Polly.Amy", "Polly.Amy"),
        ("Polly.Joanna-Neural", "Polly.Joanna-Neural"),
        ('Polly.X" onload="', DEFAULT_POLLY_VOICE),
    ],
)
def test_polly_voice_mapping(voice: str | None, polly: str) -> None:
    assert polly_voice_for(voice) == polly
