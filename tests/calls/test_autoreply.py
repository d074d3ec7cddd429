"""Automatic replies: the responder answers turns no agent is waiting for."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from voicecall.agent.responder import (
    CallerMemory,
    ConversationContext,
    EndCall,
    ResponderOutput,
    ScriptedResponder,
    Sentence,
)
from voicecall.calls.channel import SpokenResult
from voicecall.calls.manager import CallManager
from voicecall.calls.model import CallState
from voicecall.calls.store.sqlite import SQLiteStore
from voicecall.config import load_config
from voicecall.events import CallEvent, EventKind
from voicecall.providers.base import ParsedWebhook, WebhookKind
from voicecall.providers.mock import MockProvider

CALLER = "+14155550123"


def settings() -> object:
    return load_config(
        env={},
        overrides={
            "provider": "mock",
            "from_number": "+14155550199",
            "inbound_policy": "open",
            "max_concurrent_calls": 3,
        },
    )


def inbound_voice(sid: str) -> ParsedWebhook:
    ev = CallEvent(kind=EventKind.RINGING, dedupe_key=f"{sid}:voice", provider_call_id=sid)
    return ParsedWebhook(
        kind=WebhookKind.VOICE,
        provider_call_id=sid,
        call_id=None,
        events=(ev,),
        inbound=True,
        from_number=CALLER,
        to_number="+14155550199",
    )


def gather(sid: str, call_id: str, turn: int, token: str, text: str) -> ParsedWebhook:
    ev = CallEvent(
        kind=EventKind.SPEECH,
        dedupe_key=f"{sid}:g:{turn}:{token}",
        provider_call_id=sid,
        call_id=call_id,
        transcript=text,
        turn=turn,
    )
    return ParsedWebhook(
        kind=WebhookKind.GATHER,
        provider_call_id=sid,
        call_id=call_id,
        events=(ev,),
        inbound=True,
        from_number=CALLER,
        to_number=None,
        turn=turn,
        token=token,
    )


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    s = SQLiteStore(str(tmp_path / "a.db"))
    await s.open()
    yield s
    await s.close()


async def settle(provider: MockProvider, sid: str, n: int) -> None:
    for _ in range(200):
        if len(provider.calls.get(sid, None).replies if sid in provider.calls else []) >= n:
            return
        await asyncio.sleep(0.01)


async def test_gather_path_scripted_responder(store: SQLiteStore, tmp_path: Path) -> None:
    provider = MockProvider()
    memory = CallerMemory(store)
    manager = CallManager(
        settings(),
        store,
        provider,
        responder=ScriptedResponder(),
        memory=memory,
        reaper_interval_seconds=0,
    )  # type: ignore[arg-type]
    await manager.start()
    sid = "CA" + "1" * 32
    from voicecall.providers.base import DialRequest
    from voicecall.providers.mock import MockCall

    provider.calls[sid] = MockCall(sid, DialRequest("x", CALLER, "+1", 30))
    first = await manager.handle_webhook(inbound_voice(sid))
    assert first.listen is not None
    rec = await store.get_call_by_provider_id(sid)
    assert rec is not None
    reply = await manager.handle_webhook(
        gather(sid, rec.call_id, 1, first.listen.token, "I would like a table for two people")
    )
    assert reply.hold_call_id == rec.call_id
    await settle(provider, sid, 1)
    answer = provider.calls[sid].replies[0]
    assert answer.listen is not None and answer.listen.turn == 2
    assert answer.say is not None and "table" in answer.say
    reply = await manager.handle_webhook(
        gather(sid, rec.call_id, 2, answer.listen.token, "at seven on Thursday")
    )
    await settle(provider, sid, 2)
    goodbye = provider.calls[sid].replies[1]
    assert goodbye.hangup and goodbye.say is not None and "Goodbye" in goodbye.say
    texts = [t.text for t in await manager.transcript(rec.call_id)]
    assert texts[0] == manager.settings.inbound_greeting
    assert texts[2].startswith("I heard you mention")
    # the caller hangs up after the goodbye: the call ends and the caller is remembered
    end = CallEvent(
        kind=EventKind.ENDED, dedupe_key=f"{sid}:end", provider_call_id=sid, call_id=rec.call_id
    )
    from voicecall.calls.model import EndReason

    end = CallEvent(
        kind=EventKind.ENDED,
        dedupe_key=f"{sid}:end",
        provider_call_id=sid,
        call_id=rec.call_id,
        end_reason=EndReason.COMPLETED,
    )
    await manager.handle_webhook(
        ParsedWebhook(
            kind=WebhookKind.STATUS,
            provider_call_id=sid,
            call_id=rec.call_id,
            events=(end,),
            inbound=True,
            from_number=CALLER,
            to_number=None,
        )
    )
    assert (await manager.get_call(rec.call_id)).state is CallState.HANGUP_BOT
    for _ in range(100):
        if await memory.recall(CALLER):
            break
        await asyncio.sleep(0.01)
    notes = await memory.recall(CALLER)
    assert notes and "table" in notes[0]
    await manager.stop()


class RecordingChannel:
    def __init__(self) -> None:
        self.said: list[str] = []
        self.interruptible: list[bool] = []

    async def say(
        self,
        text: str,
        *,
        responder_at: float | None = None,
        on_latency: object = None,
        interruptible: bool = True,
    ) -> SpokenResult:
        self.said.append(text)
        self.interruptible.append(interruptible)
        await asyncio.sleep(0.01)
        return SpokenResult(True, 10, 10, text)

    async def interrupt(self) -> None:
        pass

    async def close(self, reason: str) -> None:
        pass


class SlowResponder:
    """Yields one sentence, then stalls: the first sentence must be spoken before the rest."""

    def __init__(self) -> None:
        self.release = asyncio.Event()

    async def reply(self, ctx: ConversationContext) -> AsyncIterator[ResponderOutput]:
        yield Sentence("First sentence.")
        await self.release.wait()
        yield Sentence("Second sentence.")
        yield EndCall("Bye.")


async def test_stream_path_speaks_first_sentence_while_generating(store: SQLiteStore) -> None:
    provider = MockProvider()
    responder = SlowResponder()
    manager = CallManager(
        settings(), store, provider, responder=responder, streaming=True, reaper_interval_seconds=0
    )  # type: ignore[arg-type]
    await manager.start()
    sid = "CA" + "2" * 32
    reply = await manager.handle_webhook(inbound_voice(sid))
    assert reply.stream_token
    call_id = await manager.claim_stream(token=reply.stream_token, call_sid=sid)
    channel = RecordingChannel()
    await manager.stream_attached(call_id, channel)
    await asyncio.sleep(0.05)
    assert channel.said == [manager.settings.inbound_greeting]
    await manager.caller_said(call_id, "hello there", final=True)
    for _ in range(100):
        if len(channel.said) >= 2:
            break
        await asyncio.sleep(0.01)
    assert channel.said[1] == "First sentence."  # spoken while the responder still works
    responder.release.set()
    for _ in range(200):
        if (await manager.get_call(call_id)).is_terminal:
            break
        await asyncio.sleep(0.01)
    assert channel.said[2:] == ["Second sentence.", "Bye."]
    assert (await manager.get_call(call_id)).state is CallState.HANGUP_BOT
    await manager.stop()


async def test_agent_continue_preempts_the_responder(store: SQLiteStore) -> None:
    provider = MockProvider()
    manager = CallManager(
        settings(), store, provider, responder=ScriptedResponder(), reaper_interval_seconds=0
    )  # type: ignore[arg-type]
    await manager.start()
    rec = await manager.place_call(to=CALLER, message="Hi", mode="conversation")
    sid = rec.provider_call_id
    assert sid
    ev = CallEvent(
        kind=EventKind.ANSWERED, dedupe_key="v", provider_call_id=sid, call_id=rec.call_id
    )
    first = await manager.handle_webhook(
        ParsedWebhook(
            kind=WebhookKind.VOICE,
            provider_call_id=sid,
            call_id=rec.call_id,
            events=(ev,),
            inbound=False,
            from_number=None,
            to_number=CALLER,
        )
    )
    assert first.listen is not None
    task = asyncio.create_task(
        manager.continue_call(rec.call_id, "Quick question?", wait_seconds=5)
    )
    await asyncio.sleep(0.02)
    turn2 = provider.calls[sid].replies[-1].listen
    assert turn2 is not None
    await manager.handle_webhook(gather(sid, rec.call_id, 2, turn2.token, "sure"))
    assert await task == "sure"
    await asyncio.sleep(0.05)
    assert len(provider.calls[sid].replies) == 1  # the responder stayed quiet: the agent owns it
    await manager.stop()
