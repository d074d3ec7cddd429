"""Call-id prefixes: resolved once, server-side, for the API, the CLI, MCP and the client."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from voicecall_server import TOKEN, loopback_socket, mock_settings, serve_asgi

from voicecall.agent.client import Client, ClientError
from voicecall.calls.call_ids import MIN_PREFIX, resolve_call_id, unique_prefix_length
from voicecall.calls.model import CallMode, CallRecord, Direction
from voicecall.calls.store.sqlite import SQLiteStore
from voicecall.errors import AmbiguousCallId, UnknownCall
from voicecall.server.app import VoicecallApp

A = "abcdef01" + "0" * 24
B = "abcdef02" + "0" * 24


def _record(call_id: str) -> CallRecord:
    return CallRecord(
        call_id=call_id,
        direction=Direction.OUTBOUND,
        mode=CallMode.NOTIFY,
        from_number="+14155550100",
        to_number="+14155550123",
        created_at=1.0,
        updated_at=1.0,
    )


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    store = SQLiteStore(str(tmp_path / "ids.db"))
    await store.open()
    for call_id in (A, B):
        await store.commit(_record(call_id))
    try:
        yield store
    finally:
        await store.close()


async def test_resolve(store: SQLiteStore) -> None:
    assert await resolve_call_id(store, A) == A  # a full id is passed through
    assert await resolve_call_id(store, "abcdef01") == A
    assert await resolve_call_id(store, "abcdef02000") == B
    with pytest.raises(AmbiguousCallId, match="more than one call"):
        await resolve_call_id(store, "abcdef")
    with pytest.raises(UnknownCall, match=f"at least {MIN_PREFIX}"):
        await resolve_call_id(store, "abcde")
    with pytest.raises(UnknownCall, match="no call with id 'ffffff'"):
        await resolve_call_id(store, "ffffff")


def test_unique_prefix_length() -> None:
    assert unique_prefix_length([]) == 12
    assert unique_prefix_length([A]) == 12
    assert unique_prefix_length([A, "abcdef01" + "0" * 5 + "1" + "0" * 18]) == 14
    assert unique_prefix_length(["abc"], minimum=2) == 3  # never longer than the ids


async def test_every_route_takes_a_prefix_and_ambiguity_is_409(tmp_path: Path) -> None:
    app = VoicecallApp(mock_settings(tmp_path), reaper_interval_seconds=3600)
    async with serve_asgi(app, loopback_socket()) as url, Client(url, TOKEN) as client:
        call = await client.call("+14155550123", "Hello there", "conversation")
        prefix = call.call_id[:MIN_PREFIX]
        info = await client.status(prefix)
        assert info.call_id == call.call_id and info.lines("bot") == ["Hello there"]
        ended = await client.end(call.call_id[:10])
        assert ended.call_id == call.call_id and ended.ended
        # two calls sharing a prefix
        assert app.manager is not None
        for call_id in (A, B):
            await app.manager.store.commit(_record(call_id))
        with pytest.raises(ClientError) as caught:
            await client.status("abcdef")
        assert caught.value.status == 409 and caught.value.title == "AmbiguousCallId"
        with pytest.raises(ClientError) as caught:
            await client.speak("abcdef", "hi")
        assert caught.value.status == 409
        with pytest.raises(ClientError) as caught:
            await client.status("abcde")
        assert caught.value.status == 404 and "at least 6" in str(caught.value)
        # the token is checked before anything is looked up: no probing ids without it
        async with Client(url, "wrong-token") as stranger:
            with pytest.raises(ClientError) as caught:
                await stranger.status("abcdef")
        assert caught.value.status == 401
