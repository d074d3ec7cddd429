"""A call's telephony options (answering machines, hold), checked and kept in its metadata. Pure.

``POST /api/calls`` (and every client) may set ``machine_detection``, ``voicemail_message``,
``hold_detect`` and ``max_hold_seconds``; unset ones take the ``[voicemail]``/``[hold]``
defaults. They are stored in the call's metadata when it is placed, so a restart, a standby
and every decision read the same values from the record.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from voicecall.calls.model import CallRecord
from voicecall.config import Settings
from voicecall.errors import InvalidRequest
from voicecall.telephony.machine import MD_MESSAGE, MD_MODE, MachineDetection

__all__ = ["MD_HOLD", "MD_MAX_HOLD", "TelephonyOptions", "call_metadata", "hold_settings"]

MD_HOLD: Final = "hold_detect"  # "auto" | "off"
MD_MAX_HOLD: Final = "max_hold_seconds"
HOLD_DETECT: Final = ("auto", "off")
MAX_HOLD_LIMIT: Final = 4 * 3600.0


@dataclass(frozen=True, slots=True)
class TelephonyOptions:
    """What a placement asked (``None``: the configured default)."""

    machine_detection: str | None = None
    voicemail_message: str | None = None
    hold_detect: str | None = None
    max_hold_seconds: float | None = None


def call_metadata(options: TelephonyOptions | None, settings: Settings) -> dict[str, Any]:
    """The metadata a new outbound call stores for ``options``; :class:`InvalidRequest` (422)
    naming the field when a value is wrong or the values do not fit together."""
    options = options or TelephonyOptions()
    vm = settings.voicemail
    raw = (
        options.machine_detection if options.machine_detection is not None else vm.machine_detection
    )
    try:
        detection = MachineDetection(raw)
    except ValueError:
        raise InvalidRequest("machine_detection: must be one of off, detect, voicemail") from None
    md: dict[str, Any] = {}
    message = options.voicemail_message
    if message is not None:
        message = message.strip()
        if detection is not MachineDetection.VOICEMAIL:
            raise InvalidRequest("voicemail_message: needs machine_detection voicemail")
        if not message:
            raise InvalidRequest("voicemail_message: must not be empty")
        if len(message) > vm.max_message_chars:
            raise InvalidRequest(
                f"voicemail_message: longer than {vm.max_message_chars} characters"
            )
        md[MD_MESSAGE] = message
    if detection is not MachineDetection.OFF:
        md[MD_MODE] = detection.value
    hold = options.hold_detect
    if hold is not None:
        if hold not in HOLD_DETECT:
            raise InvalidRequest("hold_detect: must be auto or off")
        md[MD_HOLD] = hold
    seconds = options.max_hold_seconds
    if seconds is not None:
        if isinstance(seconds, bool) or not 0 < float(seconds) <= MAX_HOLD_LIMIT:
            raise InvalidRequest(f"max_hold_seconds: must be > 0 and at most {MAX_HOLD_LIMIT:.0f}")
        md[MD_MAX_HOLD] = float(seconds)
    return md


def hold_settings(record: CallRecord, settings: Settings) -> tuple[bool, float]:
    """``(detect, max_hold_seconds)`` of a call: its own values, else the configured ones."""
    detect = record.metadata.get(MD_HOLD, settings.hold.detect) == "auto"
    raw = record.metadata.get(MD_MAX_HOLD)
    seconds = float(raw) if isinstance(raw, int | float) else settings.hold.max_hold_seconds
    return detect, seconds
