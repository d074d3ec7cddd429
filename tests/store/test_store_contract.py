"""The Store contract, run against every backend (see ``conftest.py`` for the fixtures)."""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import psycopg
import pytest
from hypothesis import given
from hypothesis import strategies as st

from voicecall.calls.model import (
    TERMINAL_STATES,
    CallMode,
    CallRecord,
    CallState,
    Direction,
    EndReason,
    Speaker,
    TranscriptEntry,
    new_call_id,
)
from voicecall.calls.store import codec, migrations
from voicecall.calls.store.base import EventRow, Store
from voicecall.calls.store.postgres import PostgresStore, redact_url
from voicecall.errors import StoreError

if TYPE_CHECKING:
    from conftest import Backend

PG_ADMIN_URL = os.environ.get("VOICECALL_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")

_clock = itertools.count(1)


def make_call(**changes: Any) -> CallRecord:
    t = 1_700_000_000.0 + next(_clock) * 0.001
    call = CallRecord(
        call_id=new_call_id(),
        direction=Direction.OUTBOUND,
        mode=CallMode.CONVERSATION,
        from_number="+15005550006",
        to_number="+14155550100",
        created_at=t,
        updated_at=t,
    )
    return call.copy(**changes)


def line(call_id: str, seq: int, text: str = "", **changes: Any) -> TranscriptEntry:
    entry = TranscriptEntry(call_id, seq, Speaker.USER, text or f"line {seq}", 10.0 + seq)
    return TranscriptEntry(**{**_fields(entry), **changes})


def _fields(entry: TranscriptEntry) -> dict[str, Any]:
    return {name: getattr(entry, name) for name in TranscriptEntry.__slots__}


def event(key: str, call_id: str, kind: str = "status", at: float = 1.0) -> EventRow:
    return EventRow(dedupe_key=key, call_id=call_id, kind=kind, at=at, detail=None)


# -- commit / read back ------------------------------------------------------------------------


async def test_commit_reads_back_every_field(store: Store) -> None:
    call = CallRecord(
        call_id="c-" + new_call_id(),
        direction=Direction.INBOUND,
        mode=CallMode.NOTIFY,
        from_number="+14155550100",
        to_number=None,
        state=CallState.HANGUP_BOT,
        provider="twilio",
        provider_call_id="CA" + "0" * 32,
        end_reason=EndReason.HANGUP_BOT,
        message="Grüße — ☎ 'quoted' \"double\" \\ back",
        created_at=1_712_345_678.123456789,
        updated_at=1_712_345_699.000001,
        answered_at=1_712_345_680.5,
        ended_at=1_712_345_699.25,
        dial_started_at=1_712_345_678.2,
        turn=7,
        last_sequence=2**40,
        error="provider said no",
        metadata={"agent": "x", "nested": {"list": [1, 2.5, None, True]}, "ü": "☎"},
    )
    ev = EventRow("CA…:completed:1", call.call_id, "ended", 1_712_345_699.25, "seq=3")
    lines = [
        TranscriptEntry(call.call_id, 0, Speaker.BOT, "Hello, this is a reminder.", 1.5, True, 0),
        TranscriptEntry(call.call_id, 1, Speaker.USER, "ok…", 2.25, False, None),
    ]
    assert await store.commit(call, event=ev, transcript=lines) is True

    assert await store.get_call(call.call_id) == call
    assert await store.get_call_by_provider_id("CA" + "0" * 32) == call
    assert await store.events(call.call_id) == [ev]
    assert await store.transcript(call.call_id) == lines
    assert await store.has_event(ev.dedupe_key) is True
    # the minimal record (all optional fields empty) survives too
    bare = make_call(from_number=None, to_number=None)
    assert await store.commit(bare) is True
    assert await store.get_call(bare.call_id) == bare


