"""Placing an outbound call: check the request and the outbound policy, store the call, audit
it, then dial it — never twice.

* The call row (with ``dial_started_at``) and its spec are stored *before* the create request,
  under the outbound gate's lock (the policy's counts and the stored row agree).
* A call the audit trail does not know is never dialled.
* A create request whose answer was lost (``ProviderError.maybe_created``) is not retried: the
  call waits :attr:`Placement.unconfirmed_dial_seconds` for the provider's signed webhooks (they
  carry our call id), else it ends ``failed``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from voicecall.calls.live import LiveCall
from voicecall.calls.model import (
    CallMode,
    CallRecord,
    Direction,
    EndReason,
    Speaker,
    TranscriptEntry,
    new_call_id,
)
from voicecall.calls.outbound import Requester
from voicecall.conversation.task import CallRequest
from voicecall.errors import InvalidPhoneNumber, ProviderError, StoreError
from voicecall.phone import parse_e164
from voicecall.providers.base import DialRequest

if TYPE_CHECKING:
    from voicecall.calls.manager import CallManager

# a create request whose answer was lost: wait this long for the provider's first webhook
UNCONFIRMED_DIAL_SECONDS = 30.0


class Placement:
    def __init__(self, core: CallManager) -> None:
        self.core = core
        #: how long a dial whose create response was lost waits for a confirming webhook
        self.unconfirmed_dial_seconds = UNCONFIRMED_DIAL_SECONDS

    async def place_call(
        self,
        *,
        to: str | None,
        message: str | None,
        mode: CallMode | str | None = None,
        request: CallRequest | None = None,
        requester: Requester | None = None,
    ) -> CallRecord:
        """Check the request and the outbound policy, store the call, audit it, then dial it.
        Returns the stored record (state ``initiated``).

        ``request`` carries a task call's task/context/outcome schema and any call's
        ``report_url``; all of it is checked before anything is stored or dialled."""
        core = self.core
        to_number = parse_e164(to, field="to") if to else core.settings.to_number
        if not to_number:
            raise InvalidPhoneNumber("to: no number given and no default to_number configured")
        if not core.settings.from_number:
            raise InvalidPhoneNumber("from_number is not configured")
        call_mode = CallMode(mode) if mode else CallMode(core.settings.outbound.default_mode.value)
        plan = await core.tasks.plan(call_mode, message, request)
        recorded = core.recordings.wants(request.record if request is not None else None)
        message = core.recordings.opening(plan.opening, recorded)
        who = requester or Requester()
        async with core.outbound.lock:  # from the policy's counts to the stored call row
            await core.outbound.check_outbound(
                to_number,
                surface=who.surface,
                token_fingerprint=who.token_fingerprint,
                active_calls=core.active_count,
            )
            now = core.now()
            record = CallRecord(
                call_id=new_call_id(),
                direction=Direction.OUTBOUND,
                mode=call_mode,
                from_number=core.settings.from_number,
                to_number=to_number,
                provider=core.provider.name,
                message=message,
                created_at=now,
                updated_at=now,
                dial_started_at=now,
                metadata={**dict(plan.metadata), **core.recordings.metadata(recorded)},
            )
            opening = TranscriptEntry(record.call_id, 0, Speaker.BOT, message or "", now, turn=0)
            lines = [opening] if message else []
            spec = plan.spec(record.call_id, now)
            core.pending_dials += 1
            try:
                await core.store.commit(record, transcript=lines, spec=spec)
            finally:
                core.pending_dials -= 1
            core.tasks.placed(record.call_id, spec)
            live = core.register(record, next_seq=len(lines))
        try:
            await core.outbound.record_placed(
                to_number,
                record.call_id,
                surface=who.surface,
                token_fingerprint=who.token_fingerprint,
            )
        except StoreError as exc:  # a call the audit trail does not know is never dialled
            await core.finalize(
                record.call_id, EndReason.FAILED, error=f"not dialled: audit trail: {exc}"
            )
            raise
        core.timers.arm_ring(live)
        core.publish("call.created", record)
        for line in lines:
            core.publish_line(line)
        try:
            sid = await core.provider.initiate(
                DialRequest(
                    call_id=record.call_id,
                    to=to_number,
                    from_=core.settings.from_number,
                    ring_timeout_seconds=core.settings.ring_timeout_seconds,
                    time_limit_seconds=int(core.settings.max_duration_seconds) + 60,
                    # on a Media Stream we record ourselves; else the provider does
                    record=recorded and not core.replies.streams(record),
                )
            )
        except ProviderError as exc:
            if not exc.maybe_created:
                await core.finalize(record.call_id, EndReason.FAILED, error=str(exc))
                raise
            # The request may have reached the provider (its answer was lost). Dialling again
            # could ring the person twice, so we wait for the provider's signed webhooks to tell
            # us: they carry our call id. Without any within the window, the call ends failed.
            return await self.await_confirmation(live, str(exc))
        async with live.lock:
            if live.record.is_terminal:
                return live.record
            updated = live.record.copy(provider_call_id=sid, updated_at=core.now())
            await core.store.commit(updated)
            live.record = updated
            core.bind_provider_id(sid, record.call_id)
        core.counters["calls_placed"] += 1
        return updated

    async def await_confirmation(self, live: LiveCall, detail: str) -> CallRecord:
        core = self.core
        async with live.lock:
            if live.record.is_terminal or live.record.provider_call_id is not None:
                return live.record  # a webhook already confirmed (or ended) the call
            note = (
                f"{detail}; outcome unknown, waiting for the provider's webhooks (not re-dialled)"
            )
            updated = live.record.copy(error=note, updated_at=core.now())
            await core.store.commit(updated)
            live.record = updated
        core.arm(live, "unconfirmed", self.unconfirmed_dial_seconds, self.on_unconfirmed)
        return updated

    async def on_unconfirmed(self, call_id: str) -> None:
        core = self.core
        live = core.live(call_id)
        if live is None or live.record.provider_call_id is not None:
            return
        await core.finalize(
            call_id,
            EndReason.FAILED,
            error="the provider never confirmed the call; not retried (no double dial)",
        )
