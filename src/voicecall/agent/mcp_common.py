"""What the MCP tools share: argument types, the shapes of their results, and tool errors a
model can act on (what happened and what to do next)."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Annotated, Any, TypeVar

from mcp.server.mcpserver.exceptions import ToolError
from pydantic import Field

from voicecall.agent.client import CallInfo, ClientError, ServerUnreachable
from voicecall.errors import VoicecallError
from voicecall.textrules import SpokenText

T = TypeVar("T")

MAX_WAIT_SECONDS = 600.0

Message = Annotated[
    SpokenText,
    Field(description="Words to speak, in plain spoken sentences (text-to-speech reads it aloud)."),
]
CallId = Annotated[
    str,
    Field(min_length=1, max_length=200, description="The call_id returned by initiate_call."),
]
WaitSeconds = Annotated[
    float,
    Field(ge=0, le=MAX_WAIT_SECONDS, description="Longest time to wait, in seconds."),
]


def transcript_lines(info: CallInfo) -> list[str]:
    return [f"{t['speaker']}: {t['text']}" for t in info.transcript]


def call_summary(info: CallInfo) -> dict[str, Any]:
    return {
        "call_id": info.call_id,
        "state": info.state,
        "ended": info.ended,
        "end_reason": info.end_reason,
        "direction": info.direction,
        "mode": info.mode,
        "to": info.to,
        "from": info.from_,
        "answered": info.answered,
        "answered_by": info.answered_by,
        "created_at": info.raw.get("created_at"),
    }


def tool_error(exc: VoicecallError, call_id: str | None = None) -> ToolError:
    """Turn a client error into a message a model can act on."""
    if isinstance(exc, ServerUnreachable):
        return ToolError(
            f"The voicecall server is not reachable ({exc}). Ask the user to start it with "
            "`voicecall serve`; retrying now will not help."
        )
    if not isinstance(exc, ClientError):
        return ToolError(str(exc))
    detail = exc.detail or exc.title
    which = f"call {call_id}" if call_id else "the call"
    advice = {
        "UnknownCall": "Check the call_id; list_calls shows the known calls.",
        "CallNotActive": (
            f"Use get_status to see the state of {which}: wait until it is answered, "
            "or place a new call with initiate_call if it has ended."
        ),
        "TooManyCalls": "End a call you no longer need (end_call) or wait for one to finish.",
        "TurnTimeout": (
            f"The person did not answer in time, but {which} may still be live: ask again with "
            "continue_call, or end it with end_call."
        ),
        "InvalidPhoneNumber": "Give `to` as an E.164 number such as +15551234567.",
        "OutboundRefused": (
            "The server's outbound policy forbids this call: do not retry or work around it; "
            "tell the user (they can change the policy)."
        ),
        "OutboundLimited": (
            "An outbound limit is reached: do not retry now; tell the user when it is."
        ),
        "Invalid request": "Fix the arguments and try again.",
        "InvalidRequest": "Fix the arguments and try again.",
        "Unauthorized": (
            "This MCP server's token does not match the voicecall server's api.token; "
            "the user must fix the configuration (VOICECALL_API__TOKEN)."
        ),
    }.get(exc.title)
    if advice is None and exc.status >= 500:
        advice = "The telephony side failed; try again later or ask the user to check the server."
    return ToolError(f"{detail}. {advice}" if advice else detail)


async def guard(op: Awaitable[T], call_id: str | None = None) -> T:
    try:
        return await op
    except VoicecallError as exc:
        raise tool_error(exc, call_id) from None


def has_user_reply(info: CallInfo) -> bool:
    return bool(info.lines("user"))


def task_result(info: CallInfo) -> dict[str, Any]:
    """A task call as the model needs it: the outcome, or the question, and what to do next."""
    result = call_summary(info)
    result.update(
        outcome=info.outcome,
        summary=info.summary,
        outcome_error=info.outcome_error,
        outcome_final=info.outcome_final,
        pending_question=info.pending_question,
    )
    if info.outcome_final:
        result["next"] = "The call is over and this is its final outcome."
    elif info.pending_question:
        result["next"] = (
            "The agent on the call asks you this question. Answer it with answer_question "
            "(or ask the user), then call wait_for_call again."
        )
    elif info.ended:
        result["next"] = "The call is over; its outcome is being written: call wait_for_call."
    else:
        result["next"] = "The call is under way: call wait_for_call to wait for its outcome."
    return result


def progress_line(event: dict[str, Any]) -> str | None:
    kind = event.get("type")
    if kind == "transcript":
        who = "agent" if event.get("speaker") == "bot" else "them"
        return f"{who}: {event.get('text', '')}"
    if kind == "question":
        return f"question for you: {event.get('question', '')}"
    if kind in ("call.updated", "call.ended"):
        call = event.get("call") or {}
        return f"state {call.get('state')}"
    if kind == "call.outcome":
        return "outcome ready"
    return None
