"""Durable delivery of end-of-call reports: the outbox worker.

The outbox row is written in the same transaction as the call's end (``Store.commit(...,
outbox=…)``), so a report is never lost between "the call ended" and "the report was sent". This
worker delivers each pending row:

* the body is built from the store once the call's outcome is final (task calls wait for their
  outcome; other calls are ready at once), stored before the first attempt and sent unchanged
  on every retry, with the same ``webhook-id``; only ``webhook-timestamp`` and the signature are
  per attempt (Standard Webhooks);
* attempts follow :data:`SCHEDULE` (at once, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h); a 2xx
  answer delivers it, anything else (or no answer within ``reports.timeout_seconds``) waits for
  the next; after the last it is ``failed``;
* every attempt resolves the URL again and connects to the checked address (SSRF guard, see
  :mod:`voicecall.reports.urls`); a refused address fails the report at once;
* at start-up every pending row is resumed where it was (a restart never resends a delivered
  report, and re-sends one whose answer was lost: receivers dedupe on ``webhook-id``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import httpx

from voicecall import __version__
from voicecall.calls.bus import EventBus
from voicecall.calls.extras import ReportDelivery, ReportState
from voicecall.calls.store.base import Store
from voicecall.config import ReportsSettings
from voicecall.errors import StoreError
from voicecall.reports import signing, urls
from voicecall.reports.document import encode, report_document

log = logging.getLogger("voicecall.reports")

#: delay before attempt 1, 2, … (seconds): at once, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h
SCHEDULE: tuple[float, ...] = (0.0, 5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0)
#: how often a report waiting for its call's outcome looks again (besides being woken)
READY_RECHECK_SECONDS = 30.0
STORE_RETRY_SECONDS = 5.0
MAX_CONCURRENT = 8


def webhook_id(call_id: str) -> str:
    """The report's ``webhook-id``: one per call, so a second end path cannot send another."""
    return f"msg_{call_id}"


def new_outbox_row(call_id: str, url: str, now: float) -> ReportDelivery:
    return ReportDelivery(
        webhook_id=webhook_id(call_id),
        call_id=call_id,
        url=url,
        next_at=now + SCHEDULE[0],
        created_at=now,
        updated_at=now,
    )


