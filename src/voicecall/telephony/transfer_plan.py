"""Transfer decisions, pure: the request checks, the stored state of a call's transfer, what a
``<Dial>`` result means, and what the caller hears when the agent is back.

A transfer lives in the call record's metadata under ``transfer`` (the last one; ``seq`` counts
them), so every status webhook and restart sees it and ``GET /api/calls/{id}`` shows it:

=============  ===========================================================================
status         meaning
=============  ===========================================================================
handed-over    cold: the call was given to the number (``<Dial>`` without ``action``); the
               call ends here as ``transferred`` — what happens next is between the parties
dialing        warm: the number is ringing (``<Dial action>`` with a whisper URL)
connected      warm: the number answered and heard the summary (the whisper was fetched)
completed      warm: the bridged call is over (``DialCallStatus=completed``): ``transferred``
busy,          warm: the number did not take the call; the caller is back with the agent,
no-answer,     who says so, and the conversation goes on
failed,
canceled
=============  ===========================================================================
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

from voicecall.errors import InvalidRequest
from voicecall.phone import parse_e164

__all__ = [
    "MAX_SUMMARY_CHARS",
    "TransferMode",
    "TransferState",
    "TransferStatus",
    "allowed_targets",
    "back_line",
    "check_summary",
    "check_targets",
    "dial_result",
    "new_transfer",
    "transfer_of",
    "transfer_under_way",
]

MAX_SUMMARY_CHARS = 1000
METADATA_KEY = "transfer"


class TransferMode(StrEnum):
    COLD = "cold"
    WARM = "warm"


class TransferStatus(StrEnum):
    HANDED_OVER = "handed-over"
    DIALING = "dialing"
    CONNECTED = "connected"
    COMPLETED = "completed"
    BUSY = "busy"
    NO_ANSWER = "no-answer"
    FAILED = "failed"
    CANCELED = "canceled"

    @property
    def under_way(self) -> bool:
        """The number is ringing or talking: the call is not the agent's right now."""
        return self in (TransferStatus.DIALING, TransferStatus.CONNECTED)

    @property
    def came_back(self) -> bool:
        """The number did not take the call: the caller is back with the agent."""
        return self in _BACK


_BACK = frozenset(
    {TransferStatus.BUSY, TransferStatus.NO_ANSWER, TransferStatus.FAILED, TransferStatus.CANCELED}
)


@dataclass(frozen=True, slots=True)
class TransferState:
    """One transfer of a call, as stored in its metadata. ``token`` is the secret that routes
    the whisper and dial webhooks to this transfer (it is in our signed URL; never shown)."""

    seq: int
    to: str
    mode: TransferMode
    status: TransferStatus
    token: str
    started_at: float
    summary: str | None = None
    ended_at: float | None = None
    dial_call_sid: str | None = None
    #: the caller came back to a model that asked for the transfer (its tool): the model says
    #: so, not the fixed line
    agent_answers: bool = False

    def to_metadata(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "to": self.to,
            "mode": self.mode.value,
            "status": self.status.value,
            "token": self.token,
            "started_at": self.started_at,
            "summary": self.summary,
            "ended_at": self.ended_at,
            "dial_call_sid": self.dial_call_sid,
            "agent_answers": self.agent_answers,
        }

    def matches(self, seq: int | None, token: str | None) -> bool:
        """Whether a webhook's routing (``turn``, ``tok``) names this transfer."""
        return seq == self.seq and token is not None and token == self.token

    def moved(
        self, status: TransferStatus, *, now: float, dial_call_sid: str | None = None
    ) -> TransferState:
        ended = None if status.under_way else now
        return replace(
            self,
            status=status,
            ended_at=ended if self.ended_at is None else self.ended_at,
            dial_call_sid=dial_call_sid or self.dial_call_sid,
        )


