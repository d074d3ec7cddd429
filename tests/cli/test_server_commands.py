"""`serve`, `dev` and `emulator` as a person runs them: a taken port is one line and exit 1,
the log is JSON lines (or readable lines) with a start-up banner and a line per call event, and
every option of every command has help text."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import httpx
import typer
from typer.testing import CliRunner

from voicecall.cli.main import app

SECRET = "tw-secret-token-0123456789"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def _occupied() -> Iterator[int]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(1)
    try:
        yield int(sock.getsockname()[1])
    finally:
        sock.close()


def _env(**more: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VOICECALL_", "EMULATOR_"))}
    return {**env, "NO_COLOR": "1", "COLUMNS": "200", **more}


async def _cli(*args: str, cwd: Path | None = None, timeout: float = 60) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "voicecall.cli",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=_env(),
        cwd=cwd,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    return proc.returncode or 0, out.decode(), err.decode()


def _config(tmp_path: Path, port: int, **lines: str) -> Path:
    twilio_port = lines.pop("twilio_port", "9")
    text = "\n".join(
        [
            'provider = "twilio"',
            'from_number = "+14155238886"',
            f'public_url = "http://127.0.0.1:{port}"',
            *lines.values(),
            "[twilio]",
            f'account_sid = "AC{"1" * 32}"',
            f'auth_token = "{SECRET}"',
            f'api_base_url = "http://127.0.0.1:{twilio_port}"',
            "request_timeout_seconds = 2",
            "[serve]",
            f"port = {port}",
            "[store]",
            f'url = "sqlite:///{tmp_path / "s.db"}"',
        ]
    )
    path = tmp_path / "voicecall.toml"
    path.write_text(text + "\n")
    return path


# ----------------------------------------------------------------------------- busy ports


async def test_serve_on_a_taken_port_is_one_line(tmp_path: Path) -> None:
    with _occupied() as port:
        code, out, err = await _cli("serve", "--config", str(_config(tmp_path, port)))
    assert code == 1, err
    assert err.strip().splitlines() == [
        f"error: serve.port: 127.0.0.1:{port} is already in use (is another voicecall server "
        "(`voicecall serve` or `voicecall dev`) running? stop it or choose another port)"
    ]
    assert "standby" not in err and "Traceback" not in err and out == ""
    assert not (tmp_path / "s.db").exists()  # the store was never opened


async def test_dev_on_taken_ports_is_one_line(tmp_path: Path) -> None:
    with _occupied() as taken:
        free = _free_port()
        for server_port, emulator_port, key in (
            (taken, free, "serve.port"),
            (free, taken, "twilio.api_base_url"),
        ):
            cfg = _config(tmp_path, server_port, twilio_port=str(emulator_port))
            code, _, err = await _cli("dev", "--config", str(cfg))
            assert code == 1, err
            lines = err.strip().splitlines()
            assert len(lines) == 1 and lines[0].startswith(f"error: {key}: 127.0.0.1:{taken}")
            assert "already in use" in lines[0] and "Traceback" not in err


async def test_emulator_on_a_taken_port_is_one_line() -> None:
    with _occupied() as port:
        code, _, err = await _cli("emulator", "--port", str(port))
    assert code == 1
    assert err.strip().splitlines()[-1] == (
        f"error: --port: 127.0.0.1:{port} is already in use "
        "(is another emulator running? stop it or use --port)"
    )
    assert "Traceback" not in err


async def test_dev_refuses_a_config_that_is_not_local(tmp_path: Path) -> None:
    cfg = _config(tmp_path, _free_port())
    cfg.write_text(cfg.read_text().replace("http://127.0.0.1:9", "https://api.twilio.com"))
    code, _, err = await _cli("dev", "--config", str(cfg))
    assert code == 2 and "is not a local emulator address" in err and "Traceback" not in err


async def test_serve_refuses_a_chat_responder_without_a_key_before_starting(
    tmp_path: Path,
) -> None:
    cfg = _config(tmp_path, _free_port(), responder='[responder]\nkind = "chat"')
    # [responder] must follow the top-level keys: rewrite in TOML order
    text = (
        cfg.read_text().replace('[responder]\nkind = "chat"\n', "") + '[responder]\nkind = "chat"\n'
    )
    cfg.write_text(text)
    code, _, err = await _cli("serve", "--config", str(cfg))
    assert code == 2
    assert err.strip().splitlines() == [
        "error: responder.api_key: required for api.openai.com (or OPENAI_API_KEY)"
    ]


# ----------------------------------------------------------------------------- logs


@asynccontextmanager
async def _serving(cfg: Path, port: int, *args: str) -> AsyncIterator[tuple[str, list[str]]]:
    """Run `voicecall serve`; yield its URL and (after exit) its stderr lines."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "voicecall.cli",
        "serve",
        "--config",
        str(cfg),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=_env(),
    )
    lines: list[str] = []
    url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient() as http:
            for _ in range(300):
                try:
                    if (await http.get(url + "/healthz")).status_code == 200:
                        break
                except httpx.TransportError:
                    await asyncio.sleep(0.1)
            else:
                raise AssertionError("serve did not start")
        yield url, lines
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = await asyncio.wait_for(proc.communicate(), 30)
        lines.extend(err.decode().splitlines())
        assert proc.returncode in (0, 130), err.decode()  # 130: stopped by Ctrl-C, cleanly


