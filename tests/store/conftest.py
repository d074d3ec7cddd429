"""Fixtures that give every contract test an opened store on each backend.

* ``sqlite``: a fresh file under ``tmp_path``.
* ``postgres``: ``postgresql://postgres@127.0.0.1:5432/test`` (trust auth), each test in its own
  fresh schema selected through ``options=-csearch_path=…`` in the URL and dropped afterwards.
  If the server is unreachable the postgres params fail when ``CI=true`` and skip otherwise.
"""

from __future__ import annotations

import os
import sqlite3
import urllib.parse
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest

from voicecall.calls.store.base import Store, open_store_from_url
from voicecall.calls.store.postgres import redact_url

PG_ADMIN_URL = os.environ.get("VOICECALL_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")

_pg_problem: list[str | None] = []


def _postgres_problem() -> str | None:
    """None when the test server answers, else why not (checked once per session)."""
    if not _pg_problem:
        try:
            with psycopg.connect(PG_ADMIN_URL, connect_timeout=3, autocommit=True) as conn:
                conn.execute("SELECT 1")
            _pg_problem.append(None)
        except psycopg.Error as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            _pg_problem.append(
                f"PostgreSQL test server {redact_url(PG_ADMIN_URL)} unreachable: {first}"
            )
    return _pg_problem[0]


@dataclass
class Backend:
    """One database a test can open (and reopen) stores on, plus raw SQL access to it."""

    name: str
    url: str
    sqlite_path: Path | None = None
    pg_schema: str | None = None

    def make(self) -> Store:
        return open_store_from_url(self.url)

    async def open(self) -> Store:
        store = self.make()
        await store.open()
        return store

    def sql(self, statement: str) -> list[tuple[Any, ...]]:
        """Run one statement on a separate, plain driver connection and return its rows."""
        if self.sqlite_path is not None:
            conn = sqlite3.connect(self.sqlite_path, isolation_level=None)
            try:
                return conn.execute(statement).fetchall()
            finally:
                conn.close()
        with psycopg.connect(self.url, autocommit=True) as pg:
            cur = pg.execute(statement.encode())
            return cur.fetchall() if cur.description else []


@pytest.fixture(
    params=[
        pytest.param("sqlite"),
        pytest.param("postgres", marks=pytest.mark.postgres),
    ]
)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    if request.param == "sqlite":
        path = tmp_path / "state" / "voicecall.db"
        yield Backend("sqlite", f"sqlite:///{path}", sqlite_path=path)
        return
    problem = _postgres_problem()
    if problem is not None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(problem)
        pytest.skip(problem)
    schema = f"test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}".encode())
    options = urllib.parse.quote(f"-csearch_path={schema}")
    sep = "&" if "?" in PG_ADMIN_URL else "?"
    # application_name lets a test find (and kill) exactly this test's connections
    url = f"{PG_ADMIN_URL}{sep}options={options}&application_name={schema}"
    try:
        yield Backend("postgres", url, pg_schema=schema)
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE".encode())


@pytest.fixture
async def store(backend: Backend) -> AsyncIterator[Store]:
    opened = await backend.open()
    try:
        yield opened
    finally:
        await opened.close()
