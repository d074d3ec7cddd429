"""The [streaming]/[tts]/[stt]/[vad]/[pacer] sections and their mapping onto the pipeline."""

from __future__ import annotations

import pytest

from voicecall.config import load_config
from voicecall.errors import ConfigError
from voicecall.voice.settings import (
    VoiceTuning,
    streaming_available,
    streaming_problems,
    stt_config,
    tts_config,
)

NO_ENGINES: dict[str, str] = {}


def test_defaults() -> None:
    s = load_config(env={})
    assert s.streaming.enabled is False
    assert (s.pacer.lead_ms, s.pacer.message_ms, s.pacer.mark_every_ms) == (120, 200, 200)
    assert (s.vad.engine, s.vad.aggressiveness, s.vad.echo_guard_ms) == ("webrtc", 2, 300)
    assert s.tts.provider is None and s.stt.provider is None


def test_sections_map_onto_the_speech_registry_and_keep_keys_secret() -> None:
    s = load_config(
        env={},
        overrides={
            "tts": {"provider": "openai", "openai": {"api_key": "sk-tts", "voice": "nova"}},
            "stt": {
                "provider": "deepgram",
                "deepgram": {"api_key": "dg-key", "endpointing_ms": 250},
            },
        },
    )
    assert "sk-tts" not in repr(s) and "dg-key" not in repr(s)
    tts = tts_config(s)
    assert (tts.provider, tts.openai.api_key, tts.openai.voice) == ("openai", "sk-tts", "nova")
    stt = stt_config(s)
    assert (stt.provider, stt.deepgram.api_key, stt.deepgram.endpointing_ms) == (
        "deepgram",
        "dg-key",
        250,
    )
    assert "dg-key" not in repr(stt)


@pytest.mark.parametrize(
    ("overrides", "where"),
    [
        ({"pacer": {"message_ms": 30}}, "pacer"),
        ({"pacer": {"message_ms": 40, "mark_every_ms": 100}}, "pacer"),
        ({"vad": {"engine": "magic"}}, "vad.engine"),
        ({"vad": {"aggressiveness": 4}}, "vad.aggressiveness"),
        ({"tts": {"provider": "festival"}}, "tts.provider"),
        ({"tts": {"openai": {"colour": "red"}}}, "tts.openai.colour"),
        ({"stt": {"whisper": {"beam": 3}}}, "stt.whisper.beam"),
        ({"stt": {"whisper": {"conjunction_p": 2}}}, "stt.whisper.conjunction_p"),
        ({"streaming": {"start_timeout_seconds": 0}}, "streaming.start_timeout_seconds"),
    ],
)
def test_invalid_settings_are_located(overrides: dict[str, object], where: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(env={}, overrides=overrides)
    assert any(p.startswith(where) for p in info.value.problems), info.value.problems


def test_streaming_needs_enabled_public_url_token_and_engines() -> None:
    off = load_config(
        env={}, overrides={"tts": {"provider": "twilio"}, "stt": {"provider": "twilio"}}
    )
    assert not streaming_available(off, NO_ENGINES)
    problems = streaming_problems(off, NO_ENGINES)
    assert any("streaming.enabled" in p for p in problems)
    assert any("public_url" in p for p in problems)
    assert any("auth_token" in p for p in problems)
    assert any("no TTS" in p for p in problems) and any("no STT" in p for p in problems)

    on = load_config(
        env={},
        overrides={
            "streaming": {"enabled": True},
            "public_url": "https://voice.example.com",
            "twilio": {"auth_token": "t0ken"},
        },
    )
    # cloud keys from the environment make both available
    assert streaming_available(on, {"OPENAI_API_KEY": "sk-x"})
    assert streaming_problems(on, {"OPENAI_API_KEY": "sk-x"}) == []
    twilio_only = on.model_copy(update={"tts": on.tts.model_copy(update={"provider": "twilio"})})
    assert streaming_problems(twilio_only, {"OPENAI_API_KEY": "sk-x"}) == [
        "no TTS provider available (tts.provider resolves to twilio)"
    ]


def test_tuning_from_settings_builds_pacer_and_vad() -> None:
    s = load_config(
        env={},
        overrides={
            "pacer": {"lead_ms": 200, "message_ms": 40, "mark_every_ms": 400},
            "vad": {"min_speech_ms": 80, "echo_energy_ratio": 1.5},
            "streaming": {"max_queued_utterances": 3},
        },
    )
    t = VoiceTuning.from_settings(s)
    pacer = t.make_pacer()
    assert (pacer.lead_ms, pacer.message_ms, pacer.mark_every_ms) == (200, 40, 400)
    assert (t.min_speech_ms, t.echo_energy_ratio, t.max_queued_utterances) == (80, 1.5, 3)
    vad = t.vad_factory()()
    assert not vad.speaking


def test_whisper_decoding_turn_taking_and_vad_reach_the_local_engine() -> None:
    from voicecall.audio.vad import WebRtcVad
    from voicecall.speech.registry import build_stt
    from voicecall.speech.stt.whisper import WhisperStt

    s = load_config(
        env={},
        overrides={
            "stt": {
                "provider": "whisper",
                "whisper": {
                    "beam_size": 3,
                    "temperature": 0.2,
                    "pause_ms": 80,
                    "check_endings": False,
                    "conjunction_p": 0.05,
                },
            },
            "turn": {
                "hangover_ms": 250,
                "lead_in_ms": 600,
                "incomplete_ms": 1100,
                "unsure_ms": 900,
                "resume_ms": 0,
            },
            "vad": {"aggressiveness": 3, "min_speech_ms": 40, "min_peak_dbfs": -40.0},
        },
    )
    stt = build_stt(stt_config(s), env={})
    assert isinstance(stt, WhisperStt)
    assert (stt.decode.beam_size, stt.decode.temperature, stt.decode.without_timestamps) == (
        3,
        0.2,
        True,
    )
    assert (stt.decode.check_endings, stt.decode.conjunction_p) == (False, 0.05)
    policy = stt.turn_policy
    assert (policy.hangover_ms, policy.lead_in_ms, policy.incomplete_ms) == (250, 600, 1100)
    assert (policy.unsure_ms, policy.resume_ms) == (900, 0)
    vad = stt.vad_factory()
    assert isinstance(vad, WebRtcVad)
    assert vad.aggressiveness == 3
    assert vad._seg.min_silence_samples == 80 * 8  # speech ends at the pause
    assert vad._seg.min_speech_samples == 40 * 8


def test_turn_settings_must_be_in_order() -> None:
    with pytest.raises(ConfigError, match="hangover_ms"):
        load_config(env={}, overrides={"turn": {"hangover_ms": 900}})
