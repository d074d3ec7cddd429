"""The Python client against a real in-process server (mock provider, signed webhooks)."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest
from voicecall_server import CALLEE, TOKEN, RunningServer, until

from voicecall.agent.client import Client, ClientError, ServerUnreachable, control_url
from voicecall.config import load_config


async def test_place_status_and_conversation(server: RunningServer) -> None:
    async with Client(server.url, TOKEN) as vc:
        call = await vc.call(None, "Hello, is this Sam?", mode="conversation")
        info = await call.status()
        assert info.state == "initiated" and info.to == CALLEE and info.mode == "conversation"
        assert not info.answered and not info.ended
        assert info.lines() == ["Hello, is this Sam?"]
        reply = await server.phone.answer(call.call_id)
        assert reply["say"] == "Hello, is this Sam?" and reply["listen"]
        await server.phone.says(call.call_id, "yes speaking")
        assert (await call.status()).lines("user") == ["yes speaking"]

        asking = asyncio.create_task(call.ask("Lunch at noon?", timeout=10))
        await until(lambda: server.phone.redirects(call.call_id), "the redirect")
        assert not asking.done()
        await server.phone.says(call.call_id, "noon works")
        assert await asking == "noon works"

        await call.say("Great, see you.")
        final = await call.hangup()
        assert final.ended and final.state == "hangup-bot"
        info = await call.status()
        assert info.lines() == [
            "Hello, is this Sam?",
            "yes speaking",
            "Lunch at noon?",
            "noon works",
            "Great, see you.",
        ]
        # idempotent
        assert (await call.hangup()).state == "hangup-bot"


async def test_list_with_pagination(server: RunningServer) -> None:
    async with Client(server.url, TOKEN) as vc:
        ids = []
        for i in range(4):
            call = await vc.call(None, f"message {i}", mode="notify")
            ids.append(call.call_id)
            await call.hangup()
        seen: list[str] = []
        cursor: str | None = None
        pages = 0
        while True:
            items, cursor = await vc.calls(limit=3, cursor=cursor)
            pages += 1
            assert len(items) <= 3
            seen.extend(i.call_id for i in items)
            if cursor is None:
                break
        assert pages == 2
        assert seen == list(reversed(ids))  # newest first
        assert [c.call_id for c in await vc.all_calls(page=1)] == seen
        active, _ = await vc.calls(active=True)
        assert active == []


async def test_errors_carry_problem_detail(server: RunningServer) -> None:
    async with Client(server.url, TOKEN) as vc:
        with pytest.raises(ClientError) as info:
            await vc.status("no-such-call")
        assert info.value.status == 404 and info.value.title == "UnknownCall"
        assert info.value.detail and "no-such-call" in info.value.detail
        assert info.value.hint and "call id" in str(info.value)

        with pytest.raises(ClientError) as info:
            await vc.call("12345", "hi")
        assert info.value.status == 422 and "to" in (info.value.detail or "")

        with pytest.raises(ClientError) as info:
            await vc.call(None, "hi", mode="shout")
        assert info.value.status == 422 and "mode" in (info.value.detail or "")

        call = await vc.call(None, "hi", mode="conversation")
        with pytest.raises(ClientError) as info:
            await call.ask("anyone?")
        assert info.value.status == 409 and info.value.title == "CallNotActive"
        assert "not been answered" in (info.value.detail or "")

        await server.phone.answer(call.call_id)
        with pytest.raises(ClientError) as info:
            await call.ask("anyone there?", timeout=0.05)
        assert info.value.status == 504 and info.value.title == "TurnTimeout"
        assert "may still be live" in str(info.value)

    async with Client(server.url, "wrong-token") as bad:
        with pytest.raises(ClientError) as info:
            await bad.calls()
        assert info.value.status == 401 and "api.token" in str(info.value)
        assert "wrong-token" not in str(info.value) and "wrong-token" not in repr(bad)


def _closed_port() -> int:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port: int = sock.getsockname()[1]
    sock.close()
    return port


async def test_unreachable_server_says_what_to_do() -> None:
    url = f"http://127.0.0.1:{_closed_port()}"
    async with Client(url, TOKEN) as vc:
        with pytest.raises(ServerUnreachable) as info:
            await vc.calls()
        assert url in str(info.value) and "voicecall serve" in str(info.value)
        with pytest.raises(ServerUnreachable):
            async for _ in vc.events():
                pass


async def test_not_a_voicecall_server(server: RunningServer) -> None:
    # /healthz answers JSON but the root answers plain text: point the client at a non-API path
    async with Client(server.url + "/nowhere", TOKEN) as vc:
        with pytest.raises(ClientError) as info:
            await vc.calls()
        assert info.value.status == 404


async def test_events_stream(server: RunningServer) -> None:
    async with Client(server.url, TOKEN) as vc:
        got: list[dict[str, Any]] = []
        placed: asyncio.Future[str] = asyncio.get_running_loop().create_future()

        async def follow() -> None:
            call_id = await placed
            async for event in vc.get(call_id).events():
                got.append(event)

        # subscribe first, then act; the server's ": connected" comment is skipped
        watcher = asyncio.create_task(follow())
        all_events: list[dict[str, Any]] = []

        async def follow_all() -> None:
            async for event in vc.events():
                all_events.append(event)
                if event.get("type") == "call.ended":
                    return

        everything = asyncio.create_task(follow_all())
        await until(lambda: server.app.bus.subscriber_count >= 1)
        call = await vc.call(None, "Hello there", mode="conversation")
        placed.set_result(call.call_id)
        await until(lambda: server.app.bus.subscriber_count >= 2)
        await server.phone.answer(call.call_id)
        await server.phone.says(call.call_id, "hi back")
        await server.phone.hangs_up(call.call_id)
        await asyncio.wait_for(watcher, 10)
        await asyncio.wait_for(everything, 10)
        types = [e["type"] for e in got]
        assert types[-1] == "call.ended" and got[-1]["call"]["end_reason"] == "hangup-user"
        assert {"type": "transcript"} | {"speaker": "user", "text": "hi back"} in [
            {k: e.get(k) for k in ("type", "speaker", "text")} for e in got
        ]
        assert all_events[0]["type"] == "call.created"
        assert all_events[0]["call"]["call_id"] == call.call_id


async def test_wait_helpers(server: RunningServer) -> None:
    async with Client(server.url, TOKEN) as vc:
        call = await vc.call(None, "Hi", mode="conversation")
        quick = await call.wait_answered(timeout=0.05)
        assert not quick.answered and not quick.ended
        waiting = asyncio.create_task(call.wait_answered(timeout=30))
        await asyncio.sleep(0)
        await server.phone.answer(call.call_id)
        assert (await waiting).answered
        ending = asyncio.create_task(call.wait_ended(timeout=30))
        await server.phone.hangs_up(call.call_id)
        assert (await ending).state == "hangup-user"


def test_control_url_from_settings() -> None:
    s = load_config(env={}, overrides={"serve": {"bind": "0.0.0.0", "port": 4000}})
    assert control_url(s) == "http://127.0.0.1:4000"
    s = load_config(env={}, overrides={"serve": {"bind": "::1", "port": 4000}})
    assert control_url(s) == "http://[::1]:4000"
    assert control_url(s, "http://example:1/") == "http://example:1"
    client = Client.from_settings(load_config(env={}, overrides={"api": {"token": "sekrit-value"}}))
    assert "sekrit" not in repr(client)
