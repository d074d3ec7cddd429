"""The first hour, as the README tells it: `voicecall init --local`, `voicecall dev`, then the
`voicecall call …` line dev prints (as-is, from the same directory), the other client commands,
and an MCP client started with the entry dev prints. Real subprocesses on loopback ports.

The server runs with streaming off here (the <Say>/<Gather> path: fast, no speech models);
the spoken path of the same setup is what `voicecall demo` and tests/cli/test_demo.py cover.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shlex
import signal
import socket
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from mcp.client import Client as McpClient
from mcp.client.stdio import StdioServerParameters

from voicecall.cli.dev import DEV_PERSON

pytestmark = pytest.mark.e2e

VOICECALL = [sys.executable, "-m", "voicecall.cli"]
FIRST_WORDS = DEV_PERSON["replies"][0]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VOICECALL_", "EMULATOR_"))}
    # <Gather> instead of Media Streams: the same calls without loading speech models
    return {
        **env,
        "NO_COLOR": "1",
        "COLUMNS": "250",
        "VOICECALL_STREAMING__ENABLED": "false",
        "VOICECALL_OUTBOUND__NOTIFY_HANGUP_DELAY_SECONDS": "0",
    }


async def _run(args: list[str], cwd: Path, timeout: float = 90) -> tuple[int, str, str]:
    if args[0] == "voicecall":
        args = VOICECALL + args[1:]
    proc = await asyncio.create_subprocess_exec(
        *args,
        cwd=cwd,
        env=_env(),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    return proc.returncode or 0, out.decode(), err.decode()


@dataclass
class Dev:
    proc: asyncio.subprocess.Process
    lines: list[str] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    async def read(self) -> None:
        assert self.proc.stdout is not None
        async for raw in self.proc.stdout:
            self.lines.append(raw.decode().rstrip("\n"))
            self.changed.set()

    async def until(self, predicate: str, timeout: float = 60) -> str:
        async def find() -> str:
            while True:
                for line in self.lines:
                    if predicate in line:
                        return line
                if self.proc.returncode is not None:
                    raise AssertionError(f"dev exited: {self.lines}")
                self.changed.clear()
                await self.changed.wait()

        return await asyncio.wait_for(find(), timeout)


@contextlib.asynccontextmanager
async def _dev(cwd: Path) -> AsyncIterator[Dev]:
    proc = await asyncio.create_subprocess_exec(
        *VOICECALL,
        "dev",
        "--log-format",
        "json",
        cwd=cwd,
        env=_env(),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    dev = Dev(proc)
    reader = asyncio.create_task(dev.read())
    try:
        yield dev
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(proc.wait(), 20)
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader


def _bindable(port: int) -> bool:
    """Nothing listens on ``port`` (SO_REUSEADDR as servers set it: TIME_WAIT is no listener)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


async def _wait_ended(cwd: Path, call_id: str) -> dict[str, object]:
    for _ in range(120):
        code, out, err = await _run(["voicecall", "status", "--call-id", call_id, "--json"], cwd)
        assert code == 0, err
        doc: dict[str, object] = json.loads(out)
        if doc["end_reason"] is not None:
            return doc
        await asyncio.sleep(0.5)
    raise AssertionError(f"call {call_id} did not end")


async def test_init_dev_call_and_mcp_from_one_directory(tmp_path: Path) -> None:
    port, emulator_port = _free_port(), _free_port()
    code, out, err = await _run(
        [
            "voicecall",
            "init",
            "--local",
            "--port",
            str(port),
            "--emulator-port",
            str(emulator_port),
        ],
        tmp_path,
    )
    assert code == 0, err
    assert (tmp_path / "voicecall.toml").exists()
    code, out, err = await _run(["voicecall", "doctor"], tmp_path)
    assert code == 0, out + err

    async with _dev(tmp_path) as dev:
        await dev.until("Ctrl-C stops both.")
        call_line = await dev.until("voicecall call ")
        mcp_line = await dev.until('{"mcpServers"')
        # the doctor now sees the running emulator
        code, out, err = await _run(["voicecall", "doctor"], tmp_path)
        assert code == 0 and "ok   Twilio accepted the credentials (the emulator at" in out

        # 1. a notify call, waited for until it ends, as JSON
        code, out, err = await _run(
            ["voicecall", "call", "-m", "Your order has shipped.", "--wait", "--json"], tmp_path
        )
        assert code == 0, err
        notify = json.loads(out)
        assert notify["mode"] == "notify" and notify["answer"] is None
        assert notify["state"] == "completed" and notify["answered_at"] is not None
        assert "Your order has shipped." in err  # the live transcript goes to stderr

        # 2. the conversation line dev printed, run as-is: prints the callee's first answer
        code, out, err = await _run(shlex.split(call_line.strip()), tmp_path)
        assert code == 0, err
        placed, answer = out.strip().splitlines()
        assert placed.startswith("call ") and placed.endswith(" placed")
        assert answer == FIRST_WORDS
        call_id = placed.split()[1]
        code, out, err = await _run(
            ["voicecall", "end", "--call-id", call_id[:8], "-m", "Thanks, goodbye!"], tmp_path
        )
        assert code == 0, err
        assert out.strip().endswith("hangup-bot"), out  # `end` returns once the call is over
        ended = await _wait_ended(tmp_path, call_id[:8])
        assert ended["end_reason"] == "hangup-bot"

        # 3. the other client commands work unchanged from the same directory
        code, out, _ = await _run(["voicecall", "calls", "--json"], tmp_path)
        assert [c["call_id"] for c in json.loads(out)["calls"]] == [call_id, notify["call_id"]]
        code, out, _ = await _run(["voicecall", "calls"], tmp_path)
        assert code == 0 and call_id[:12] in out
        code, out, _ = await _run(["voicecall", "status", "--call-id", call_id[:6]], tmp_path)
        assert code == 0 and FIRST_WORDS in out

        # 4. waiting can give up: exit 1, one line, the call stays up until ended
        code, out, err = await _run(
            [
                "voicecall",
                "call",
                "-m",
                "Hello?",
                "--mode",
                "conversation",
                "--wait",
                "--timeout",
                "0.3",
            ],
            tmp_path,
        )
        assert code == 1 and "after 0.3 s" in err.strip().splitlines()[-1]
        late = out.split()[1]
        code, out, err = await _run(["voicecall", "end", "--call-id", late[:6]], tmp_path)
        assert code == 0, err

        # 5. an MCP client started exactly as the printed entry says
        entry = json.loads(mcp_line.strip())["mcpServers"]["voicecall"]
        params = StdioServerParameters(command=entry["command"], args=entry["args"], cwd="/")
        async with McpClient(params) as mcp:
            listed = await mcp.call_tool("list_calls", {})
            assert not listed.is_error
            assert call_id in json.dumps(listed.structured_content)

        # dev showed the calls as they happened
        await dev.until(f"{call_id[:12]} user {FIRST_WORDS}")
        await dev.until(f"{call_id[:12]} ended hangup-bot")
        dev.proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(dev.proc.wait(), 20) == 0
    assert _bindable(port) and _bindable(emulator_port)  # both servers are gone
    assert (tmp_path / ".voicecall" / "voicecall.db").exists()  # the store is the project's
