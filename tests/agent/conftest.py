"""Fixtures for the agent tests: a real voicecall server with the mock provider."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fakes"))

from voicecall_server import MockPhone, RunningServer, loopback_socket, mock_settings, serve_asgi

from voicecall.server.app import VoicecallApp


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[RunningServer]:
    sock = loopback_socket()
    app = VoicecallApp(mock_settings(tmp_path), reaper_interval_seconds=3600)
    async with serve_asgi(app, sock) as url, httpx.AsyncClient(timeout=10) as http:
        yield RunningServer(app, url, MockPhone(app, url, http))
