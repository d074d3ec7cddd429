"""The MCP server through the ``mcp`` package's own client, over streamable HTTP and stdio,
against a real voicecall server (mock provider) whose callee is played by signed webhooks."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import httpx2
import pytest
from mcp.client import Client as McpClient
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from voicecall_server import CALLEE, TOKEN, RunningServer, loopback_socket, until

from voicecall.agent.client import Client
from voicecall.agent.mcp import serve_http
from voicecall.errors import VoicecallError

TOOLS = {
    "initiate_call",
    "continue_call",
    "speak_to_user",
    "end_call",
    "get_status",
    "list_calls",
    "block_number",
    "answer_question",
    "wait_for_call",
    "send_dtmf",
    "transfer_call",
    "get_latency",
}


@contextlib.asynccontextmanager
async def mcp_http(server: RunningServer, token: str | None = None) -> AsyncIterator[str]:
    """Run ``serve_http`` (the code path of `voicecall mcp --transport http`); yield its URL."""
    sock = loopback_socket()
    got: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    async with Client(server.url, TOKEN) as client:
        task = asyncio.create_task(
            serve_http(client, sock=sock, token=token, started=got.set_result)
        )
        try:
            yield await asyncio.wait_for(got, 10)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def text(result: Any) -> str:
    return "".join(c.text for c in result.content if getattr(c, "type", "") == "text")


async def newest_call_id(server: RunningServer) -> str:
    """The id of the call just placed, once the provider has accepted it (it has a sid)."""
    manager = server.app.manager
    assert manager is not None
    found: list[str] = []

    async def dialled() -> bool:
        page = await manager.list_calls(limit=1)
        if page.calls and page.calls[0].provider_call_id:
            found.append(page.calls[0].call_id)
            return True
        return False

    await until(dialled, "a placed call")
    return found[-1]


async def test_tools_are_described_for_a_model(server: RunningServer) -> None:
    async with mcp_http(server) as url, McpClient(url) as mcp:
        assert "phone calls" in (mcp.instructions or "")
        tools = {t.name: t for t in (await mcp.list_tools()).tools}
        assert set(tools) == TOOLS
        for tool in tools.values():
            assert tool.description and len(tool.description) > 40, tool.name
            for name, prop in tool.input_schema.get("properties", {}).items():
                assert prop.get("description"), f"{tool.name}.{name} has no description"
        init = tools["initiate_call"].input_schema
        assert init.get("required", []) == []  # message is optional in task mode
        mode = init["properties"]["mode"]["anyOf"][0]
        assert mode["enum"] == ["notify", "conversation", "task"]
        assert "ctx" not in tools["wait_for_call"].input_schema["properties"]
        assert tools["get_status"].annotations and tools["get_status"].annotations.read_only_hint
        assert tools["end_call"].annotations and tools["end_call"].annotations.destructive_hint


async def test_conversation_over_http(server: RunningServer) -> None:
    phone = server.phone
    async with mcp_http(server) as url, McpClient(url) as mcp:
        placing = asyncio.create_task(
            mcp.call_tool(
                "initiate_call",
                {"message": "Hi, is this Sam?", "mode": "conversation", "wait_seconds": 30},
            )
        )
        call_id = await newest_call_id(server)
        await phone.answer(call_id)
        await asyncio.sleep(0.05)
        assert not placing.done()  # still waiting for the first reply
        await phone.says(call_id, "yes this is Sam")
        placed = await placing
        assert not placed.is_error, text(placed)
        doc = placed.structured_content
        assert doc is not None
        assert doc["call_id"] == call_id and doc["reply"] == "yes this is Sam"
        assert doc["to"] == CALLEE and doc["answered"] and not doc["ended"]
        assert "continue_call" in doc["next"]

        asking = asyncio.create_task(
            mcp.call_tool("continue_call", {"call_id": call_id, "message": "Lunch at noon?"})
        )
        await until(lambda: phone.redirects(call_id), "the continue redirect")
        await phone.says(call_id, "noon is perfect")
        answer = await asking
        assert not answer.is_error and text(answer) == "noon is perfect"

        spoken = await mcp.call_tool(
            "speak_to_user", {"call_id": call_id, "message": "Booking it now."}
        )
        assert not spoken.is_error and spoken.structured_content
        assert spoken.structured_content["call_id"] == call_id

        status = await mcp.call_tool("get_status", {"call_id": call_id})
        assert status.structured_content
        assert status.structured_content["transcript"] == [
            "bot: Hi, is this Sam?",
            "user: yes this is Sam",
            "bot: Lunch at noon?",
            "user: noon is perfect",
            "bot: Booking it now.",
        ]

        measured = await mcp.call_tool("get_latency", {"call_id": call_id[:8]})
        # a <Gather> call (no media stream): nothing measured, and said so
        assert measured.structured_content == {"stages": {}, "replies": 0}

        listed = await mcp.call_tool("list_calls", {"active_only": True})
        assert listed.structured_content
        assert [c["call_id"] for c in listed.structured_content["calls"]] == [call_id]

        ended = await mcp.call_tool("end_call", {"call_id": call_id})
        assert ended.structured_content and ended.structured_content["ended"]
        assert ended.structured_content["state"] == "hangup-bot"
        again = await mcp.call_tool("end_call", {"call_id": call_id})
        assert not again.is_error and again.structured_content
        assert again.structured_content["state"] == "hangup-bot"


async def test_notify_call_waits_for_the_end(server: RunningServer) -> None:
    async with mcp_http(server) as url, McpClient(url) as mcp:
        placing = asyncio.create_task(
            mcp.call_tool("initiate_call", {"message": "Your package arrived.", "mode": "notify"})
        )
        call_id = await newest_call_id(server)
        reply = await server.phone.answer(call_id)
        assert reply["say"] == "Your package arrived." and reply["hangup"]
        await server.phone.hangs_up(call_id)
        result = await placing
        assert result.structured_content and result.structured_content["ended"]
        assert "over" in result.structured_content["next"]


async def test_end_call_with_goodbye_returns_once_the_call_is_over(server: RunningServer) -> None:
    async with mcp_http(server) as url, McpClient(url) as mcp:
        placing = asyncio.create_task(
            mcp.call_tool("initiate_call", {"message": "Hi, is this Sam?", "mode": "conversation"})
        )
        call_id = await newest_call_id(server)
        await server.phone.answer(call_id)
        await server.phone.says(call_id, "yes")
        await placing
        before = await server.phone.redirects(call_id)
        ending = asyncio.create_task(
            mcp.call_tool("end_call", {"call_id": call_id, "goodbye": "Thanks, goodbye."})
        )

        async def goodbye_sent() -> bool:
            return await server.phone.redirects(call_id) > before

        await until(goodbye_sent, "the goodbye redirect")
        last = server.phone.provider.calls[await server.phone._sid(call_id)].replies[-1]
        assert last.say == "Thanks, goodbye." and last.hangup
        # the call is ending: nothing more may be said on it, from any surface
        late = await mcp.call_tool("continue_call", {"call_id": call_id, "message": "Still there?"})
        assert late.is_error and "ending" in text(late)
        assert not ending.done()  # end_call waits for the hang-up after the goodbye
        await server.phone.hangs_up(call_id)  # the provider ran <Say> then <Hangup>
        result = await ending
        assert result.structured_content and result.structured_content["ended"]
        assert result.structured_content["state"] == "hangup-bot"


async def test_keys_and_a_cold_transfer_over_mcp(server: RunningServer) -> None:
    async with mcp_http(server) as url, McpClient(url) as mcp:
        placing = asyncio.create_task(
            mcp.call_tool("initiate_call", {"message": "Hello.", "mode": "conversation"})
        )
        call_id = await newest_call_id(server)
        await server.phone.answer(call_id)
        await server.phone.says(call_id, "for bookings press one")
        await placing
        bad = await mcp.call_tool("send_dtmf", {"call_id": call_id, "digits": "1x"})
        assert bad.is_error
        sent = await mcp.call_tool("send_dtmf", {"call_id": call_id, "digits": "1"})
        assert not sent.is_error, text(sent)
        assert sent.structured_content and sent.structured_content["via"] == "play"
        sid = await server.phone._sid(call_id)
        assert server.phone.provider.calls[sid].replies[-1].digits == "1"
        moved = await mcp.call_tool(
            "transfer_call", {"call_id": call_id, "to": "+14155550177", "mode": "cold"}
        )
        assert not moved.is_error, text(moved)
        doc = moved.structured_content
        assert doc and doc["ended"] and doc["transfer"]["status"] == "handed-over"
        dial = server.phone.provider.calls[sid].replies[-1].dial
        assert dial is not None and dial.to == "+14155550177"


async def test_errors_are_tool_errors_that_say_what_to_do(server: RunningServer) -> None:
    async with mcp_http(server) as url, McpClient(url) as mcp:
        unknown = await mcp.call_tool("get_status", {"call_id": "nope"})
        assert unknown.is_error and "list_calls" in text(unknown)

        bad_number = await mcp.call_tool("initiate_call", {"message": "hi", "to": "12345"})
        assert bad_number.is_error and "E.164" in text(bad_number)

        bad_mode = await mcp.call_tool("initiate_call", {"message": "hi", "mode": "shout"})
        assert bad_mode.is_error

        placed = await mcp.call_tool(
            "initiate_call", {"message": "hi", "mode": "conversation", "wait_seconds": 0}
        )
        assert placed.structured_content and placed.structured_content["reply"] is None
        assert "get_status" in placed.structured_content["next"]
        call_id = placed.structured_content["call_id"]
        early = await mcp.call_tool("continue_call", {"call_id": call_id, "message": "hello?"})
        assert early.is_error
        assert "not been answered" in text(early) and "get_status" in text(early)

        await server.phone.answer(call_id)
        silent = await mcp.call_tool(
            "continue_call", {"call_id": call_id, "message": "hello?", "wait_seconds": 0.05}
        )
        assert silent.is_error and "continue_call" in text(silent) and "end_call" in text(silent)


async def test_unreachable_voicecall_server_is_explained(server: RunningServer) -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    dead = f"http://127.0.0.1:{sock.getsockname()[1]}"
    sock.close()
    fake = RunningServer(server.app, dead, server.phone)
    async with mcp_http(fake) as url, McpClient(url) as mcp:
        result = await mcp.call_tool("list_calls", {})
        assert result.is_error and "voicecall serve" in text(result)


async def test_http_token_is_required_when_configured(server: RunningServer) -> None:
    async with mcp_http(server, token="mcp-secret") as url:
        async with httpx.AsyncClient() as http:
            refused = await http.post(url, json={})
            assert refused.status_code == 401
        async with httpx2.AsyncClient(headers={"authorization": "Bearer mcp-secret"}) as h2:
            transport = streamable_http_client(url, http_client=h2)
            async with McpClient(transport) as mcp:
                result = await mcp.call_tool("list_calls", {})
                assert not result.is_error


async def test_http_refuses_a_public_bind_without_token() -> None:
    async with Client("http://127.0.0.1:1") as client:
        with pytest.raises(VoicecallError, match=r"api\.token"):
            await serve_http(client, host="0.0.0.0", port=0)


async def test_stdio_transport_via_the_cli(server: RunningServer, tmp_path: Path) -> None:
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "voicecall.cli.agent_commands", "mcp", "--url", server.url],
        env={"VOICECALL_API__TOKEN": TOKEN},
        cwd=tmp_path,
    )
    async with McpClient(params) as mcp:
        assert {t.name for t in (await mcp.list_tools()).tools} == TOOLS
        placed = await mcp.call_tool(
            "initiate_call",
            {"message": "Reminder: dentist at 3.", "mode": "notify", "wait_seconds": 0},
        )
        assert not placed.is_error, text(placed)
        assert placed.structured_content
        call_id = placed.structured_content["call_id"]
        status = await mcp.call_tool("get_status", {"call_id": call_id})
        assert status.structured_content
        assert status.structured_content["transcript"] == ["bot: Reminder: dentist at 3."]
        assert json.loads(text(status))["call_id"] == call_id


async def test_block_number_and_policy_refusals(server: RunningServer) -> None:
    async with mcp_http(server) as url, McpClient(url) as mcp:
        blocked = await mcp.call_tool(
            "block_number", {"number": "+14155550123", "reason": "asked not to be called"}
        )
        assert not blocked.is_error, text(blocked)
        refused = await mcp.call_tool(
            "initiate_call", {"message": "hi", "to": "+14155550123", "wait_seconds": 0}
        )
        assert refused.is_error
        assert "do-not-call" in text(refused) and "do not retry" in text(refused)
        premium = await mcp.call_tool(
            "initiate_call", {"message": "hi", "to": "+19005550123", "wait_seconds": 0}
        )
        assert premium.is_error and "premium-rate" in text(premium)
        nul = await mcp.call_tool("initiate_call", {"message": "a\x00b", "wait_seconds": 0})
        assert nul.is_error
    assert server.app.manager is not None
    entries = await server.app.manager.outbound.audit(limit=10)
    assert [e.surface for e in entries] == ["mcp", "mcp"]
    assert {e.rule for e in entries} == {"do_not_call", "outbound.allowed_number_types"}
