"""The Store contract for outbound safety (migration 3), on every backend: the do-not-call list,
the audit trail and the counts the outbound policy reads. Fixtures: ``conftest.py``."""

from __future__ import annotations

import asyncio
import itertools
from typing import TYPE_CHECKING, Any

import pytest

from voicecall.calls.model import CallMode, CallRecord, CallState, Direction, new_call_id
from voicecall.calls.policy import OutboundCounts
from voicecall.calls.store import codec, migrations
from voicecall.calls.store.base import AuditEntry, BlockedNumber, Store
from voicecall.errors import StoreError

if TYPE_CHECKING:
    from conftest import Backend

ALICE = "+14155550100"
BOB = "+14155550101"
NOW = 1_800_000_000.0
_ids = itertools.count(1)


def outbound(to: str, created_at: float, **changes: Any) -> CallRecord:
    call = CallRecord(
        call_id=f"c{next(_ids):06d}-" + new_call_id(),
        direction=Direction.OUTBOUND,
        mode=CallMode.NOTIFY,
        from_number="+14155550199",
        to_number=to,
        created_at=created_at,
        updated_at=created_at,
    )
    return call.copy(**changes)


def entry(**changes: Any) -> AuditEntry:
    base = AuditEntry(at=NOW, number=ALICE, surface="api", outcome="placed")
    return AuditEntry(**{**{k: getattr(base, k) for k in AuditEntry.__slots__}, **changes})


# -- do-not-call list ------------------------------------------------------------------------------


async def test_block_unblock_and_list(store: Store) -> None:
    assert await store.blocked_numbers() == []
    assert await store.block_number(ALICE, reason="asked not to be called", now=2.0) is True
    assert await store.block_number(BOB, reason=None, now=1.0) is True
    # blocking again changes nothing: the first reason and time stay
    assert await store.block_number(ALICE, reason="other", now=3.0) is False
    assert await store.blocked_number(ALICE) == BlockedNumber(ALICE, "asked not to be called", 2.0)
    assert await store.blocked_number("+14155550102") is None
    assert await store.blocked_number("+1\x00") is None
    assert await store.blocked_numbers() == [
        BlockedNumber(BOB, None, 1.0),
        BlockedNumber(ALICE, "asked not to be called", 2.0),
    ]
    assert await store.unblock_number(ALICE) is True
    assert await store.unblock_number(ALICE) is False
    assert await store.unblock_number("x\x00") is False
    assert [b.number for b in await store.blocked_numbers()] == [BOB]


async def test_block_refuses_bad_input_and_writes_nothing(store: Store) -> None:
    with pytest.raises(StoreError, match="NUL"):
        await store.block_number(ALICE, reason="a\x00b", now=1.0)
    with pytest.raises(ValueError, match="reason"):
        await store.block_number(ALICE, reason="x" * (codec.MAX_BLOCK_REASON_CHARS + 1), now=1.0)
    with pytest.raises(ValueError, match="number"):
        await store.block_number("", reason=None, now=1.0)
    with pytest.raises(ValueError, match="now"):
        await store.block_number(ALICE, reason=None, now=float("inf"))
    assert await store.blocked_numbers() == []
    # a reason at the limit is kept whole, an empty one is no reason
    assert await store.block_number(ALICE, reason="é" * codec.MAX_BLOCK_REASON_CHARS, now=1.0)
    assert await store.block_number(BOB, reason="", now=1.0)
    assert (await store.blocked_number(BOB)) == BlockedNumber(BOB, None, 1.0)


async def test_do_not_call_list_survives_reopen_and_is_shared(backend: Backend) -> None:
    first = await backend.open()
    other = await backend.open()
    try:
        await first.block_number(ALICE, reason="ünïcode ✓", now=5.0)
        assert await other.blocked_number(ALICE) == BlockedNumber(ALICE, "ünïcode ✓", 5.0)
    finally:
        await first.close()
        await other.close()
    again = await backend.open()
    try:
        assert [b.number for b in await again.blocked_numbers()] == [ALICE]
    finally:
        await again.close()


# -- audit trail -----------------------------------------------------------------------------------


async def test_audit_entries_read_back_newest_first_with_a_cursor(store: Store) -> None:
    refused = entry(
        at=NOW + 1,
        number=BOB,
        surface="mcp",
        outcome="refused",
        token_fingerprint="tk_0123456789ab",
        rule="outbound.allowed_number_types",
        detail="to: +19005550123 is a premium-rate number",
    )
    placed = entry(call_id="call-1", surface="cli")
    await store.record_audit(placed)
    await store.record_audit(refused)
    got = await store.audit(limit=10)
    assert [e.outcome for e in got] == ["refused", "placed"]
    assert got[0].id is not None and got[1].id is not None and got[0].id > got[1].id
    assert {**_fields(got[0]), "id": None} == _fields(refused)
    assert {**_fields(got[1]), "id": None} == _fields(placed)
    page = await store.audit(limit=1)
    assert [e.id for e in page] == [got[0].id]
    assert [e.id for e in await store.audit(limit=5, before=page[0].id)] == [got[1].id]
    assert await store.audit(limit=5, before=got[1].id) == []


