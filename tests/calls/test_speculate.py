"""Speculative replies: started on a partial transcript, used only when the final agrees."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from voicecall.agent.responder import ConversationContext, EndCall, ResponderOutput, Sentence
from voicecall.calls.channel import SpokenResult
from voicecall.calls.manager import CallManager
from voicecall.calls.store.sqlite import SQLiteStore
from voicecall.config import load_config
from voicecall.conversation.chat import ToolRequest
from voicecall.conversation.speculate import Speculator, speculation_default
from voicecall.conversation.tools import ToolBox, ToolCall, ToolOutcome, ToolSpec
from voicecall.events import CallEvent, EventKind
from voicecall.providers.base import ParsedWebhook, WebhookKind
from voicecall.providers.mock import MockProvider

CALLER = "+14155550123"


class EchoResponder:
    """Answers the caller's last words; records every run and the words it answered."""

    def __init__(self) -> None:
        self.runs: list[str] = []
        self.release = asyncio.Event()
        self.release.set()

    async def reply(self, ctx: ConversationContext) -> AsyncIterator[ResponderOutput]:
        last = next((text for who, text in reversed(ctx.transcript) if who == "user"), "")
        self.runs.append(last)
        await self.release.wait()
        yield Sentence(f"You said: {last}")


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
        return SpokenResult(True, 10, 10, text)

    async def interrupt(self) -> None:
        pass

    async def close(self, reason: str) -> None:
        pass


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    s = SQLiteStore(str(tmp_path / "a.db"))
    await s.open()
    yield s
    await s.close()


async def streamed_call(
    store: SQLiteStore, responder: EchoResponder, *, speculate: bool = True
) -> tuple[CallManager, str, RecordingChannel]:
    settings = load_config(
        env={},
        overrides={
            "provider": "mock",
            "from_number": "+14155550199",
            "inbound_policy": "open",
            "turn": {"speculate": speculate},
        },
    )
    manager = CallManager(
        settings,
        store,
        MockProvider(),
        responder=responder,
        streaming=True,
        reaper_interval_seconds=0,
    )  # type: ignore[arg-type]
    await manager.start()
    sid = "CA" + "5" * 32
    ev = CallEvent(kind=EventKind.RINGING, dedupe_key=f"{sid}:voice", provider_call_id=sid)
    reply = await manager.handle_webhook(
        ParsedWebhook(
            kind=WebhookKind.VOICE,
            provider_call_id=sid,
            call_id=None,
            events=(ev,),
            inbound=True,
            from_number=CALLER,
            to_number="+14155550199",
        )
    )
    assert reply.stream_token
    call_id = await manager.claim_stream(token=reply.stream_token, call_sid=sid)
    channel = RecordingChannel()
    await manager.stream_attached(call_id, channel)
    for _ in range(100):
        if channel.said:
            break
        await asyncio.sleep(0.01)
    return manager, call_id, channel


async def wait_said(channel: RecordingChannel, n: int) -> None:
    for _ in range(300):
        if len(channel.said) >= n:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"only said {channel.said}")


async def test_a_partial_that_the_final_confirms_is_answered_by_the_early_run(
    store: SQLiteStore,
) -> None:
    responder = EchoResponder()
    manager, call_id, channel = await streamed_call(store, responder)
    await manager.caller_said(call_id, "Two people, please.", final=False)
    for _ in range(100):
        if responder.runs:
            break
        await asyncio.sleep(0.01)
    assert responder.runs == ["Two people, please."]  # started before the final …
    assert len(channel.said) == 1  # … and nothing said yet
    await manager.caller_said(call_id, "two people please", final=True)  # the same words
    await wait_said(channel, 2)
    assert channel.said[1] == "You said: Two people, please."
    assert responder.runs == ["Two people, please."]  # not asked again
    assert manager.autoreply.speculator.adopted == 1
    await manager.stop()


async def test_a_partial_the_final_contradicts_is_never_spoken(store: SQLiteStore) -> None:
    responder = EchoResponder()
    manager, call_id, channel = await streamed_call(store, responder)
    await manager.caller_said(call_id, "Two people.", final=False)
    for _ in range(100):
        if responder.runs:
            break
        await asyncio.sleep(0.01)
    await manager.caller_said(call_id, "Two people and a dog.", final=True)
    await wait_said(channel, 2)
    await asyncio.sleep(0.05)
    assert channel.said[1:] == ["You said: Two people and a dog."]
    assert responder.runs == ["Two people.", "Two people and a dog."]
    assert manager.autoreply.speculator.dropped == 1
    await manager.stop()


