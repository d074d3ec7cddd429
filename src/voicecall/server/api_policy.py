"""Control API routes of the outbound policy: the do-not-call list and the audit trail.

``POST /api/blocked/{number}`` (201 new, 200 already listed), ``DELETE /api/blocked/{number}``
(404 when it was not listed), ``GET /api/blocked``, ``GET /api/audit?limit=&before=``.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, FastAPI, Path, Query, Request, Response
from pydantic import BaseModel, Field

from voicecall.calls.manager import CallManager
from voicecall.calls.store.base import AuditEntry, BlockedNumber
from voicecall.errors import VoicecallError
from voicecall.phone import E164_PATTERN
from voicecall.server.api_docs import problems
from voicecall.textrules import NoteText

NumberPath = Annotated[
    str,
    Path(
        max_length=16,
        json_schema_extra={"pattern": E164_PATTERN},
        description="E.164 number exactly as written, e.g. +14155550100",
        examples=["+14155550100"],
    ),
]


class BlockBody(BaseModel):
    reason: NoteText | None = Field(None, description="Why the number must not be called")


class BlockedOut(BaseModel):
    number: str
    reason: str | None
    created_at: float


class BlockedList(BaseModel):
    blocked: list[BlockedOut]


class Unblocked(BaseModel):
    number: str
    unblocked: bool


class AuditOut(BaseModel):
    id: int
    at: float
    number: str
    surface: str = Field(description="api, cli, mcp or python (X-Voicecall-Client)")
    token_fingerprint: str | None = Field(
        description="Short non-reversible fingerprint of the API token used (never the token)"
    )
    outcome: str = Field(description="placed or refused")
    call_id: str | None
    rule: str | None = Field(description="The rule that refused the call")
    detail: str | None


class AuditPage(BaseModel):
    entries: list[AuditOut]
    next_before: int | None = Field(description="Pass as `before` for the next (older) page")


class NotBlocked(VoicecallError):
    http_status = 404


def _blocked(entry: BlockedNumber) -> BlockedOut:
    return BlockedOut(number=entry.number, reason=entry.reason, created_at=entry.created_at)


def _audit(entry: AuditEntry) -> AuditOut:
    data: dict[str, Any] = {k: getattr(entry, k) for k in AuditEntry.__slots__}
    return AuditOut.model_validate(data)


def _manager(request: Request) -> CallManager:
    manager: CallManager = request.app.state.get_manager()
    return manager


Manager = Annotated[CallManager, Depends(_manager)]


def add_policy_routes(router: FastAPI, auth: Any) -> None:
    """Add the routes to the API, behind its auth dependency (directly, not as an included
    router, so the API's front door and ``Allow`` computation see plain routes)."""
    deps = [Depends(auth)]

    @router.post(
        "/api/blocked/{number}",
        response_model=BlockedOut,
        status_code=201,
        responses=problems(
            400, 415, 422, success={200: {"model": BlockedOut, "description": "Already listed"}}
        ),
        dependencies=deps,
    )
    async def block(
        number: NumberPath, m: Manager, response: Response, body: BlockBody | None = None
    ) -> BlockedOut:
        """Put a number on the do-not-call list: it is never called until unblocked."""
        entry, created = await m.outbound.block(number, reason=body.reason if body else None)
        if not created:
            response.status_code = 200
        return _blocked(entry)

    @router.delete(
        "/api/blocked/{number}",
        response_model=Unblocked,
        responses=problems(404, 422),
        dependencies=deps,
    )
    async def unblock(number: NumberPath, m: Manager) -> Unblocked:
        """Take a number off the do-not-call list (404 if it was not on it)."""
        if not await m.outbound.unblock(number):
            raise NotBlocked(f"number: {number} is not on the do-not-call list")
        return Unblocked(number=number, unblocked=True)

    @router.get("/api/blocked", response_model=BlockedList, responses=problems(), dependencies=deps)
    async def blocked(m: Manager) -> BlockedList:
        """The do-not-call list, oldest entry first (``outbound.blocked_numbers`` is in the
        configuration, not here)."""
        return BlockedList(blocked=[_blocked(e) for e in await m.outbound.blocked()])

    @router.get("/api/audit", response_model=AuditPage, responses=problems(422), dependencies=deps)
    async def audit(
        m: Manager,
        limit: Annotated[int, Query(ge=1, le=500)] = 50,
        before: Annotated[int | None, Query(ge=1, le=2**62)] = None,
    ) -> AuditPage:
        """Placed and refused outbound calls, newest first."""
        entries = await m.outbound.audit(limit=limit, before=before)
        last = entries[-1].id if len(entries) == limit and entries else None
        return AuditPage(entries=[_audit(e) for e in entries], next_before=last)
