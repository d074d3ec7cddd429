"""``voicecall mcp``: the Model Context Protocol server that lets any agent make phone calls.

It is a thin client of the running ``voicecall serve`` (its control API, through
:class:`~voicecall.agent.client.Client`); it never starts a server or owns a call itself, so
any number of MCP sessions can share the one runtime. Two transports: stdio (the agent spawns
``voicecall mcp``) and streamable HTTP (``voicecall mcp --transport http``, loopback by default;
when ``api.token`` is set the HTTP endpoint requires ``Authorization: Bearer <api.token>``).

Tools (names, arguments and descriptions are written for the model that calls them):
``initiate_call``, ``continue_call``, ``speak_to_user``, ``end_call``, ``get_status``,
``list_calls``, ``send_dtmf`` and ``transfer_call`` (:mod:`voicecall.agent.mcp_telephony`),
``block_number`` (the do-not-call list; there is deliberately no tool to take a
number off it: only the user can, with ``voicecall unblock``), and for task calls
``answer_question`` and ``wait_for_call`` (which sends progress notifications when the client
gave a progress token). Failures come back as tool errors (``is_error``) whose text says what
happened and what to do next. Requests carry ``X-Voicecall-Client: mcp`` for the server's audit
trail.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import socket
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, Literal, TypeVar

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import ToolAnnotations
from pydantic import Field

from voicecall import __version__
from voicecall.agent.client import CallInfo, Client, ClientError, ServerUnreachable
from voicecall.agent.mcp_telephony import add_telephony_tools
from voicecall.errors import VoicecallError
from voicecall.netaddr import is_loopback
from voicecall.textrules import NoteText, SpokenText

log = logging.getLogger("voicecall.mcp")

T = TypeVar("T")

DEFAULT_HTTP_PORT = 3336
DEFAULT_HTTP_PATH = "/mcp"
MAX_WAIT_SECONDS = 600.0
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


def _transcript(info: CallInfo) -> list[str]:
    return [f"{t['speaker']}: {t['text']}" for t in info.transcript]


def _summary(info: CallInfo) -> dict[str, Any]:
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
        "created_at": info.raw.get("created_at"),
    }


def _tool_error(exc: VoicecallError, call_id: str | None = None) -> ToolError:
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


async def _guard(op: Awaitable[T], call_id: str | None = None) -> T:
    try:
        return await op
    except VoicecallError as exc:
        raise _tool_error(exc, call_id) from None


def _has_user_reply(info: CallInfo) -> bool:
    return bool(info.lines("user"))


def _task_result(info: CallInfo) -> dict[str, Any]:
    """A task call as the model needs it: the outcome, or the question, and what to do next."""
    result = _summary(info)
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


def _progress_line(event: dict[str, Any]) -> str | None:
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
        call = await _guard(
            client.call(
                to,
                message,
                mode,
                task=task,
                context=context,
                outcome_schema=outcome_schema,
                report_url=report_url,
                record=record,
                transfer_to=transfer_to,
            )
        )
        info = await _guard(call.status(), call.call_id)
        if info.mode == "task":
            if wait_seconds > 0:
                info = await _guard(client.status(call.call_id, wait=wait_seconds), call.call_id)
            return _task_result(info)
        conversation = info.mode == "conversation"
        if wait_seconds > 0:
            until = _has_user_reply if conversation else (lambda i: i.ended)
            info = await _guard(
                client.wait(call.call_id, until, timeout=wait_seconds, poll_seconds=poll_seconds),
                call.call_id,
            )
        result = _summary(info)
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
        return await _guard(client.continue_(call_id, message, timeout=wait_seconds), call_id)

    @server.tool(
        title="Say something without waiting",
        annotations=ToolAnnotations(destructive_hint=False, open_world_hint=True),
    )
    async def speak_to_user(call_id: CallId, message: Message) -> dict[str, Any]:
        """Speak on a live call without waiting for an answer (for example "One moment,
        let me check that."). The line stays open; use continue_call when you want a reply.
        """
        info = await _guard(client.speak(call_id, message), call_id)
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
        info = await _guard(client.end(call_id, goodbye or None), call_id)
        if not info.ended:  # "ending": the goodbye is playing, the hang-up follows it
            wait = END_WAIT_SECONDS + len((goodbye or "").split()) / 2.0
            info = await _guard(
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
        info = await _guard(client.status(call_id), call_id)
        doc = _task_result(info) if info.mode == "task" else _summary(info)
        if info.recording is not None:  # where it is, never the audio (see `voicecall recording`)
            doc["recording"] = {
                k: info.recording.get(k) for k in ("source", "status", "duration_seconds")
            }
        return {**doc, "transcript": _transcript(info)}

    @server.tool(
        title="Answer the call agent's question",
        annotations=ToolAnnotations(destructive_hint=False, open_world_hint=True),
    )
    async def answer_question(
        call_id: CallId,
        answer: Annotated[
            str,
            Field(
                min_length=1,
                max_length=4000,
                description="Your answer, in plain words (the agent on the call uses it).",
            ),
        ],
    ) -> dict[str, Any]:
        """Answer the question the agent of a task call is asking (its `pending_question`).
        The agent goes on with your answer at once; then call wait_for_call for the outcome."""
        done = await _guard(client.answer(call_id, answer), call_id)
        return {
            "call_id": call_id,
            "question": done.get("question"),
            "answer": done.get("answer"),
            "next": "Call wait_for_call to follow the call to its outcome.",
        }

    @server.tool(title="Wait for a call", annotations=ToolAnnotations(read_only_hint=True))
    async def wait_for_call(
        call_id: CallId,
        ctx: Context,
        wait_seconds: Annotated[
            float,
            Field(
                ge=0,
                le=MAX_WAIT_SECONDS,
                description="Longest time to wait, in seconds (at most 600).",
            ),
        ] = 120,
    ) -> dict[str, Any]:
        """Wait until the call has ended and its outcome is final, until its agent asks you a
        question (pending_question: answer it with answer_question), or until wait_seconds pass.
        Returns the outcome, summary and state. Sends progress notifications (state changes,
        transcript lines) while waiting if you asked for progress."""
        watcher: asyncio.Task[None] | None = None
        meta = getattr(ctx.request_context, "meta", None) or {}
        if meta.get("progress_token") is not None:

            async def watch() -> None:
                count = 0
                with contextlib.suppress(VoicecallError):
                    async for event in client.events():
                        doc = event.get("call") or {}
                        if call_id not in (event.get("call_id"), doc.get("call_id")):
                            continue
                        line = _progress_line(event)
                        if line is not None:
                            count += 1
                            await ctx.report_progress(count, None, line[:500])

            watcher = asyncio.create_task(watch())
        try:
            info = await _guard(client.status(call_id, wait=max(wait_seconds, 0.001)), call_id)
        finally:
            if watcher is not None:
                watcher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watcher
        result = _task_result(info)
        result["transcript"] = _transcript(info)[-20:]
        return result

    @server.tool(title="List calls", annotations=ToolAnnotations(read_only_hint=True))
    async def list_calls(
        active_only: Annotated[
            bool, Field(description="Only calls that have not ended yet.")
        ] = False,
        limit: Annotated[int, Field(ge=1, le=200, description="How many, newest first.")] = 20,
    ) -> dict[str, Any]:
        """Recent calls, newest first, without transcripts (get_status has those)."""
        items, cursor = await _guard(client.calls(limit=limit, active=active_only or None))
        return {"calls": [_summary(i) for i in items], "more": cursor is not None}

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
        doc = await _guard(client.latency(call_id=call_id, last=last))
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
        entry = await _guard(client.block(number, reason))
        return {"number": entry.number, "blocked": True, "reason": entry.reason}

    add_telephony_tools(server, client, _guard)
    return server


# ----------------------------------------------------------------------------- transports


async def run_stdio(client: Client) -> None:
    """Serve MCP over stdin/stdout until the client closes the pipe."""
    await build_server(client).run_stdio_async()


class BearerGuard:
    """ASGI middleware: every HTTP request needs ``Authorization: Bearer <token>``."""

    def __init__(self, app: Any, token: str) -> None:
        self.app = app
        self._token = token.encode()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            given = b""
            for name, value in scope.get("headers", []):
                if name.lower() == b"authorization":
                    given = value
            scheme, _, cred = given.partition(b" ")
            if scheme.lower() != b"bearer" or not hmac.compare_digest(cred.strip(), self._token):
                body = b'{"error":"a valid bearer token (api.token) is required"}'
                await send(
                    {
                        "type": "http.response.start",
                        "status": 401,
                        "headers": [
                            (b"content-type", b"application/json"),
                            (b"www-authenticate", b"Bearer"),
                            (b"content-length", str(len(body)).encode()),
                        ],
                    }
                )
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)


def http_app(
    client: Client,
    *,
    host: str = "127.0.0.1",
    path: str = DEFAULT_HTTP_PATH,
    token: str | None = None,
    poll_seconds: float = 1.0,
) -> Any:
    """The streamable-HTTP ASGI app (DNS-rebinding protection on loopback hosts)."""
    server = build_server(client, poll_seconds=poll_seconds)
    app: Any = server.streamable_http_app(streamable_http_path=path, host=host)
    return BearerGuard(app, token) if token else app


async def serve_http(
    client: Client,
    *,
    host: str = "127.0.0.1",
    port: int = DEFAULT_HTTP_PORT,
    path: str = DEFAULT_HTTP_PATH,
    token: str | None = None,
    sock: socket.socket | None = None,
    started: Callable[[str], None] | None = None,
) -> None:
    """Serve MCP over streamable HTTP until cancelled. Refuses a non-loopback ``host``
    without ``token`` (anyone who reaches it could place calls)."""
    import uvicorn

    if not is_loopback(host) and not token:
        raise VoicecallError(
            f"--host {host} is reachable from other machines; set api.token first "
            "(the MCP endpoint then requires it as a bearer token)"
        )
    config = uvicorn.Config(
        http_app(client, host=host, path=path, token=token),
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=2,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock] if sock else None))
    try:
        while not server.started:
            if task.done():
                task.result()
                raise VoicecallError(f"the MCP HTTP server could not start on {host}:{port}")
            await asyncio.sleep(0.02)
        if started is not None:
            bound = server.servers[0].sockets[0].getsockname()
            shown = f"[{bound[0]}]" if ":" in bound[0] else bound[0]
            started(f"http://{shown}:{bound[1]}{path}")
        await task
    finally:
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await task
