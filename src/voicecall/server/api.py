"""The control API: JSON over HTTP with OpenAPI, bearer-token auth and RFC 9457 errors.

Every voicecall client (the CLI, the MCP server, the Python ``Client``) talks to this API; the
server is the only runtime that owns calls. In front of it, :class:`ApiGuard` authenticates
before anything is parsed and refuses non-JSON bodies (415); every error answer is a problem
document and is in the OpenAPI contract (:mod:`voicecall.server.api_docs`). Clients say which
they are in ``X-Voicecall-Client`` (``api``, ``cli``, ``mcp``, ``python``) for the audit trail.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, Header, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from voicecall import __version__
from voicecall.calls.call_ids import resolve_call_id
from voicecall.calls.manager import CallManager
from voicecall.calls.model import CallRecord, TranscriptEntry
from voicecall.calls.outbound import Requester, Surface, token_fingerprint
from voicecall.config import Settings
from voicecall.errors import VoicecallError
from voicecall.phone import E164_PATTERN
from voicecall.server import recording_api, task_api
from voicecall.server.api_docs import Problem, install_openapi, problems, query_names
from voicecall.server.api_guard import ApiGuard, allowed_methods
from voicecall.server.api_policy import add_policy_routes
from voicecall.server.latency_api import TurnLatencyOut, add_latency_routes
from voicecall.server.telephony_api import add_telephony_routes
from voicecall.textrules import SpokenText

log = logging.getLogger("voicecall.api")

PROBLEM_JSON = "application/problem+json"
SSE_KEEPALIVE_SECONDS = 15.0
OPENAPI_PATH = "/api/openapi.json"
DOCS_PATH = "/api/docs"
#: public without a token: the contract and its docs page (no data, no secret)
PUBLIC_PATHS = frozenset({OPENAPI_PATH, DOCS_PATH})


# ----------------------------------------------------------------------------- schemas


class PlaceCall(task_api.TaskFields, recording_api.RecordField):
    to: str | None = Field(
        None,
        max_length=16,
        json_schema_extra={"pattern": E164_PATTERN},
        description="E.164 number to call, exactly as written (e.g. +14155550100: no spaces, "
        "letters or extension); default: the configured to_number",
    )
    message: SpokenText | None = Field(
        None, description="What to say first (required, except in task mode: the agent opens)"
    )
    mode: Literal["notify", "conversation", "task"] | None = Field(
        None,
        description="notify: say and hang up; conversation: talk back and forth; task: an "
        "agent makes the whole call for a task and returns its outcome",
    )


class SayMessage(BaseModel):
    message: SpokenText


class EndCall(BaseModel):
    message: SpokenText | None = Field(None, description="A goodbye said before hanging up")


class ContinueCall(BaseModel):
    message: SpokenText
    timeout_seconds: float | None = Field(None, gt=0, le=3600)


class CallCreated(BaseModel):
    call_id: str
    status: str


class TranscriptLine(BaseModel):
    seq: int
    speaker: str
    text: str
    at: float
    final: bool
    turn: int | None
    latency: TurnLatencyOut | None = Field(
        None, description="Bot replies on a media stream: how long the reply took"
    )


class TransferOut(BaseModel):
    """A call's last transfer and its result (docs/telephony.md)."""

    seq: int
    to: str
    mode: str = Field(description="cold or warm")
    status: str = Field(
        description="handed-over (cold), dialing, connected, completed, busy, no-answer, "
        "failed or canceled"
    )
    started_at: float
    summary: str | None = None
    ended_at: float | None = None
    dial_call_sid: str | None = None
    agent_answers: bool = Field(
        False, description="the model that asked for the transfer says how it went"
    )


class CallOut(BaseModel):
    call_id: str
    direction: str
    mode: str
    from_: str | None = Field(None, alias="from")
    to: str | None
    state: str
    end_reason: str | None
    provider: str
    provider_call_id: str | None
    message: str | None
    created_at: float
    updated_at: float
    answered_at: float | None
    ended_at: float | None
    turn: int
    error: str | None
    transfer: TransferOut | None = None
    transcript: list[TranscriptLine] | None = None

    model_config = {"populate_by_name": True}


class CallDetail(CallOut, task_api.TaskDetail, recording_api.RecordingDetail):
    """One call with its transcript, task, outcome, owner questions, report delivery and
    recording."""


class CallList(BaseModel):
    calls: list[CallOut]
    next_cursor: str | None


class ContinueResult(BaseModel):
    call_id: str
    transcript: str


class Forgotten(BaseModel):
    caller: str
    forgotten: bool = Field(description="False when nothing was remembered about this caller")


def _call_out(record: CallRecord, transcript: list[TranscriptEntry] | None = None) -> CallOut:
    data: dict[str, Any] = record.to_json()
    if transcript is not None:
        data["transcript"] = [t.to_json() for t in transcript]
    return CallOut.model_validate(data)


