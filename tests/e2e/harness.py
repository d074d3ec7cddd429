"""Run the real voicecall server in-process on a loopback socket, wired to the emulator."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from voicecall.config import Settings, load_config
from voicecall.emulator.pytest_plugin import EmulatorCredentials
from voicecall.emulator.runtime import Emulator
from voicecall.server.app import VoicecallApp
from voicecall.server.runner import uvicorn_options

FROM = "+14155550199"
CALLEE = "+14155550100"

#: real-time voice with local speech: espeak-ng speaks, faster-whisper tiny.en listens
LOCAL_STREAMING: dict[str, Any] = {
    "streaming": {"enabled": True},
    "tts": {"provider": "espeak"},
    "stt": {"provider": "whisper"},
}


def loopback_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    sock.setblocking(False)
    return sock


def service_settings(
    tmp_path: Path,
    *,
    api_base_url: str,
    account_sid: str,
    auth_token: str,
    port: int,
    **over: Any,
) -> Settings:
    base: dict[str, Any] = {
        "provider": "twilio",
        "from_number": FROM,
        "public_url": f"http://127.0.0.1:{port}",
        "max_concurrent_calls": 10,
        "twilio": {
            "account_sid": account_sid,
            "auth_token": auth_token,
            "api_base_url": api_base_url,
        },
        "store": {"url": f"sqlite:///{tmp_path / 'voicecall.db'}"},
        "outbound": {"notify_hangup_delay_seconds": 0},
    }
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            base[key] = {**base[key], **value}
        else:
            base[key] = value
    return load_config(env={}, overrides=base)


#: ``start_server(**settings)`` (the conftest fixture): an ``async with`` of a running server
StartServer = Callable[..., AbstractAsyncContextManager["RunningServer"]]


class RunningServer:
    def __init__(self, app: VoicecallApp, url: str) -> None:
        self.app = app
        self.url = url
        self.http = httpx.AsyncClient(base_url=url, timeout=30.0)

    @property
    def manager(self) -> Any:
        return self.app.manager


@contextlib.asynccontextmanager
async def serve_app(app: VoicecallApp, sock: socket.socket) -> AsyncIterator[RunningServer]:
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, **uvicorn_options(app.settings, timeout_graceful_shutdown=1))
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    for _ in range(500):
        if server.started:
            break
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    running = RunningServer(app, f"http://127.0.0.1:{port}")
    try:
        yield running
    finally:
        await running.http.aclose()
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, 10)


@contextlib.asynccontextmanager
async def running_server(
    tmp_path: Path,
    emulator: Emulator,
    creds: EmulatorCredentials,
    *,
    streaming: bool = False,
    **over: Any,
) -> AsyncIterator[RunningServer]:
    """The voicecall server on a fresh loopback socket, wired to ``emulator``: the settings of
    :func:`service_settings` with ``over`` (top-level tables merged). ``streaming=True`` adds
    :data:`LOCAL_STREAMING` (under ``over``) and asserts the stream endpoint came up.

    The one way the e2e tests start a server (the conftest's ``start_server`` fixture binds the
    test's emulator; tests that run their own emulator call this directly)."""
    sock = loopback_socket()
    settings = service_settings(
        tmp_path,
        api_base_url=emulator.base_url,
        account_sid=creds.account_sid,
        auth_token=creds.auth_token,
        port=sock.getsockname()[1],
        **({**LOCAL_STREAMING, **over} if streaming else over),
    )
    async with serve_app(VoicecallApp(settings), sock) as running:
        if streaming:
            assert running.app.streams is not None, "streaming did not come up"
        yield running


async def wait_ended(server: RunningServer, call_id: str, timeout: float) -> dict[str, Any]:
    """The call's document once it has ended (``ended_at`` set); fails after ``timeout``."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while loop.time() < end:
        doc: dict[str, Any] = (await server.http.get(f"/api/calls/{call_id}")).json()
        if doc["ended_at"] is not None:
            return doc
        await asyncio.sleep(0.1)
    raise AssertionError(f"call {call_id} did not end: {doc}")
