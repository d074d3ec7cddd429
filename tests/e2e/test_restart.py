"""kill -9 of the server mid-call, then a restart: the call is reconciled, never re-dialled."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from voicecall.emulator.pytest_plugin import EmulatorCredentials
from voicecall.emulator.runtime import Emulator

from .harness import CALLEE, FROM

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_config(
    tmp_path: Path,
    emulator: Emulator,
    creds: EmulatorCredentials,
    port: int,
    store_url: str | None = None,
) -> Path:
    path = tmp_path / "voicecall.toml"
    store = store_url or f"sqlite:///{tmp_path / 'calls.db'}"
    path.write_text(
        f"""
provider = "twilio"
from_number = "{FROM}"
public_url = "http://127.0.0.1:{port}"
max_concurrent_calls = 5
[twilio]
account_sid = "{creds.account_sid}"
auth_token = "{creds.auth_token}"
api_base_url = "{emulator.base_url}"
[serve]
port = {port}
[store]
url = "{store}"
"""
    )
    return path


class ServerProcess:
    def __init__(self, config: Path, port: int) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "voicecall.cli", "serve", "--config", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env={**os.environ, "NO_COLOR": "1"},
        )

    async def ready(self) -> None:
        async with httpx.AsyncClient() as http:
            for _ in range(300):
                if self.proc.poll() is not None:
                    raise AssertionError(
                        self.proc.stderr.read().decode() if self.proc.stderr else ""
                    )
                try:
                    if (await http.get(self.url + "/healthz")).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.05)
        raise AssertionError("server did not start")

    def kill9(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()


async def api(url: str, method: str, path: str, **kw: object) -> httpx.Response:
    async with httpx.AsyncClient(base_url=url, timeout=60) as http:
        return await http.request(method, path, **kw)  # type: ignore[arg-type]


async def wait_for(url: str, call_id: str, pred, timeout: float = 30) -> dict:  # type: ignore[no-untyped-def]
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while loop.time() < end:
        doc = (await api(url, "GET", f"/api/calls/{call_id}")).json()
        if pred(doc):
            return doc
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out; last {doc}")


async def test_kill9_mid_call_then_restart_resumes(
    tmp_path: Path,
    emulator: Emulator,
    emulator_credentials: EmulatorCredentials,
    store_url: str,
) -> None:
    port = free_port()
    config = write_config(tmp_path, emulator, emulator_credentials, port, store_url)
    emulator.set_script(
        CALLEE,
        {
            "answer_after_ms": 100,
            "replies": ["first answer", "second answer", "third answer"],
            "hangup_after_ms": 60000,
        },
    )
    first = ServerProcess(config, port)
    try:
        await first.ready()
        r = await api(
            first.url,
            "POST",
            "/api/calls",
            json={"to": CALLEE, "message": "Hi there", "mode": "conversation"},
        )
        call_id = r.json()["call_id"]
        await wait_for(first.url, call_id, lambda d: len(d["transcript"]) >= 2)
        r = await api(
            first.url,
            "POST",
            f"/api/calls/{call_id}/continue",
            json={"message": "And the second?", "timeout_seconds": 30},
        )
        assert r.json()["transcript"] == "second answer"
        first.kill9()
    finally:
        first.stop()
    before = ["Hi there", "first answer", "And the second?", "second answer"]
    second = ServerProcess(config, port)
    try:
        await second.ready()
        doc = (await api(second.url, "GET", f"/api/calls/{call_id}")).json()
        assert doc["state"] == "listening"  # reconciled with the provider: still live
        assert [t["text"] for t in doc["transcript"]] == before
        r = await api(
            second.url,
            "POST",
            f"/api/calls/{call_id}/continue",
            json={"message": "And the third?", "timeout_seconds": 30},
        )
        assert r.status_code == 200, r.text
        assert r.json()["transcript"] == "third answer"
        r = await api(second.url, "POST", f"/api/calls/{call_id}/speak", json={"message": "Ok."})
        assert r.status_code == 200, r.text
        # the restarted server continued the transcript after its last line (it used to start
        # again at 0 and write over the first lines)
        doc = (await api(second.url, "GET", f"/api/calls/{call_id}")).json()
        lines = doc["transcript"]
        assert [t["text"] for t in lines] == [*before, "And the third?", "third answer", "Ok."]
        assert [t["seq"] for t in lines] == list(range(7))
        r = await api(second.url, "POST", f"/api/calls/{call_id}/end")
        assert r.json()["state"] == "hangup-bot"
        assert len(emulator.calls) == 1  # never re-dialled
    finally:
        second.stop()


async def test_call_that_ended_while_down_is_finalized_on_restart(
    tmp_path: Path, emulator: Emulator, emulator_credentials: EmulatorCredentials
) -> None:
    port = free_port()
    config = write_config(tmp_path, emulator, emulator_credentials, port)
    emulator.set_script(
        CALLEE, {"answer_after_ms": 100, "replies": [None], "hangup_after_ms": 1500}
    )
    first = ServerProcess(config, port)
    try:
        await first.ready()
        r = await api(
            first.url,
            "POST",
            "/api/calls",
            json={"to": CALLEE, "message": "Hold on", "mode": "conversation"},
        )
        call_id = r.json()["call_id"]
        await wait_for(first.url, call_id, lambda d: d["state"] == "listening")
        first.kill9()
    finally:
        first.stop()
    (sid,) = emulator.calls
    await emulator.wait_for_call_end(sid, timeout=20)  # its completed callback found nobody
    second = ServerProcess(config, port)
    try:
        await second.ready()
        doc = (await api(second.url, "GET", f"/api/calls/{call_id}")).json()
        assert doc["state"] == "completed" and doc["end_reason"] == "completed"
        assert len(emulator.calls) == 1
        listed = (await api(second.url, "GET", "/api/calls", params={"active": "true"})).json()
        assert listed["calls"] == []
    finally:
        second.stop()


async def test_sigterm_with_open_event_stream_exits_promptly(
    tmp_path: Path, emulator: Emulator, emulator_credentials: EmulatorCredentials
) -> None:
    port = free_port()
    config = write_config(tmp_path, emulator, emulator_credentials, port)
    server = ServerProcess(config, port)
    try:
        await server.ready()
        # an idle keep-alive connection and a never-ending SSE stream stay open
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /api/events HTTP/1.1\r\nHost: x\r\n\r\n")
        await writer.drain()
        assert b"200" in await asyncio.wait_for(reader.readline(), 5)
        idle_r, idle_w = await asyncio.open_connection("127.0.0.1", port)
        server.proc.send_signal(signal.SIGTERM)
        # uvicorn's graceful shutdown is bounded (3 s) instead of waiting on those sockets
        code = await asyncio.get_running_loop().run_in_executor(None, server.proc.wait, 15)
        assert code in (0, -signal.SIGTERM)  # uvicorn re-raises the signal after shutting down
        writer.close()
        idle_w.close()
        del idle_r
    finally:
        server.stop()
