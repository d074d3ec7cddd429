"""The call manager against the mock provider and a real SQLite store (no network)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from voicecall.calls.manager import CallManager
from voicecall.calls.model import CallMode, CallState, Direction, EndReason
from voicecall.calls.store.sqlite import SQLiteStore
from voicecall.config import Settings, load_config
from voicecall.errors import (
    CallNotActive,
    InvalidPhoneNumber,
    InvalidRequest,
    ProviderError,
    ProviderUnavailable,
    StoreError,
    TooManyCalls,
    TurnTimeout,
)
from voicecall.events import CallEvent, EventKind
from voicecall.providers.base import ParsedWebhook, WebhookKind
from voicecall.providers.mock import MockProvider

TO = "+14155550100"
FROM = "+14155550199"


def settings(**over: object) -> Settings:
    base = {"provider": "mock", "from_number": FROM, "max_concurrent_calls": 2}
    base.update(over)
    return load_config(env={}, overrides=base)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    s = SQLiteStore(str(tmp_path / "calls.db"))
    await s.open()
    yield s
    await s.close()


@pytest.fixture
async def env(store: SQLiteStore) -> AsyncIterator[tuple[CallManager, MockProvider]]:
    provider = MockProvider()
    manager = CallManager(settings(), store, provider, reaper_interval_seconds=0)
    await manager.start()
    yield manager, provider
    await manager.stop()


def status(
    sid: str,
    call_id: str | None,
    kind: EventKind,
    seq: int,
    reason: EndReason | None = None,
    status_name: str | None = None,
) -> ParsedWebhook:
    name = status_name or kind.value
    return ParsedWebhook(
        kind=WebhookKind.STATUS,
        provider_call_id=sid,
        call_id=call_id,
        events=(
            CallEvent(
                kind=kind,
                dedupe_key=f"t:{sid}:status:{seq}:{name}",
                provider_call_id=sid,
                call_id=call_id,
                sequence=seq,
                end_reason=reason,
            ),
        ),
        inbound=False,
        from_number=FROM,
        to_number=TO,
    )


def voice(
    sid: str,
    call_id: str | None,
    *,
    inbound: bool = False,
    frm: str | None = FROM,
    status_name: str = "in-progress",
) -> ParsedWebhook:
    kind = EventKind.RINGING if inbound else EventKind.ANSWERED
    return ParsedWebhook(
        kind=WebhookKind.VOICE,
        provider_call_id=sid,
        call_id=call_id,
        events=(
            CallEvent(
                kind=kind,
                dedupe_key=f"t:{sid}:voice:{status_name}",
                provider_call_id=sid,
                call_id=call_id,
                direction=Direction.INBOUND if inbound else Direction.OUTBOUND,
            ),
        ),
        inbound=inbound,
        from_number=frm,
        to_number=FROM,
    )


def gather(sid: str, call_id: str, turn: int, token: str, text: str) -> ParsedWebhook:
    return ParsedWebhook(
        kind=WebhookKind.GATHER,
        provider_call_id=sid,
        call_id=call_id,
        events=(
            CallEvent(
                kind=EventKind.SPEECH,
                dedupe_key=f"t:{sid}:gather:{turn}:{token}",
                provider_call_id=sid,
                call_id=call_id,
                transcript=text,
                turn=turn,
            ),
        ),
        inbound=False,
        from_number=FROM,
        to_number=TO,
        turn=turn,
        token=token,
    )


async def test_notify_call_lifecycle(
    env: tuple[CallManager, MockProvider], store: SQLiteStore
) -> None:
    manager, _ = env
    rec = await manager.place_call(to=TO, message="Your package arrived", mode="notify")
    assert rec.state is CallState.INITIATED and rec.provider_call_id
    stored = await store.get_call(rec.call_id)
    assert stored is not None and stored.dial_started_at is not None
    sid = rec.provider_call_id
    await manager.handle_webhook(status(sid, rec.call_id, EventKind.RINGING, 1))
    reply = await manager.handle_webhook(voice(sid, rec.call_id))
    assert reply.say == "Your package arrived" and reply.hangup and reply.listen is None
    # redelivery of the same first fetch: same answer, no new side effect
    again = await manager.handle_webhook(voice(sid, rec.call_id))
    assert again == reply
    assert manager.counters["webhook_duplicates"] == 1
    await manager.handle_webhook(
        status(sid, rec.call_id, EventKind.ENDED, 3, EndReason.COMPLETED, "completed")
    )
    final = await manager.get_call(rec.call_id)
    assert final.state is CallState.COMPLETED and final.end_reason is EndReason.COMPLETED
    assert manager.active_count == 0
    # a late redelivery of the first fetch after the end still gets the same answer
    assert (await manager.handle_webhook(voice(sid, rec.call_id))) == reply


async def test_out_of_order_and_duplicate_callbacks(env: tuple[CallManager, MockProvider]) -> None:
    manager, _ = env
    rec = await manager.place_call(to=TO, message="hi", mode="conversation")
    sid = rec.provider_call_id
    assert sid
    await manager.handle_webhook(
        status(sid, rec.call_id, EventKind.ANSWERED, 2, status_name="in-progress")
    )
    await manager.handle_webhook(status(sid, rec.call_id, EventKind.RINGING, 1))  # late
    await manager.handle_webhook(status(sid, rec.call_id, EventKind.RINGING, 1))  # duplicate
    cur = await manager.get_call(rec.call_id)
    assert cur.state is CallState.ANSWERED
    assert cur.last_sequence == 2
    await manager.handle_webhook(
        status(sid, rec.call_id, EventKind.ENDED, 4, EndReason.COMPLETED, "completed")
    )
    await manager.handle_webhook(
        status(sid, rec.call_id, EventKind.ANSWERED, 2, status_name="in-progress")
    )
    end = await manager.get_call(rec.call_id)
    assert end.state is CallState.HANGUP_USER and end.end_reason is EndReason.HANGUP_USER


async def test_conversation_turns_and_late_results(
    env: tuple[CallManager, MockProvider], store: SQLiteStore
) -> None:
    manager, provider = env
    rec = await manager.place_call(to=TO, message="Hello, is this Sam?", mode="conversation")
    sid = rec.provider_call_id
    assert sid
    reply = await manager.handle_webhook(voice(sid, rec.call_id))
    assert reply.say == "Hello, is this Sam?" and reply.listen is not None
    turn1 = reply.listen
    await manager.handle_webhook(gather(sid, rec.call_id, turn1.turn, turn1.token, "yes it is"))
    task = asyncio.create_task(
        manager.continue_call(rec.call_id, "Great. Lunch at noon?", wait_seconds=5)
    )
    await asyncio.sleep(0.05)
    redirect = provider.calls[sid].replies[-1]
    assert redirect.say == "Great. Lunch at noon?" and redirect.listen is not None
    turn2 = redirect.listen
    assert turn2.turn == 2 and turn2.token != turn1.token
    # a late (duplicate) answer to turn 1 must not answer turn 2
    late = await manager.handle_webhook(gather(sid, rec.call_id, 1, turn1.token, "yes it is"))
    assert late.listen is not None and late.listen.turn == 2  # still waiting on turn 2
    assert not task.done()
    stale_token = await manager.handle_webhook(gather(sid, rec.call_id, 2, turn1.token, "forged"))
    assert stale_token.listen is not None
    assert not task.done()
    await manager.handle_webhook(gather(sid, rec.call_id, 2, turn2.token, "sure, noon works"))
    assert await task == "sure, noon works"
    lines = await store.transcript(rec.call_id)
    assert [(ln.speaker.value, ln.text) for ln in lines] == [
        ("bot", "Hello, is this Sam?"),
        ("user", "yes it is"),
        ("bot", "Great. Lunch at noon?"),
        ("user", "forged"),
        ("user", "sure, noon works"),
    ]


async def test_continue_times_out_and_unknown_calls(env: tuple[CallManager, MockProvider]) -> None:
    manager, _ = env
    rec = await manager.place_call(to=TO, message="Hi", mode="conversation")
    assert rec.provider_call_id
    with pytest.raises(CallNotActive):
        await manager.continue_call(rec.call_id, "too early")  # not answered yet
    await manager.handle_webhook(voice(rec.provider_call_id, rec.call_id))
    with pytest.raises(TurnTimeout):
        await manager.continue_call(rec.call_id, "anyone there?", wait_seconds=0.05)
    with pytest.raises(Exception) as info:
        await manager.get_call("nope")
    assert type(info.value).__name__ == "UnknownCall"


async def test_input_validation(env: tuple[CallManager, MockProvider], store: SQLiteStore) -> None:
    manager, provider = env
    with pytest.raises(InvalidPhoneNumber):
        await manager.place_call(to="12345", message="x")
    with pytest.raises(InvalidRequest):
        await manager.place_call(to=TO, message="   ")
    page = await store.list_calls()
    assert page.calls == [] and provider.calls == {}


async def test_concurrency_cap_and_release(env: tuple[CallManager, MockProvider]) -> None:
    manager, _ = env
    a = await manager.place_call(to=TO, message="a")
    await manager.place_call(to=TO, message="b")
    with pytest.raises(TooManyCalls):
        await manager.place_call(to=TO, message="c")
    assert a.provider_call_id
    await manager.handle_webhook(
        status(a.provider_call_id, a.call_id, EventKind.ENDED, 1, EndReason.BUSY, "busy")
    )
    assert (await manager.get_call(a.call_id)).state is CallState.BUSY
    await manager.place_call(to=TO, message="c")  # the slot came back


async def test_end_call_idempotent_single_hangup(env: tuple[CallManager, MockProvider]) -> None:
    manager, provider = env
    rec = await manager.place_call(to=TO, message="hi", mode="conversation")
    sid = rec.provider_call_id
    assert sid
    await manager.handle_webhook(voice(sid, rec.call_id))
    first = await manager.end_call(rec.call_id)
    second = await manager.end_call(rec.call_id)
    assert first.state is CallState.HANGUP_BOT and second.state is CallState.HANGUP_BOT
    assert provider.hangups == [sid]
    # the provider's completed callback after our hang-up changes nothing
    await manager.handle_webhook(
        status(sid, rec.call_id, EventKind.ENDED, 9, EndReason.COMPLETED, "completed")
    )
    assert (await manager.get_call(rec.call_id)).end_reason is EndReason.HANGUP_BOT


async def test_dial_failure_ends_call_failed(env: tuple[CallManager, MockProvider]) -> None:
    manager, provider = env
    exc = ProviderUnavailable("read timeout")
    exc.maybe_created = True
    provider.fail_next_initiate = exc
    manager.placement.unconfirmed_dial_seconds = 0.05
    rec = await manager.place_call(to=TO, message="hi")
    assert rec.state is CallState.INITIATED and "not re-dialled" in (rec.error or "")
    for _ in range(100):
        await asyncio.sleep(0.01)
        if (await manager.get_call(rec.call_id)).is_terminal:
            break
    page = await manager.list_calls()
    assert page.calls[0].state is CallState.FAILED
    assert "not retried" in (page.calls[0].error or "")
    assert manager.active_count == 0
    # a definite refusal ends the call at once and reaches the caller
    provider.fail_next_initiate = ProviderError("invalid To", code=21211)
    with pytest.raises(ProviderError):
        await manager.place_call(to=TO, message="again")
    assert (await manager.list_calls()).calls[0].state is CallState.FAILED
    assert len(provider.calls) == 0


async def test_lost_create_answer_confirmed_by_webhook(
    env: tuple[CallManager, MockProvider],
) -> None:
    manager, provider = env
    exc = ProviderUnavailable("read timeout")
    exc.maybe_created = True
    provider.fail_next_initiate = exc
    rec = await manager.place_call(to=TO, message="hi")
    sid = "MOCK-late"
    reply = await manager.handle_webhook(voice(sid, rec.call_id))
    assert reply.say == "hi"
    cur = await manager.get_call(rec.call_id)
    assert cur.provider_call_id == sid and cur.state is CallState.ACTIVE


async def test_inbound_policies(store: SQLiteStore) -> None:
    provider = MockProvider()
    cases = [
        ({"inbound_policy": "disabled"}, "+14155550123", True),
        ({"inbound_policy": "allowlist", "allow_from": ["+14155550123"]}, "+14155550123", False),
        ({"inbound_policy": "allowlist", "allow_from": ["+14155550123"]}, "0123", True),
        ({"inbound_policy": "allowlist", "allow_from": ["+14155550123"]}, "anonymous", True),
        ({"inbound_policy": "open"}, "anonymous", False),
    ]
    for i, (over, caller, rejected) in enumerate(cases):
        manager = CallManager(settings(**over), store, provider, reaper_interval_seconds=0)
        await manager.start()
        sid = f"CA{i:032x}"
        reply = await manager.handle_webhook(
            voice(sid, None, inbound=True, frm=caller, status_name="ringing")
        )
        assert reply.reject is rejected, (over, caller)
        if not rejected:
            assert reply.say == manager.settings.inbound_greeting and reply.listen is not None
        # a duplicate delivery gets the same answer and creates nothing new
        again = await manager.handle_webhook(
            voice(sid, None, inbound=True, frm=caller, status_name="ringing")
        )
        assert again.reject is rejected
        rec = await store.get_call_by_provider_id(sid)
        assert rec is not None and rec.direction is Direction.INBOUND
        if rejected:
            assert rec.end_reason is EndReason.REJECTED
        await manager.stop()
    page = await store.list_calls(limit=50)
    assert len(page.calls) == len(cases)


async def test_restart_reconciles_and_never_redials(tmp_path: Path) -> None:
    path = str(tmp_path / "r.db")
    store = SQLiteStore(path)
    await store.open()
    provider = MockProvider()
    m1 = CallManager(settings(max_concurrent_calls=5), store, provider, reaper_interval_seconds=0)
    await m1.start()
    live = await m1.place_call(to=TO, message="live one", mode="conversation")
    gone = await m1.place_call(to=TO, message="ended while down")
    assert live.provider_call_id and gone.provider_call_id
    await m1.handle_webhook(voice(live.provider_call_id, live.call_id))
    provider.calls[gone.provider_call_id].status = "completed"
    # a call whose create request was in flight when the process died
    orphan = await store.get_call(gone.call_id)
    assert orphan is not None
    orphan = orphan.copy(call_id="orphan", provider_call_id=None)
    await store.commit(orphan)
    await store.close()  # "crash": memory gone, m1 never stopped cleanly
    store2 = SQLiteStore(path)
    await store2.open()
    m2 = CallManager(settings(max_concurrent_calls=5), store2, provider, reaper_interval_seconds=0)
    await m2.start()
    assert len(provider.calls) == 2  # nothing re-dialled
    assert (await m2.get_call(gone.call_id)).state is CallState.COMPLETED
    assert (await m2.get_call("orphan")).state is CallState.ERROR
    assert (await m2.get_call(live.call_id)).state is CallState.LISTENING
    assert m2.active_count == 1
    # a replay of a webhook processed before the restart is still recognised
    dup_before = m2.counters["webhook_duplicates"]
    await m2.handle_webhook(voice(live.provider_call_id, live.call_id))
    assert m2.counters["webhook_duplicates"] == dup_before + 1
    assert len(await store2.transcript(live.call_id)) == 1
    await m2.stop()
    await store2.close()


async def test_reaper_only_ends_calls_the_provider_says_are_over(store: SQLiteStore) -> None:
    now = [1000.0]
    provider = MockProvider()
    manager = CallManager(
        settings(max_concurrent_calls=5, max_duration_seconds=10, ring_timeout_seconds=5),
        store,
        provider,
        clock=lambda: now[0],
        reaper_interval_seconds=0,
    )
    await manager.start()
    a = await manager.place_call(to=TO, message="a")
    b = await manager.place_call(to=TO, message="b")
    assert a.provider_call_id and b.provider_call_id
    now[0] += 10_000
    provider.calls[b.provider_call_id].status = "completed"
    assert await manager.reap_once() == 1
    assert (await manager.get_call(a.call_id)).state is CallState.INITIATED  # live: left alone
    assert (await manager.get_call(b.call_id)).state is CallState.COMPLETED
    await manager.stop()


async def test_ring_timeout_backstop(store: SQLiteStore, monkeypatch: pytest.MonkeyPatch) -> None:
    import voicecall.calls.timers as mod

    monkeypatch.setattr(mod, "RING_BACKSTOP_GRACE_SECONDS", -4.95)  # fire 50 ms after creation
    provider = MockProvider()
    manager = CallManager(
        settings(ring_timeout_seconds=5), store, provider, reaper_interval_seconds=0
    )
    await manager.start()
    rec = await manager.place_call(to=TO, message="anyone?")
    for _ in range(100):
        await asyncio.sleep(0.01)
        if (await manager.get_call(rec.call_id)).is_terminal:
            break
    final = await manager.get_call(rec.call_id)
    assert final.state is CallState.NO_ANSWER
    assert provider.hangups == [rec.provider_call_id]
    await manager.stop()


class FailingStore(SQLiteStore):
    fail = False

    async def commit(self, *args: object, **kwargs: object) -> bool:  # type: ignore[override]
        if self.fail:
            raise StoreError("disk full")
        return await super().commit(*args, **kwargs)  # type: ignore[arg-type]


async def test_store_failure_changes_nothing(tmp_path: Path) -> None:
    store = FailingStore(str(tmp_path / "f.db"))
    await store.open()
    manager = CallManager(settings(), store, MockProvider(), reaper_interval_seconds=0)
    await manager.start()
    rec = await manager.place_call(to=TO, message="hi", mode=CallMode.CONVERSATION)
    assert rec.provider_call_id
    store.fail = True
    with pytest.raises(StoreError):
        await manager.handle_webhook(voice(rec.provider_call_id, rec.call_id))
    assert (await manager.get_call(rec.call_id)).state is CallState.INITIATED
    store.fail = False
    reply = await manager.handle_webhook(voice(rec.provider_call_id, rec.call_id))  # the retry
    assert reply.listen is not None
    assert (await manager.get_call(rec.call_id)).state is CallState.LISTENING
    await manager.stop()
    await store.close()


async def test_control_characters_in_what_callers_say_are_stripped_not_fatal(
    env: tuple[CallManager, MockProvider], store: SQLiteStore
) -> None:
    # issue 11, defect 3: a NUL in a signed SpeechResult made every retry fail (StoreError, 503)
    # and the call end `failed`; what the caller said is kept, without the control characters
    manager, _ = env
    rec = await manager.place_call(to=TO, message="Hello, is this Sam?", mode="conversation")
    sid = rec.provider_call_id
    assert sid
    turn1 = (await manager.handle_webhook(voice(sid, rec.call_id))).listen
    assert turn1 is not None
    hook = gather(sid, rec.call_id, turn1.turn, turn1.token, "yes\x00 it\x1b is\x7f\x85 me\x00")
    reply = await manager.handle_webhook(hook)
    again = await manager.handle_webhook(hook)  # a redelivery: acknowledged, changes nothing
    assert again == reply
    lines = await store.transcript(rec.call_id)
    assert [(ln.speaker.value, ln.text) for ln in lines] == [
        ("bot", "Hello, is this Sam?"),
        ("user", "yes it is me"),
    ]
    record = await store.get_call(rec.call_id)
    assert record is not None and not record.is_terminal