def _fields(e: AuditEntry) -> dict[str, Any]:
    return {k: getattr(e, k) for k in AuditEntry.__slots__}


async def test_audit_prunes_old_entries_and_never_reuses_ids(store: Store) -> None:
    for i in range(3):
        await store.record_audit(entry(at=NOW + i))
    newest = (await store.audit(limit=1))[0].id
    assert newest is not None
    # keep 1.5 s: entries older than at - 1.5 go, in the same write
    await store.record_audit(entry(at=NOW + 3), keep_seconds=1.5)
    got = await store.audit(limit=10)
    assert [e.at for e in got] == [NOW + 3, NOW + 2]
    assert got[0].id is not None and got[0].id > newest


async def test_audit_refuses_bad_entries_and_cuts_long_details(store: Store) -> None:
    with pytest.raises(ValueError, match="outcome"):
        await store.record_audit(entry(outcome="maybe"))
    with pytest.raises(ValueError, match="surface"):
        await store.record_audit(entry(surface=""))
    with pytest.raises(StoreError, match="NUL"):
        await store.record_audit(entry(detail="x\x00"))
    with pytest.raises(ValueError, match="limit"):
        await store.audit(limit=0)
    with pytest.raises(ValueError, match="before"):
        await store.audit(before=0)
    assert await store.audit() == []
    await store.record_audit(entry(detail="d" * 5000))
    (got,) = await store.audit()
    assert got.detail == "d" * codec.MAX_AUDIT_DETAIL_CHARS


async def test_concurrent_audit_writes_are_all_kept(store: Store) -> None:
    await asyncio.gather(*(store.record_audit(entry(call_id=f"c{i}")) for i in range(50)))
    got = await store.audit(limit=100)
    assert sorted(e.call_id or "" for e in got) == sorted(f"c{i}" for i in range(50))
    assert len({e.id for e in got}) == 50


# -- counts for the outbound policy ---------------------------------------------------------------


async def test_outbound_counts_windows_and_talk_time(store: Store) -> None:
    assert await store.outbound_counts(ALICE, now=NOW) == OutboundCounts(0, 0, 0.0)
    calls = [
        # to ALICE, 2 h ago, talked 60 s
        outbound(
            ALICE,
            NOW - 7200,
            answered_at=NOW - 7190,
            ended_at=NOW - 7130,
            state=CallState.COMPLETED,
        ),
        # to ALICE, 10 min ago, answered 30 s before now and still up: 30 s so far
        outbound(ALICE, NOW - 600, answered_at=NOW - 30, state=CallState.ANSWERED),
        # to BOB, 5 min ago, never answered
        outbound(BOB, NOW - 300, state=CallState.NO_ANSWER, ended_at=NOW - 270),
        # to ALICE, 25 h ago: outside every window
        outbound(ALICE, NOW - 90_000, answered_at=NOW - 89_990, ended_at=NOW - 80_000),
        # an inbound call from ALICE never counts
        outbound(ALICE, NOW - 60, answered_at=NOW - 50).copy(direction=Direction.INBOUND),
    ]
    for call in calls:
        assert await store.commit(call)
    counts = await store.outbound_counts(ALICE, now=NOW)
    assert counts.calls_to_number_last_day == 2
    assert counts.calls_last_hour == 2  # ALICE 10 min ago, BOB 5 min ago
    assert counts.talk_seconds_last_day == pytest.approx(90.0)
    assert (await store.outbound_counts(BOB, now=NOW)).calls_to_number_last_day == 1
    assert (await store.outbound_counts("+14155550102", now=NOW)).calls_to_number_last_day == 0
    with pytest.raises(ValueError):
        await store.outbound_counts("+1\x00", now=NOW)


async def test_version_2_database_is_upgraded_to_outbound_safety(
    backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    released = migrations.MIGRATIONS
    monkeypatch.setattr(migrations, "MIGRATIONS", released[:2])
    call = outbound(ALICE, NOW - 10)
    old = await backend.open()
    try:
        assert await old.commit(call)
    finally:
        await old.close()
    assert backend.sql("SELECT max(version) FROM schema_version") == [(2,)]
    monkeypatch.setattr(migrations, "MIGRATIONS", released)
    store = await backend.open()
    try:
        assert (await store.outbound_counts(ALICE, now=NOW)).calls_to_number_last_day == 1
        assert await store.block_number(ALICE, reason=None, now=NOW)
        await store.record_audit(entry())
        assert len(await store.audit()) == 1
    finally:
        await store.close()
    assert backend.sql("SELECT description FROM schema_version WHERE version = 3") == [
        ("blocked_numbers, outbound_audit",)
    ]
