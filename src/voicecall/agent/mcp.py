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

The server and its tools are built in :mod:`voicecall.agent.mcp_server` (argument types and
result shapes shared by the tools in :mod:`voicecall.agent.mcp_common`); this module runs it on a
transport and re-exports :func:`build_server`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import socket
from collections.abc import Callable
from typing import Any

from voicecall.agent.client import Client
from voicecall.agent.mcp_common import MAX_WAIT_SECONDS
from voicecall.agent.mcp_server import END_WAIT_SECONDS, INSTRUCTIONS, build_server
from voicecall.errors import VoicecallError
from voicecall.netaddr import is_loopback

__all__ = [
    "DEFAULT_HTTP_PATH",
    "DEFAULT_HTTP_PORT",
    "END_WAIT_SECONDS",
    "INSTRUCTIONS",
    "MAX_WAIT_SECONDS",
    "BearerGuard",
    "build_server",
    "http_app",
    "run_stdio",
    "serve_http",
]

log = logging.getLogger("voicecall.mcp")

DEFAULT_HTTP_PORT = 3336
DEFAULT_HTTP_PATH = "/mcp"


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
