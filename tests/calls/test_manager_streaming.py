"""The manager as StreamHost: stream tokens, attach/detach, turns over a speech channel."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from voicecall.calls.channel import SpokenResult, StreamRejected
from voicecall.calls.manager import CallManager
from voicecall.calls.model import CallState, EndReason
from voicecall.calls.store.sqlite import SQLiteStore
from voicecall.config import load_config
from voicecall.errors import CallNotActive
from voicecall.events import CallEvent, EventKind
from voicecall.providers.base import ParsedWebhook, WebhookKind
from voicecall.providers.mock import MockProvider

TO = "+14155550100"


class FakeChannel:
    def __init__(self, host: CallManager, call_id: str) -> None:
        self.said: list[str] = []
        self.interruptible: list[bool] = []
        self.closed: str | None = None
        self.host = host
        self.call_id = call_id
        #: what the next say() returns instead of "heard in full" (a barge-in, a dropped line)
        self.cuts: list[SpokenResult] = []

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
        await asyncio.sleep(0)
        if self.cuts:
            return self.cuts.pop(0)
        return SpokenResult(True, 1000, 1000, text)

    async def interrupt(self) -> None:
        pass

    async def close(self, reason: str) -> None:
        self.closed = reason


def hook(kind: WebhookKind, sid: str, call_id: str, key: str) -> ParsedWebhook:
    events = ()
    if kind is WebhookKind.VOICE:
        events = (
            CallEvent(
                kind=EventKind.ANSWERED, dedupe_key=key, provider_call_id=sid, call_id=call_id
            ),
        )
    return ParsedWebhook(
        kind=kind,
        provider_call_id=sid,
        call_id=call_id,
        events=events,
        inbound=False,
        from_number=None,
        to_number=TO,
    )


@pytest.fixture
async def setup(tmp_path: Path) -> AsyncIterator[tuple[CallManager, list[float]]]:
    store = SQLiteStore(str(tmp_path / "s.db"))
    await store.open()
    now = [1_000_000.0]
    settings = load_config(env={}, overrides={"provider": "mock", "from_number": "+14155550199"})
    manager = CallManager(
        settings,
        store,
        MockProvider(),
        streaming=True,
        stream_secret="k",
        stream_grace_seconds=0.2,
        clock=lambda: now[0],
        reaper_interval_seconds=0,
    )
    await manager.start()
    yield manager, now
    await manager.stop()
    await store.close()


async def test_stream_tokens_and_turns(setup: tuple[CallManager, list[float]]) -> None:
    manager, _now = setup
    rec = await manager.place_call(to=TO, message="Hi, it's your assistant.", mode="conversation")
    sid = rec.provider_call_id
    assert sid
    reply = await manager.handle_webhook(hook(WebhookKind.VOICE, sid, rec.call_id, "v1"))
    assert reply.stream_token and reply.stream_call_id == rec.call_id and reply.say is None
    replay = await manager.handle_webhook(hook(WebhookKind.VOICE, sid, rec.call_id, "v1"))
    assert replay.stream_token == reply.stream_token  # a replay does not mint a fresh token
    with pytest.raises(StreamRejected):
        await manager.claim_stream(token=reply.stream_token, call_sid="CA" + "f" * 32)
    with pytest.raises(StreamRejected):
        await manager.claim_stream(token="1.99999999999.deadbeef", call_sid=sid)
    assert await manager.claim_stream(token=reply.stream_token, call_sid=sid) == rec.call_id
    with pytest.raises(StreamRejected, match="used"):
        await manager.claim_stream(token=reply.stream_token, call_sid=sid)
    channel = FakeChannel(manager, rec.call_id)
    await manager.stream_attached(rec.call_id, channel)
    await asyncio.sleep(0.01)
    assert channel.said == ["Hi, it's your assistant."]
    # while attached, a hold fetch keeps the line without a new token
    hold = await manager.handle_webhook(hook(WebhookKind.HOLD, sid, rec.call_id, ""))
    assert hold.stream_token is None and hold.hold_call_id == rec.call_id

    task = asyncio.create_task(
        manager.continue_call(rec.call_id, "Is now a good time?", wait_seconds=5)
    )
    await asyncio.sleep(0.01)
    await manager.caller_said(rec.call_id, "yes go", final=False)  # partials are not answers
    assert not task.done()
    await manager.caller_said(rec.call_id, "yes, go ahead", final=True)
    assert await task == "yes, go ahead"
    assert channel.said[-1] == "Is now a good time?"
    texts = [t.text for t in await manager.transcript(rec.call_id)]
    assert texts == ["Hi, it's your assistant.", "Is now a good time?", "yes, go ahead"]
    # a barge-in keeps what the caller actually heard of the line that was cut, and a line
    # queued behind it (never played) is kept and marked as not spoken, each on its own line
    channel.cuts = [
        SpokenResult(False, 900, 3000, "Let me read you"),
        SpokenResult(False, 0, 0, ""),
    ]
    await manager.speak(rec.call_id, "Let me read you the whole list of options now.")
    await manager.speak(rec.call_id, "And then the prices.")
    await manager.bot_interrupted(rec.call_id, SpokenResult(False, 900, 3000, "Let me read you"))
    for _ in range(100):
        texts = [t.text for t in await manager.transcript(rec.call_id)]
        if texts[-1].startswith("[not spoken]"):
            break
        await asyncio.sleep(0.01)
    assert texts[-2:] == ["Let me read you [cut off]", "[not spoken] And then the prices."]
    # a cut after some audio played but before a whole word was heard keeps the agent's line
    # (a bare "[cut off]" lost it: the soak's "accepted bot line lost")
    channel.cuts = [SpokenResult(False, 120, 2000, "")]
    await manager.speak(rec.call_id, "Apple violet yellow candle.")
    for _ in range(100):
        texts = [t.text for t in await manager.transcript(rec.call_id)]
        if texts[-1].startswith("[cut off]"):
            break
        await asyncio.sleep(0.01)
    assert texts[-1] == "[cut off] Apple violet yellow candle."

    # the stream drops: the next hold fetch gets a new-generation token, replays get the same one
    await manager.stream_detached(rec.call_id, reason="socket closed")
    again = await manager.handle_webhook(hook(WebhookKind.HOLD, sid, rec.call_id, ""))
    again2 = await manager.handle_webhook(hook(WebhookKind.HOLD, sid, rec.call_id, ""))
    assert again.stream_token and again.stream_token == again2.stream_token
    assert again.stream_token != reply.stream_token
    assert await manager.claim_stream(token=again.stream_token, call_sid=sid) == rec.call_id
    channel2 = FakeChannel(manager, rec.call_id)
    await manager.stream_attached(rec.call_id, channel2)
    await asyncio.sleep(0.3)  # beyond the grace: the call must still be alive
    assert not (await manager.get_call(rec.call_id)).is_terminal
    assert channel2.said == []  # the opening line is not repeated
    ending = await manager.end_call(rec.call_id, message="Bye now.")
    # the end is final at once: the call is ending, nothing more may be said on it
    assert ending.state is CallState.ENDING
    with pytest.raises(CallNotActive, match="ending"):
        await manager.speak(rec.call_id, "One more thing")
    for _ in range(100):  # the goodbye plays, then the call hangs up by itself
        if (await manager.get_call(rec.call_id)).is_terminal:
            break
        await asyncio.sleep(0.01)
    assert channel2.said == ["Bye now."]
    assert channel2.interruptible == [False]  # the call ends after it: talking over it is no cut
    final = await manager.get_call(rec.call_id)
    assert final.state is CallState.HANGUP_BOT
    await asyncio.sleep(0.01)
    assert channel2.closed is not None


async def test_stream_lost_ends_call_after_grace(setup: tuple[CallManager, list[float]]) -> None:
    manager, _ = setup
    rec = await manager.place_call(to=TO, message="Hello", mode="conversation")
    sid = rec.provider_call_id
    assert sid
    reply = await manager.handle_webhook(hook(WebhookKind.VOICE, sid, rec.call_id, "v"))
    assert reply.stream_token
    await manager.claim_stream(token=reply.stream_token, call_sid=sid)
    await manager.stream_attached(rec.call_id, FakeChannel(manager, rec.call_id))
    await manager.stream_detached(rec.call_id, reason="network")
    for _ in range(100):
        await asyncio.sleep(0.01)
        if (await manager.get_call(rec.call_id)).is_terminal:
            break
    final = await manager.get_call(rec.call_id)
    assert final.state is CallState.ERROR and final.end_reason is EndReason.ERROR
    assert "media stream lost" in (final.error or "")


async def test_expired_token_refused(setup: tuple[CallManager, list[float]]) -> None:
    manager, now = setup
    rec = await manager.place_call(to=TO, message="Hello", mode="conversation")
    sid = rec.provider_call_id
    assert sid
    reply = await manager.handle_webhook(hook(WebhookKind.VOICE, sid, rec.call_id, "v"))
    assert reply.stream_token
    now[0] += 3600
    with pytest.raises(StreamRejected, match="expired"):
        await manager.claim_stream(token=reply.stream_token, call_sid=sid)


async def test_notify_calls_never_stream(setup: tuple[CallManager, list[float]]) -> None:
    manager, _ = setup
    rec = await manager.place_call(to=TO, message="Just a notice", mode="notify")
    assert rec.provider_call_id
    reply = await manager.handle_webhook(
        hook(WebhookKind.VOICE, rec.provider_call_id, rec.call_id, "v")
    )
    assert reply.stream_token is None and reply.say == "Just a notice" and reply.hangup


async def test_recognized_text_with_control_characters_is_kept_stripped(
    setup: tuple[CallManager, list[float]],
) -> None:
    manager, _now = setup
    rec = await manager.place_call(to=TO, message="Hi.", mode="conversation")
    sid = rec.provider_call_id
    assert sid
    reply = await manager.handle_webhook(hook(WebhookKind.VOICE, sid, rec.call_id, "v1"))
    assert reply.stream_token
    assert await manager.claim_stream(token=reply.stream_token, call_sid=sid) == rec.call_id
    channel = FakeChannel(manager, rec.call_id)
    await manager.stream_attached(rec.call_id, channel)
    await asyncio.sleep(0.01)
    await manager.caller_said(rec.call_id, "call me\x00 at\x07 noon", final=True)
    await manager.caller_said(rec.call_id, "\x00\x1b", final=True)  # nothing left: no line
    texts = [t.text for t in await manager.transcript(rec.call_id)]
    assert texts == ["Hi.", "call me at noon"]


async def test_a_resumed_turn_stores_only_what_the_caller_went_on_to_say(
    setup: tuple[CallManager, list[float]],
) -> None:
    # Whisper commits "…seeing you." at a pause; the caller goes on ("Goodbye!") and the whole
    # sentence is heard again: the transcript keeps the early line and adds only the new words.
    manager, _now = setup
    rec = await manager.place_call(to=TO, message="Hi.", mode="conversation")
    sid = rec.provider_call_id
    assert sid
    reply = await manager.handle_webhook(hook(WebhookKind.VOICE, sid, rec.call_id, "v1"))
    assert reply.stream_token
    assert await manager.claim_stream(token=reply.stream_token, call_sid=sid) == rec.call_id
    channel = FakeChannel(manager, rec.call_id)
    await manager.stream_attached(rec.call_id, channel)
    await asyncio.sleep(0.01)
    early = "Wonderful, table F-730 to high. It's booked. We look forward to seeing you."
    await manager.caller_said(rec.call_id, early, final=True)
    whole = "Wonderful, Table F 730 to high, it's booked. We look forward to seeing you. Goodbye!"
    await manager.caller_said(rec.call_id, whole, final=True, resumed=True)
    # a new reading that changed a word is the better one: stored whole
    await manager.caller_said(rec.call_id, "We will arrive at our own.", final=True)
    better = "We will arrive at around half past seven."
    await manager.caller_said(rec.call_id, better, final=True, resumed=True)
    # the same words again, not resumed (the caller repeated themselves): stored as said
    await manager.caller_said(rec.call_id, better + " Hello?", final=True)
    users = [t.text for t in await manager.transcript(rec.call_id) if t.speaker.value == "user"]
    assert users == [early, "Goodbye!", "We will arrive at our own.", better, better + " Hello?"]