def problem(
    status: int, title: str, detail: str | None = None, *, rule: str | None = None
) -> JSONResponse:
    body = Problem(title=title, status=status, detail=detail or None, rule=rule)
    return JSONResponse(
        body.model_dump(exclude_none=True), status_code=status, media_type=PROBLEM_JSON
    )


# ----------------------------------------------------------------------------- dependencies


async def authorize(request: Request) -> None:
    token: str | None = request.app.state.token
    if token is None:
        return
    header = request.headers.get("authorization", "")
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.encode(), token.encode()):
        raise _Unauthorized


def current_manager(request: Request) -> CallManager:
    manager: CallManager = request.app.state.get_manager()
    return manager


def requester(
    request: Request,
    x_voicecall_client: Annotated[
        Surface,
        Header(description="Which client asks (for the audit trail)"),
    ] = Surface.API,
) -> Requester:
    """Who asks: the client surface and the fingerprint of the token that authenticated."""
    return Requester(
        surface=x_voicecall_client.value,
        token_fingerprint=request.app.state.token_fingerprint,
    )


Auth = Annotated[None, Depends(authorize)]
Manager = Annotated[CallManager, Depends(current_manager)]
Who = Annotated[Requester, Depends(requester)]


async def call_id_param(
    _: Auth,  # first: an unauthorized client learns nothing about which ids exist
    m: Manager,
    call_id: Annotated[
        str, Path(description="The call id, or a unique prefix of at least 6 characters")
    ],
) -> str:
    """The full call id a path's ``{call_id}`` names (see :mod:`voicecall.calls.call_ids`)."""
    return await resolve_call_id(m.store, call_id)


CallId = Annotated[str, Depends(call_id_param)]

# ----------------------------------------------------------------------------- app


