from __future__ import annotations

import functools
import os
import urllib.parse
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import pytest_asyncio

from voicecall.emulator.pytest_plugin import (  # noqa: F401
    EmulatorCredentials,
    emulator,
    emulator_credentials,
)
from voicecall.emulator.runtime import Emulator

from .harness import RunningServer, StartServer, running_server


@pytest.fixture
def start_server(
    tmp_path: Path,
    emulator: Emulator,  # noqa: F811
    emulator_credentials: EmulatorCredentials,  # noqa: F811
) -> StartServer:
    """Factory: ``async with start_server(**settings) as server`` runs the voicecall server on
    loopback, wired to this test's emulator (``streaming=True``: local TTS/STT streams); see
    :func:`~tests.e2e.harness.running_server`."""
    start: Callable[..., Any] = functools.partial(
        running_server, tmp_path, emulator, emulator_credentials
    )
    return start


@pytest_asyncio.fixture
async def server(start_server: StartServer) -> AsyncIterator[RunningServer]:
    """The voicecall server with the default e2e settings."""
    async with start_server() as running:
        yield running


PG_ADMIN_URL = os.environ.get("VOICECALL_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A store for a server process: a fresh SQLite file, or a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'calls.db'}"
        return
    try:
        with psycopg.connect(PG_ADMIN_URL, connect_timeout=3, autocommit=True) as conn:
            schema = f"e2e_{uuid.uuid4().hex[:12]}"
            conn.execute(f"CREATE SCHEMA {schema}".encode())
    except psycopg.OperationalError as exc:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"PostgreSQL unreachable: {exc}")
        pytest.skip(f"PostgreSQL unreachable: {exc}")
    options = urllib.parse.quote(f"-csearch_path={schema}")
    try:
        yield f"{PG_ADMIN_URL}?options={options}"
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE".encode())