async def test_no_speculation_on_an_unfinished_partial(
    store: SQLiteStore,
) -> None:
    responder = EchoResponder()
    manager, call_id, _ = await streamed_call(store, responder)
    await manager.caller_said(call_id, "I'd like a table for", final=False)
    await asyncio.sleep(0.05)
    assert responder.runs == []
    await manager.stop()


async def test_no_speculation_when_turned_off(store: SQLiteStore) -> None:
    off = EchoResponder()
    manager, call_id, _ = await streamed_call(store, off, speculate=False)
    await manager.caller_said(call_id, "Two people, please.", final=False)
    await asyncio.sleep(0.05)
    assert off.runs == []
    await manager.stop()


class ToolCallingResponder:
    """Calls a tool, then speaks (a task agent's shape, without a model)."""

    def __init__(self, tool: str) -> None:
        self.tool = tool

    async def reply(self, ctx: ConversationContext) -> AsyncIterator[ResponderOutput]:
        assert ctx.tools is not None
        outcome = await ctx.tools.run(
            ToolRequest("t1", self.tool, "{}"), anchor=len(ctx.transcript), round=1, said=""
        )
        if outcome.pending:
            return
        yield Sentence("Done.")
        if outcome.end is not None:
            yield outcome.end


def toolbox(effects: list[str]) -> ToolBox:
    box = ToolBox("call-1")

    async def book(call: ToolCall) -> ToolOutcome:
        effects.append("booked")
        return ToolOutcome({"ok": True})

    async def hang_up(call: ToolCall) -> ToolOutcome:
        return ToolOutcome({"ok": True}, end=EndCall("Bye."))

    empty = {"type": "object", "properties": {}}
    box.register(ToolSpec("book", "Book it.", empty), book)
    box.register(ToolSpec("end_call", "End.", empty, side_effects=False), hang_up)
    return box


async def test_tools_with_side_effects_never_run_speculatively() -> None:
    effects: list[str] = []
    box = toolbox(effects)

    async def context() -> ConversationContext:
        return ConversationContext("call-1", "inbound", CALLER, [], tools=box)

    spec = Speculator()
    spec.start("call-1", "Book it.", ToolCallingResponder("book"), context)
    await asyncio.sleep(0.05)
    assert effects == []  # held, not executed
    assert await spec.adopt("call-1", "Book it.") is None  # a held call: made afresh instead
    assert effects == [] and box.exchanges() == []


async def test_a_side_effect_free_tool_runs_and_is_kept_when_adopted() -> None:
    box = toolbox([])

    async def context() -> ConversationContext:
        return ConversationContext("call-1", "inbound", CALLER, [], tools=box)

    spec = Speculator()
    spec.start("call-1", "Bye.", ToolCallingResponder("end_call"), context)
    run = await spec.adopt("call-1", "bye")
    assert run is not None
    assert [out async for out in run.stream()] == [Sentence("Done."), EndCall("Bye.")]
    assert [ex.request.name for ex in box.exchanges()] == ["end_call"]


async def test_a_dropped_run_leaves_the_box_untouched() -> None:
    box = toolbox([])

    async def context() -> ConversationContext:
        return ConversationContext("call-1", "inbound", CALLER, [], tools=box)

    spec = Speculator()
    spec.start("call-1", "Bye.", ToolCallingResponder("end_call"), context)
    await asyncio.sleep(0.05)
    assert await spec.adopt("call-1", "Bye, and thanks.") is None
    assert box.exchanges() == []


@pytest.mark.parametrize(
    ("stt", "kind", "url", "expected"),
    [
        ("whisper", "chat", "https://api.openai.com/v1", True),  # partials only at pauses
        ("deepgram", "chat", "https://api.openai.com/v1", False),  # a paid run per interim
        ("deepgram", "chat", "http://127.0.0.1:8080/v1", True),  # a local model
        ("openai-realtime", "chat", "http://localhost:11434/v1", True),
        ("deepgram", "chat", "http://10.1.2.3/v1", True),
        ("deepgram", "scripted", "https://api.openai.com/v1", True),
        ("deepgram", "hook", "https://api.openai.com/v1", True),
        (None, "none", "https://api.openai.com/v1", False),
    ],
)
def test_speculation_default_is_on_where_extra_runs_are_cheap(
    stt: str | None, kind: str, url: str, expected: bool
) -> None:
    assert speculation_default(stt=stt, responder_kind=kind, base_url=url) is expected