async def test_json_log_has_the_banner_and_the_call_lines_the_errors_point_to(
    tmp_path: Path,
) -> None:
    port = _free_port()
    cfg = _config(tmp_path, port)  # Twilio's API is a closed port: dialling fails
    async with _serving(cfg, port, "--log-format", "json") as (_url, lines):
        code, _, err = await _cli("call", "--to", "+14155238886", "-m", "hi", "--config", str(cfg))
        assert code == 1 and "see the server log" in err
    records = [json.loads(line) for line in lines]  # every line is a JSON object
    banner = next(r for r in records if r["msg"].endswith("ready"))
    assert banner["details"]["provider"].startswith("twilio via the local emulator")
    assert banner["details"]["streaming"] == "off: streaming.enabled is false"
    placed = next(r for r in records if r.get("event") == "placed")
    ended = next(r for r in records if r.get("event") == "ended")
    failure = next(r for r in records if r.get("event") == "api_error")
    assert placed["call_id"] == ended["call_id"] and ended["level"] == "warning"
    assert ended["end_reason"] == "failed" and "error:" in ended["msg"]
    assert failure["status"] == 502 and "POST /api/calls" in failure["msg"]
    assert SECRET not in "\n".join(lines)


async def test_human_log_shows_the_banner_as_lines(tmp_path: Path) -> None:
    port = _free_port()
    cfg = _config(tmp_path, port)
    async with _serving(cfg, port, "--log-format", "human") as (_url, lines):
        pass
    ready = next(i for i, line in enumerate(lines) if line.endswith("voicecall 0.1.0 ready"))
    assert lines[ready + 1].split()[0] == "provider"
    assert any(line.split()[0] == "responder" for line in lines[ready + 1 : ready + 12])
    assert not any(line.startswith("{") for line in lines)


def test_call_timeout_needs_wait() -> None:
    result = CliRunner().invoke(app, ["call", "-m", "hi", "--timeout", "3"])
    assert result.exit_code == 2 and "--timeout: only with --wait" in result.output


def test_bad_log_options_are_refused() -> None:
    result = CliRunner().invoke(app, ["serve", "--log-format", "xml"])
    assert (
        result.exit_code == 2 and "--log-format: 'xml' is not auto, human or json" in result.output
    )


# ----------------------------------------------------------------------------- help


def _commands(group: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    for name, command in group.commands.items():
        yield f"{prefix}{name}", command
        if hasattr(command, "commands"):
            yield from _commands(command, f"{prefix}{name} ")


def test_every_option_of_every_command_has_help() -> None:
    root = typer.main.get_command(app)
    names = [name for name, _ in _commands(root)]
    assert {"serve", "dev", "init", "call", "doctor", "emulator", "emulator load"} <= set(names)
    missing: list[str] = []
    for name, command in _commands(root):
        assert command.help, f"`voicecall {name}` has no help text"
        for param in command.params:
            if param.param_type_name == "option" and not param.help and param.name != "help":
                missing.append(f"voicecall {name} {param.opts[0]}")
    assert not missing, missing


def test_emulator_help_is_in_the_same_style() -> None:
    result = CliRunner().invoke(app, ["emulator", "--help"], env={"COLUMNS": "120"})
    assert result.exit_code == 0
    text: Any = result.output
    assert "Usage: voicecall emulator [OPTIONS] COMMAND [ARGS]" in text
    for option in ("--host", "--port", "--account-sid", "--auth-token"):
        assert option in text
    assert "load" in text and "sink" in text
    assert "─ Options ─" in text  # the same rich panels as every other command
