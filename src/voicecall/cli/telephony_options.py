"""The ``voicecall call`` options for answering machines and hold (docs/telephony.md)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

MachineDetectionOpt = Annotated[
    str | None,
    typer.Option(
        "--machine-detection",
        help="Answering machines: off, detect (store answered_by) or voicemail (leave a "
        "message on a machine, then hang up; default: voicemail.machine_detection)",
    ),
]
VoicemailMessageOpt = Annotated[
    str | None,
    typer.Option(
        "--voicemail-message",
        help="With --machine-detection voicemail: the message left (default: --message; task "
        "calls: written from the task)",
    ),
]
HoldDetectOpt = Annotated[
    str | None,
    typer.Option(
        "--hold-detect",
        help="Streamed calls: auto (hold music/ringing is not a person; the bot stays silent) "
        "or off (default: hold.detect)",
    ),
]
MaxHoldOpt = Annotated[
    float | None,
    typer.Option(
        "--max-hold-seconds",
        min=0.1,
        help="The longest wait on hold before the call ends (default: hold.max_hold_seconds)",
    ),
]


def telephony_kwargs(
    machine_detection: str | None,
    voicemail_message: str | None,
    hold_detect: str | None,
    max_hold_seconds: float | None,
) -> dict[str, Any]:
    """The client keywords for the options given (the server checks the values: 422)."""
    given = {
        "machine_detection": machine_detection,
        "voicemail_message": voicemail_message,
        "hold_detect": hold_detect,
        "max_hold_seconds": max_hold_seconds,
    }
    return {k: v for k, v in given.items() if v is not None}