async def test_call_ids_with_prefix(store: Store) -> None:
    ids = ["abcdef01" + "0" * 24, "abcdef02" + "0" * 24, "abcdff00" + "0" * 24, "a%_b" + "1" * 28]
    for call_id in ids:
        await store.commit(make_call(call_id=call_id))
    assert await store.call_ids_with_prefix("abcdef01") == [ids[0]]
    assert await store.call_ids_with_prefix("abcdef") == ids[:2]  # at most two: ambiguous
    assert await store.call_ids_with_prefix("abcd", limit=5) == ids[:3]
    assert await store.call_ids_with_prefix("ABCDEF01") == []  # case-sensitive
    assert await store.call_ids_with_prefix("a%") == [ids[3]]  # no wildcards
    assert await store.call_ids_with_prefix("a_") == []
    assert await store.call_ids_with_prefix(ids[1]) == [ids[1]]
    assert await store.call_ids_with_prefix("") == []
    assert await store.call_ids_with_prefix("ab\x00") == []
    with pytest.raises(ValueError):
        await store.call_ids_with_prefix("abc", limit=0)


async def test_unknown_keys_read_as_absent(store: Store) -> None:
    assert await store.get_call("nope") is None
    assert await store.get_call_by_provider_id("CAnope") is None
    assert await store.transcript("nope") == []
    assert await store.events("nope") == []
    assert await store.has_event("nope") is False
    assert await store.list_active() == []
    page = await store.list_calls()
    assert page.calls == [] and page.next_cursor is None
    # keys straight from an untrusted URL: absent, not an error
    assert await store.get_call("a\x00b") is None
    assert await store.get_call_by_provider_id("CA\x00") is None
    assert await store.transcript("\x00") == []
    assert await store.events("\x00") == []
    assert await store.has_event("\x00") is False


async def test_call_row_is_updated_in_place(store: Store) -> None:
    call = make_call()
    assert await store.commit(call, event=event("a", call.call_id))
    ringing = call.copy(state=CallState.RINGING, provider_call_id="CA1", updated_at=5.0)
    assert await store.commit(ringing, event=event("b", call.call_id))
    answered = ringing.copy(state=CallState.ANSWERED, answered_at=6.0, metadata={"k": "v"})
    assert await store.commit(answered)
    assert await store.get_call(call.call_id) == answered
    page = await store.list_calls()
    assert [c.call_id for c in page.calls] == [call.call_id]
    assert [e.dedupe_key for e in await store.events(call.call_id)] == ["a", "b"]


async def test_a_calls_identity_is_written_once(store: Store) -> None:
    # who, which way and when are fixed at creation; later commits update the rest only (so
    # the indexes on them are not rewritten by every status callback)
    call = make_call()
    assert await store.commit(call)
    changed = call.copy(
        direction=Direction.INBOUND,
        mode=CallMode.NOTIFY,
        from_number="+14155550111",
        to_number="+14155550122",
        provider="other",
        created_at=call.created_at + 60,
        state=CallState.RINGING,
        updated_at=call.updated_at + 1,
    )
    assert set(codec.CALL_IDENTITY_COLUMNS) | set(codec.CALL_UPDATE_COLUMNS) == set(
        codec.CALL_COLUMNS[1:]
    )
    assert await store.commit(changed)
    assert await store.get_call(call.call_id) == call.copy(
        state=CallState.RINGING, updated_at=call.updated_at + 1
    )


async def test_indexed_columns_are_stored_whether_they_change_alone_or_not_at_all(
    store: Store,
) -> None:
    # SQLite sets state and provider_call_id in a statement of their own, only when they
    # differ from the stored row (so their indexes are not rewritten by every callback)
    call = make_call()
    assert await store.commit(call)
    steps = [
        call.copy(provider_call_id="CA-first", updated_at=call.updated_at + 1),
        call.copy(
            provider_call_id="CA-first", state=CallState.RINGING, updated_at=call.updated_at + 2
        ),
        call.copy(provider_call_id="CA-first", state=CallState.RINGING, turn=3, metadata={"a": 1}),
        call.copy(provider_call_id="CA-second", state=CallState.RINGING, turn=3),
        call.copy(provider_call_id=None, state=CallState.ANSWERED, turn=4),
    ]
    for i, step in enumerate(steps):
        assert await store.commit(step, event=event(f"keys-{i}", call.call_id))
        assert await store.get_call(call.call_id) == step, i
    assert await store.get_call_by_provider_id("CA-second") is None


