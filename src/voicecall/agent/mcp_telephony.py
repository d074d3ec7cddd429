"""The MCP tools of the telephony moves: ``send_dtmf`` (press keys in a phone menu) and
``transfer_call`` (hand a call to another number, cold or warm). Thin: each is one request to
the control API through :class:`~voicecall.agent.client.Client`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any, Literal, TypeVar

from mcp.server.mcpserver import MCPServer
from mcp_types import ToolAnnotations
from pydantic import Field

from voicecall.agent.client import Client
from voicecall.agent.mcp_common import CallId

T = TypeVar("T")
Guard = Callable[[Awaitable[Any], str | None], Awaitable[Any]]


def add_telephony_tools(server: MCPServer[Any], client: Client, guard: Guard) -> None:
    @server.tool(
        title="Press keys on the phone keypad",
        annotations=ToolAnnotations(destructive_hint=False, open_world_hint=True),
    )
    async def send_dtmf(
        call_id: CallId,
        digits: Annotated[
            str,
            Field(
                min_length=1,
                max_length=256,
                pattern="^[0-9*#A-Da-dwW]+$",
                description="Keys in order: 0-9, *, #, A-D; w waits half a second "
                "(e.g. '2' or '1w23#').",
            ),
        ],
    ) -> dict[str, Any]:
        """Press keys on a live call, for phone menus ("press 2 for reservations") or to enter
        a number. Listen to the menu first (continue_call returns what it says); after the
        keys the call goes on listening."""
        sent: dict[str, Any] = await guard(client.dtmf(call_id, digits), call_id)
        return sent

    @server.tool(
        title="Transfer the call to another number",
        annotations=ToolAnnotations(destructive_hint=True, open_world_hint=True),
    )
    async def transfer_call(
        call_id: CallId,
        to: Annotated[
            str,
            Field(max_length=16, description="The number to transfer to, E.164 (+15551234567)."),
        ],
        mode: Annotated[
            Literal["cold", "warm"],
            Field(
                description="cold: connect at once (you leave the call); warm: the number first "
                "hears `summary`; if nobody takes the call you are back on it"
            ),
        ] = "warm",
        summary: Annotated[
            str | None,
            Field(
                max_length=1000,
                description="warm: one or two spoken sentences the number hears first.",
            ),
        ] = None,
    ) -> dict[str, Any]:
        """Transfer a live call to another phone number. Only transfer when the user or the
        person on the call asked for it. The number must pass the server's outbound policy: a
        refusal is final, tell the user. Check get_status for the transfer's result (status
        completed, or busy/no-answer when you are back on the call)."""
        info = await guard(client.transfer(call_id, to, mode=mode, summary=summary), call_id)
        return {
            "call_id": info.call_id,
            "state": info.state,
            "ended": info.ended,
            "transfer": info.transfer,
        }
