"""Calls coming in: the inbound policy (open, allowlist, closed), the concurrency limit, and the
first answer (greeting, then listening) — stored with the webhook's dedupe key before it is sent,
so a redelivered first webhook gets the same answer and never a second call row.
"""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING

from voicecall.calls.fold import next_stream_generation
from voicecall.calls.model import (
    CallMode,
    CallRecord,
    CallState,
    Direction,
    EndReason,
    Speaker,
    TranscriptEntry,
    new_call_id,
)
from voicecall.config import InboundPolicy
from voicecall.phone import is_allowed, normalize_caller_id
from voicecall.providers.base import ParsedWebhook, Reply

if TYPE_CHECKING:
    from voicecall.calls.manager import CallManager


class InboundDoor:
    def __init__(self, core: CallManager) -> None:
        self.core = core

    async def answer(self, hook: ParsedWebhook) -> Reply:
        """A call for us that no record knows: store it accepted or refused, say what to do."""
        core = self.core
        caller = normalize_caller_id(hook.from_number)
        policy = core.settings.inbound_policy
        accepted = policy is InboundPolicy.OPEN or (
            policy is InboundPolicy.ALLOWLIST and is_allowed(caller, core.settings.allow_from)
        )
        busy = accepted and core.active_count >= core.settings.max_concurrent_calls
        now = core.now()
        record = CallRecord(
            call_id=new_call_id(),
            direction=Direction.INBOUND,
            mode=CallMode.CONVERSATION,
            from_number=caller,
            to_number=normalize_caller_id(hook.to_number),
            provider=core.provider.name,
            provider_call_id=hook.provider_call_id,
            created_at=now,
            updated_at=now,
        )
        event = hook.events[0] if hook.events else core.synthetic_event(hook)
        if not accepted or busy:
            why = "busy: max_concurrent_calls reached" if busy else f"inbound policy {policy}"
            record = record.copy(
                state=CallState.HANGUP_BOT, end_reason=EndReason.REJECTED, ended_at=now, error=why
            )
            stored = await core.store.commit(
                record,
                event=core.event_row(record.call_id, event),
                outbox=await core.tasks.outbox(record),
            )
            if stored:
                core.counters["inbound_rejected"] += 1
                core.publish("call.rejected", record)
                core.tasks.ended(record)
            return Reply(reject=True)
        record = record.copy(
            state=CallState.LISTENING,
            answered_at=now,
            turn=1,
            metadata={
                "turn_token": secrets.token_urlsafe(12),
                **core.recordings.metadata(core.settings.recording.enabled and core.streaming),
            },
        )
        if core.streaming:
            record = next_stream_generation(record, now=now)
        greeting = core.replies.opening(record) or ""
        line = TranscriptEntry(record.call_id, 0, Speaker.BOT, greeting, now, turn=1)
        stored = await core.store.commit(
            record, event=core.event_row(record.call_id, event), transcript=[line]
        )
        if not stored:
            existing = await core.store.get_call_by_provider_id(hook.provider_call_id)
            return core.replies.reply(existing, hook) if existing else Reply(hangup=True)
        live = core.register(record, next_seq=1)
        core.timers.arm_max_duration(live)
        core.publish("call.created", record)
        return core.replies.reply(record, hook)