async def test_event_only_and_transcript_only_commits(store: Store) -> None:
    assert await store.commit(None, event=event("only-event", "c1")) is True
    assert await store.has_event("only-event")
    assert await store.get_call("c1") is None
    assert await store.commit(None, transcript=[line("c1", 0)]) is True
    assert await store.transcript("c1") == [line("c1", 0)]
    assert await store.commit(None, event=event("only-event", "c1")) is False


# -- dedupe ------------------------------------------------------------------------------------


async def test_duplicate_event_writes_nothing(store: Store) -> None:
    call = make_call(state=CallState.RINGING)
    first = [line(call.call_id, 0, "hello")]
    assert await store.commit(call, event=event("dup", call.call_id), transcript=first) is True

    changed = call.copy(state=CallState.COMPLETED, end_reason=EndReason.COMPLETED, turn=9)
    again = await store.commit(
        changed,
        event=event("dup", call.call_id, kind="other", at=99.0),
        transcript=[line(call.call_id, 0, "overwritten?"), line(call.call_id, 1, "new?")],
    )
    assert again is False
    assert await store.get_call(call.call_id) == call
    assert await store.transcript(call.call_id) == first
    assert await store.events(call.call_id) == [event("dup", call.call_id)]


async def test_duplicate_keys_in_one_burst_only_first_applies(store: Store) -> None:
    call = make_call()
    assert await store.commit(call)
    variants = [call.copy(turn=i) for i in range(1, 21)]
    results = await asyncio.gather(
        *(
            store.commit(v, event=event("same-key", call.call_id, at=float(v.turn)))
            for v in variants
        )
    )
    assert results.count(True) == 1
    winner = variants[results.index(True)]
    assert await store.get_call(call.call_id) == winner
    assert [e.at for e in await store.events(call.call_id)] == [float(winner.turn)]


# -- atomicity ---------------------------------------------------------------------------------


async def test_failing_item_writes_nothing_and_spares_the_others(store: Store) -> None:
    owner = make_call(provider_call_id="CA-taken")
    assert await store.commit(owner)

    # provider_call_id is unique: this commit must fail as a whole
    clash = make_call(provider_call_id="CA-taken")
    good = [make_call() for _ in range(5)]
    results = await asyncio.gather(
        store.commit(good[0], event=event("g0", good[0].call_id)),
        store.commit(
            clash,
            event=event("clash-event", clash.call_id),
            transcript=[line(clash.call_id, 0)],
        ),
        *(store.commit(g, event=event(f"g{i}", g.call_id)) for i, g in enumerate(good[1:], 1)),
        return_exceptions=True,
    )
    assert isinstance(results[1], StoreError)
    assert results[:1] + results[2:] == [True] * 5
    assert await store.get_call(clash.call_id) is None
    assert await store.has_event("clash-event") is False
    assert await store.transcript(clash.call_id) == []
    assert await store.get_call_by_provider_id("CA-taken") == owner
    for i, g in enumerate(good):
        assert await store.get_call(g.call_id) == g
        assert await store.has_event(f"g{i}")
    # the failed event can be retried once the conflict is gone
    assert await store.commit(
        clash.copy(provider_call_id="CA-other"), event=event("clash-event", "x")
    )


async def test_unserializable_metadata_is_a_store_error_and_writes_nothing(store: Store) -> None:
    call = make_call(metadata={"blob": b"\x00"})
    with pytest.raises(StoreError, match="metadata"):
        await store.commit(call, event=event("m", call.call_id))
    assert await store.has_event("m") is False
    assert await store.get_call(call.call_id) is None


async def test_nul_characters_are_refused_by_every_backend(store: Store) -> None:
    call = make_call(message="a\x00b")
    with pytest.raises(StoreError, match="NUL"):
        await store.commit(call, event=event("nul", call.call_id))
    with pytest.raises(StoreError, match="NUL"):
        await store.commit(None, transcript=[line(call.call_id, 0, "x\x00")])
    assert await store.has_event("nul") is False
    assert await store.get_call(call.call_id) is None


