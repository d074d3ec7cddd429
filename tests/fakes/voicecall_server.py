"""A real voicecall server (mock provider, SQLite) on a loopback socket, and a ``MockPhone``
that plays the callee by sending signed mock-provider webhooks over HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from voicecall.config import Settings, load_config
from voicecall.providers.mock import MockProvider
from voicecall.server.app import VoicecallApp

TOKEN = "agent-test-token"
FROM = "+14155550199"
CALLEE = "+14155550100"


def loopback_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    sock.setblocking(False)
    return sock


def mock_settings(tmp_path: Path, **over: Any) -> Settings:
    base: dict[str, Any] = {
        "provider": "mock",
        "from_number": FROM,
        "to_number": CALLEE,
        "max_concurrent_calls": 5,
        "api": {"token": TOKEN},
        "store": {"url": f"sqlite:///{tmp_path / 'voicecall.db'}"},
        "outbound": {"notify_hangup_delay_seconds": 0},
    }
    base.update(over)
    return load_config(env={}, overrides=base)


@contextlib.asynccontextmanager
async def serve_asgi(app: Any, sock: socket.socket) -> AsyncIterator[str]:
    """Serve ``app`` on ``sock`` inside this loop; yield its base URL."""
    config = uvicorn.Config(
        app, log_config=None, lifespan="on", access_log=False, timeout_graceful_shutdown=1
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        if task.done():
            task.result()
            raise RuntimeError("server stopped before starting")
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, 10)


@dataclass
class MockPhone:
    """Plays the callee: answers, speaks and hangs up through signed mock webhooks."""

    app: VoicecallApp
    url: str
    http: httpx.AsyncClient
    listens: dict[str, tuple[int, str]] = field(default_factory=dict)
    seq: int = 0

    @property
    def provider(self) -> MockProvider:
        assert isinstance(self.app.provider, MockProvider)
        return self.app.provider

    async def _sid(self, call_id: str) -> str:
        assert self.app.manager is not None
        record = await self.app.manager.get_call(call_id)
        assert record.provider_call_id
        return record.provider_call_id

    async def _post(self, doc: dict[str, Any]) -> dict[str, Any]:
        body = json.dumps(doc).encode()
        response = await self.http.post(
            self.url + self.app.settings.serve.webhook_path,
            content=body,
            headers={
                "content-type": "application/json",
                "x-mock-signature": self.provider.sign(body),
            },
        )
        assert response.status_code == 200, response.text
        reply: dict[str, Any] = response.json()
        return reply

    async def answer(self, call_id: str) -> dict[str, Any]:
        sid = await self._sid(call_id)
        reply = await self._post(
            {
                "kind": "voice",
                "call_sid": sid,
                "call_id": call_id,
                "events": [{"kind": "answered", "key": "voice"}],
            }
        )
        if reply.get("listen"):
            self.listens[call_id] = (reply["listen"]["turn"], reply["listen"]["token"])
        return reply

    def _current_listen(self, sid: str, call_id: str) -> tuple[int, str]:
        replies = self.provider.calls[sid].replies
        for r in reversed(replies):
            if r.listen is not None:
                return r.listen.turn, r.listen.token
        return self.listens[call_id]

    async def says(self, call_id: str, text: str) -> None:
        sid = await self._sid(call_id)
        turn, token = self._current_listen(sid, call_id)
        await self._post(
            {
                "kind": "gather",
                "call_sid": sid,
                "call_id": call_id,
                "turn": turn,
                "token": token,
                "events": [
                    {
                        "kind": "speech",
                        "key": f"gather:{turn}:{token}",
                        "transcript": text,
                        "turn": turn,
                    }
                ],
            }
        )

    async def hangs_up(self, call_id: str) -> None:
        sid = await self._sid(call_id)
        self.seq += 1
        await self._post(
            {
                "kind": "status",
                "call_sid": sid,
                "call_id": call_id,
                "events": [
                    {
                        "kind": "ended",
                        "key": f"status:{self.seq}",
                        "reason": "completed",
                        "sequence": 100 + self.seq,
                    }
                ],
            }
        )

    async def redirects(self, call_id: str) -> int:
        return len(self.provider.calls[await self._sid(call_id)].replies)


@dataclass
class RunningServer:
    app: VoicecallApp
    url: str
    phone: MockPhone


async def until(predicate: Any, what: str = "condition", tries: int = 1000) -> None:
    """Poll ``predicate()`` (sync or async) every 10 ms until true; fail after ``tries``."""
    for _ in range(tries):
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")
