"""The MCP server of ``voicecall mcp`` (:func:`build_server`): its instructions and the call
tools (``initiate_call``, ``continue_call``, ``speak_to_user``, ``end_call``, ``get_status``,
``list_calls``, ``get_latency``, ``block_number``); the task tools come from
:mod:`voicecall.agent.mcp_tasks`, the telephony tools from :mod:`voicecall.agent.mcp_telephony`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from mcp.server.mcpserver import MCPServer
from mcp_types import ToolAnnotations
from pydantic import Field

from voicecall import __version__
from voicecall.agent.client import Client
from voicecall.agent.mcp_common import (
    MAX_WAIT_SECONDS,
    CallId,
    Message,
    call_summary,
    guard,
    has_user_reply,
    task_result,
    transcript_lines,
)
from voicecall.agent.mcp_tasks import add_task_tools
from voicecall.agent.mcp_telephony import add_telephony_tools
from voicecall.textrules import NoteText, SpokenText

#: how long end_call waits for the hang-up after the goodbye's own length
END_WAIT_SECONDS = 30.0

INSTRUCTIONS = """\
This server places and controls real phone calls through the user's voicecall server.
Typical flows:
- Tell someone something: initiate_call(message=..., mode="notify"). It is spoken, then the
  call hangs up by itself.
- Talk with someone: initiate_call(message=<your opening line>, mode="conversation") returns
  the person's first reply; then call continue_call(call_id, <your next line>) for each turn
  (it returns what they answer), and end_call(call_id, goodbye=...) when you are done.
- Hand over a whole call: initiate_call(mode="task", task=<the goal and its limits>,
  context=<facts it may share>, outcome_schema=<JSON Schema of the result>). An agent on the
  server makes the call and returns the outcome. If it needs a decision it asks you: the result
  then has pending_question; answer with answer_question(call_id, answer) and keep waiting with
  wait_for_call(call_id) until ended is true and outcome_final is true.
