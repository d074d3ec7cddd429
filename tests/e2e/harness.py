"""Run the real voicecall server in-process on a loopback socket, wired to the emulator."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from voicecall.config import Settings, load_config
from voicecall.server.app import VoicecallApp
from voicecall.server.runner import uvicorn_options

FROM = "+14155550199"
CALLEE = "+14155550100"


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
