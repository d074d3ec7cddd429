"""A real voicecall server (mock provider, SQLite) set up for task calls: the in-call model on
the fake OpenAI-compatible server, reports to a local receiver (signed), and a ``MockPhone``."""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from chat_server import FakeChat
from fake_serve import serve
from report_receiver import ReportReceiver
from voicecall_server import TOKEN, MockPhone, loopback_socket, mock_settings, serve_asgi
from voicecall_server import until as until_true

from voicecall.agent.client import Client
from voicecall.reports.signing import new_secret
from voicecall.server.app import VoicecallApp

KEY = "sk-test-chat"
SECRET = new_secret(secrets.token_bytes(32))


@dataclass
class Rig:
    app: VoicecallApp
    url: str
    phone: MockPhone
    chat: FakeChat
    receiver: ReportReceiver
    client: Client

    @property
    def provider(self) -> Any:
        return self.phone.provider

    async def replies(self, call_id: str) -> list[Any]:
        record = await self.app.manager.get_call(call_id)  # type: ignore[union-attr]
        return list(self.provider.calls[record.provider_call_id].replies)

    async def wait_replies(self, call_id: str, n: int) -> list[Any]:
        async def enough() -> bool:
            return len(await self.replies(call_id)) >= n

        await until(enough, f"{n} redirects")
        return await self.replies(call_id)


async def until(predicate: Any, what: str) -> None:
    await until_true(predicate, what, tries=1500)


@contextlib.asynccontextmanager
async def rig(tmp_path: Path, **over: Any) -> AsyncIterator[Rig]:
    chat = FakeChat(api_key=KEY)
    receiver = ReportReceiver()
    async with serve(chat.app()) as chat_at, serve(receiver.app()) as hook_at:
        settings: dict[str, Any] = {
            "responder": {
                "base_url": f"http://{chat_at}/v1",
                "model": "fake-model",
                "api_key": KEY,
            },
            "reports": {
                "url": f"http://{hook_at}/reports",
                "secret": SECRET,
                "allow_private_urls": True,
            },
            "task": {"hold_interval_seconds": 2},
        }
        for key, value in over.items():
            settings[key] = {**settings.get(key, {}), **value}
        sock = loopback_socket()
        app = VoicecallApp(mock_settings(tmp_path, **settings), reaper_interval_seconds=3600)
        async with (
            serve_asgi(app, sock) as url,
            httpx.AsyncClient(timeout=10) as http,
            Client(url, TOKEN) as client,
        ):
            yield Rig(app, url, MockPhone(app, url, http), chat, receiver, client)
