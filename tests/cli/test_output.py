"""What the CLI shows for server events, and its JSON output."""

from __future__ import annotations

import json

import pytest

from voicecall.cli.output import event_line, print_json

CALL = {"call_id": "0123456789abcdef" * 2, "direction": "outbound", "to": "+14155550123"}


@pytest.mark.parametrize(
    ("event", "line"),
    [
        (
            {"type": "call.created", "call": {**CALL, "mode": "notify", "state": "initiated"}},
            "0123456789ab [bold]call[/bold] outbound to +14155550123 (notify)",
        ),
        (
            {"type": "call.updated", "call": {**CALL, "state": "ringing"}},
            "0123456789ab [dim]ringing[/dim]",
        ),
        (
            {
                "type": "call.ended",
                "call": {**CALL, "state": "failed", "end_reason": "failed", "error": "no [route]"},
            },
            "0123456789ab [bold]ended[/bold] failed: no \\[route]",
        ),
        (
            {
                "type": "transcript",
                "call_id": CALL["call_id"],
                "speaker": "user",
                "text": "hi [x]",
                "seq": 2,
            },
            "0123456789ab [green]user[/green] hi \\[x]",
        ),
        (
            {"type": "stream.detached", "call_id": CALL["call_id"], "reason": "closed"},
            "0123456789ab [dim]media stream detached (closed)[/dim]",
        ),
        ({"type": "transcript.partial", "call_id": CALL["call_id"], "text": "h"}, None),
        ({"type": "call.updated"}, None),
    ],
)
def test_event_lines(event: dict[str, object], line: str | None) -> None:
    assert event_line(event) == line


def test_print_json_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    print_json({"b": 1, "a": "é"})
    out = capsys.readouterr().out
    assert out == '{"a": "é", "b": 1}\n' and json.loads(out) == {"a": "é", "b": 1}


def test_tail_shows_how_fast_each_reply_came() -> None:
    from voicecall.cli.output import event_line

    rec = {
        "voice_to_voice_ms": 812.4,
        "end_of_turn_ms": 400.0,
        "stt_ms": 300.2,
        "responder_ms": 5.0,
        "tts_ms": 90.0,
        "overhead_ms": 17.2,
    }
    line = event_line({"type": "turn.latency", "call_id": "c" * 32, "seq": 4, "latency": rec})
    assert line is not None
    assert "answered in 812 ms" in line and "stt 300" in line and "ours 17" in line
    assert "(line 4)" in line and line.startswith("c" * 12 + " ")
    assert event_line({"type": "turn.latency", "call_id": "c", "latency": None}) is None