# -- caller memory -----------------------------------------------------------------------------

ALICE, BOB, CAROL = "+14155550100", "+14155550101", "+14155550102"
LIMITS: dict[str, int] = {"max_entries": 3, "max_chars": 10, "max_callers": 2}


async def test_caller_notes_append_in_order_and_are_bounded(store: Store) -> None:
    assert await store.caller_notes(ALICE) == []
    for n, note in enumerate(["one", "two", "three", "four", "a rather long fifth note"]):
        await store.remember_caller(ALICE, note, now=100.0 + n, **LIMITS)
    # the newest max_entries notes, oldest first, each cut to max_chars
    assert await store.caller_notes(ALICE) == ["three", "four", "a rather l"]
    assert await store.caller_notes(BOB) == []
    assert await store.caller_notes("nul\x00") == []


async def test_caller_memory_drops_the_least_recently_updated_callers(backend: Backend) -> None:
    store = await backend.open()
    try:
        await store.remember_caller(ALICE, "a", now=1.0, **LIMITS)
        await store.remember_caller(BOB, "b", now=2.0, **LIMITS)
        await store.remember_caller(ALICE, "a2", now=3.0, **LIMITS)  # ALICE is now the newest
        await store.remember_caller(CAROL, "c", now=4.0, **LIMITS)  # one too many: BOB goes
        assert await store.caller_notes(BOB) == []
        assert await store.caller_notes(ALICE) == ["a", "a2"]
        assert await store.caller_notes(CAROL) == ["c"]
        # the caller just written is always kept, even with an older timestamp (an import)
        await store.remember_caller(BOB, "old", now=0.5, **LIMITS)
        assert await store.caller_notes(BOB) == ["old"]
        assert await store.caller_notes(ALICE) == []  # older than CAROL: dropped
        await store.remember_caller(CAROL, "c2", now=5.0, **{**LIMITS, "max_callers": 1})
    finally:
        await store.close()
    assert backend.sql("SELECT caller FROM caller_memory") == [(CAROL,)]


async def test_forget_caller(store: Store) -> None:
    await store.remember_caller(ALICE, "a", now=1.0, **LIMITS)
    await store.remember_caller(BOB, "b", now=1.0, **LIMITS)
    assert await store.forget_caller(ALICE) is True
    assert await store.forget_caller(ALICE) is False
    assert await store.forget_caller("nul\x00") is False
    assert await store.caller_notes(ALICE) == []
    assert await store.caller_notes(BOB) == ["b"]
    await store.remember_caller(ALICE, "again", now=2.0, **LIMITS)
    assert await store.caller_notes(ALICE) == ["again"]


async def test_concurrent_notes_for_one_caller_are_all_kept(store: Store) -> None:
    notes = [f"note {i}" for i in range(40)]
    await asyncio.gather(
        *(
            store.remember_caller(ALICE, n, max_entries=100, max_chars=50, max_callers=10, now=1.0)
            for n in notes
        )
    )
    assert sorted(await store.caller_notes(ALICE)) == sorted(notes)


async def test_caller_memory_survives_reopen_and_is_seen_by_another_store(
    backend: Backend,
) -> None:
    first = await backend.open()
    other = await backend.open()  # e.g. a standby on the same database
    try:
        await first.remember_caller(
            ALICE, "booked a table, ünïcode ✓", now=1.0, **{**LIMITS, "max_chars": 100}
        )
        assert await other.caller_notes(ALICE) == ["booked a table, ünïcode ✓"]
    finally:
        await first.close()
        await other.close()
    again = await backend.open()
    try:
        assert await again.caller_notes(ALICE) == ["booked a table, ünïcode ✓"]
    finally:
        await again.close()