class ReportDeliverer:
    """Delivers the outbox of one store (run by the active instance only)."""

    def __init__(
        self,
        store: Store,
        settings: ReportsSettings,
        *,
        bus: EventBus | None = None,
        http: httpx.AsyncClient | None = None,
        clock: Callable[[], float] = time.time,
        schedule: tuple[float, ...] = SCHEDULE,
        resolver: urls.Resolver = urls.system_resolver,
    ) -> None:
        self.store = store
        self.settings = settings
        self.bus = bus
        self._clock = clock
        self.schedule = schedule
        self._resolver = resolver
        secret = settings.secret.get_secret_value() if settings.secret else None
        self._key = signing.parse_secret(secret) if secret else None
        # our own client: no proxies from the environment (they would bypass the address
        # check) and never following redirects
        self._own_http = http is None
        self._http = http or httpx.AsyncClient(trust_env=False, follow_redirects=False)
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._ready: dict[str, asyncio.Event] = {}
        self._slots = asyncio.Semaphore(MAX_CONCURRENT)
        self.attempts = 0
        self._warned = False

    @property
    def signed(self) -> bool:
        return self._key is not None

    async def start(self) -> int:
        """Resume every pending report; returns how many."""
        rows = await self.store.pending_reports()
        for row in rows:
            self._spawn(row.call_id, row)
        return len(rows)

    async def stop(self) -> None:
        for task in list(self._tasks.values()):
            task.cancel()
        for task in list(self._tasks.values()):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        if self._own_http:
            await self._http.aclose()

    def kick(self, call_id: str) -> None:
        """A call ended with an outbox row: deliver it (a no-op if it is already under way)."""
        self._spawn(call_id, None)

    def outcome_ready(self, call_id: str) -> None:
        """The call's outcome is final: a report waiting for it can be built now."""
        event = self._ready.get(call_id)
        if event is not None:
            event.set()

    def busy(self, call_id: str) -> bool:
        task = self._tasks.get(call_id)
        return task is not None and not task.done()

    def _spawn(self, call_id: str, row: ReportDelivery | None) -> None:
        if self.busy(call_id):
            return
        task = asyncio.ensure_future(self._deliver(call_id, row))
        self._tasks[call_id] = task

        def forget(done: asyncio.Future[None]) -> None:
            if self._tasks.get(call_id) is done:
                del self._tasks[call_id]
                self._ready.pop(call_id, None)

        task.add_done_callback(forget)

    # ------------------------------------------------------------------ the worker

    async def _deliver(self, call_id: str, row: ReportDelivery | None) -> None:
        try:
            if row is None:
                row = await self._load(call_id)
            while row is not None and row.state is ReportState.PENDING:
                wait = row.next_at - self._clock()
                if wait > 0:
                    await asyncio.sleep(wait)
                if row.body is None:
                    # frozen before the first send: every attempt, even after a crash mid-send,
                    # carries these bytes
                    body = await self._body_when_ready(call_id)
                    row = await self._record(row.copy(body=body), publish=False)
                async with self._slots:
                    attempted = await self._attempt(row)
                row = await self._record(attempted)
        except asyncio.CancelledError:
            raise
        except Exception:  # one report's bug must not stop the others
            log.exception("report of call %s: delivery stopped by an error", call_id)

    async def _load(self, call_id: str) -> ReportDelivery | None:
        while True:
            try:
                return await self.store.report(call_id)
            except StoreError as exc:
                log.warning("report of call %s: outbox unreadable (%s); retrying", call_id, exc)
                await asyncio.sleep(STORE_RETRY_SECONDS)

    async def _record(self, row: ReportDelivery, *, publish: bool = True) -> ReportDelivery:
        while True:
            try:
                await self.store.put_report(row)
                break
            except StoreError as exc:
                log.warning("report of call %s: attempt not stored (%s)", row.call_id, exc)
                await asyncio.sleep(STORE_RETRY_SECONDS)
        if publish and self.bus is not None:
            self.bus.publish(
                {
                    "type": "report.delivery",
                    "at": self._clock(),
                    "call_id": row.call_id,
                    **row.to_json(),
                }
            )
        # the stored body wins: an earlier attempt may have frozen it already
        stored = await self._load(row.call_id)
        return stored if stored is not None else row

    async def _body_when_ready(self, call_id: str) -> str:
        event = self._ready.setdefault(call_id, asyncio.Event())
        while True:
            try:
                body = await self.build(call_id)
            except StoreError as exc:
                log.warning("report of call %s: cannot be built yet (%s)", call_id, exc)
                body = None
            if body is not None:
                return body
            event.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), READY_RECHECK_SECONDS)

    async def build(self, call_id: str) -> str | None:
        """The report body, or ``None`` while the call's outcome is not final yet."""
        store = self.store
        record = await store.get_call(call_id)
        if record is None:
            raise StoreError(f"the report's call {call_id} is not in the store")
        spec = await store.call_spec(call_id)
        result = await store.call_result(call_id)
        if spec is not None and spec.is_task and result is None:
            return None
        lines = await store.transcript(call_id)
        questions = await store.questions(call_id)
        return encode(report_document(record, lines, spec=spec, result=result, questions=questions))

    async def _attempt(self, row: ReportDelivery) -> ReportDelivery:
        assert row.body is not None
        n = row.attempts + 1
        self.attempts += 1
        now = self._clock()
        host = urlsplit(row.url).hostname or "?"
        try:
            target = await urls.resolve(
                row.url,
                allow_private=self.settings.allow_private_urls,
                field="report url",
                resolver=self._resolver,
            )
        except urls.UrlRefused as exc:
            log.error("report of call %s refused: %s", row.call_id, exc)
            return row.copy(
                state=ReportState.FAILED,
                attempts=n,
                last_status=None,
                last_error=f"refused: {exc}"[:500],
                updated_at=now,
            )
        body = row.body.encode()
        if self._key is None and not self._warned:
            self._warned = True
            log.warning("reports.secret is not set: end-of-call reports are sent unsigned")
        headers: dict[str, Any] = {
            "content-type": "application/json",
            "user-agent": f"voicecall/{__version__}",
            "host": target.host_header,
            **signing.headers(self._key, row.webhook_id, int(now), body),
        }
        extensions = {"sni_hostname": target.sni_hostname} if target.sni_hostname else None
        status: int | None = None
        error: str | None = None
        try:
            async with self._http.stream(
                "POST",
                target.url,
                content=body,
                headers=headers,
                extensions=extensions,
                timeout=httpx.Timeout(self.settings.timeout_seconds),
                follow_redirects=False,
            ) as response:
                status = response.status_code
        except httpx.TimeoutException:
            error = f"no answer within {self.settings.timeout_seconds:.0f} s"
        except httpx.HTTPError as exc:
            error = f"connection failed ({type(exc).__name__})"
        done = self._clock()
        if status is not None and 200 <= status < 300:
            log.info("report of call %s delivered to %s (attempt %d)", row.call_id, host, n)
            return row.copy(
                state=ReportState.DELIVERED,
                attempts=n,
                last_status=status,
                last_error=None,
                updated_at=done,
                delivered_at=done,
            )
        why = error or f"HTTP {status}"
        if n >= len(self.schedule):
            log.error("report of call %s: giving up after %d attempts (%s)", row.call_id, n, why)
            return row.copy(
                state=ReportState.FAILED,
                attempts=n,
                last_status=status,
                last_error=why,
                updated_at=done,
            )
        delay = self.schedule[n]
        log.warning(
            "report of call %s to %s: attempt %d failed (%s); next in %.0f s",
            row.call_id,
            host,
            n,
            why,
            delay,
        )
        return row.copy(
            attempts=n, last_status=status, last_error=why, next_at=done + delay, updated_at=done
        )
