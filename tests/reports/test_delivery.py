"""The report outbox worker against a real SQLite store and a local receiver: retries on the
schedule with the same webhook-id and body, giving up, refusals at delivery time (rebinding),
waiting for a task call's outcome, and resuming after a restart."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import standardwebhooks
from fake_serve import serve
from report_receiver import ReportReceiver

from voicecall.calls.bus import EventBus
from voicecall.calls.extras import CallResult, CallSpec, ReportState
from voicecall.calls.model import (
    CallMode,
    CallRecord,
    CallState,
    Direction,
    EndReason,
    Speaker,
    TranscriptEntry,
    new_call_id,
)
from voicecall.calls.store.sqlite import SQLiteStore
from voicecall.config import ReportsSettings
from voicecall.reports import signing
from voicecall.reports.delivery import SCHEDULE, ReportDeliverer, new_outbox_row

SECRET = signing.new_secret(b"k" * 32)
FAST = (0.0, 0.05, 0.05, 0.05)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    s = SQLiteStore(str(tmp_path / "r.db"))
    await s.open()
    yield s
    await s.close()


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[ReportReceiver, str]]:
    got = ReportReceiver()
    async with serve(got.app()) as at:
        yield got, f"http://{at}/hook"


def settings(**over: Any) -> ReportsSettings:
    return ReportsSettings(**{"secret": SECRET, "allow_private_urls": True, **over})


async def ended_call(
    store: SQLiteStore, url: str, *, mode: CallMode = CallMode.CONVERSATION, spec: bool = False
) -> CallRecord:
    t = 1_700_000_000.0
    call = CallRecord(
        call_id=new_call_id(),
        direction=Direction.OUTBOUND,
        mode=mode,
        from_number="+14155550199",
        to_number="+14155550100",
        state=CallState.HANGUP_USER,
        end_reason=EndReason.HANGUP_USER,
        created_at=t,
        updated_at=t + 30,
        answered_at=t + 5,
        ended_at=t + 30,
        message="Hello",
    )
    lines = [
        TranscriptEntry(call.call_id, 0, Speaker.BOT, "Hello", t + 5),
        TranscriptEntry(call.call_id, 1, Speaker.USER, "Hi, who is this?", t + 7),
    ]
    task = (
        CallSpec(call.call_id, task="Say hello.", outcome_schema=None, created_at=t)
        if spec
        else None
    )
    await store.commit(
        call, transcript=lines, spec=task, outbox=new_outbox_row(call.call_id, url, 0)
    )
    return call


async def wait_state(store: SQLiteStore, call_id: str, state: ReportState) -> Any:
    for _ in range(500):
        row = await store.report(call_id)
        if row is not None and row.state is state:
            return row
        await asyncio.sleep(0.01)
    raise AssertionError(f"report never {state}: {await store.report(call_id)}")


def test_the_schedule_is_the_issue_s() -> None:
    assert SCHEDULE == (0, 5, 300, 1800, 7200, 18000, 36000, 36000)


async def test_retries_send_the_same_id_and_body_until_a_2xx(
    store: SQLiteStore, receiver: tuple[ReportReceiver, str]
) -> None:
    got, url = receiver
    got.statuses = [500, 302, 204]
    call = await ended_call(store, url)
    deliverer = ReportDeliverer(store, settings(), schedule=FAST, bus=EventBus())
    try:
        await deliverer.start()
        row = await wait_state(store, call.call_id, ReportState.DELIVERED)
    finally:
        await deliverer.stop()
    assert row.attempts == 3 and row.last_status == 204 and row.last_error is None
    assert len(got.received) == 3
    assert {r.headers["webhook-id"] for r in got.received} == {f"msg_{call.call_id}"}
    assert len({r.body for r in got.received}) == 1
    assert row.body is not None and row.body.encode() == got.received[0].body
    for r in got.received:  # each attempt is signed on its own timestamp
        assert standardwebhooks.Webhook(SECRET).verify(r.body, r.headers)
    doc = json.loads(got.received[0].body)
    assert (
        doc["type"] == "call.ended" and doc["data"]["transcript"][1]["text"] == "Hi, who is this?"
    )
    assert doc["data"]["outcome"] is None and doc["data"]["task"] is None


async def test_it_gives_up_after_the_last_attempt(
    store: SQLiteStore, receiver: tuple[ReportReceiver, str]
) -> None:
    got, url = receiver
    got.statuses = [500] * 10
    call = await ended_call(store, url)
    deliverer = ReportDeliverer(store, settings(), schedule=FAST)
    try:
        deliverer.kick(call.call_id)
        row = await wait_state(store, call.call_id, ReportState.FAILED)
    finally:
        await deliverer.stop()
    assert row.attempts == len(FAST) == len(got.received)
    assert row.last_error == "HTTP 500"
    assert await store.pending_reports() == []


async def test_a_failed_first_attempt_waits_five_seconds(
    store: SQLiteStore, receiver: tuple[ReportReceiver, str]
) -> None:
    got, url = receiver
    got.statuses = [503]
    call = await ended_call(store, url)
    deliverer = ReportDeliverer(store, settings())
    try:
        deliverer.kick(call.call_id)
        for _ in range(500):
            row = await store.report(call.call_id)
            if row is not None and row.attempts == 1:
                break
            await asyncio.sleep(0.01)
    finally:
        await deliverer.stop()
    assert row is not None and row.state is ReportState.PENDING
    assert row.next_at == pytest.approx(row.updated_at + 5.0)
    assert row.last_status == 503 and len(got.received) == 1


async def test_a_url_that_now_resolves_to_a_private_address_fails_at_once(
    store: SQLiteStore,
) -> None:
    call = await ended_call(store, "http://hooks.example.com/x")

    async def rebinding(host: str, port: int) -> list[str]:
        return ["127.0.0.1"]

    deliverer = ReportDeliverer(
        store, settings(allow_private_urls=False), schedule=FAST, resolver=rebinding
    )
    try:
        deliverer.kick(call.call_id)
        row = await wait_state(store, call.call_id, ReportState.FAILED)
    finally:
        await deliverer.stop()
    assert row.attempts == 1 and row.last_error is not None
    assert row.last_error.startswith("refused: report url: hooks.example.com resolves to")


async def test_a_task_call_s_report_waits_for_its_outcome(
    store: SQLiteStore, receiver: tuple[ReportReceiver, str]
) -> None:
    got, url = receiver
    call = await ended_call(store, url, mode=CallMode.TASK, spec=True)
    deliverer = ReportDeliverer(store, settings(), schedule=FAST)
    try:
        deliverer.kick(call.call_id)
        await asyncio.sleep(0.3)
        assert got.received == []  # no outcome yet: nothing sent
        result = CallResult(call.call_id, "They said hi.", {"done": True, "details": "hi"}, None, 1)
        assert await store.put_result(result)
        deliverer.outcome_ready(call.call_id)
        await wait_state(store, call.call_id, ReportState.DELIVERED)
    finally:
        await deliverer.stop()
    doc = json.loads(got.received[0].body)
    assert doc["data"]["outcome"] == {"done": True, "details": "hi"}
    assert doc["data"]["summary"] == "They said hi."


async def test_a_restart_resumes_pending_reports_with_their_frozen_body(
    store: SQLiteStore, receiver: tuple[ReportReceiver, str]
) -> None:
    got, url = receiver
    got.statuses = [500]
    call = await ended_call(store, url)
    first = ReportDeliverer(store, settings(), schedule=(0.0, 3600.0))
    try:
        first.kick(call.call_id)
        for _ in range(500):
            row = await store.report(call.call_id)
            if row is not None and row.attempts == 1:
                break
            await asyncio.sleep(0.01)
    finally:
        await first.stop()  # "crash" with the next attempt an hour away
    assert row is not None and row.body is not None
    # the stored call changes (it never should after its end; this proves the body is frozen)
    await store.commit(None, transcript=[TranscriptEntry(call.call_id, 2, Speaker.USER, "x", 1)])
    await store.put_report(row.copy(next_at=0.0))  # time passes: the retry is due
    second = ReportDeliverer(store, settings(), schedule=(0.0, 3600.0))
    try:
        assert await second.start() == 1
        done = await wait_state(store, call.call_id, ReportState.DELIVERED)
    finally:
        await second.stop()
    assert done.attempts == 2
    assert got.received[0].body == got.received[1].body
    assert got.received[0].headers["webhook-id"] == got.received[1].headers["webhook-id"]
