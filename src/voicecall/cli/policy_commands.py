"""CLI commands of the outbound policy: ``voicecall block``, ``unblock``, ``blocked``, ``audit``.

Registered on the main app by :func:`register` (``cli/main.py`` calls it once). Like every
command but ``serve``, they are clients of the running server's control API.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from rich.table import Table

from voicecall.agent.client import Client
from voicecall.cli.common import ConfigOpt, UrlOpt, fail, out, settings_from
from voicecall.errors import VoicecallError

T = TypeVar("T")

NumberArg = Annotated[str, typer.Argument(help="E.164 number, e.g. +14155550123")]


def _run(make: Callable[[Client], Awaitable[T]], config: Path | None, url: str | None) -> T:
    async def main() -> T:
        async with Client.from_settings(settings_from(config), url, surface="cli") as client:
            return await make(client)

    try:
        return asyncio.run(main())
    except VoicecallError as exc:
        raise fail([str(exc)], 1) from None
    except KeyboardInterrupt:
        raise typer.Exit(130) from None


def _when(ts: float | None) -> str:
    return datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S") if ts else "-"


def block(
    number: NumberArg,
    reason: Annotated[str | None, typer.Option("--reason", help="Why (kept with it)")] = None,
    config: ConfigOpt = None,
    url: UrlOpt = None,
) -> None:
    """Put a number on the do-not-call list: the server never calls it until unblocked."""
    entry = _run(lambda c: c.block(number, reason), config, url)
    why = f" ({entry.reason})" if entry.reason else ""
    out.print(f"blocked {entry.number}{why} since {_when(entry.created_at)}", highlight=False)


def unblock(number: NumberArg, config: ConfigOpt = None, url: UrlOpt = None) -> None:
    """Take a number off the do-not-call list."""
    if not _run(lambda c: c.unblock(number), config, url):
        raise fail([f"{number} is not on the do-not-call list"], 1)
    out.print(f"unblocked {number}", highlight=False)


def blocked(config: ConfigOpt = None, url: UrlOpt = None) -> None:
    """List the do-not-call list (outbound.blocked_numbers in the config come on top)."""
    entries = _run(lambda c: c.blocked(), config, url)
    if not entries:
        out.print("the do-not-call list is empty")
        return
    table = Table("number", "since", "reason")
    for e in entries:
        table.add_row(e.number, _when(e.created_at), e.reason or "")
    out.print(table)


def audit(
    limit: Annotated[int, typer.Option(min=1, max=500, help="How many, newest first")] = 20,
    before: Annotated[int | None, typer.Option(min=1, help="Entries older than this id")] = None,
    config: ConfigOpt = None,
    url: UrlOpt = None,
) -> None:
    """Show the audit trail: every placed or refused outbound call, who asked, and why not."""
    entries, more = _run(lambda c: c.audit(limit=limit, before=before), config, url)
    if not entries:
        out.print("the audit trail is empty")
        return
    table = Table("id", "when", "number", "client", "token", "outcome", "call id / rule")
    for e in entries:
        outcome = "[green]placed[/green]" if e["outcome"] == "placed" else "[red]refused[/red]"
        table.add_row(
            str(e["id"]),
            _when(e["at"]),
            e["number"],
            e["surface"],
            e.get("token_fingerprint") or "-",
            outcome,
            e.get("call_id") or e.get("rule") or "",
        )
    out.print(table)
    for e in entries:
        if e["outcome"] == "refused" and e.get("detail"):
            out.print(f"  {e['id']}: {e['detail']}", highlight=False)
    if more:
        out.print(f"older entries: voicecall audit --before {more}")


def register(app: typer.Typer) -> None:
    """Add ``block``, ``unblock``, ``blocked`` and ``audit`` to the ``voicecall`` app."""
    app.command("block")(block)
    app.command("unblock")(unblock)
    app.command("blocked")(blocked)
    app.command("audit")(audit)
