"""The store lease: at most one voicecall instance acts on a store at a time.

The call manager keeps each live call's timers, turn waiters and media session in memory, so
two instances acting on the same store would both run ring timeouts and reapers, both restore
(and reconcile) every call on start-up and split one call's webhooks between them. Instead an
instance must hold the store's lease to act; one that cannot get it waits as a *standby*
(``/healthz`` answers 503 so a load balancer sends traffic to the active one) and takes over,
restoring every live call from the store, as soon as the lease is free.

- PostgreSQL: a session-level advisory lock on a dedicated connection, keyed on the schema. The
  server frees it when that connection ends, so a crashed or partitioned instance loses the
  lease by itself; the active instance checks its connection and stands down (fences itself)
  when it is gone.
- SQLite: an exclusive ``flock`` on ``<database>.lease`` (one host; freed when the process ends).
- Any other store (tests inject their own): always held.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
from abc import ABC, abstractmethod
from typing import Any, Final

from voicecall.calls.store.base import Store

__all__ = ["FileLease", "Lease", "PostgresLease", "SoleLease", "lease_for"]

log = logging.getLogger("voicecall.lease")

_LEASE_CLASS: Final = 0x766F6C73  # "vols": first key of pg_try_advisory_lock(int, int)


class Lease(ABC):
    """Held by at most one process at a time."""

    where = "this process"

    @abstractmethod
    async def try_acquire(self) -> bool:
        """Take the lease if it is free (``True`` also when already held by us)."""

    @abstractmethod
    async def held(self) -> bool:
        """Whether we still hold it (a lost database connection means we do not)."""

    @abstractmethod
    async def release(self) -> None: ...


class SoleLease(Lease):
    """For stores no other process can reach: always held."""

    async def try_acquire(self) -> bool:
        return True

    async def held(self) -> bool:
        return True

    async def release(self) -> None:
        return None


class FileLease(Lease):
    """An exclusive ``flock`` on a file next to the SQLite database."""

    def __init__(self, path: str) -> None:
        self.path: Final = path
        self.where = path
        self._fd: int | None = None

    async def try_acquire(self) -> bool:
        if self._fd is not None:
            return True
        os.makedirs(os.path.dirname(self.path) or ".", mode=0o700, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        except OSError:
            os.close(fd)
            raise
        self._fd = fd
        return True

    async def held(self) -> bool:
        return self._fd is not None  # a flock lasts as long as its descriptor

    async def release(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            with contextlib.suppress(OSError):
                fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)


class PostgresLease(Lease):
    """A session-level advisory lock on its own connection (freed when the connection ends)."""

    def __init__(self, url: str, where: str, *, check_timeout: float = 5.0) -> None:
        self._url = url
        self.where = where
        self._check_timeout = check_timeout
        self._conn: Any = None

    async def try_acquire(self) -> bool:
        if self._conn is not None and await self.held():
            return True
        await self._drop()
        import psycopg

        try:
            conn = await psycopg.AsyncConnection.connect(self._url, autocommit=True)
        except psycopg.Error as exc:
            log.warning("store lease %s: cannot connect (%s)", self.where, type(exc).__name__)
            return False
        try:
            row = await (
                await conn.execute(
                    "SELECT pg_try_advisory_lock(%s, hashtext(current_schema()))", (_LEASE_CLASS,)
                )
            ).fetchone()
        except psycopg.Error as exc:
            log.warning("store lease %s: lock query failed (%s)", self.where, type(exc).__name__)
            with contextlib.suppress(Exception):
                await conn.close()
            return False
        if not (row and row[0]):
            await conn.close()
            return False
        self._conn = conn
        return True

    async def held(self) -> bool:
        conn = self._conn
        if conn is None or conn.closed:
            return False
        try:
            async with asyncio.timeout(self._check_timeout):
                await conn.execute("SELECT 1")
        except Exception:  # the connection is gone, and the server has freed the lock with it
            return False
        return True

    async def release(self) -> None:
        conn = self._conn
        if conn is not None and not conn.closed:
            with contextlib.suppress(Exception):
                await conn.execute(
                    "SELECT pg_advisory_unlock(%s, hashtext(current_schema()))", (_LEASE_CLASS,)
                )
        await self._drop()

    async def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.close()


def lease_for(store: Store) -> Lease:
    """The lease guarding ``store`` (by backend)."""
    from voicecall.calls.store.postgres import PostgresStore, redact_url
    from voicecall.calls.store.sqlite import SQLiteStore

    if isinstance(store, SQLiteStore):
        return FileLease(store.path + ".lease")
    if isinstance(store, PostgresStore):
        return PostgresLease(store.url, redact_url(store.url))
    return SoleLease()
