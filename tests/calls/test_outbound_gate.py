"""The outbound gate in the call manager: policy before any provider request, the audit trail,
and check-then-store under one lock (mock provider, real SQLite)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from voicecall.calls.manager import CallManager
from voicecall.calls.model import CallState, EndReason
from voicecall.calls.outbound import Requester, token_fingerprint
from voicecall.calls.store.base import AuditEntry
from voicecall.calls.store.sqlite import SQLiteStore
from voicecall.config import load_config
from voicecall.errors import (
    InvalidPhoneNumber,
    OutboundLimited,
    OutboundRefused,
    StoreError,
    TooManyCalls,
)
from voicecall.providers.mock import MockProvider

FROM = "+14155550199"
TO = "+14155550100"


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    s = SQLiteStore(str(tmp_path / "calls.db"))
    await s.open()
    yield s
    await s.close()


async def manager_for(store: SQLiteStore, **outbound: Any) -> tuple[CallManager, MockProvider]:
    settings = load_config(
        env={},
        overrides={
            "provider": "mock",
            "from_number": FROM,
            "max_concurrent_calls": 5,
            "outbound": outbound,
        },
    )
    provider = MockProvider()
    manager = CallManager(settings, store, provider, reaper_interval_seconds=0)
    await manager.start()
    return manager, provider


@pytest.mark.parametrize(
    ("to", "rule", "status"),
    [
        ("+19005550123", "outbound.allowed_number_types", 403),
        ("+449091234567", "outbound.allowed_number_types", 403),
        ("+881612345678", "outbound.allowed_number_types", 403),
        ("+442071838750", "outbound.allowed_countries", 403),
    ],
)
async def test_refused_numbers_never_reach_the_provider(
    store: SQLiteStore, to: str, rule: str, status: int
) -> None:
    manager, provider = await manager_for(store)
    try:
        who = Requester(surface="mcp", token_fingerprint=token_fingerprint("t0ken"))
        with pytest.raises(OutboundRefused) as info:
            await manager.place_call(to=to, message="Hi", requester=who)
        assert info.value.rule == rule and info.value.http_status == status
        assert provider.calls == {}
        assert (await store.list_calls()).calls == []
        (entry,) = await store.audit()
        assert (entry.outcome, entry.number, entry.surface, entry.rule) == (
            "refused",
            to,
            "mcp",
            rule,
        )
        assert entry.token_fingerprint == token_fingerprint("t0ken")
        assert entry.detail == info.value.message and entry.call_id is None
    finally:
        await manager.stop()


async def test_letters_in_a_number_are_refused_not_converted(store: SQLiteStore) -> None:
    manager, provider = await manager_for(store)
    try:
        for bad in ("+1415ABC0100", "+14155550123x"):
            with pytest.raises(InvalidPhoneNumber, match=r"^to: "):
                await manager.place_call(to=bad, message="Hi")
        assert provider.calls == {}
    finally:
        await manager.stop()


async def test_a_placed_call_is_audited_before_it_is_dialled(store: SQLiteStore) -> None:
    manager, provider = await manager_for(store)
    try:
        audited_first: list[bool] = []
        initiate = provider.initiate

        async def watching(request: Any) -> str:
            audited_first.append(bool(await store.audit()))
            return await initiate(request)

        provider.initiate = watching  # type: ignore[method-assign]
        record = await manager.place_call(to=TO, message="Hi", requester=Requester("cli", "tk_x"))
        assert audited_first == [True]
        (entry,) = await store.audit()
        assert (entry.outcome, entry.call_id, entry.surface, entry.token_fingerprint) == (
            "placed",
            record.call_id,
            "cli",
            "tk_x",
        )
        assert entry.rule is None and entry.detail is None
    finally:
        await manager.stop()


async def test_no_audit_no_dial(store: SQLiteStore, monkeypatch: pytest.MonkeyPatch) -> None:
    manager, provider = await manager_for(store)
    try:

        async def broken(entry: AuditEntry, *, keep_seconds: float | None = None) -> None:
            raise StoreError("disk full")

        monkeypatch.setattr(store, "record_audit", broken)
        with pytest.raises(StoreError):
            await manager.place_call(to=TO, message="Hi")
        assert provider.calls == {}
        (call,) = (await store.list_calls()).calls
        assert call.state is CallState.FAILED and call.end_reason is EndReason.FAILED
        assert "not dialled" in (call.error or "")
        assert manager.active_count == 0
    finally:
        await manager.stop()


async def test_a_store_that_cannot_be_read_refuses_the_call(
    store: SQLiteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    manager, provider = await manager_for(store)
    try:

        async def broken(number: str) -> None:
            raise StoreError("read failed")

        monkeypatch.setattr(store, "blocked_number", broken)
        with pytest.raises(StoreError):
            await manager.place_call(to=TO, message="Hi")
        assert provider.calls == {} and (await store.list_calls()).calls == []
    finally:
        await manager.stop()


async def test_do_not_call_list(store: SQLiteStore) -> None:
    manager, provider = await manager_for(store)
    try:
        entry, created = await manager.outbound.block(TO, reason="asked us not to call")
        assert created and entry.reason == "asked us not to call"
        assert (await manager.outbound.block(TO, reason="again"))[1] is False
        with pytest.raises(OutboundRefused) as info:
            await manager.place_call(to=TO, message="Hi")
        assert info.value.rule == "do_not_call" and "asked us not to call" in info.value.message
        assert await manager.outbound.unblock(TO) is True
        assert await manager.outbound.unblock(TO) is False
        await manager.place_call(to=TO, message="Hi")
        assert len(provider.calls) == 1
        with pytest.raises(InvalidPhoneNumber, match=r"^number: "):
            await manager.outbound.block("+1 415 555 0100", reason=None)
    finally:
        await manager.stop()


async def test_config_blocked_numbers(store: SQLiteStore) -> None:
    manager, provider = await manager_for(store, blocked_numbers=[TO])
    try:
        with pytest.raises(OutboundRefused) as info:
            await manager.place_call(to=TO, message="Hi")
        assert info.value.rule == "outbound.blocked_numbers"
        assert provider.calls == {}
    finally:
        await manager.stop()


async def test_concurrent_requests_cannot_both_pass_a_limit(store: SQLiteStore) -> None:
    manager, provider = await manager_for(store, max_calls_per_number_per_day=1)
    try:
        results = await asyncio.gather(
            *(manager.place_call(to=TO, message=f"Hi {i}") for i in range(4)),
            return_exceptions=True,
        )
        placed = [r for r in results if not isinstance(r, BaseException)]
        refused = [r for r in results if isinstance(r, OutboundLimited)]
        assert len(placed) == 1 and len(refused) == 3
        assert all(r.rule == "outbound.max_calls_per_number_per_day" for r in refused)
        assert all(r.http_status == 429 for r in refused)
        assert len(provider.calls) == 1
        # another number is not limited by this one
        await manager.place_call(to="+14155550101", message="Hi")
        outcomes = [e.outcome for e in await store.audit(limit=10)]
        assert sorted(outcomes) == ["placed", "placed", "refused", "refused", "refused"]
    finally:
        await manager.stop()


async def test_calls_per_hour_and_minutes_budget(store: SQLiteStore) -> None:
    manager, _ = await manager_for(store, max_calls_per_hour=2)
    try:
        await manager.place_call(to=TO, message="a")
        await manager.place_call(to="+14155550101", message="b")
        with pytest.raises(OutboundLimited) as info:
            await manager.place_call(to="+14155550102", message="c")
        assert info.value.rule == "outbound.max_calls_per_hour"
    finally:
        await manager.stop()


async def test_minutes_budget_counts_stored_talk_time(store: SQLiteStore) -> None:
    manager, _ = await manager_for(store, max_minutes_per_day=1)
    try:
        record = await manager.place_call(to=TO, message="a")
        now = record.created_at
        talked = record.copy(answered_at=now, ended_at=now + 61, state=CallState.COMPLETED)
        await store.commit(talked)  # as if the call had lasted 61 s
        with pytest.raises(OutboundLimited) as info:
            await manager.place_call(to="+14155550101", message="b")
        assert info.value.rule == "outbound.max_minutes_per_day"
    finally:
        await manager.stop()


async def test_max_concurrent_calls_is_a_policy_refusal_too(store: SQLiteStore) -> None:
    settings_over = {"max_calls_per_number_per_day": None}
    manager, _ = await manager_for(store, **settings_over)
    try:
        for i in range(5):
            await manager.place_call(to=TO, message=f"{i}")
        with pytest.raises(TooManyCalls) as info:
            await manager.place_call(to=TO, message="one more")
        assert info.value.rule == "max_concurrent_calls"
        assert (await store.audit(limit=1))[0].rule == "max_concurrent_calls"
    finally:
        await manager.stop()


async def test_check_outbound_for_transfers(store: SQLiteStore) -> None:
    manager, _ = await manager_for(store)
    try:
        assert await manager.check_outbound("+12125551234", surface="api") == "+12125551234"
        with pytest.raises(OutboundRefused) as info:
            await manager.check_outbound("+19005550123", surface="mcp", field="destination")
        assert info.value.message.startswith("destination: +19005550123")
        (entry,) = await store.audit()
        assert entry.outcome == "refused" and entry.surface == "mcp"
    finally:
        await manager.stop()


def test_token_fingerprint_is_short_stable_and_not_the_token() -> None:
    fp = token_fingerprint("a-very-secret-token")
    assert fp == token_fingerprint("a-very-secret-token")
    assert fp is not None and fp.startswith("tk_") and len(fp) == 15
    assert "secret" not in fp and fp != token_fingerprint("another-token")
    assert token_fingerprint(None) is None and token_fingerprint("") is None