async def test_caller_memory_refuses_bad_input_and_writes_nothing(store: Store) -> None:
    with pytest.raises(StoreError, match="NUL"):
        await store.remember_caller(ALICE, "x\x00y", now=1.0, **LIMITS)
    with pytest.raises(StoreError, match="NUL"):
        await store.remember_caller("+1\x00", "x", now=1.0, **LIMITS)
    for bad in ("max_entries", "max_chars", "max_callers"):
        with pytest.raises(ValueError, match=bad):
            await store.remember_caller(ALICE, "x", now=1.0, **{**LIMITS, bad: 0})
    with pytest.raises(ValueError, match="caller"):
        await store.remember_caller("", "x", now=1.0, **LIMITS)
    with pytest.raises(ValueError, match="finite"):
        await store.remember_caller(ALICE, "x", now=float("nan"), **LIMITS)
    assert await store.caller_notes(ALICE) == []


async def test_stored_garbage_notes_are_a_store_error(backend: Backend) -> None:
    store = await backend.open()
    try:
        await store.remember_caller(ALICE, "a", now=1.0, **LIMITS)
        backend.sql(f"UPDATE caller_memory SET notes = '\"not a list\"' WHERE caller = '{ALICE}'")
        with pytest.raises(StoreError, match="notes"):
            await store.caller_notes(ALICE)
        with pytest.raises(StoreError):
            await store.remember_caller(ALICE, "b", now=2.0, **LIMITS)
        # a failing memory write fails alone: the store keeps working
        await store.remember_caller(BOB, "b", now=2.0, **LIMITS)
        assert await store.caller_notes(BOB) == ["b"]
    finally:
        await store.close()


