"""``voicecall latency``: how long the bot took to answer, per stage (p50/p95), from the server.

Like every command but ``serve``, a client of the control API (``GET /api/latency``). The
figures and how they are measured: docs/realtime.md, "Measuring turns".
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Annotated, Any

import typer
from rich import box
from rich.table import Table

from voicecall.agent.client import Client
from voicecall.cli.common import ConfigOpt, JsonOpt, UrlOpt, fail, out, settings_from
from voicecall.cli.output import print_json, short_when
from voicecall.errors import VoicecallError
from voicecall.voice.latency import STAGES

LABELS = {
    "end_of_turn": "end of turn",
    "stt": "transcript (STT)",
    "responder": "responder",
    "tts": "TTS first audio",
    "overhead": "voicecall's own",
    "voice_to_voice": "voice to voice",
}


def stage_table(stages: Mapping[str, Mapping[str, Any]], *, title: str | None = None) -> Table:
    """p50/p95/max per stage (ms) from a ``stages`` summary (``GET /api/latency``)."""
    table = Table(title=title, box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("stage")
    for col in ("p50 ms", "p95 ms", "max ms", "n"):
        table.add_column(col, justify="right")
    for stage in STAGES:
        s = stages.get(stage)
        if s is None:
            continue
        name = f"[bold]{LABELS[stage]}[/bold]" if stage == "voice_to_voice" else LABELS[stage]
        table.add_row(
            name, f"{s['p50']:.0f}", f"{s['p95']:.0f}", f"{s['max']:.0f}", str(s["count"])
        )
    return table


def turns_table(turns: list[Mapping[str, Any]]) -> Table:
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("call id", no_wrap=True)
    table.add_column("line", justify="right")
    table.add_column("when", no_wrap=True)
    for stage in STAGES:
        table.add_column(
            {"voice_to_voice": "v2v", "end_of_turn": "eot"}.get(stage, stage), justify="right"
        )
    for t in turns:
        rec = t["latency"]
        table.add_row(
            str(t["call_id"])[:12],
            str(t["seq"]),
            short_when(t.get("at")),
            *(f"{rec[f'{s}_ms']:.0f}" for s in STAGES),
        )
    return table


def latency(
    call_id: Annotated[
        str | None,
        typer.Option("--call-id", help="Only this call (id or unique prefix of 6+ characters)"),
    ] = None,
    last: Annotated[
        int, typer.Option("--last", min=1, max=1000, help="How many of the newest bot replies")
    ] = 50,
    turns: Annotated[
        bool, typer.Option("--turns/--no-turns", help="Also list each reply's figures")
    ] = False,
    json_out: JsonOpt = False,
    config: ConfigOpt = None,
    url: UrlOpt = None,
) -> None:
    """Show how fast the bot answered: p50/p95 per stage of the newest replies (ms)."""

    async def main() -> dict[str, Any]:
        async with Client.from_settings(settings_from(config), url, surface="cli") as client:
            return await client.latency(call_id=call_id, last=last)

    try:
        doc = asyncio.run(main())
    except VoicecallError as exc:
        raise fail([str(exc)], 1) from None
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
    if json_out:
        print_json(doc)
        return
    if not doc["turns"]:
        out.print("no measured replies yet (bot replies on a media stream are measured)")
        return
    scope = f"call {call_id}" if call_id else "all calls"
    title = f"latency of the last {len(doc['turns'])} replies ({scope})"
    out.print(stage_table(doc["stages"], title=title))
    if turns:
        out.print(turns_table(doc["turns"]))


def register(app: typer.Typer) -> None:
    """Add ``latency`` to the ``voicecall`` app."""
    app.command("latency")(latency)
