"""Logs for people and machines: JSON lines or readable lines, secrets masked in both."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable, Iterator

import pytest

from voicecall import logs


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def captured(capsys: pytest.CaptureFixture[str]) -> Iterator[Callable[[], str]]:
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    yield lambda: capsys.readouterr().err
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])


def test_auto_is_human_on_a_terminal_and_json_otherwise() -> None:
    assert logs.resolve_format("auto", _Tty()) == "human"
    assert logs.resolve_format("auto", io.StringIO()) == "json"
    assert logs.resolve_format("human", io.StringIO()) == "human"
    assert logs.resolve_format("json", _Tty()) == "json"
    with pytest.raises(ValueError, match="auto, human, json"):
        logs.resolve_format("xml")


def test_json_lines_carry_extra_fields_and_mask_secrets(captured: Callable[[], str]) -> None:
    assert logs.configure("info", "json") == "json"
    logs.register_secret("tok-supersecret-123")
    log = logging.getLogger("voicecall.test")
    log.info(
        "call %s placed with tok-supersecret-123",
        "abc",
        extra={"call_id": "abc", "details": {"store": "x", "n": 2}, "token": "tok-supersecret-123"},
    )
    try:
        raise RuntimeError("boom tok-supersecret-123")
    except RuntimeError:
        log.exception("failed")
    text = captured()
    first, second = (json.loads(line) for line in text.splitlines())
    assert first["msg"] == "call abc placed with ***"
    assert first["call_id"] == "abc" and first["details"] == {"store": "x", "n": 2}
    assert first["token"] == "***"
    assert second["error"] == "RuntimeError: boom ***" and "Traceback" in second["traceback"]
    assert "tok-supersecret-123" not in text


def test_human_lines_show_details_and_tracebacks_masked(captured: Callable[[], str]) -> None:
    assert logs.configure("info", "human") == "human"
    logs.register_secret("tok-supersecret-456")
    log = logging.getLogger("voicecall.test")
    log.info("ready", extra={"details": {"provider": "twilio", "public_url": "https://x"}})
    try:
        raise ValueError("tok-supersecret-456")
    except ValueError:
        log.exception("it broke")
    text = captured()
    lines = text.splitlines()
    assert lines[0].endswith("info    voicecall.test: ready")
    assert lines[1] == "    provider    twilio" and lines[2] == "    public_url  https://x"
    assert "Traceback" in text and "ValueError: ***" in text
    assert "tok-supersecret-456" not in text
