from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from voicecall.config import InboundPolicy, load_config
from voicecall.errors import ConfigError

SID = "AC" + "a" * 32


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "voicecall.toml"
    p.write_text(text)
    return p


def test_defaults_without_file(tmp_path: Path) -> None:
    s = load_config(env={"HOME": str(tmp_path)})
    assert s.inbound_policy is InboundPolicy.DISABLED
    assert s.max_concurrent_calls == 1
    assert s.serve.port == 3334
    assert s.outbound.default_mode.value == "notify"
    assert s.store.url.startswith("sqlite:///")


def test_toml_then_env_override_nested(tmp_path: Path) -> None:
    p = write(
        tmp_path,
        f'from_number = "+14155550100"\n[twilio]\naccount_sid = "{SID}"\n'
        'auth_token = "file-token"\n',
    )
    s = load_config(
        p, env={"VOICECALL_TWILIO__AUTH_TOKEN": "env-token", "VOICECALL_SERVE__PORT": "4000"}
    )
    assert s.twilio.auth_token is not None
    assert s.twilio.auth_token.get_secret_value() == "env-token"
    assert s.serve.port == 4000
    assert s.from_number == "+14155550100"


def test_twilio_env_fallbacks(tmp_path: Path) -> None:
    s = load_config(env={"TWILIO_ACCOUNT_SID": SID, "TWILIO_AUTH_TOKEN": "fallback"})
    assert s.twilio.account_sid == SID
    assert s.twilio.auth_token is not None and s.twilio.auth_token.get_secret_value() == "fallback"
    # file wins over the fallback
    p = write(tmp_path, '[twilio]\nauth_token = "from-file"\n')
    s = load_config(p, env={"TWILIO_AUTH_TOKEN": "fallback"})
    assert s.twilio.auth_token is not None and s.twilio.auth_token.get_secret_value() == "from-file"


def test_secret_masked_in_repr(tmp_path: Path) -> None:
    s = load_config(env={"TWILIO_AUTH_TOKEN": "supersecret-token"})
    assert "supersecret-token" not in repr(s)
    assert "supersecret-token" not in str(s.model_dump())


def test_one_line_per_problem(tmp_path: Path) -> None:
    p = write(
        tmp_path,
        'from_number = "5551234"\nmax_concurrent_calls = 0\nbogus = 1\n'
        'inbound_policy = "sometimes"\n[serve]\nport = 70000\n',
    )
    with pytest.raises(ConfigError) as info:
        load_config(p, env={})
    problems = info.value.problems
    assert len(problems) == 5, problems
    joined = "\n".join(problems)
    for key in ("from_number", "max_concurrent_calls", "bogus", "inbound_policy", "serve.port"):
        assert key in joined
    assert "unknown key" in joined


def test_allowlist_requires_entries_and_valid_numbers(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, 'inbound_policy = "allowlist"\n'), env={})
    assert "allow_from is empty" in info.value.problems[0]
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, 'allow_from = ["+14155550100", "5678"]\n'), env={})
    assert info.value.problems[0].startswith("allow_from")


def test_bad_toml_and_missing_explicit_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, "this is = = not toml"), env={})
    assert "not valid TOML" in info.value.problems[0]
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "missing.toml", env={})
    assert "no such config file" in info.value.problems[0]
    with pytest.raises(ConfigError):
        load_config(env={"VOICECALL_CONFIG": str(tmp_path / "missing.toml")})


def test_public_url_derivations(tmp_path: Path) -> None:
    s = load_config(env={"VOICECALL_PUBLIC_URL": "https://voice.example.com/"})
    assert s.webhook_url == "https://voice.example.com/voice/webhook"
    assert s.stream_url == "wss://voice.example.com/voice/stream"
    with pytest.raises(ConfigError):
        load_config(env={"VOICECALL_PUBLIC_URL": "https://x.example.com/?a=1"})


def test_cli_prints_one_line_per_problem_without_traceback(tmp_path: Path) -> None:
    p = write(tmp_path, 'from_number = "nope"\n[serve]\nport = 0\n')
    proc = subprocess.run(
        [sys.executable, "-m", "voicecall.cli", "serve", "--config", str(p)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert any("from_number" in ln for ln in lines) and any("serve.port" in ln for ln in lines)


def test_outbound_policy_settings(tmp_path: Path) -> None:
    cfg = tmp_path / "v.toml"
    cfg.write_text(
        'from_number = "+14155550199"\n[outbound]\nmax_calls_per_hour = false\n'
        'max_minutes_per_day = false\nquiet_hours = "22:00-07:30"\n'
        'allowed_countries = ["us", "ca"]\nblocked_numbers = ["+14155550100"]\n'
    )
    s = load_config(cfg, env={"VOICECALL_OUTBOUND__MAX_CALLS_PER_NUMBER_PER_DAY": "off"})
    o = s.outbound
    assert o.max_calls_per_hour is None and o.max_minutes_per_day is None
    assert o.max_calls_per_number_per_day is None
    assert o.quiet_hours == "22:00-07:30" and o.allowed_countries == ["US", "CA"]
    defaults = load_config(env={}).outbound
    assert (defaults.max_calls_per_number_per_day, defaults.max_calls_per_hour) == (10, 30)
    assert defaults.max_minutes_per_day == 240 and defaults.quiet_hours is None


@pytest.mark.parametrize(
    ("over", "says"),
    [
        ({"allowed_countries": ["XX"]}, "outbound.allowed_countries: entry 0: 'XX'"),
        ({"quiet_hours": "9-17"}, "outbound.quiet_hours:"),
        ({"blocked_numbers": ["+1415ABC0100"]}, "outbound.blocked_numbers: entry 0:"),
        ({"allowed_number_types": ["premium"]}, "outbound.allowed_number_types.0:"),
        ({"max_calls_per_hour": 0}, "outbound.max_calls_per_hour:"),
    ],
)
def test_outbound_policy_settings_are_checked(over: dict[str, object], says: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(env={}, overrides={"outbound": over})
    assert len(info.value.problems) == 1 and info.value.problems[0].startswith(says)


def test_sqlite_synchronous_is_full_unless_normal_is_asked_for(tmp_path: Path) -> None:
    assert load_config(env={"HOME": str(tmp_path)}).store.sqlite_synchronous == "full"
    s = load_config(write(tmp_path, '[store]\nsqlite_synchronous = "normal"\n'), env={})
    assert s.store.sqlite_synchronous == "normal"
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, '[store]\nsqlite_synchronous = "off"\n'), env={})
    (problem,) = info.value.problems
    assert problem.startswith("store.sqlite_synchronous"), problem
