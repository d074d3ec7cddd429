"""CLI for the telephony moves: ``voicecall dtmf ID DIGITS`` and ``voicecall transfer ID TO``."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import typer

from voicecall.agent.client import Client
from voicecall.cli.common import ConfigOpt, JsonOpt, UrlOpt, fail, out, settings_from
from voicecall.errors import VoicecallError

T = TypeVar("T")


def _run(make: Callable[[Client], Awaitable[T]], config: Path | None, url: str | None) -> T:
    async def main() -> T:
        async with Client.from_settings(settings_from(config), url, surface="cli") as client:
            return await make(client)

    try:
        return asyncio.run(main())
    except VoicecallError as exc:
        raise fail([str(exc)], 1) from None


def dtmf(
    call_id: Annotated[str, typer.Argument(help="The call id, or a unique prefix (6+)")],
    digits: Annotated[
        str,
        typer.Argument(help="Keys to press: 0-9, *, #, A-D; w waits 0.5 s (quote # and *)"),
    ],
    json_out: JsonOpt = False,
    config: ConfigOpt = None,
    url: UrlOpt = None,
) -> None:
    """Press keys on a live call (phone menus). In-band tones on a media stream, <Play digits>
    on other calls."""
    sent = _run(lambda c: c.dtmf(call_id, digits), config, url)
    if json_out:
        out.print_json(json.dumps(sent))
        return
    out.print(f"call {sent['call_id']}: pressed {sent['digits']} ({sent['via']})", highlight=False)


def transfer(
    call_id: Annotated[str, typer.Argument(help="The call id, or a unique prefix (6+)")],
    to: Annotated[str, typer.Argument(help="The number to transfer to, E.164 (+15551234567)")],
    mode: Annotated[
        str,
        typer.Option(
            "--mode",
            help="cold: hand the call over at once; warm: the number hears --summary first",
        ),
    ] = "cold",
    summary: Annotated[
        str | None,
        typer.Option("--summary", "-s", help="warm: what the number hears before it is connected"),
    ] = None,
    json_out: JsonOpt = False,
    config: ConfigOpt = None,
    url: UrlOpt = None,
) -> None:
    """Transfer a live call to another number (the outbound policy applies)."""
    if mode not in ("cold", "warm"):
        raise fail([f"--mode: {mode!r} is not cold or warm"])
    how: Literal["cold", "warm"] = "warm" if mode == "warm" else "cold"
    info = _run(lambda c: c.transfer(call_id, to, mode=how, summary=summary), config, url)
    doc: dict[str, Any] = {"call_id": info.call_id, "state": info.state, "transfer": info.transfer}
    if json_out:
        out.print_json(json.dumps(doc))
        return
    status = (info.transfer or {}).get("status", "?")
    out.print(f"call {info.call_id} {info.state}: transfer to {to} {status}", highlight=False)


def register(app: typer.Typer) -> None:
    """Add ``dtmf`` and ``transfer`` to the ``voicecall`` app."""
    app.command("dtmf")(dtmf)
    app.command("transfer")(transfer)
