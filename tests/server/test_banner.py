"""The start-up banner: what this server will do, with no secret in it."""

from __future__ import annotations

from typing import Any

from voicecall.config import Settings, load_config
from voicecall.server.banner import banner_details, store_display


def _settings(**over: Any) -> Settings:
    base: dict[str, Any] = {
        "provider": "twilio",
        "from_number": "+14155238886",
        "public_url": "https://voice.example.com",
        "twilio": {"account_sid": "AC" + "1" * 32, "auth_token": "twilio-secret-token"},
        "api": {"token": "api-secret-token"},
        "store": {"url": "postgresql://app:pg-secret-pass@db.internal:5433/calls"},
    }
    base.update(over)
    return load_config(env={}, overrides=base)


def test_banner_lists_what_matters_without_secrets() -> None:
    details = banner_details(
        _settings(outbound={"default_mode": "conversation"}),
        control_url="http://127.0.0.1:3334",
        streaming=False,
    )
    assert list(details) == [
        "provider",
        "public_url",
        "control_api",
        "store",
        "streaming",
        "tts",
        "stt",
        "responder",
        "inbound",
        "outbound",
    ]
    assert details["provider"] == f"twilio via https://api.twilio.com (account AC{'1' * 32})"
    assert details["store"] == "postgresql://db.internal:5433/calls"
    assert details["streaming"] == "off: streaming.enabled is false"
    assert "bearer token required" in details["control_api"]
    assert "default_mode=conversation" in details["outbound"]
    assert details["inbound"] == "disabled"
    text = repr(details)
    for secret in ("twilio-secret-token", "api-secret-token", "pg-secret-pass"):
        assert secret not in text


def test_banner_names_the_emulator_the_speech_stack_and_the_responder() -> None:
    details = banner_details(
        _settings(
            twilio={"account_sid": "AC" + "0" * 32, "api_base_url": "http://127.0.0.1:8765"},
            streaming={"enabled": True},
            responder={"kind": "chat", "model": "m1", "base_url": "http://127.0.0.1:1/v1"},
            inbound_policy="allowlist",
            allow_from=["+14155238886"],
        ),
        control_url="http://127.0.0.1:3334",
        streaming=True,
        tts="piper",
        stt="whisper",
    )
    assert details["provider"].startswith("twilio via the local emulator at http://127.0.0.1:8765")
    assert (details["streaming"], details["tts"], details["stt"]) == (
        "on (Media Streams)",
        "piper",
        "whisper",
    )
    assert details["responder"] == "chat: m1 at http://127.0.0.1:1/v1"
    assert details["inbound"] == "allowlist (1 number)"


def test_store_display() -> None:
    assert store_display("sqlite:////var/lib/v.db") == "sqlite:////var/lib/v.db"
    assert store_display("postgres://u:p@h/db") == "postgresql://h:5432/db"
