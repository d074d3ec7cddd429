"""CLI commands for agents: ``voicecall mcp`` and ``voicecall expose``.

Registered on the main app by :func:`register` (``cli/main.py`` calls it once).
"""

from __future__ import annotations

import asyncio
import sys
from typing import Annotated, Literal

import typer

from voicecall.cli.common import ConfigOpt, UrlOpt, err, fail, out, settings_from
from voicecall.errors import VoicecallError


def mcp(
    transport: Annotated[
        str, typer.Option(help="stdio (spawned by the agent) or http (streamable HTTP)")
    ] = "stdio",
    log_level: Annotated[
        str, typer.Option(help="debug, info, warning, error (stderr)")
    ] = "warning",
    host: Annotated[str, typer.Option(help="http: address to bind")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="http: port to listen on", min=0, max=65535)] = 3336,
    path: Annotated[str, typer.Option(help="http: endpoint path")] = "/mcp",
    config: ConfigOpt = None,
    url: UrlOpt = None,
) -> None:
    """Run the MCP server for agents (over the running server's control API).

    Tools: initiate_call, continue_call, speak_to_user, end_call, get_status, list_calls,
    block_number.
    """
    from voicecall import logs
    from voicecall.agent.client import Client
    from voicecall.agent.mcp import run_stdio, serve_http

    if transport not in ("stdio", "http"):
        raise fail([f"--transport: {transport!r} is not stdio or http"])
    settings = settings_from(config)
    token = settings.api.token.get_secret_value() if settings.api.token else None
    logs.configure(log_level)  # stderr only: stdout belongs to the MCP stdio transport
    logs.register_secret(token)

    async def main() -> None:
        async with Client.from_settings(settings, url, timeout=60.0, surface="mcp") as client:
            if transport == "stdio":
                await run_stdio(client)
            else:
                await serve_http(
                    client,
                    host=host,
                    port=port,
                    path=path,
                    token=token,
                    started=lambda u: err.print(f"MCP (streamable HTTP) at {u}", highlight=False),
                )

    try:
        asyncio.run(main())
    except VoicecallError as exc:
        raise fail([str(exc)], 1) from None
    except KeyboardInterrupt:
        raise typer.Exit(130) from None


def expose(
    tool: Annotated[
        str, typer.Option(help="auto (tailscale, then ngrok), tailscale-funnel, ngrok")
    ] = "auto",
    port: Annotated[
        int | None, typer.Option(help="Local port to expose (default: serve.port)")
    ] = None,
    config: ConfigOpt = None,
) -> None:
    """Make the local server reachable from Twilio (Tailscale Funnel or ngrok).

    Prints the public_url to configure, with warnings about anything that would break
    signatures.
    """
    from voicecall.agent.expose import ExposeError, expose_and_check

    settings = settings_from(config)
    choice: Literal["auto", "tailscale", "ngrok"]
    if tool in ("auto",):
        choice = "auto"
    elif tool in ("tailscale", "tailscale-funnel", "funnel"):
        choice = "tailscale"
    elif tool == "ngrok":
        choice = "ngrok"
    else:
        raise fail([f"--tool: {tool!r} is not auto, tailscale-funnel or ngrok"])
    try:
        code = asyncio.run(
            expose_and_check(settings, tool=choice, port=port, out=out, err=err, wait=True)
        )
    except ExposeError as exc:
        raise fail([str(exc)], 1) from None
    except KeyboardInterrupt:
        raise typer.Exit(0) from None
    if code:
        raise typer.Exit(code)


def register(app: typer.Typer) -> None:
    """Add ``mcp`` and ``expose`` to the ``voicecall`` app."""
    app.command("mcp")(mcp)
    app.command("expose")(expose)


if __name__ == "__main__":  # pragma: no cover - `python -m voicecall.cli.agent_commands`
    _app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    register(_app)
    _app(sys.argv[1:])
