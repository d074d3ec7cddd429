"""What the provider is told to do next: a pure function of the stored call and the webhook.

Because the answer depends only on the stored record (and the webhook being answered), a
redelivered request gets the same answer as the first delivery. Nothing here does I/O or reads a
clock; the manager passes in everything it needs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from voicecall.calls import stream_tokens
from voicecall.calls.model import CallMode, CallRecord, CallState, Direction, EndReason
from voicecall.providers.base import Listen, ParsedWebhook, Reply, WebhookKind
from voicecall.telephony.machine import MD_MODE, MachineDetection, voicemail_pending
from voicecall.telephony.recording import METADATA_KEY as RECORD_KEY
from voicecall.telephony.recording import announce

#: metadata key of a bot line held back on a <Gather> call while the caller was talking
PENDING_SAY = "pending_say"


def pending_say(record: CallRecord) -> dict[str, Any] | None:
    """The held-back line (``text``, ``then``, ``after_turn``, ``after_token``), if any."""
    value = record.metadata.get(PENDING_SAY)
    return value if isinstance(value, dict) else None


@dataclass(frozen=True, slots=True)
class ReplyPolicy:
    """Renders replies for one server's settings."""

    streaming: bool
    inbound_greeting: str
    notify_pause_seconds: float
    stream_key: bytes
    #: said before the inbound greeting of a recorded call (``recording.announcement``)
    announcement: str = ""

    def streams(self, record: CallRecord) -> bool:
        """Whether this call's speech flows over a Media Stream (a ``voicemail`` call's too, in
        notify mode: the bot hears the greeting)."""
        return self.streaming and (
            record.mode is not CallMode.NOTIFY
            or record.metadata.get(MD_MODE) == MachineDetection.VOICEMAIL
        )

    def reply(self, record: CallRecord, hook: ParsedWebhook) -> Reply:
        """The answer to ``hook`` given the call as stored."""
        if hook.kind in (WebhookKind.STATUS, WebhookKind.PARTIAL, WebhookKind.AMD):
            return Reply.empty()
        if record.is_terminal:
            return (
                Reply(reject=True)
                if record.end_reason is EndReason.REJECTED
                else Reply(hangup=True)
            )
        held = pending_say(record)
        if (
            held is not None
            and hook.kind is WebhookKind.GATHER
            and hook.turn == held.get("after_turn")
            and hook.token == held.get("after_token")
        ):
            # the caller's utterance that held the line back is in: say it now
            return self._then(record, str(held["text"]), str(held["then"]))
        if record.state is CallState.ENDING:
            if hook.kind is WebhookKind.HOLD and hook.line_seq is not None:
                # a line said by a call update is over; the end that waited for it follows at
                # once (its goodbye or the hang-up): keep the call open for it
                return Reply(hold_call_id=record.call_id)
            return Reply(hangup=True)
        if self.streams(record) and hook.kind in (WebhookKind.VOICE, WebhookKind.HOLD):
            return self.stream(record)
        if voicemail_pending(record) and hook.kind in (WebhookKind.VOICE, WebhookKind.HOLD):
            return Reply(hold_call_id=record.call_id)  # silent while AMD listens to the greeting
        if hook.kind is WebhookKind.VOICE:
            if record.mode is CallMode.NOTIFY:
                return self.notify(record)
            if record.turn <= 1:
                return Reply(say=self.opening(record), listen=self.listen(record))
            return Reply(listen=self.listen(record))
        if hook.kind is WebhookKind.GATHER:
            if hook.turn != record.turn or hook.token != record.metadata.get("turn_token"):
                # a late result: keep waiting for the current question's answer
                return Reply(listen=self.listen(record))
            return Reply(hold_call_id=record.call_id)
        return Reply(hold_call_id=record.call_id)

    def for_ended(self, record: CallRecord, hook: ParsedWebhook) -> Reply:
        """The answer for a call that has already ended."""
        if (
            hook.kind is WebhookKind.VOICE
            and record.mode is CallMode.NOTIFY
            and record.answered_at is not None
            and record.end_reason is not EndReason.REJECTED
        ):
            # a late redelivery of the first fetch gets the same answer it got the first time
            return self.notify(record)
        return self.reply(record, hook)  # status: empty; rejected: reject; else hang up

    def opening(self, record: CallRecord) -> str | None:
        """What the call says first: an outbound call's message (any announcement is in it
        already); the inbound greeting, after the announcement when the call records."""
        if record.direction is Direction.OUTBOUND:
            return record.message
        if self.announcement and record.metadata.get(RECORD_KEY):
            return announce(self.inbound_greeting, self.announcement)
        return self.inbound_greeting

    def notify(self, record: CallRecord) -> Reply:
        return Reply(say=record.message, pause_after_seconds=self.notify_pause_seconds, hangup=True)

    def listen(self, record: CallRecord) -> Listen:
        return Listen(
            call_id=record.call_id,
            turn=record.turn,
            token=str(record.metadata.get("turn_token", "")),
        )

    def stream(self, record: CallRecord) -> Reply:
        md = record.metadata
        generation = int(md.get("stream_gen", 0))
        if generation <= int(md.get("stream_used", 0)) or record.provider_call_id is None:
            return Reply(hold_call_id=record.call_id)  # a stream is (or was) attached already
        token = stream_tokens.mint(
            self.stream_key,
            call_sid=record.provider_call_id,
            call_id=record.call_id,
            generation=generation,
            expires=int(md.get("stream_expires", 0)),
        )
        return Reply(stream_call_id=record.call_id, stream_token=token)

    def line(self, record: CallRecord, text: str, then: str, *, seq: int | None = None) -> Reply:
        """A bot line delivered by redirecting the live call (``then``: what follows it;
        ``seq``: the stored transcript line it is, so it can be fetched if too long)."""
        return self._then(record, text, then, seq=seq)

    def _then(self, record: CallRecord, text: str, then: str, *, seq: int | None = None) -> Reply:
        line = (record.call_id, seq) if seq is not None else None
        if then == "listen":
            return Reply(say=text, listen=self.listen(record), line=line)
        if then == "hangup":
            return Reply(say=text, hangup=True, line=line)
        return Reply(say=text, hold_call_id=record.call_id, line=line)