def build_api(settings: Settings, get_manager: Any) -> FastAPI:
    """Build the control API. ``get_manager()`` returns the running :class:`CallManager`."""
    api = FastAPI(
        title="voicecall control API",
        version=__version__,
        description="Place, steer and watch phone calls. Errors are RFC 9457 problem+json.",
        openapi_url=OPENAPI_PATH,
        docs_url=DOCS_PATH,
        redoc_url=None,
        swagger_ui_oauth2_redirect_url=None,
    )
    token = settings.api.token.get_secret_value() if settings.api.token else None
    api.state.token = token
    api.state.token_fingerprint = token_fingerprint(token)
    api.state.get_manager = get_manager
    api.add_middleware(
        ApiGuard,
        token=token,
        public_paths=PUBLIC_PATHS,
        routes=api.router.routes,
        query_names=lambda: query_names(api),
    )
    install_openapi(api, public_paths=PUBLIC_PATHS)

    @api.exception_handler(VoicecallError)
    async def _voicecall_error(request: Request, exc: VoicecallError) -> JSONResponse:
        if exc.http_status >= 500:
            # clients are told to look in the server log for these: say what failed there
            log.error(
                "%s %s failed (%d %s): %s",
                request.method,
                request.url.path,
                exc.http_status,
                type(exc).__name__,
                exc,
                extra={"event": "api_error", "status": exc.http_status},
            )
        rule = getattr(exc, "rule", None)
        return problem(exc.http_status, type(exc).__name__, str(exc), rule=rule)

    @api.exception_handler(_Unauthorized)
    async def _unauth(request: Request, exc: _Unauthorized) -> JSONResponse:
        resp = problem(401, "Unauthorized", "a valid bearer token (api.token) is required")
        resp.headers["www-authenticate"] = "Bearer"
        return resp

    @api.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        if errors and errors[0].get("type") == "json_invalid":  # syntax, not content: 400
            why = errors[0].get("ctx", {}).get("error", "invalid")
            return problem(400, "Malformed request", f"body: not valid JSON ({why})")
        lines = []
        for err in errors:
            loc = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
            lines.append(f"{loc}: {err.get('msg')}" if loc else str(err.get("msg")))
        return problem(422, "Invalid request", "; ".join(lines))

    @api.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        resp = problem(exc.status_code, str(exc.detail))
        resp.headers.update(exc.headers or {})
        if exc.status_code == 405:  # every method of the path, not only the first route's
            resp.headers["allow"] = ", ".join(allowed_methods(api.router.routes, request.scope))
        return resp

    @api.post(
        "/api/calls",
        status_code=201,
        response_model=CallCreated,
        responses=problems(400, 403, 415, 422, 429, 502),
    )
    async def place_call(body: PlaceCall, _: Auth, m: Manager, who: Who) -> CallCreated:
        """Place a call. The number must pass the outbound policy (403/429 naming the rule)."""
        mode = body.mode or ("task" if body.task is not None else None)
        record = await m.place_call(
            to=body.to,
            message=body.message,
            mode=mode,
            request=body.call_request(record=body.record),
            requester=who,
        )
        return CallCreated(call_id=record.call_id, status=record.state.value)

    @api.get("/api/calls", response_model=CallList, responses=problems(422))
    async def list_calls(
        _: Auth,
        m: Manager,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
        cursor: str | None = None,
        active: bool | None = None,
    ) -> CallList:
        page = await m.list_calls(limit=limit, cursor=cursor, active=active)
        return CallList(calls=[_call_out(c) for c in page.calls], next_cursor=page.next_cursor)

    @api.get(
        "/api/calls/{call_id}",
        response_model=CallDetail,
        response_model_by_alias=True,
        responses=problems(404, 409, 422),
    )
    async def get_call(
        call_id: CallId,
        _: Auth,
        m: Manager,
        wait: Annotated[
            float,
            Query(
                ge=0,
                le=task_api.MAX_WAIT_SECONDS,
                description="Wait up to this many seconds for the call to end with its outcome "
                "final, or for a question to the owner (see `questions`)",
            ),
        ] = 0,
        questions: Annotated[
            bool, Query(description="with wait: also answer when a question waits")
        ] = True,
    ) -> CallDetail:
        if wait > 0:
            await m.tasks.wait(call_id, wait, questions=questions)
        record = await m.get_call(call_id)
        detail = await task_api.call_detail(m, record, await m.transcript(call_id))
        return CallDetail.model_validate(detail)

    @api.post(
        "/api/calls/{call_id}/speak",
        response_model=CallOut,
        response_model_by_alias=True,
        responses=problems(400, 404, 409, 415, 422, 502),
    )
    async def speak(call_id: CallId, body: SayMessage, _: Auth, m: Manager) -> CallOut:
        return _call_out(await m.speak(call_id, body.message))

    @api.post(
        "/api/calls/{call_id}/continue",
        response_model=ContinueResult,
        responses=problems(400, 404, 409, 415, 422, 502, 504),
    )
    async def continue_call(
        call_id: CallId, body: ContinueCall, _: Auth, m: Manager
    ) -> ContinueResult:
        text = await m.continue_call(call_id, body.message, wait_seconds=body.timeout_seconds)
        return ContinueResult(call_id=call_id, transcript=text)

    @api.post(
        "/api/calls/{call_id}/end",
        response_model=CallOut,
        response_model_by_alias=True,
        responses=problems(400, 404, 409, 415, 422, 502),
    )
    async def end_call(
        call_id: CallId, _: Auth, m: Manager, body: EndCall | None = None
    ) -> CallOut:
        return _call_out(await m.end_call(call_id, message=body.message if body else None))

    @api.post(
        "/api/calls/{call_id}/answer",
        response_model=task_api.Answered,
        responses=problems(400, 404, 409, 415, 422),
    )
    async def answer(
        call_id: CallId, body: task_api.Answer, _: Auth, m: Manager
    ) -> task_api.Answered:
        """The owner's answer to the question the call's agent asked (409 if none waits)."""
        settled = await m.tasks.answer(call_id, body.answer)
        return task_api.Answered(
            call_id=call_id, seq=settled.seq, question=settled.question, answer=settled.answer
        )

    @api.delete("/api/callers/{number}/memory", response_model=Forgotten, responses=problems(422))
    async def forget_caller(
        number: Annotated[
            str, Path(max_length=16, pattern=None, json_schema_extra={"pattern": E164_PATTERN})
        ],
        _: Auth,
        m: Manager,
    ) -> Forgotten:
        """Erase the responder's memory of a caller (summaries of past calls)."""
        return Forgotten(caller=number, forgotten=await m.forget_caller(number))

    @api.get(
        "/api/events",
        response_class=StreamingResponse,
        responses=problems(success={200: {"content": {"text/event-stream": {}}}}),
    )
    async def events(request: Request, _: Auth, m: Manager) -> StreamingResponse:
        """Server-sent events: call.created / call.updated / call.ended / transcript /
        turn.latency (a bot reply's latency record, once it was spoken)."""

        async def stream() -> AsyncIterator[bytes]:
            async with m.bus.subscribe() as queue:
                yield b": connected\n\n"
                while True:
                    try:
                        item = await asyncio.wait_for(queue.get(), SSE_KEEPALIVE_SECONDS)
                    except TimeoutError:
                        if await request.is_disconnected():
                            return
                        yield b": keepalive\n\n"
                        continue
                    data = json.dumps(item, separators=(",", ":"))
                    yield f"event: {item.get('type', 'message')}\ndata: {data}\n\n".encode()

        return StreamingResponse(
            stream(),
            media_type="text/event-stream",
            headers={"cache-control": "no-store", "x-accel-buffering": "no"},
        )

    add_policy_routes(api, authorize)
    recording_api.add_recording_routes(api, call_id_param)
    add_telephony_routes(
        api,
        call_id_dep=call_id_param,
        auth=authorize,
        manager=current_manager,
        requester=requester,
        call_out=_call_out,
        call_model=CallOut,
    )
    add_latency_routes(api, authorize)
    return api


class _Unauthorized(Exception):
    pass
