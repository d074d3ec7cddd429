"""The phrase cache: fixed phrases synthesized ahead, played from memory, small chunks."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from voicecall.config import load_config
from voicecall.speech.errors import SpeechError
from voicecall.speech.tts.cache import PhraseCache, split_cached_prefix
from voicecall.voice.settings import fixed_phrases


class CountingTts:
    """A real TtsProvider shape: one block per text (like Piper's sentence), bytes derived from
    the text so a test can tell whose audio it got; counts what it was asked to say."""

    name = "counting"

    def __init__(self, *, fail_on: str | None = None) -> None:
        self.asked: list[str] = []
        self.loaded = False
        self.fail_on = fail_on

    async def load(self) -> None:
        self.loaded = True

    async def synthesize(self, text: str) -> AsyncIterator[bytes]:
        self.asked.append(text)
        if text == self.fail_on:
            raise SpeechError("engine down", provider=self.name)
        yield bytes([len(text) % 251 + 1]) * (80 * len(text))  # 10 ms of audio per character

    async def aclose(self) -> None:
        pass


async def collect(tts: PhraseCache, text: str) -> list[bytes]:
    return [chunk async for chunk in tts.synthesize(text)]


async def test_phrases_are_made_at_load_and_played_from_memory_in_small_chunks() -> None:
    engine = CountingTts()
    tts = PhraseCache(engine, ["Hello, how can I help?", "One moment, please."], chunk_ms=100)
    await tts.load()
    assert engine.loaded
    assert engine.asked == ["Hello, how can I help?", "One moment, please."]
    chunks = await collect(tts, "Hello,  how can I help?")  # whitespace does not matter
    assert engine.asked == ["Hello, how can I help?", "One moment, please."]  # not asked again
    assert b"".join(chunks) == tts.cached("Hello, how can I help?")
    assert all(len(c) <= 800 for c in chunks) and len(chunks) == 3  # 220 ms → 100+100+20
    assert tts.hits == 1


async def test_a_text_starting_with_a_phrase_plays_it_then_synthesizes_the_rest() -> None:
    engine = CountingTts()
    tts = PhraseCache(engine, ["This is an AI assistant."])
    await tts.load()
    audio = b"".join(await collect(tts, "This is an AI assistant. I am calling about a table."))
    assert engine.asked[-1] == "I am calling about a table."
    cached = tts.cached("This is an AI assistant.")
    assert cached is not None and audio.startswith(cached)
    assert len(audio) == len(cached) + 80 * len("I am calling about a table.")


async def test_free_text_streams_from_the_engine_and_is_not_kept() -> None:
    engine = CountingTts()
    tts = PhraseCache(engine, [])
    await tts.load()
    text = "Your table is booked for seven."
    chunks = await collect(tts, text)
    assert len(b"".join(chunks)) == 80 * len(text) and max(map(len, chunks)) <= 800
    await collect(tts, text)
    assert engine.asked == [text, text]
    assert tts.cached(text) is None


async def test_a_phrase_that_failed_at_load_is_made_and_kept_on_first_use() -> None:
    engine = CountingTts(fail_on="Sure.")
    tts = PhraseCache(engine, ["Sure."])
    await tts.load()  # logged, not raised
    assert tts.cached("Sure.") is None
    engine.fail_on = None
    await collect(tts, "Sure.")
    assert tts.cached("Sure.") is not None
    await collect(tts, "Sure.")
    assert engine.asked == ["Sure.", "Sure."]  # the failed attempt, then the first use only


async def test_engine_errors_reach_the_speaker() -> None:
    tts = PhraseCache(CountingTts(fail_on="boom"), [])
    with pytest.raises(SpeechError):
        await collect(tts, "boom")


async def test_the_cache_is_bounded() -> None:
    engine = CountingTts()
    tts = PhraseCache(engine, ["A" * 10 + ".", "B" * 10 + "."], max_bytes=80 * 11)
    await tts.load()
    assert tts.cached("A" * 10 + ".") is None  # pushed out by the newer one
    assert tts.cached("B" * 10 + ".") is not None


def test_split_cached_prefix() -> None:
    phrases = ["Okay.", "Okay. Let me check.", "Sure"]
    assert split_cached_prefix("Okay. Let me check. Done", phrases) == (
        "Okay. Let me check.",
        "Done",
    )
    assert split_cached_prefix("Okay.", phrases) == ("Okay.", "")
    assert split_cached_prefix("Sure thing", phrases) is None  # not a whole sentence
    assert split_cached_prefix("Sure", phrases) == ("Sure", "")
    assert split_cached_prefix("Okay.Then", phrases) is None


@given(st.text(max_size=60), st.lists(st.text(max_size=20), max_size=5))
def test_split_cached_prefix_only_splits_what_was_said(text: str, phrases: list[str]) -> None:
    got = split_cached_prefix(text, phrases)
    if got is not None:
        phrase, rest = got
        assert phrase in phrases
        assert " ".join(f"{phrase} {rest}".split()) == " ".join(text.split())


def test_fixed_phrases_come_from_the_settings() -> None:
    s = load_config(
        env={},
        overrides={
            "inbound_greeting": "Hi there.",
            "task": {"disclosure_text": "I am an AI.", "hold_lines": ["Hold on."]},
            "tts": {"cached_phrases": ["Okay."]},
        },
    )
    assert fixed_phrases(s) == ["Hi there.", "I am an AI.", "Hold on.", "Okay."]
    off = load_config(env={}, overrides={"task": {"disclosure": False}})
    assert off.task.disclosure_text not in fixed_phrases(off)