A phone menu ("press 2 for bookings"): press keys with send_dtmf(call_id, "2"). To hand a call
to a person the user named, transfer_call(call_id, to, mode="warm", summary=...).
Everything you send is spoken aloud by text-to-speech: write short, plain spoken sentences,
no markdown, lists, URLs or emoji. Phone numbers are E.164 (+15551234567); omit `to` to call
the user's configured default number. Calls cost money and reach real people: do not place
calls the user did not ask for. The server's outbound policy may refuse a number (premium rate,
another country, the do-not-call list, quiet hours, daily limits): such a refusal is final, do
not retry or try another way, tell the user. If someone asks not to be called again, put their
number on the do-not-call list with block_number.
"""


def build_server(client: Client, *, poll_seconds: float = 1.0) -> MCPServer[Any]:
    """The MCP server, with its tools bound to ``client`` (the voicecall control API; its
    requests are marked as coming from MCP for the audit trail)."""
    client.surface = "mcp"
    server: MCPServer[Any] = MCPServer(
        "voicecall",
        title="voicecall phone calls",
        instructions=INSTRUCTIONS,
        version=__version__,
        log_level="WARNING",
    )

    @server.tool(
        title="Place a phone call",
        annotations=ToolAnnotations(destructive_hint=False, open_world_hint=True),
    )
    async def initiate_call(
        message: Annotated[
            SpokenText | None,
            Field(
                description=(
                    "What to say when the person picks up (spoken aloud). In notify mode this "
                    "is the whole message; in conversation mode it is your opening line and "
                    "usually ends with a question. Optional in task mode (the agent opens)."
                ),
            ),
        ] = None,
        to: Annotated[
            str | None,
            Field(
                description=(
                    "Number to call in E.164 form, e.g. +15551234567. Omit to call the "
                    "user's configured default number."
                ),
            ),
        ] = None,
        mode: Annotated[
            Literal["notify", "conversation", "task"] | None,
            Field(
                description=(
                    "notify: say the message, then hang up. conversation: say it and keep "
                    "the line open for continue_call. task: an agent on the server makes the "
                    "whole call for `task` and returns its outcome. Omit for the server's "
                    "default mode (task when `task` is given)."
                )
            ),
        ] = None,
        task: Annotated[
            str | None,
            Field(
                max_length=4000,
                description=(
                    "Task mode: what the call should get done, with its limits, in plain words "
                    "('Book a table for two tonight at 7; 7:30 only if I agree')."
                ),
            ),
        ] = None,
        context: Annotated[
            str | None,
            Field(
                max_length=8000,
                description="Task mode: facts the agent may share (names, numbers, times).",
            ),
        ] = None,
        outcome_schema: Annotated[
            dict[str, Any] | None,
            Field(
                description=(
                    "Task mode: JSON Schema (Draft 2020-12) of the result you want back, e.g. "
                    '{"type":"object","properties":{"booked":{"type":"boolean"}},'
                    '"required":["booked"],"additionalProperties":false}. Default: '
                    "{done: boolean, details: string}."
                ),
            ),
        ] = None,
        report_url: Annotated[
            str | None,
            Field(
                description="Optional https URL that receives the signed end-of-call report.",
            ),
        ] = None,
        machine_detection: Annotated[
            Literal["off", "detect", "voicemail"] | None,
            Field(
                description=(
                    "Answering machines: off; detect (answered_by tells who answered); "
                    "voicemail (on a machine, leave voicemail_message after the beep and hang "
                    "up: the call ends 'voicemail'). Omit for the server's default."
                )
            ),
        ] = None,
        voicemail_message: Annotated[
            str | None,
            Field(
                max_length=4000,
                description=(
                    "With machine_detection voicemail: the message to leave (default: the "
                    "message; task mode: written from the task)."
                ),
            ),
        ] = None,
        max_hold_seconds: Annotated[
            float | None,
            Field(
                gt=0,
                le=14400,
                description=(
                    "How long to wait silently on hold (music, ringing) before hanging up. "
                    "Omit for the server's default."
                ),
            ),
        ] = None,
        record: Annotated[
            bool | None,
            Field(
                description=(
                    "Record the call (the person first hears that it is recorded). Omit for "
                    "the server's default (recording.enabled). The user gets the audio with "
                    "`voicecall recording CALL_ID -o call.wav`."
                ),
            ),
        ] = None,
        transfer_to: Annotated[
            list[str] | None,
            Field(
                max_length=10,
                description="Task mode: numbers (E.164) the call's agent may transfer the call "
                "to when the person asks for someone (only these).",
            ),
        ] = None,
        wait_seconds: Annotated[
            float,
            Field(
                ge=0,
                le=MAX_WAIT_SECONDS,
                description=(
                    "How long to wait for the outcome before returning: in conversation mode "
                    "for the person's first reply, in notify mode for the call to finish. "
                    "0 returns as soon as the call is placed."
                ),
            ),
        ] = 90,
    ) -> dict[str, Any]:
        """Call a phone number and speak a message.

        Returns call_id (needed by every other tool), the call state, and in conversation
        mode `reply`: what the person said after your message (null if they have not answered
        yet; then use get_status or continue_call later). In notify mode the call ends by
        itself after the message.
        """
        call = await guard(
            client.call(
                to,
                message,
                mode,
                task=task,
                context=context,
                outcome_schema=outcome_schema,
                report_url=report_url,
                machine_detection=machine_detection,
                voicemail_message=voicemail_message,
                max_hold_seconds=max_hold_seconds,
                record=record,
                transfer_to=transfer_to,
            )
        )
        info = await guard(call.status(), call.call_id)
        if info.mode == "task":
            if wait_seconds > 0:
                info = await guard(client.status(call.call_id, wait=wait_seconds), call.call_id)
            return task_result(info)
        conversation = info.mode == "conversation"
        if wait_seconds > 0:
            until = has_user_reply if conversation else (lambda i: i.ended)
            info = await guard(
                client.wait(call.call_id, until, timeout=wait_seconds, poll_seconds=poll_seconds),
                call.call_id,
            )
        result = call_summary(info)
        replies = info.lines("user")
        if conversation:
            result["reply"] = replies[0] if replies else None
            if info.ended:
                result["next"] = f"The call is over ({info.end_reason or info.state})."
            elif replies:
                result["next"] = "Answer with continue_call, or finish with end_call."
            elif info.answered:
                result["next"] = "Answered but no reply yet: use continue_call or get_status."
            else:
                result["next"] = "Not answered yet: check again with get_status."
        else:
            result["next"] = (
                f"The call is over ({info.end_reason or info.state})."
                if info.ended
                else "The message is spoken when they answer; get_status shows the outcome."
            )
        return result

    @server.tool(
        title="Say something and wait for the answer",
        annotations=ToolAnnotations(destructive_hint=False, open_world_hint=True),
    )
    async def continue_call(
        call_id: CallId,
        message: Message,
        wait_seconds: Annotated[
            float | None,
            Field(
                gt=0,
                le=3600,
                description=(
                    "How long to wait for the person's answer (default: the server's "
                    "transcript timeout, usually 180 s)."
                ),
            ),
        ] = None,
    ) -> str:
        """Speak on a live conversation call, then wait for and return what the person says.

        The return value is the transcript of their answer (their next complete utterance).
        Use it for each turn of a conversation. The call must be answered and not ended.
        """
        return await guard(client.continue_(call_id, message, timeout=wait_seconds), call_id)

    @server.tool(
        title="Say something without waiting",
        annotations=ToolAnnotations(destructive_hint=False, open_world_hint=True),
    )
    async def speak_to_user(call_id: CallId, message: Message) -> dict[str, Any]:
        """Speak on a live call without waiting for an answer (for example "One moment,
        let me check that."). The line stays open; use continue_call when you want a reply.
        """
        info = await guard(client.speak(call_id, message), call_id)
        return {"call_id": info.call_id, "state": info.state, "spoken": message}

    @server.tool(
        title="Hang up",
        annotations=ToolAnnotations(destructive_hint=True, idempotent_hint=True),
    )
    async def end_call(
        call_id: CallId,
        goodbye: Annotated[
            SpokenText | None,
            Field(description="A closing sentence to say before hanging up."),
        ] = None,
    ) -> dict[str, Any]:
        """Hang up a call, optionally saying a goodbye first. Safe to repeat: ending an
        ended call just returns its final state. Returns once the call is over (the goodbye
        is played to its end first); nothing more can be said on the call after this."""
        info = await guard(client.end(call_id, goodbye or None), call_id)
        if not info.ended:  # "ending": the goodbye is playing, the hang-up follows it
            wait = END_WAIT_SECONDS + len((goodbye or "").split()) / 2.0
            info = await guard(
                client.wait(call_id, lambda i: i.ended, timeout=wait, poll_seconds=poll_seconds),
                call_id,
            )
        return {
            "call_id": info.call_id,
            "state": info.state,
            "ended": info.ended,
            "end_reason": info.end_reason,
        }

    @server.tool(
        title="Call status and transcript",
        annotations=ToolAnnotations(read_only_hint=True),
    )
    async def get_status(call_id: CallId) -> dict[str, Any]:
        """The state of one call (initiated, ringing, answered, listening, completed,
        no-answer, busy, hangup-user …), whether it has ended and why, and its transcript as
        lines "bot: …" / "user: …" in order."""
        info = await guard(client.status(call_id), call_id)
        doc = task_result(info) if info.mode == "task" else call_summary(info)
        if info.recording is not None:  # where it is, never the audio (see `voicecall recording`)
            doc["recording"] = {
                k: info.recording.get(k) for k in ("source", "status", "duration_seconds")
            }
        return {**doc, "transcript": transcript_lines(info)}

    add_task_tools(server, client)  # answer_question, wait_for_call

    @server.tool(title="List calls", annotations=ToolAnnotations(read_only_hint=True))
    async def list_calls(
        active_only: Annotated[
            bool, Field(description="Only calls that have not ended yet.")
        ] = False,
        limit: Annotated[int, Field(ge=1, le=200, description="How many, newest first.")] = 20,
    ) -> dict[str, Any]:
        """Recent calls, newest first, without transcripts (get_status has those)."""
        items, cursor = await guard(client.calls(limit=limit, active=active_only or None))
        return {"calls": [call_summary(i) for i in items], "more": cursor is not None}

    @server.tool(title="How fast the bot answers", annotations=ToolAnnotations(read_only_hint=True))
    async def get_latency(
        call_id: Annotated[
            str | None,
            Field(
                min_length=6,
                max_length=64,
                description="Only this call (its id or a unique prefix); all calls if omitted.",
            ),
        ] = None,
        last: Annotated[
            int, Field(ge=1, le=200, description="How many of the newest replies.")
        ] = 20,
    ) -> dict[str, Any]:
        """How long the bot took to answer the caller (ms): p50/p95 per stage (end of turn,
        transcript, responder, TTS, voicecall's own, voice to voice) over the newest replies."""
        doc = await guard(client.latency(call_id=call_id, last=last))
        return {"stages": doc["stages"], "replies": len(doc["turns"])}

    @server.tool(
        title="Never call a number again",
        annotations=ToolAnnotations(destructive_hint=False, idempotent_hint=True),
    )
    async def block_number(
        number: Annotated[
            str,
            Field(
                min_length=2,
                max_length=16,
                description="The E.164 number, e.g. +15551234567 (the person's number).",
            ),
        ],
        reason: Annotated[
            NoteText | None,
            Field(description="Why, e.g. 'asked not to be called again'."),
        ] = None,
    ) -> dict[str, Any]:
        """Put a number on the do-not-call list, e.g. when the person asks not to be called
        again. The server then refuses every call to it. Only the user can take it off."""
        entry = await guard(client.block(number, reason))
        return {"number": entry.number, "blocked": True, "reason": entry.reason}

    add_telephony_tools(server, client, guard)
    return server