async def test_a_version_1_database_is_upgraded_and_keeps_its_calls(
    backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    released = migrations.MIGRATIONS
    monkeypatch.setattr(migrations, "MIGRATIONS", released[:1])
    call = make_call()
    old = await backend.open()
    try:
        assert await old.commit(call, event=event("v1", call.call_id))
    finally:
        await old.close()
    assert backend.sql("SELECT max(version) FROM schema_version") == [(1,)]
    monkeypatch.setattr(migrations, "MIGRATIONS", released)
    store = await backend.open()
    try:
        assert await store.get_call(call.call_id) == call
        await store.remember_caller(ALICE, "a", now=1.0, **LIMITS)
        assert await store.caller_notes(ALICE) == ["a"]
    finally:
        await store.close()
    rows = backend.sql("SELECT version FROM schema_version ORDER BY version")
    assert [r[0] for r in rows] == list(range(1, migrations.LATEST_VERSION + 1))


# -- concurrency, durability -------------------------------------------------------------------


async def test_concurrent_commits_are_all_durable(backend: Backend) -> None:
    store = await backend.open()
    calls = [make_call() for _ in range(20)]
    try:

        async def writer(call: CallRecord) -> list[bool]:
            out = []
            for i in range(15):
                out.append(
                    await store.commit(
                        call.copy(turn=i, state=CallState.ACTIVE),
                        event=event(f"{call.call_id}:{i}", call.call_id, at=float(i)),
                        transcript=[line(call.call_id, i)],
                    )
                )
            return out

        results = await asyncio.gather(*(writer(c) for c in calls))
        assert all(all(r) for r in results)
    finally:
        await store.close()

    reopened = await backend.open()
    try:
        for call in calls:
            assert await reopened.get_call(call.call_id) == call.copy(
                turn=14, state=CallState.ACTIVE
            )
            assert len(await reopened.events(call.call_id)) == 15
            assert [t.seq for t in await reopened.transcript(call.call_id)] == list(range(15))
    finally:
        await reopened.close()


async def test_everything_survives_reopen_including_dedupe_keys(backend: Backend) -> None:
    store = await backend.open()
    done = make_call(state=CallState.COMPLETED, end_reason=EndReason.COMPLETED, ended_at=9.0)
    live = make_call(state=CallState.ACTIVE)
    try:
        assert await store.commit(done, event=event("done-1", done.call_id))
        assert await store.commit(
            live, event=event("live-1", live.call_id), transcript=[line(live.call_id, 0)]
        )
    finally:
        await store.close()

    store = await backend.open()
    try:
        assert await store.get_call(done.call_id) == done
        assert await store.list_active() == [live]
        assert await store.transcript(live.call_id) == [line(live.call_id, 0)]
        # a replay of a finished call's old webhook after a restart is still a duplicate
        assert await store.has_event("done-1")
        replay = done.copy(state=CallState.ACTIVE)
        assert await store.commit(replay, event=event("done-1", done.call_id)) is False
        assert await store.get_call(done.call_id) == done
    finally:
        await store.close()


# The child commits, then kills itself with SIGKILL the moment commit() has returned: whatever
# it was told is persisted must be visible to a new process.
_KILL_CHILD = textwrap.dedent(
    """
    import asyncio, os, signal, sys
    from voicecall.calls.model import CallRecord, CallMode, CallState, Direction
    from voicecall.calls.store.base import EventRow, open_store_from_url

    async def main(url: str, prefix: str) -> None:
        store = open_store_from_url(url)
        await store.open()

        async def one(i: int) -> bool:
            call = CallRecord(f"{prefix}-{i}", Direction.OUTBOUND, CallMode.NOTIFY, None, None,
                              state=CallState.RINGING, created_at=float(i))
            ev = EventRow(f"{prefix}-ev-{i}", call.call_id, "k", 1.0)
            return await store.commit(call, event=ev)

        results = await asyncio.gather(*(one(i) for i in range(50)))
        if all(results):
            os.kill(os.getpid(), signal.SIGKILL)
        sys.exit(3)

    asyncio.run(main(sys.argv[1], sys.argv[2]))
    """
)


async def test_acknowledged_commits_survive_sigkill(backend: Backend) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _KILL_CHILD,
        backend.url,
        "killed",
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    _, err = await proc.communicate()
    assert proc.returncode == -signal.SIGKILL, err.decode()

    store = await backend.open()
    try:
        for i in range(50):
            call = await store.get_call(f"killed-{i}")
            assert call is not None and call.state is CallState.RINGING
            assert await store.has_event(f"killed-ev-{i}")
    finally:
        await store.close()


# -- listing -----------------------------------------------------------------------------------


async def test_list_active_and_terminal_calls_stay_queryable(store: Store) -> None:
    by_state = {state: make_call(state=state) for state in CallState}
    for call in by_state.values():
        assert await store.commit(call)
    active = {c.call_id for s, c in by_state.items() if s not in TERMINAL_STATES}
    terminal = {c.call_id for s, c in by_state.items() if s in TERMINAL_STATES}

    assert {c.call_id for c in await store.list_active()} == active
    assert {c.call_id for c in (await store.list_calls(active=True, limit=100)).calls} == active
    assert {c.call_id for c in (await store.list_calls(active=False, limit=100)).calls} == terminal
    everything = (await store.list_calls(active=None, limit=100)).calls
    assert {c.call_id for c in everything} == active | terminal
    for call in by_state.values():
        assert await store.get_call(call.call_id) == call

    # ending a call moves it from one list to the other
    live = by_state[CallState.ACTIVE]
    assert await store.commit(live.copy(state=CallState.COMPLETED))
    assert live.call_id not in {c.call_id for c in await store.list_active()}
    assert live.call_id in {
        c.call_id for c in (await store.list_calls(active=False, limit=100)).calls
    }


@pytest.mark.parametrize("active", [None, True, False])
async def test_pagination_walks_every_call_exactly_once(store: Store, active: bool | None) -> None:
    states = [CallState.ACTIVE, CallState.COMPLETED, CallState.RINGING, CallState.FAILED]
    calls = []
    for i in range(47):
        # groups of identical created_at force the call_id tie-breaker
        calls.append(make_call(created_at=1000.0 + i // 3, state=states[i % len(states)]))
    for call in calls:
        assert await store.commit(call)
    wanted = [c for c in calls if active is None or (not c.is_terminal) is active]
    expected = sorted(wanted, key=lambda c: (c.created_at, c.call_id), reverse=True)

    seen: list[CallRecord] = []
    cursor: str | None = None
    pages = 0
    while True:
        page = await store.list_calls(limit=4, cursor=cursor, active=active)
        pages += 1
        seen.extend(page.calls)
        if pages == 2:
            # a call created mid-walk is newer than the cursor: it must not disturb the walk
            assert await store.commit(make_call(created_at=5000.0, state=states[0]))
        if page.next_cursor is None:
            break
        assert len(page.calls) == 4
        cursor = page.next_cursor
    assert [c.call_id for c in seen] == [c.call_id for c in expected]
    assert pages == max(1, -(-len(expected) // 4))


async def test_list_calls_rejects_bad_arguments(store: Store) -> None:
    with pytest.raises(ValueError, match="cursor"):
        await store.list_calls(cursor="not-a-cursor")
    with pytest.raises(ValueError, match="limit"):
        await store.list_calls(limit=0)
    with pytest.raises(ValueError, match="limit"):
        await store.list_calls(limit=codec.MAX_PAGE_SIZE + 1)


async def test_transcript_is_ordered_by_seq_and_lines_are_never_overwritten(store: Store) -> None:
    call = make_call()
    assert await store.commit(call, transcript=[line(call.call_id, 3), line(call.call_id, 1)])
    assert await store.commit(None, transcript=[line(call.call_id, 2, final=False)])
    assert await store.commit(None, transcript=[line(call.call_id, 0)])
    assert [t.seq for t in await store.transcript(call.call_id)] == [0, 1, 2, 3]
    before = await store.transcript(call.call_id)
    # a commit carrying a line that exists fails whole: not the line, not the call row
    changed = call.copy(turn=7)
    with pytest.raises(StoreError):
        await store.commit(
            changed,
            event=event("e-overwrite", call.call_id),
            transcript=[line(call.call_id, 4), line(call.call_id, 2, "overwritten!")],
        )
    assert await store.transcript(call.call_id) == before
    assert await store.get_call(call.call_id) == call
    assert not await store.has_event("e-overwrite")
    # the same seq twice in one commit is refused before any I/O
    with pytest.raises(StoreError, match="twice"):
        await store.commit(None, transcript=[line(call.call_id, 9), line(call.call_id, 9)])
    # other calls' lines do not leak in
    assert await store.commit(None, transcript=[line("other", 0)])
    assert len(await store.transcript(call.call_id)) == 4


async def test_amend_changes_only_the_named_existing_lines(store: Store) -> None:
    call = make_call()
    assert await store.commit(call, transcript=[line(call.call_id, i) for i in range(3)])
    final = line(call.call_id, 2, "final words", final=True)
    assert await store.amend_lines([final]) is True
    got = await store.transcript(call.call_id)
    assert got[2].text == "final words" and got[2].final
    assert got[2].speaker is Speaker.USER and got[2].at == line(call.call_id, 2).at
    assert [g.text for g in got[:2]] == ["line 0", "line 1"]
    # a line that was never stored is not created by an amend
    assert await store.amend_lines([line(call.call_id, 7, "ghost")]) is False
    assert len(await store.transcript(call.call_id)) == 3
    assert await store.amend_lines([]) is False
    with pytest.raises(StoreError):
        await store.amend_lines([line(call.call_id, 1, "nul\x00")])


async def test_events_are_listed_per_call_in_time_order(store: Store) -> None:
    call = make_call()
    for key, at in [("e3", 3.0), ("e1", 1.0), ("e2", 2.0)]:
        assert await store.commit(None, event=event(key, call.call_id, at=at))
    assert await store.commit(None, event=event("elsewhere", "other-call", at=0.5))
    assert [e.dedupe_key for e in await store.events(call.call_id)] == ["e1", "e2", "e3"]


# -- lifecycle and schema ----------------------------------------------------------------------


async def test_commit_and_read_need_an_open_store(backend: Backend) -> None:
    store = backend.make()
    with pytest.raises(StoreError):
        await store.commit(make_call())
    with pytest.raises(StoreError):
        await store.get_call("x")
    await store.open()
    await store.close()
    with pytest.raises(StoreError):
        await store.commit(make_call())


async def test_migrations_are_idempotent_on_reopen(backend: Backend) -> None:
    call = make_call()
    for attempt in range(3):
        store = await backend.open()
        try:
            if attempt == 0:
                assert await store.commit(call, event=event("k", call.call_id))
            assert await store.get_call(call.call_id) == call
        finally:
            await store.close()
    rows = backend.sql("SELECT version FROM schema_version ORDER BY version")
    assert [r[0] for r in rows] == list(range(1, migrations.LATEST_VERSION + 1))


async def test_concurrent_opens_apply_each_migration_once(backend: Backend) -> None:
    stores = [backend.make() for _ in range(4)]
    await asyncio.gather(*(s.open() for s in stores))
    for s in stores:
        await s.close()
    rows = backend.sql("SELECT version FROM schema_version ORDER BY version")
    assert [r[0] for r in rows] == list(range(1, migrations.LATEST_VERSION + 1))


async def test_a_newer_schema_is_refused(backend: Backend) -> None:
    store = await backend.open()
    await store.close()
    newer = migrations.LATEST_VERSION + 1
    backend.sql(
        f"INSERT INTO schema_version (version, description, applied_at) VALUES ({newer}, 'x', 0)"
    )
    with pytest.raises(StoreError, match="newer"):
        await backend.open()
    # refused, not touched
    rows = backend.sql("SELECT max(version) FROM schema_version")
    assert rows[0][0] == newer


async def test_store_recovers_after_its_connections_are_cut(backend: Backend) -> None:
    """PostgreSQL only: server-side connection loss fails in-flight work, then reconnects."""
    if backend.pg_schema is None:
        pytest.skip("a SQLite file has no connection to lose")
    store = await backend.open()
    try:
        call = make_call()
        assert await store.commit(call)
        # kill every server process of this store (writer and readers) from the outside
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE application_name = %s",
                (backend.pg_schema,),
            )

        async def eventually(op: Callable[[], Awaitable[Any]], attempts: int) -> Any:
            for _ in range(attempts - 1):
                try:
                    return await op()
                except StoreError:
                    continue  # only StoreError may come out, never a driver error
            return await op()

        # reads are retried once on a fresh connection: no error at all, on every reader
        for _ in range(3):
            assert await store.get_call(call.call_id) == call
        # commits are not retried inside (a lost COMMIT answer could turn our own write into
        # a "duplicate"): the first one may fail with StoreError, the next one reconnects
        assert await eventually(lambda: store.commit(call.copy(turn=5)), 2) is True
        assert await store.get_call(call.call_id) == call.copy(turn=5)
    finally:
        await store.close()


# -- backend-independent pieces ----------------------------------------------------------------


def test_postgres_connect_error_never_shows_the_password() -> None:
    async def go() -> str:
        # port 1 on loopback: nothing listens there
        store = PostgresStore("postgresql://alice:s3cr%40t-pw@127.0.0.1:1/db?sslmode=disable")
        assert "s3cr" not in repr(store)
        with pytest.raises(StoreError) as info:
            await store.open()
        return str(info.value)

    message = asyncio.run(go())
    assert "s3cr" not in message and "alice" not in message
    assert "127.0.0.1:1/db" in message


def test_redact_url_drops_credentials_and_options() -> None:
    assert redact_url("postgresql://u:p%40ss@db.example:6543/calls?options=-cx") == (
        "postgresql://db.example:6543/calls"
    )
    assert redact_url("postgres://h/") == "postgresql://h:5432/postgres"


@given(st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=80))
def test_cursor_roundtrips(created_at: float, call_id: str) -> None:
    assert codec.decode_cursor(codec.encode_cursor(created_at, call_id)) == (created_at, call_id)


@given(st.text(max_size=200))
def test_cursor_decoding_of_untrusted_text_is_value_error_or_a_cursor(text: str) -> None:
    try:
        created_at, call_id = codec.decode_cursor(text)
    except ValueError:
        return
    assert isinstance(created_at, float) and isinstance(call_id, str)


def test_stored_garbage_is_a_store_error_not_a_crash() -> None:
    row = list(codec.call_to_row(make_call()))
    row[5] = "no-such-state"
    with pytest.raises(StoreError, match="state"):
        codec.row_to_call(row)
    row = list(codec.call_to_row(make_call()))
    row[18] = "[1, 2]"
    with pytest.raises(StoreError, match="metadata"):
        codec.row_to_call(row)
