"""Responders: the chat responder against a local fake OpenAI-compatible server (real SSE
streaming over loopback), the hook and scripted responders, the sentence splitter and memory."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import types
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from chat_server import FakeChat, Plan
from fake_serve import serve
from hypothesis import given
from hypothesis import strategies as st

from voicecall.agent.responder import (
    FALLBACK_LINE,
    CallerMemory,
    ChatResponder,
    ConversationContext,
    EndCall,
    HookResponder,
    Responder,
    ResponderConfig,
    ResponderOutput,
    ScriptedResponder,
    Sentence,
    SentenceSplitter,
    key_words,
    responder_from_settings,
    split_sentences,
    summarize_exchange,
)
from voicecall.calls.store.sqlite import SQLiteStore
from voicecall.errors import ConfigError

KEY = "sk-test-chat"


def ctx(*lines: tuple[str, str], memory: list[str] | None = None) -> ConversationContext:
    return ConversationContext(
        call_id="c1",
        direction="inbound",
        caller="+14155550100",
        transcript=list(lines),
        memory=memory or [],
    )


async def collect(responder: Responder, context: ConversationContext) -> list[ResponderOutput]:
    return [item async for item in responder.reply(context)]


@pytest.fixture
async def chat() -> AsyncIterator[tuple[FakeChat, str, httpx.AsyncClient]]:
    fake = FakeChat(api_key=KEY)
    async with serve(fake.app()) as hostport, httpx.AsyncClient() as http:
        yield fake, f"http://{hostport}/v1", http


def responder(base: str, http: httpx.AsyncClient, **kw: Any) -> ChatResponder:
    return ChatResponder(
        base_url=base,
        model="fake-model",
        api_key=kw.pop("api_key", KEY),
        system_prompt="You are a test bot.",
        timeout_s=kw.pop("timeout_s", 5.0),
        http=http,
        **kw,
    )


# ----------------------------------------------------------------------------- chat


async def test_first_sentence_arrives_before_the_stream_finishes(
    chat: tuple[FakeChat, str, httpx.AsyncClient],
) -> None:
    fake, base, http = chat
    text = "Hello Dr. Smith, it costs 3.50 dollars. Shall I book it? Great."
    plan = fake.plan(Plan(text=text, hold_after=text.index("Shall") + 2))
    stream = responder(base, http).reply(ctx(("user", "how much is it?")))
    first = await anext(stream)
    assert first == Sentence("Hello Dr. Smith, it costs 3.50 dollars.")
    served = fake.served[0]
    assert not served.finished  # the rest is still being generated
    plan.release.set()
    rest = [item async for item in stream]
    assert rest == [Sentence("Shall I book it?"), Sentence("Great.")]
    assert served.finished and served.chunks_sent > 3


async def test_request_carries_prompt_memory_transcript_and_tool(
    chat: tuple[FakeChat, str, httpx.AsyncClient],
) -> None:
    fake, base, http = chat
    fake.plan(Plan(text="Sure."))
    context = ctx(
        ("bot", "Hello, how can I help?"),
        ("user", "I'd like a table."),
        ("user", "For two."),
        memory=["2026-01-02: caller said: booked a table for four"],
    )
    assert await collect(responder(base, http), context) == [Sentence("Sure.")]
    body = fake.served[0].body
    assert fake.served[0].headers["authorization"] == f"Bearer {KEY}"
    assert body["stream"] is True and body["model"] == "fake-model"
    system = body["messages"][0]
    assert system["role"] == "system" and system["content"].startswith("You are a test bot.")
    assert "inbound" in system["content"] and "+14155550100" in system["content"]
    assert "booked a table for four" in system["content"]
    assert body["messages"][1:] == [
        {"role": "assistant", "content": "Hello, how can I help?"},
        {"role": "user", "content": "I'd like a table. For two."},
    ]
    assert [t["function"]["name"] for t in body["tools"]] == ["end_call"]


async def test_end_call_tool_ends_politely(chat: tuple[FakeChat, str, httpx.AsyncClient]) -> None:
    fake, base, http = chat
    fake.plan(Plan(text="Glad I could help.", tool_call=("end_call", {"goodbye": "Bye now!"})))
    out = await collect(responder(base, http), ctx(("user", "that's all, thanks")))
    assert out == [Sentence("Glad I could help."), EndCall("Bye now!")]

    fake.plan(Plan(text="", tool_call=("end_call", {})))
    assert await collect(responder(base, http), ctx(("user", "bye"))) == [EndCall(None)]


async def test_stall_times_out_to_the_fallback_line(
    chat: tuple[FakeChat, str, httpx.AsyncClient], caplog: pytest.LogCaptureFixture
) -> None:
    fake, base, http = chat
    fake.plan(Plan(text="This never arrives.", stall_after=0))
    with caplog.at_level(logging.ERROR, "voicecall.responder"):
        out = await collect(responder(base, http, timeout_s=0.3), ctx(("user", "hello?")))
    assert out == [Sentence(FALLBACK_LINE)]
    assert "timed out" in caplog.text


async def test_stall_after_a_sentence_keeps_what_was_said(
    chat: tuple[FakeChat, str, httpx.AsyncClient],
) -> None:
    fake, base, http = chat
    fake.plan(Plan(text="First part. Second part never", stall_after=16))
    out = await collect(responder(base, http, timeout_s=0.3), ctx(("user", "hello?")))
    assert out[0] == Sentence("First part.")
    assert FALLBACK_LINE not in [getattr(o, "text", None) for o in out]


async def test_server_error_and_bad_key_fall_back_without_leaking_the_key(
    chat: tuple[FakeChat, str, httpx.AsyncClient], caplog: pytest.LogCaptureFixture
) -> None:
    fake, base, http = chat
    fake.plan(Plan(status=500))
    with caplog.at_level(logging.ERROR, "voicecall.responder"):
        assert await collect(responder(base, http), ctx(("user", "hi"))) == [
            Sentence(FALLBACK_LINE)
        ]
        assert "500" in caplog.text
        wrong = responder(base, http, api_key="sk-wrong-secret")
        assert await collect(wrong, ctx(("user", "hi"))) == [Sentence(FALLBACK_LINE)]
    assert "401" in caplog.text and "invalid_api_key" in caplog.text
    assert "sk-wrong-secret" not in caplog.text and "sk-wrong-secret" not in repr(wrong)


async def test_unreachable_endpoint_falls_back() -> None:
    async with httpx.AsyncClient() as http:
        r = responder("http://127.0.0.1:9/v1", http, timeout_s=1.0)
        assert await collect(r, ctx(("user", "hi"))) == [Sentence(FALLBACK_LINE)]


# ----------------------------------------------------------------------------- hook


def _install_hook_module() -> str:
    module = types.ModuleType("vc_test_hooks")

    def sync_hook(c: ConversationContext) -> str:
        return f"You said {c.transcript[-1][1]}. Anything else?"

    async def async_hook(c: ConversationContext) -> str:
        await asyncio.sleep(0)
        return "Async reply here."

    async def streaming_hook(c: ConversationContext) -> AsyncIterator[Any]:
        yield "Part one. Part"
        yield " two."
        yield EndCall("See you.")

    def broken_hook(c: ConversationContext) -> str:
        raise RuntimeError("hook bug")

    async def slow_hook(c: ConversationContext) -> str:
        await asyncio.Event().wait()
        return "never"

    for fn in (sync_hook, async_hook, streaming_hook, broken_hook, slow_hook):
        setattr(module, fn.__name__, fn)
    module.not_callable = 42  # type: ignore[attr-defined]
    sys.modules["vc_test_hooks"] = module
    return "vc_test_hooks"


async def test_hook_responder_sync_async_streaming() -> None:
    mod = _install_hook_module()
    sync = HookResponder(f"{mod}:sync_hook")
    assert await collect(sync, ctx(("user", "pizza"))) == [
        Sentence("You said pizza."),
        Sentence("Anything else?"),
    ]
    assert await collect(HookResponder(f"{mod}:async_hook"), ctx()) == [
        Sentence("Async reply here.")
    ]
    assert await collect(HookResponder(f"{mod}:streaming_hook"), ctx()) == [
        Sentence("Part one."),
        Sentence("Part two."),
        EndCall("See you."),
    ]


async def test_hook_failures_fall_back(caplog: pytest.LogCaptureFixture) -> None:
    mod = _install_hook_module()
    with caplog.at_level(logging.ERROR, "voicecall.responder"):
        assert await collect(HookResponder(f"{mod}:broken_hook"), ctx()) == [
            Sentence(FALLBACK_LINE)
        ]
        assert "hook bug" in caplog.text
        slow = HookResponder(f"{mod}:slow_hook", timeout_s=0.05)
        assert await collect(slow, ctx()) == [Sentence(FALLBACK_LINE)]


def test_hook_spec_errors_are_config_errors() -> None:
    mod = _install_hook_module()
    for spec, needle in [
        ("no_colon", "package.module:function"),
        ("vc_no_such_module_xyz:f", "cannot import"),
        (f"{mod}:missing", "has no"),
        (f"{mod}:not_callable", "not callable"),
    ]:
        with pytest.raises(ConfigError) as info:
            HookResponder(spec)
        assert needle in str(info.value), spec


# ----------------------------------------------------------------------------- scripted


async def test_scripted_responder_greets_follows_up_and_ends() -> None:
    bot = ScriptedResponder()
    greet = await collect(bot, ctx())
    assert all(isinstance(o, Sentence) for o in greet)
    assert "What can I do for you today?" in [o.text for o in greet if isinstance(o, Sentence)]
    again = await collect(bot, ctx(memory=["earlier"]))
    assert Sentence("Nice to hear from you again.") in again

    history: list[tuple[str, str]] = [("bot", "Hello."), ("user", "I need a plumber tomorrow")]
    first = await collect(bot, ctx(*history))
    assert first[0] == Sentence("I heard you mention plumber and tomorrow.")
    assert not any(isinstance(o, EndCall) for o in first)

    history += [("bot", "Tell me more."), ("user", "The kitchen sink is leaking")]
    last = await collect(bot, ctx(*history))
    assert last[0] == Sentence("I heard you mention kitchen, sink and leaking.")
    assert isinstance(last[-1], EndCall) and last[-1].goodbye
    assert sum(isinstance(o, EndCall) for o in last) == 1

    assert await collect(bot, ctx(("user", "  "))) == [Sentence(FALLBACK_LINE)]
    assert (await collect(bot, ctx(("user", "yes"))))[0] == Sentence("You said: yes.")


def test_key_words() -> None:
    assert key_words("Um, I want to book a table for 2 at 7:30") == ["book", "table", "2"]
    assert key_words("yes yes yes") == []


# ----------------------------------------------------------------------------- splitter


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Hello Dr. Smith. How are you?", ["Hello Dr. Smith.", "How are you?"]),
        ("It is 3.14 exactly. Yes.", ["It is 3.14 exactly.", "Yes."]),
        ("Bring fruit, e.g. apples. Thanks!", ["Bring fruit, e.g. apples.", "Thanks!"]),
        ("At 5 p.m. sharp. Ok.", ["At 5 p.m. sharp.", "Ok."]),
        ("J. R. R. Tolkien. Next.", ["J. R. R. Tolkien.", "Next."]),
        ("No. Room No. 5 is free.", ["No.", "Room No. 5 is free."]),
        ('He said "stop." Then left', ['He said "stop."', "Then left"]),
        ("Really?! Wow… ok", ["Really?!", "Wow…", "ok"]),
        ("line one\nline two", ["line one", "line two"]),
    ],
)
def test_split_sentences(text: str, expected: list[str]) -> None:
    assert split_sentences(text) == expected


def test_splitter_waits_for_the_next_character_and_cuts_long_runs() -> None:
    s = SentenceSplitter()
    assert s.feed("Call Dr.") == []
    assert s.feed(" Who. Now") == ["Call Dr. Who."]
    assert s.flush() == "Now"
    long = SentenceSplitter(max_chars=40)
    out = long.feed("word " * 20)
    assert out and all(len(o) <= 40 for o in out)


@given(st.lists(st.text(max_size=30), max_size=20))
def test_splitter_loses_no_words_however_text_is_chunked(pieces: list[str]) -> None:
    s = SentenceSplitter(max_chars=50)
    out: list[str] = []
    for p in pieces:
        out.extend(s.feed(p))
    rest = s.flush()
    if rest:
        out.append(rest)
    # every non-space character survives, in order (a word longer than max_chars may be cut)
    assert "".join("".join(out).split()) == "".join("".join(pieces).split())
    assert all(o.strip() == o and o for o in out)


# ----------------------------------------------------------------------------- memory


@pytest.fixture
async def mem_store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    store = SQLiteStore(str(tmp_path / "state" / "voicecall.db"))
    await store.open()
    yield store
    await store.close()


async def test_caller_memory_is_bounded_and_kept_in_the_store(tmp_path: Path) -> None:
    path = str(tmp_path / "state" / "voicecall.db")
    store = SQLiteStore(path)
    await store.open()
    mem = CallerMemory(store, max_entries=2, max_chars=20, max_callers=2)
    await mem.remember("+14155550100", "first call summary", now=1)
    await mem.remember("+14155550100", "second", now=2)
    await mem.remember("+14155550100", "third call,   with a very long summary text", now=3)
    assert await mem.recall("+14155550100") == ["second", "third call, with a v"]
    for anonymous in (None, "", "anonymous", "unknown", "restricted"):
        await mem.remember(anonymous, "never stored")
        assert await mem.recall(anonymous) == []
    await mem.remember("+14155550100", "   ")  # nothing to remember
    await mem.remember("+14155550101", "b", now=4)
    await mem.remember("+14155550102", "c", now=5)  # evicts the least recently updated caller
    await store.close()
    # a restart (or a standby taking over the same store) recalls the same memory
    again_store = SQLiteStore(path)
    await again_store.open()
    try:
        again = CallerMemory(again_store, max_entries=2, max_chars=20, max_callers=2)
        assert await again.recall("+14155550100") == []
        assert await again.recall("+14155550101") == ["b"]
        assert await again.recall("+14155550102") == ["c"]
        assert await again.forget("+14155550102") is True
        assert await again.forget("anonymous") is False
        assert await again.recall("+14155550102") == []
    finally:
        await again_store.close()
    # nothing but the store: no memory file is written anywhere
    assert sorted(p.name for p in (tmp_path / "state").iterdir() if "memory" in p.name) == []


def test_caller_memory_refuses_bad_bounds(tmp_path: Path) -> None:
    store = SQLiteStore(str(tmp_path / "x.db"))
    with pytest.raises(ValueError, match="max_"):
        CallerMemory(store, max_entries=0)


def _old_memory_file(path: Path, callers: dict[str, dict[str, Any]]) -> None:
    path.write_text(json.dumps({"version": 1, "callers": callers}), encoding="utf-8")


async def test_an_old_memory_file_is_imported_once(
    mem_store: SQLiteStore, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "memory.json"
    _old_memory_file(
        path,
        {
            "+14155550100": {"notes": ["n1", "n2", "n3"], "updated": 30.0},
            "+14155550101": {"notes": ["old"], "updated": 10.0},
            "+14155550102": {"notes": ["mid"], "updated": 20.0},
            "anonymous": {"notes": ["x"], "updated": 40.0},
            "+14155550103": {"notes": "not a list", "updated": 50.0},
        },
    )
    mem = CallerMemory(mem_store, max_entries=2, max_callers=2)
    await mem.remember("+14155550102", "already in the store", now=100.0)
    with caplog.at_level(logging.WARNING, logger="voicecall.responder"):
        assert await mem.import_file(path) == 2
    assert "remove responder.memory_path" in caplog.text
    assert await mem.recall("+14155550100") == ["n2", "n3"]  # bounded like any remember
    assert await mem.recall("+14155550102") == ["already in the store"]  # store wins
    assert await mem.recall("+14155550101") == []  # the least recently updated: pruned
    assert await mem.recall("anonymous") == []
    assert not path.exists() and (tmp_path / "memory.json.imported").exists()
    # the file is gone: the next start has nothing to import and changes nothing
    assert await mem.import_file(path) == 0
    assert await mem.recall("+14155550100") == ["n2", "n3"]


async def test_a_corrupt_memory_file_is_left_alone(
    mem_store: SQLiteStore, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "memory.json"
    path.write_text("{not json")
    mem = CallerMemory(mem_store)
    with caplog.at_level(logging.WARNING, logger="voicecall.responder"):
        assert await mem.import_file(path) == 0
    assert "not valid" in caplog.text
    assert path.read_text() == "{not json"  # kept for the user to look at
    await mem.remember("+14155550100", "ok")
    assert await mem.recall("+14155550100") == ["ok"]
    assert await mem.import_file(tmp_path / "missing.json") == 0


def test_summarize_exchange() -> None:
    summary = summarize_exchange(
        [("bot", "hi"), ("user", "book a table"), ("user", "for two")], when=0
    )
    assert summary.endswith("caller said: book a table / for two")
    assert summarize_exchange([("bot", "hi")], when=0).endswith("said nothing.")


# ----------------------------------------------------------------------------- config


async def test_responder_from_settings() -> None:
    assert responder_from_settings(ResponderConfig(kind="none")) is None
    assert isinstance(responder_from_settings(ResponderConfig(kind="scripted")), ScriptedResponder)
    mod = _install_hook_module()
    hook = responder_from_settings(ResponderConfig(kind="hook", hook=f"{mod}:sync_hook"))
    assert isinstance(hook, HookResponder)
    with pytest.raises(ConfigError, match=r"responder\.hook"):
        responder_from_settings(ResponderConfig(kind="hook"))
    async with httpx.AsyncClient() as http:
        with pytest.raises(ConfigError, match="OPENAI_API_KEY"):
            responder_from_settings(ResponderConfig(kind="chat"), http=http, env={})
        chat = responder_from_settings(
            ResponderConfig(kind="chat"), http=http, env={"OPENAI_API_KEY": "sk-from-env"}
        )
        assert isinstance(chat, ChatResponder) and "sk-from-env" not in repr(chat)
        local = responder_from_settings(
            ResponderConfig(kind="chat", base_url="http://127.0.0.1:11434/v1", model="llama3"),
            http=http,
            env={},
        )
        assert isinstance(local, ChatResponder)
        assert local.url == "http://127.0.0.1:11434/v1/chat/completions"
    assert "sk-secret" not in repr(ResponderConfig(kind="chat", api_key="sk-secret"))
    with pytest.raises(ConfigError, match="http client"):
        responder_from_settings(ResponderConfig(kind="chat", api_key="k"), env={})
