"""Keypad and transfers against the mock provider and a real SQLite store (no network): what
the provider is asked, what is stored, and that redelivered webhooks change nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from voicecall.calls.manager import CallManager
from voicecall.calls.model import Direction
from voicecall.calls.store.sqlite import SQLiteStore
from voicecall.config import load_config
from voicecall.errors import CallNotActive, InvalidPhoneNumber, InvalidRequest, OutboundRefused
from voicecall.events import CallEvent, EventKind
from voicecall.providers.base import DialRequest, ParsedWebhook, Reply, WebhookKind
from voicecall.providers.mock import MockCall, MockProvider
from voicecall.telephony.service import telephony_for

TO = "+14155550100"
FROM = "+14155550199"
TARGET = "+14155550177"


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[tuple[CallManager, MockProvider, SQLiteStore]]:
    store = SQLiteStore(str(tmp_path / "calls.db"))
    await store.open()
    provider = MockProvider()
    settings = load_config(
        env={}, overrides={"provider": "mock", "from_number": FROM, "max_concurrent_calls": 3}
    )
    manager = CallManager(settings, store, provider, reaper_interval_seconds=0)
    await manager.start()
    yield manager, provider, store
    await manager.stop()
    await store.close()


async def answered(manager: CallManager) -> tuple[str, str]:
    record = await manager.place_call(to=TO, message="Hello.", mode="conversation")
    sid = record.provider_call_id
    assert sid is not None
    await manager.handle_webhook(
        ParsedWebhook(
            kind=WebhookKind.VOICE,
            provider_call_id=sid,
            call_id=record.call_id,
            events=(
                CallEvent(
                    kind=EventKind.ANSWERED,
                    dedupe_key=f"t:{sid}:voice",
                    provider_call_id=sid,
                    call_id=record.call_id,
                    direction=Direction.OUTBOUND,
                ),
            ),
            inbound=False,
            from_number=FROM,
            to_number=TO,
        )
    )
    return record.call_id, sid


def hook(kind: WebhookKind, sid: str, call_id: str, seq: int, tok: str, **kw: str) -> ParsedWebhook:
    return ParsedWebhook(
        kind=kind,
        provider_call_id=sid,
        call_id=call_id,
        events=(),
        inbound=False,
        from_number=FROM,
        to_number=TARGET,
        turn=seq,
        token=tok,
        dial_status=kw.get("status"),
        dial_call_sid=kw.get("leg"),
    )


async def test_keys_on_a_gather_call_play_then_listen_on_a_new_turn(env) -> None:
    manager, provider, store = env
    call_id, sid = await answered(manager)
    before = await manager.get_call(call_id)
    sent = await telephony_for(manager).keypad.send(call_id, "1w2#")
    assert (sent.digits, sent.path.value) == ("1w2#", "play")
    reply = provider.calls[sid].replies[-1]
    assert reply.digits == "1w2#" and reply.listen is not None
    after = await store.get_call(call_id)
    assert after is not None and after.turn == before.turn + 1
    assert reply.listen.turn == after.turn
    assert reply.listen.token == after.metadata["turn_token"] != before.metadata["turn_token"]


async def test_bad_keys_change_nothing(env) -> None:
    manager, provider, store = env
    call_id, sid = await answered(manager)
    before = await store.get_call(call_id)
    for digits in ("", "1x", "A"):
        with pytest.raises(InvalidRequest, match="digits"):
            await telephony_for(manager).keypad.send(call_id, digits)
    assert provider.calls[sid].replies == []
    assert await store.get_call(call_id) == before


async def test_cold_transfer_ends_the_call_transferred(env) -> None:
    manager, provider, store = env
    call_id, sid = await answered(manager)
    record = await telephony_for(manager).transfers.start(call_id, to=TARGET, mode="cold")
    assert record.state.value == "transferred" and record.end_reason.value == "transferred"
    dial = provider.calls[sid].replies[-1].dial
    assert dial is not None and dial.to == TARGET and dial.caller_id == FROM
    assert dial.whisper is None
    stored = await store.get_call(call_id)
    assert stored is not None and stored.metadata["transfer"]["status"] == "handed-over"
    assert "token" not in stored.to_json()["transfer"]
    with pytest.raises(CallNotActive):
        await telephony_for(manager).transfers.start(call_id, to=TARGET, mode="cold")


async def test_warm_transfer_whisper_then_busy_then_redelivery(env) -> None:
    manager, provider, store = env
    tel = telephony_for(manager)
    call_id, sid = await answered(manager)
    await tel.transfers.start(call_id, to=TARGET, mode="warm", summary="Sam wants a table.")
    dial = provider.calls[sid].replies[-1].dial
    assert dial is not None and dial.whisper is not None
    _, seq, tok = dial.whisper
    with pytest.raises(CallNotActive, match="under way"):
        await tel.transfers.start(call_id, to=TARGET, mode="cold")
    with pytest.raises(CallNotActive, match="transferred"):
        await tel.keypad.send(call_id, "1")
    leg = "CA" + "1" * 32
    # a whisper with another token is declined; the right one hears the summary
    wrong = await tel.handle_webhook(hook(WebhookKind.WHISPER, leg, call_id, seq, "nope"))
    assert wrong == Reply(hangup=True)
    said = await tel.handle_webhook(hook(WebhookKind.WHISPER, leg, call_id, seq, tok))
    assert said.say == "Sam wants a table."
    assert (await manager.get_call(call_id)).metadata["transfer"]["status"] == "connected"
    # busy: the caller is back with a fixed line on a new Gather turn
    busy = hook(WebhookKind.DIAL, sid, call_id, seq, tok, status="busy", leg=leg)
    first = await tel.handle_webhook(busy)
    assert first.say is not None and "busy" in first.say and first.listen is not None
    lines = await store.transcript(call_id)
    again = await tel.handle_webhook(busy)  # a redelivery: the same answer, nothing new
    assert again == first
    assert await store.transcript(call_id) == lines
    record = await manager.get_call(call_id)
    assert record.metadata["transfer"]["status"] == "busy" and not record.is_terminal
    assert first.listen.turn == record.turn


async def test_warm_transfer_completed_ends_the_call(env) -> None:
    manager, provider, _store = env
    tel = telephony_for(manager)
    call_id, sid = await answered(manager)
    await tel.transfers.start(call_id, to=TARGET, mode="warm", summary="Hi.")
    dial = provider.calls[sid].replies[-1].dial
    assert dial is not None and dial.whisper is not None
    _, seq, tok = dial.whisper
    done = hook(WebhookKind.DIAL, sid, call_id, seq, tok, status="completed")
    assert await tel.handle_webhook(done) == Reply(hangup=True)
    record = await manager.get_call(call_id)
    assert record.state.value == "transferred" and record.metadata["transfer"]["status"] == (
        "completed"
    )
    assert await tel.handle_webhook(done) == Reply(hangup=True)  # redelivered after the end


async def test_bad_transfers_change_nothing(env) -> None:
    manager, provider, store = env
    tel = telephony_for(manager)
    call_id, sid = await answered(manager)
    before = await store.get_call(call_id)
    with pytest.raises(InvalidPhoneNumber, match="to"):
        await tel.transfers.start(call_id, to="4155550177", mode="cold")
    with pytest.raises(InvalidRequest, match="summary"):
        await tel.transfers.start(call_id, to=TARGET, mode="warm")
    with pytest.raises(InvalidRequest, match="mode"):
        await tel.transfers.start(call_id, to=TARGET, mode="lukewarm")
    await store.block_number(TARGET, reason="asked", now=0.0)
    with pytest.raises(OutboundRefused) as err:
        await tel.transfers.start(call_id, to=TARGET, mode="cold")
    assert err.value.http_status == 403
    assert provider.calls[sid].replies == []
    assert await store.get_call(call_id) == before


async def test_an_inbound_call_is_transferred_with_our_number_as_caller_id(
    tmp_path: Path,
) -> None:
    store = SQLiteStore(str(tmp_path / "in.db"))
    await store.open()
    provider = MockProvider()
    settings = load_config(
        env={},
        overrides={"provider": "mock", "from_number": FROM, "inbound_policy": "open"},
    )
    manager = CallManager(settings, store, provider, reaper_interval_seconds=0)
    await manager.start()
    try:
        sid = "CA" + "2" * 32
        await manager.handle_webhook(
            ParsedWebhook(
                kind=WebhookKind.VOICE,
                provider_call_id=sid,
                call_id=None,
                events=(
                    CallEvent(
                        kind=EventKind.RINGING,
                        dedupe_key=f"t:{sid}:voice",
                        provider_call_id=sid,
                        direction=Direction.INBOUND,
                    ),
                ),
                inbound=True,
                from_number="+14155550111",
                to_number="+14155550222",
            )
        )
        live = manager.live_by_provider_id(sid)
        assert live is not None
        provider.calls[sid] = MockCall(
            sid, DialRequest(live.call_id, "+14155550222", "+14155550111", 30)
        )
        await telephony_for(manager).transfers.start(live.call_id, to=TARGET, mode="cold")
        dial = provider.calls[sid].replies[-1].dial
        assert dial is not None and dial.caller_id == "+14155550222"  # ours, not the caller's
    finally:
        await manager.stop()
        await store.close()
