"""How the CLI shows calls: JSON documents for scripts, tables and lines for people.

JSON output (``--json``) is the control API's own documents (``GET /api/calls/{id}``,
``GET /api/calls``), so the keys are the API's and stay stable; it is the only thing written to
stdout. Tables show each call id cut to the shortest prefix (at least 12 characters) that is
unique in the table; any unique prefix of at least 6 characters is accepted back.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from voicecall.agent.client import CallInfo
from voicecall.calls.call_ids import unique_prefix_length

__all__ = [
    "call_table",
    "event_line",
    "latency_summary",
    "print_call",
    "print_json",
    "transcript_line",
    "when",
]


def print_json(doc: Any) -> None:
    """One JSON document on stdout, nothing else (no colours, no wrapping)."""
    import sys

    sys.stdout.write(json.dumps(doc, ensure_ascii=False, sort_keys=True) + "\n")
    sys.stdout.flush()


def when(ts: float | None) -> str:
    return datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S") if ts else "-"


def print_call(console: Console, info: CallInfo) -> None:
    table = Table(show_header=False, box=None)
    for key in (
        "call_id",
        "state",
        "end_reason",
        "direction",
        "mode",
        "to",
        "from",
        "provider_call_id",
        "error",
    ):
        value = info.raw.get(key)
        if value is not None:
            table.add_row(f"[bold]{key}[/bold]", escape(str(value)))
    table.add_row("[bold]created[/bold]", when(info.raw.get("created_at")))
    table.add_row("[bold]ended[/bold]", when(info.raw.get("ended_at")))
    console.print(table)
    if info.transcript:
        console.print("[bold]transcript[/bold]")
        for line in info.transcript:
            console.print("  " + transcript_line(line), highlight=False)


def call_table(items: list[CallInfo]) -> Table:
    """Calls as a table that fits 80 columns: id prefix, time, who, mode, state (reason)."""
    width = unique_prefix_length([i.call_id for i in items])
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("call id", no_wrap=True)
    table.add_column("created", no_wrap=True)
    table.add_column("to / from", no_wrap=True)
    table.add_column("mode")
    table.add_column("state")
    for info in items:
        if info.direction == "outbound":
            who = f"→ {info.to or '?'}"
        else:
            who = f"← {info.from_ or 'anonymous'}"
        state = info.state
        if info.end_reason and info.end_reason != info.state:
            state += f" ({info.end_reason})"
        table.add_row(
            info.call_id[:width], short_when(info.raw.get("created_at")), who, info.mode, state
        )
    return table


def short_when(ts: float | None) -> str:
    return datetime.fromtimestamp(ts).strftime("%m-%d %H:%M:%S") if ts else "-"


def transcript_line(line: Mapping[str, Any], *, prefix: str = "") -> str:
    """``bot  text`` / ``user text`` with rich markup (the text escaped)."""
    who = "[cyan]bot [/cyan]" if line.get("speaker") == "bot" else "[green]user[/green]"
    rec = line.get("latency")
    v2v = rec.get("voice_to_voice_ms") if isinstance(rec, Mapping) else None
    after = f" [dim]({v2v:.0f} ms)[/dim]" if isinstance(v2v, int | float) else ""
    return f"{prefix}{who} {escape(str(line.get('text', '')))}{after}"


def latency_summary(rec: Mapping[str, Any]) -> str:
    """``answered in 812 ms (end of turn 400 · stt 300 · responder 5 · tts 90 · ours 17)``."""

    def ms(key: str) -> str:
        value = rec.get(key)
        return f"{value:.0f}" if isinstance(value, int | float) else "?"

    return (
        f"answered in {ms('voice_to_voice_ms')} ms (end of turn {ms('end_of_turn_ms')} · "
        f"stt {ms('stt_ms')} · responder {ms('responder_ms')} · tts {ms('tts_ms')} · "
        f"ours {ms('overhead_ms')})"
    )


def event_line(event: Mapping[str, Any], *, id_width: int = 12) -> str | None:
    """One line for a server event (``/api/events``), or ``None`` for events not shown."""
    kind = event.get("type", "?")
    if kind == "transcript":
        call_id = str(event.get("call_id", ""))[:id_width]
        return transcript_line(event, prefix=f"{call_id} ")
    if kind == "turn.latency":
        call_id = str(event.get("call_id", ""))[:id_width]
        rec = event.get("latency")
        if not isinstance(rec, Mapping):
            return None
        return f"{call_id} [dim]{latency_summary(rec)} (line {event.get('seq')})[/dim]"
    if kind == "bot.interrupted":
        call_id = str(event.get("call_id", ""))[:id_width]
        return f"{call_id} [dim]bot cut off by the caller[/dim]"
    if kind in ("stream.attached", "stream.detached"):
        call_id = str(event.get("call_id", ""))[:id_width]
        why = f" ({escape(str(event['reason']))})" if event.get("reason") else ""
        return f"{call_id} [dim]media stream {kind.split('.')[1]}{why}[/dim]"
    call = event.get("call")
    if not isinstance(call, Mapping):
        return None
    call_id = str(call.get("call_id", ""))[:id_width]
    state = call.get("state", "")
    if kind == "call.created":
        who = (
            f"to {call.get('to')}"
            if call.get("direction") == "outbound"
            else f"from {call.get('from') or 'anonymous'}"
        )
        return f"{call_id} [bold]call[/bold] {call.get('direction')} {who} ({call.get('mode')})"
    if kind == "call.ended":
        reason = call.get("end_reason") or state
        extra = f": {escape(str(call['error']))}" if call.get("error") else ""
        return f"{call_id} [bold]ended[/bold] {reason}{extra}"
    if kind == "call.rejected":
        return f"{call_id} [bold]rejected[/bold] inbound from {call.get('from') or 'anonymous'}"
    return f"{call_id} [dim]{state}[/dim]"
