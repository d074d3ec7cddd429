"""`voicecall doctor`: local mode passes, real-Twilio problems fail with what to do, speech and
responder settings are checked (keys, installed models, endpoints answering), fictional numbers
are flagged. Network checks run against local fakes and the emulator on loopback."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import httpx
import pytest
from chat_server import FakeChat
from fake_serve import serve
from rich.console import Console
from typer.testing import CliRunner

from voicecall.cli.doctor import Finding, collect_findings, is_local, placeholder_reason, run_doctor
from voicecall.cli.main import app
from voicecall.cli.template import local_values, render_local
from voicecall.config import Settings, load_config
from voicecall.emulator.runtime import Emulator

runner = CliRunner()

REAL_SID = "AC" + "1" * 32


def _settings(**over: Any) -> Settings:
    base: dict[str, Any] = {
        "provider": "mock",
        "from_number": "+14155238886",
        "public_url": "https://voice.example.com",
    }
    base.update(over)
    return load_config(env={}, overrides=base)


def _local(tmp_path: Path, emulator_port: int = 9, **over: Any) -> Settings:
    values = local_values(
        port=3334, emulator_port=emulator_port, project_dir=tmp_path, speech=None, env={}
    )
    path = tmp_path / "voicecall.toml"
    path.write_text(render_local(values))
    return load_config(path, env={}, overrides=over or None)


def _failed(findings: list[Finding]) -> list[str]:
    return [f"{f.what}: {f.fix}" for f in findings if f.failed]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ----------------------------------------------------------------------------- numbers


@pytest.mark.parametrize(
    ("number", "why"),
    [
        ("+14155550123", "555-01xx"),
        ("+12125550199", "555-01xx"),
        ("+12125551212", "555"),
        ("+15005550006", "magic test number"),
        ("+447700900123", "drama"),
        ("+61491570156", "fiction"),
        ("+14155550000", "555"),
    ],
)
def test_placeholder_numbers_are_named(number: str, why: str) -> None:
    reason = placeholder_reason(number)
    assert reason is not None and why in reason


@pytest.mark.parametrize("number", ["+14155238886", "+442071838750", "+33142685300"])
def test_real_looking_numbers_pass(number: str) -> None:
    assert placeholder_reason(number) is None


def test_all_zero_numbers_are_placeholders() -> None:
    assert placeholder_reason("+10000000000") is not None
    assert placeholder_reason("+440000000000") is not None


# ----------------------------------------------------------------------------- local mode


async def test_local_mode_passes_without_a_running_emulator(tmp_path: Path) -> None:
    settings = _local(tmp_path, emulator_port=_free_port())
    assert is_local(settings)
    findings = await collect_findings(settings, env={})
    assert _failed(findings) == []
    notes = [f.what for f in findings if f.status == "note"]
    assert any("is not running" in n and "voicecall dev" in n for n in notes)
    assert any("fictional" in n and "fine with the emulator" in n for n in notes)


async def test_local_mode_checks_the_running_emulators_credentials(tmp_path: Path) -> None:
    async with Emulator(account_sid="AC" + "0" * 32, auth_token="emulator-token") as emu:
        settings = _local(tmp_path, emulator_port=emu.port)
        findings = await collect_findings(settings, env={})
        assert _failed(findings) == []
        assert any(
            f.what == f"Twilio accepted the credentials (the emulator at {emu.base_url})"
            for f in findings
        )
        wrong = _local(tmp_path, emulator_port=emu.port, twilio={"auth_token": "not-the-token"})
        failed = _failed(await collect_findings(wrong, env={}))
        assert len(failed) == 1 and "account sid or auth token is wrong" in failed[0]


async def test_local_public_url_must_reach_this_server(tmp_path: Path) -> None:
    # no port: the emulator would post to :80; another port or https: not this server
    for url in ("http://127.0.0.1", "http://127.0.0.1:4000", "https://127.0.0.1:3334"):
        settings = _local(tmp_path, emulator_port=_free_port(), public_url=url)
        failed = _failed(await collect_findings(settings, env={}))
        assert len(failed) == 1 and 'public_url = "http://127.0.0.1:3334"' in failed[0], failed
    # a tunnel in front of a local server is the user's call: said, not failed
    settings = _local(tmp_path, emulator_port=_free_port(), public_url="https://x.example.com")
    findings = await collect_findings(settings, env={})
    assert _failed(findings) == []
    assert any("must reach this server through it" in f.what for f in findings)


# ----------------------------------------------------------------------------- real Twilio


async def test_real_twilio_problems_each_fail_with_a_fix(tmp_path: Path) -> None:
    settings = _settings(
        provider="twilio",
        from_number="+14155550100",
        to_number="+14155550123",
        public_url="http://127.0.0.1:8443/x",
        twilio={"api_base_url": "https://api.twilio.example"},
    )
    assert not is_local(settings)
    failed = _failed(await collect_findings(settings, env={}))
    text = "\n".join(failed)
    assert "from_number +14155550100 is a real number: 555-01xx" in text
    assert "to_number +14155550123" in text
    assert "public_url uses https" in text
    assert "public_url has no explicit port" in text
    assert "public_url is an origin" in text
    assert "public_url is reachable from the internet" in text
    assert "Twilio credentials are set" in text


async def test_https_public_url_and_real_number_pass(tmp_path: Path) -> None:
    settings = _settings(from_number="+14155238886")
    assert _failed(await collect_findings(settings, env={})) == []


# ----------------------------------------------------------------------------- responder


async def test_chat_responder_is_probed_with_a_cheap_request() -> None:
    fake = FakeChat(api_key="sk-doctor", model="fake-model")
    async with serve(fake.app()) as hostport:
        base = f"http://{hostport}/v1"

        async def failed(**responder: Any) -> list[str]:
            cfg = {"kind": "chat", "base_url": base, **responder}
            return _failed(await collect_findings(_settings(responder=cfg), env={}))

        assert await failed(api_key="sk-doctor", model="fake-model") == []
        wrong_key = await failed(api_key="sk-wrong", model="fake-model")
        assert len(wrong_key) == 1 and "accepted the API key" in wrong_key[0]
        wrong_model = await failed(api_key="sk-doctor", model="gpt-9")
        assert len(wrong_model) == 1 and "serves: fake-model" in wrong_model[0]
        assert fake.served == []  # no completion was asked for: only the model list
    unreachable = await failed(api_key="sk-doctor", model="fake-model")
    assert len(unreachable) == 1 and "cannot connect" in unreachable[0]


async def test_chat_responder_key_comes_from_the_environment_too() -> None:
    settings = _settings(responder={"kind": "chat"})
    failed = _failed(await collect_findings(settings, env={}))
    assert failed == ["responder chat has an API key: set responder.api_key or OPENAI_API_KEY"]


async def test_hook_responder_must_import() -> None:
    settings = _settings(responder={"kind": "hook", "hook": "no_such_module_x:reply"})
    failed = _failed(await collect_findings(settings, env={}))
    assert len(failed) == 1 and "cannot import" in failed[0]
    settings = _settings(responder={"kind": "hook", "hook": "json:dumps"})
    assert _failed(await collect_findings(settings, env={})) == []


# ----------------------------------------------------------------------------- speech


async def test_cloud_speech_needs_keys_and_answers() -> None:
    fake = FakeChat(api_key="sk-tts", model="gpt-4o-mini-tts")
    async with serve(fake.app()) as hostport:
        streaming = {"enabled": True}
        tts = {"provider": "openai", "openai": {"base_url": f"http://{hostport}/v1"}}
        stt = {"provider": "deepgram"}
        settings = _settings(streaming=streaming, tts=tts, stt=stt, twilio={"auth_token": "x" * 8})
        failed = _failed(await collect_findings(settings, env={}))
        assert failed == [
            "TTS openai has an API key: set tts.openai.api_key or OPENAI_API_KEY",
            "STT deepgram has an API key: set stt.deepgram.api_key or DEEPGRAM_API_KEY",
        ]
        env = {"OPENAI_API_KEY": "sk-tts", "DEEPGRAM_API_KEY": "dg"}
        assert _failed(await collect_findings(settings, env=env)) == []
        env["OPENAI_API_KEY"] = "sk-bad"
        failed = _failed(await collect_findings(settings, env=env))
        assert len(failed) == 1 and failed[0].startswith("TTS openai accepted the API key")


async def test_local_speech_models_are_checked(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.onnx"
    settings = _settings(
        streaming={"enabled": True},
        tts={"provider": "piper", "piper": {"model_path": str(missing)}},
        stt={"provider": "whisper", "whisper": {"model_path": str(tmp_path / "no-model")}},
        vad={"engine": "webrtc"},
    )
    failed = _failed(await collect_findings(settings, env={}))
    if not any("is installed" in f for f in failed):  # piper and faster-whisper are installed
        assert f"TTS piper voice exists: {missing} is not a file (tts.piper.model_path)" in failed
        assert any(f.startswith("STT whisper model exists") for f in failed)


async def test_streaming_off_is_a_note_not_a_problem() -> None:
    findings = await collect_findings(_settings(), env={})
    assert any(f.status == "note" and "streaming off" in f.what for f in findings)


# ----------------------------------------------------------------------------- the command


def test_doctor_exits_1_with_one_line_per_problem(tmp_path: Path) -> None:
    cfg = tmp_path / "v.toml"
    cfg.write_text(
        'provider = "mock"\nfrom_number = "+14155550100"\n'
        'public_url = "http://example.com:8443/x"\n'
    )
    result = runner.invoke(app, ["doctor", "--config", str(cfg)], env={"COLUMNS": "300"})
    assert result.exit_code == 1
    fails = [ln for ln in result.output.splitlines() if ln.startswith("FAIL")]
    assert len(fails) == 3, result.output
    assert all(": " in ln for ln in fails)  # each says what to do on the same line
    assert "3 problems found" in result.output


def test_doctor_exits_0_for_a_fresh_local_setup(tmp_path: Path) -> None:
    cfg = tmp_path / "voicecall.toml"
    assert runner.invoke(app, ["init", "--local", "--emulator-port", "9", str(cfg)]).exit_code == 0
    result = runner.invoke(app, ["doctor", "--config", str(cfg)], env={"COLUMNS": "300"})
    assert result.exit_code == 0, result.output
    assert "all good" in result.output and "local mode" in result.output


async def test_run_doctor_prints_marks(tmp_path: Path) -> None:
    import io

    buf = io.StringIO()
    async with httpx.AsyncClient() as http:
        good = await run_doctor(
            _settings(), Console(file=buf, width=200), source="x.toml", env={}, http=http
        )
    assert good and buf.getvalue().startswith("ok   config x.toml loaded")
