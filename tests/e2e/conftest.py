from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest_asyncio

from voicecall.emulator.pytest_plugin import (  # noqa: F401
    EmulatorCredentials,
    emulator,
    emulator_credentials,
)
from voicecall.emulator.runtime import Emulator
from voicecall.server.app import VoicecallApp

from .harness import RunningServer, loopback_socket, serve_app, service_settings


@pytest_asyncio.fixture
async def server(
    tmp_path: Path,
    emulator: Emulator,  # noqa: F811
    emulator_credentials: EmulatorCredentials,  # noqa: F811
) -> AsyncIterator[RunningServer]:
    sock = loopback_socket()
    settings = service_settings(
        tmp_path,
        api_base_url=emulator.base_url,
        account_sid=emulator_credentials.account_sid,
        auth_token=emulator_credentials.auth_token,
        port=sock.getsockname()[1],
    )
    async with serve_app(VoicecallApp(settings), sock) as running:
        yield running
