"""Folding one provider event into a call record: pure (``now`` and tokens are passed in).

:func:`fold` is what a webhook's event *means* for a call: a state move (with the actions the
state machine asks for), the end of the call, or a line the caller said (and whether it answers
the turn an agent is waiting on). :func:`on_voice_fetch` is what the provider asking for
instructions means (the call is answered; a conversation opens turn 1).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from voicecall.calls import states, stream_tokens
from voicecall.calls.model import (
    CallMode,
    CallRecord,
    CallState,
    EndReason,
    Speaker,
    TranscriptEntry,
)
from voicecall.calls.replies import PENDING_SAY
from voicecall.calls.states import Action, Signal
from voicecall.events import CallEvent, EventKind
from voicecall.providers.base import ParsedWebhook
from voicecall.telephony.keypad import pressed
from voicecall.textrules import caller_text

log = logging.getLogger("voicecall.manager")

_STATUS_SIGNAL: dict[EventKind, Signal] = {
    EventKind.RINGING: Signal.RINGING,
    EventKind.ANSWERED: Signal.ANSWERED,
}


@dataclass(frozen=True, slots=True)
class Folded:
    """The meaning of one event: the new record, actions to run, the end reason if the call
    ended, a caller line to store, and ``wake`` = (turn, text) if it answers the open turn."""

    record: CallRecord
    actions: tuple[Action, ...] = ()
    end: EndReason | None = None
    line: TranscriptEntry | None = None
    wake: tuple[int, str] | None = None


def fold(
    record: CallRecord, event: CallEvent, hook: ParsedWebhook, *, seq: int, now: float
) -> Folded:
    """Fold one new event into ``record``; ``seq`` is the call's next transcript line number."""
    if event.sequence is not None and event.sequence > record.last_sequence:
        record = record.copy(last_sequence=event.sequence)
    if event.kind in _STATUS_SIGNAL:
        t = states.apply(record.state, _STATUS_SIGNAL[event.kind])
        if not t.changed:
            return Folded(record)
        changes: dict[str, Any] = {"state": t.state}
        if event.kind is EventKind.ANSWERED and record.answered_at is None:
            changes["answered_at"] = now
        if event.answered_by and event.answered_by.startswith("machine"):
            changes["metadata"] = {**record.metadata, "answered_by": event.answered_by}
        return Folded(record.copy(**changes), t.actions)
    if event.kind is EventKind.ENDED:
        return Folded(record, end=end_reason_for(record, event))
    if event.kind in (EventKind.SPEECH, EventKind.DTMF):
        # stripped here too, whatever the provider: a control character would make the line
        # unstorable (every retry of the webhook failing, the call ending ``failed``)
        said = event.transcript if event.kind is EventKind.SPEECH else event.digits
        text = caller_text(said).strip() if said else ""
        if not text:
            return Folded(record)
        current = event.turn == record.turn and hook.token == record.metadata.get("turn_token")
        line = TranscriptEntry(
            call_id=record.call_id,
            seq=seq,
            speaker=Speaker.USER,
            text=text if event.kind is EventKind.SPEECH else pressed(text or ""),
            at=now,
            final=True,
            turn=event.turn,
        )
        if not current:
            log.info(
                "late result for turn %s of call %s (now turn %s) kept, not used",
                event.turn,
                record.call_id,
                record.turn,
            )
            return Folded(record, line=line)
        held = record.metadata.get(PENDING_SAY)
        if isinstance(held, dict) and held.get("after_turn") != event.turn:
            # an answer to a later turn: the held-back line was said before it; forget it
            record = record.copy(
                metadata={k: v for k, v in record.metadata.items() if k != PENDING_SAY}
            )
        return Folded(record, line=line, wake=(record.turn, line.text))
    return Folded(record)


def end_reason_for(record: CallRecord, event: CallEvent) -> EndReason:
    """Why a call the provider reports over ended, from our side's point of view."""
    reason = event.end_reason or EndReason.COMPLETED
    if reason is EndReason.COMPLETED:
        if record.metadata.get("hangup_requested"):
            return EndReason.HANGUP_BOT
        if str(record.metadata.get("answered_by", "")).startswith("machine"):
            return EndReason.VOICEMAIL
        if record.mode is not CallMode.NOTIFY and record.answered_at is not None:
            return EndReason.HANGUP_USER
    return reason


def on_voice_fetch(
    record: CallRecord, *, now: float, turn_token: str, streaming: bool
) -> CallRecord:
    """The provider asks what to do on an answered call: move it on and open turn 1."""
    t1 = states.apply(record.state, Signal.ANSWERED)
    rec = record.copy(state=t1.state) if t1.changed else record
    if rec.answered_at is None:
        rec = rec.copy(answered_at=now)
    t2 = states.apply(rec.state, Signal.ACTIVATED)
    if t2.changed:
        rec = rec.copy(state=t2.state)
    if rec.mode is not CallMode.NOTIFY and rec.turn == 0:
        rec = rec.copy(
            turn=1,
            state=CallState.LISTENING,
            metadata={**rec.metadata, "turn_token": turn_token},
        )
        if streaming:
            rec = next_stream_generation(rec, now=now)
    return rec


def next_stream_generation(record: CallRecord, *, now: float) -> CallRecord:
    """Allow one more stream for this call (first answer, or after a drop we saw)."""
    md = record.metadata
    return record.copy(
        metadata={
            **md,
            "stream_gen": int(md.get("stream_gen", 0)) + 1,
            "stream_expires": int(now + stream_tokens.TOKEN_TTL_SECONDS),
        }
    )
