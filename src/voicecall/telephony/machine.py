"""Answering machines, pure: a call's options, Twilio's ``AnsweredBy`` words, and what to do.

A call asks for ``machine_detection``: ``off`` (nothing), ``detect`` (Twilio AMD runs and the
call records ``answered_by``) or ``voicemail`` (on a machine the bot waits for the end of the
greeting, leaves ``voicemail_message`` and hangs up; the call ends ``voicemail``). What was
asked lives in the call's metadata (:mod:`voicecall.telephony.options`), so every decision
below is a function of the stored record plus what was heard.

:func:`decide` is the one rule. Its inputs: Twilio's verdict (``AnsweredBy`` of the async AMD
callback, or ``None`` while AMD runs) and, on a Media Stream, what our own
:class:`~voicecall.audio.beep.BeepDetector` found (a beep, or a long silence after a greeting).

==============================  ================================  ===========================
Twilio says                     we heard                          verdict
==============================  ================================  ===========================
nothing yet                     a beep after a greeting           LEAVE (a beep is a machine)
nothing yet                     silence / nothing                 WAIT
``human`` / ``unknown``         (anything)                        HUMAN (greet, go on)
``fax``                         (anything)                        HANG_UP
``machine_start``               a beep or a silence               LEAVE
``machine_start``               nothing yet                       WAIT (for the greeting's end)
``machine_end_*``               (anything)                        LEAVE
==============================  ================================  ===========================
"""

from __future__ import annotations

import enum
from typing import Final

from voicecall.calls.model import CallMode, CallRecord

__all__ = [
    "ANSWERED_BY",
    "MachineDetection",
    "Verdict",
    "decide",
    "is_machine",
    "voicemail_pending",
]

#: Twilio's ``AnsweredBy`` words (the async AMD callback and later status callbacks)
ANSWERED_BY: Final = frozenset(
    {
        "human",
        "machine_start",
        "machine_end_beep",
        "machine_end_silence",
        "machine_end_other",
        "fax",
        "unknown",
    }
)

#: metadata keys (the calls row's JSON): what was asked, what was found, what was done
MD_MODE: Final = "machine_detection"
MD_MESSAGE: Final = "voicemail_message"
MD_ANSWERED_BY: Final = "answered_by"
MD_GREETING_END: Final = "greeting_end"  # "beep" | "silence": our detector, on a stream
MD_VERDICT: Final = "vm_verdict"  # set once: "human" | "leave" | "hangup"


class MachineDetection(enum.StrEnum):
    OFF = "off"
    DETECT = "detect"
    VOICEMAIL = "voicemail"


class Verdict(enum.StrEnum):
    WAIT = "wait"
    HUMAN = "human"
    LEAVE = "leave"
    HANG_UP = "hangup"


def detection_of(record: CallRecord) -> MachineDetection:
    try:
        return MachineDetection(record.metadata.get(MD_MODE, "off"))
    except ValueError:
        return MachineDetection.OFF


def is_machine(answered_by: str | None) -> bool:
    return bool(answered_by) and str(answered_by).startswith("machine")


def voicemail_pending(record: CallRecord) -> bool:
    """A ``voicemail`` call whose answer is not decided: nothing may talk over the greeting."""
    return (
        detection_of(record) is MachineDetection.VOICEMAIL
        and MD_VERDICT not in record.metadata
        and not record.is_terminal
    )


def decide(answered_by: str | None, greeting_end: str | None) -> Verdict:
    """The verdict for a ``voicemail`` call (see the module's table)."""
    if answered_by in ("human", "unknown"):
        return Verdict.HUMAN
    if answered_by == "fax":
        return Verdict.HANG_UP
    if answered_by == "machine_start":
        return Verdict.LEAVE if greeting_end is not None else Verdict.WAIT
    if is_machine(answered_by):
        return Verdict.LEAVE
    return Verdict.LEAVE if greeting_end == "beep" else Verdict.WAIT


def message_for(record: CallRecord) -> str | None:
    """The message to leave (the call's own, else its opening message); task calls without
    one have theirs written by the model."""
    text = record.metadata.get(MD_MESSAGE)
    if isinstance(text, str) and text:
        return text
    if record.mode is CallMode.TASK:
        return None
    return record.message
