"""The control API's front door (raw ASGI, in front of FastAPI's routing and body parsing).

1. **Authenticate before anything is parsed.** With ``api.token`` set, every request under
   ``/api`` without ``Authorization: Bearer <api.token>`` gets 401 first: never 400, 404, 405,
   415 or 422, which would tell an unauthenticated client about routes, methods and schemas.
   Only the OpenAPI document and its docs page stay public (they hold no data or secret, and a
   client needs the document to know how to authenticate).
2. **Bodies must be JSON.** A request with a body to an operation that takes one gets 415 unless
   its ``Content-Type`` is ``application/json`` (or ``…+json``), instead of a confusing 422 about
   a "dictionary". Requests whose method the route does not allow fall through to the 405.
3. **No unknown query parameters.** ``?actve=true`` is a 422 naming the parameter, not silently
   ignored (the operation's parameters come from the OpenAPI document).
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any
from urllib.parse import parse_qsl

from fastapi.routing import APIRoute
from starlette.routing import Match

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

PROBLEM_JSON = "application/problem+json"
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def problem_bytes(status: int, title: str, detail: str) -> bytes:
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail}
    return json.dumps(body, separators=(",", ":")).encode()


async def send_problem(
    send: Send,
    status: int,
    title: str,
    detail: str,
    headers: Iterable[tuple[bytes, bytes]] = (),
) -> None:
    body = problem_bytes(status, title, detail)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", PROBLEM_JSON.encode()),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return bytes(value)
    return None


def bearer_ok(scope: Scope, token: bytes) -> bool:
    given = _header(scope, b"authorization") or b""
    scheme, _, credential = given.partition(b" ")
    return scheme.lower() == b"bearer" and hmac.compare_digest(credential.strip(), token)


def _is_json(content_type: bytes | None) -> bool:
    if content_type is None:
        return False
    media = content_type.split(b";", 1)[0].strip().lower()
    return media == b"application/json" or (
        media.startswith(b"application/") and media.endswith(b"+json")
    )


def _has_body(scope: Scope) -> bool:
    length = _header(scope, b"content-length")
    if length is not None:
        return length.strip() not in (b"", b"0")
    return _header(scope, b"transfer-encoding") is not None


class ApiGuard:
    """ASGI middleware for the FastAPI control API (see the module docstring)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        token: str | None,
        public_paths: Iterable[str],
        routes: list[Any],
        query_names: Callable[[], dict[tuple[str, str], frozenset[str]]],
    ) -> None:
        self.app = app
        self._token = token.encode() if token else None
        self._public = frozenset(public_paths)
        self._routes = routes  # the router's own list: routes added later are seen too
        self._query_names = query_names
        self._known: dict[tuple[str, str], frozenset[str]] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        if path in self._public:
            await self.app(scope, receive, send)
            return
        if self._token is not None and not bearer_ok(scope, self._token):
            await send_problem(
                send,
                401,
                "Unauthorized",
                "a valid bearer token (api.token) is required",
                [(b"www-authenticate", b"Bearer")],
            )
            return
        route = self._route(scope)
        if route is None:  # 404 or 405: FastAPI answers
            await self.app(scope, receive, send)
            return
        method = scope.get("method", "GET")
        if (
            method in _BODY_METHODS
            and _has_body(scope)
            and route.body_field is not None
            and not _is_json(_header(scope, b"content-type"))
        ):
            await send_problem(
                send,
                415,
                "Unsupported Media Type",
                "the request body must be JSON (Content-Type: application/json)",
                [(b"accept-post", b"application/json")],
            )
            return
        unknown = self._unknown_query(scope, method, route.path)
        if unknown is not None:
            await send_problem(send, 422, "Invalid request", unknown)
            return
        await self.app(scope, receive, send)

    def _unknown_query(self, scope: Scope, method: str, path: str) -> str | None:
        raw = scope.get("query_string", b"")
        if not raw:
            return None
        if self._known is None:
            self._known = self._query_names()
        known = self._known.get((method.upper(), path), frozenset())
        for name, _ in parse_qsl(raw.decode("latin-1"), keep_blank_values=True):
            if name not in known:
                allowed = ", ".join(sorted(known)) or "none"
                return f"query.{name}: unknown parameter (this operation takes: {allowed})"
        return None

    def _route(self, scope: Scope) -> APIRoute | None:
        for route in self._routes:
            if isinstance(route, APIRoute) and route.matches(scope)[0] is Match.FULL:
                return route
        return None


def allowed_methods(routes: Iterable[Any], scope: Scope) -> list[str]:
    """Every method some route serves at this path (for the ``Allow`` header of a 405)."""
    methods: set[str] = set()
    for route in routes:
        match, _ = route.matches(scope)
        if match is not Match.NONE and getattr(route, "methods", None):
            methods.update(route.methods)
    return sorted(methods)
