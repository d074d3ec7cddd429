"""Fixtures for the speech tests: the wire-exact fakes, served on loopback ports."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fakes"))

from deepgram_server import FakeDeepgram
from elevenlabs_server import FakeElevenLabs
from fake_serve import serve
from openai_server import FakeOpenAI


@pytest.fixture
async def fake_openai() -> AsyncIterator[tuple[FakeOpenAI, str]]:
    fake = FakeOpenAI(script=["hello there", "book a table for two"])
    async with serve(fake.app()) as hostport:
        yield fake, hostport


@pytest.fixture
async def fake_elevenlabs() -> AsyncIterator[tuple[FakeElevenLabs, str]]:
    fake = FakeElevenLabs()
    async with serve(fake.app()) as hostport:
        yield fake, hostport


@pytest.fixture
async def fake_deepgram() -> AsyncIterator[tuple[FakeDeepgram, str]]:
    fake = FakeDeepgram(script=["hello there", "book a table for two"])
    async with serve(fake.app()) as hostport:
        yield fake, hostport