def transfer_of(metadata: dict[str, Any]) -> TransferState | None:
    """The call's last transfer, read back from its metadata (``None``: none, or unreadable)."""
    raw = metadata.get(METADATA_KEY)
    if not isinstance(raw, dict):
        return None
    try:
        return TransferState(
            seq=int(raw["seq"]),
            to=str(raw["to"]),
            mode=TransferMode(raw["mode"]),
            status=TransferStatus(raw["status"]),
            token=str(raw["token"]),
            started_at=float(raw["started_at"]),
            summary=raw.get("summary"),
            ended_at=raw.get("ended_at"),
            dial_call_sid=raw.get("dial_call_sid"),
            agent_answers=bool(raw.get("agent_answers", False)),
        )
    except (KeyError, TypeError, ValueError):
        return None


#: metadata key of a task call's ``transfer_to`` list (the numbers its agent may transfer to)
TARGETS_KEY = "transfer_to"
MAX_TARGETS = 10


def check_targets(numbers: list[str] | tuple[str, ...] | None) -> tuple[str, ...]:
    """A task call's ``transfer_to``: up to ten E.164 numbers, exactly as written (422)."""
    if numbers is None:
        return ()
    if len(numbers) > MAX_TARGETS:
        raise InvalidRequest(f"transfer_to: at most {MAX_TARGETS} numbers")
    out: list[str] = []
    for i, number in enumerate(numbers):
        e164 = parse_e164(number, field=f"transfer_to[{i}]")
        if e164 not in out:
            out.append(e164)
    return tuple(out)


def allowed_targets(metadata: dict[str, Any]) -> tuple[str, ...]:
    """The numbers a call's agent may transfer to (none unless the call listed some)."""
    raw = metadata.get(TARGETS_KEY)
    if not isinstance(raw, list):
        return ()
    return tuple(str(n) for n in raw if isinstance(n, str))


def transfer_under_way(metadata: dict[str, Any]) -> bool:
    """Whether the call is with a transfer's ``<Dial>`` now (its stream is gone on purpose)."""
    transfer = transfer_of(metadata)
    return transfer is not None and transfer.status.under_way


def check_summary(mode: TransferMode, summary: str | None) -> str | None:
    """The whisper of a warm transfer (required, ≤ 1,000 characters); a cold one has none."""
    text = " ".join((summary or "").split())
    if mode is TransferMode.COLD:
        return text or None
    if not text:
        raise InvalidRequest("summary: a warm transfer needs a summary for the other number")
    if len(text) > MAX_SUMMARY_CHARS:
        raise InvalidRequest(f"summary: longer than {MAX_SUMMARY_CHARS} characters")
    return text


def new_transfer(
    previous: TransferState | None,
    *,
    to: str,
    mode: TransferMode,
    summary: str | None,
    token: str,
    now: float,
) -> TransferState:
    """The next transfer of a call (``seq`` after the previous one)."""
    return TransferState(
        seq=(previous.seq + 1) if previous is not None else 1,
        to=to,
        mode=mode,
        status=TransferStatus.HANDED_OVER if mode is TransferMode.COLD else TransferStatus.DIALING,
        token=token,
        started_at=now,
        summary=summary,
    )


def dial_result(dial_call_status: str | None) -> TransferStatus:
    """What a ``<Dial action>``'s ``DialCallStatus`` means for the transfer (``answered`` is
    Twilio's word for a bridged call too)."""
    if dial_call_status in ("completed", "answered"):
        return TransferStatus.COMPLETED
    try:
        status = TransferStatus(dial_call_status or "failed")
    except ValueError:
        return TransferStatus.FAILED
    return status if status.came_back else TransferStatus.FAILED


_BACK_LINES = {
    TransferStatus.BUSY: "Sorry, that line is busy, so I could not transfer you. I'm still here.",
    TransferStatus.NO_ANSWER: "Sorry, nobody answered, so I could not transfer you. "
    "I'm still here.",
    TransferStatus.FAILED: "Sorry, the transfer did not go through. I'm still here.",
    TransferStatus.CANCELED: "Sorry, the transfer did not go through. I'm still here.",
}


def back_line(status: TransferStatus) -> str:
    """What the agent says when the caller is back after a transfer that did not connect."""
    return _BACK_LINES.get(status, _BACK_LINES[TransferStatus.FAILED])
