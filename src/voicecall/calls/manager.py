"""The call manager: orchestrates the provider, the store, timers and turns.

It owns every live call's in-memory companion (timers, turn waiters, a lock) and the one
finalize path that releases them exactly once. Its rules:

* **Persist before acting.** Every change is written to the store (atomically with the dedupe
  key of the event that caused it) before memory changes or a webhook is acknowledged. A store
  failure raises :class:`StoreError`, so the webhook gets a 5xx and the provider retries.
* **Dedupe by signed identity.** An event whose key is already stored is acknowledged with the
  same answer and no side effect.
* **Never re-dial.** An outbound call is stored with ``dial_started_at`` *before* the create
  request; a restart reconciles such calls with the provider and never dials them again.
* **One finalize path** (:meth:`_finalize`): terminal state stored, timers cancelled, waiters
  woken, slot released; a second call is a no-op.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import operator
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from voicecall.agent.responder import (
    CallerMemory,
    ConversationContext,
    EndCall,
    Responder,
    summarize_exchange,
)
from voicecall.calls import states, stream_tokens
from voicecall.calls.bus import EventBus
from voicecall.calls.channel import SpeechChannel, SpokenResult, StreamRejected
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
from voicecall.calls.outbound import OutboundGate, Requester
from voicecall.calls.states import Action, Signal
from voicecall.calls.store.base import CallPage, EventRow, Store
from voicecall.config import InboundPolicy, Settings
from voicecall.errors import (
    CallNotActive,
    InvalidPhoneNumber,
    InvalidRequest,
    ProviderError,
    StoreError,
    TurnTimeout,
    UnknownCall,
)
from voicecall.events import CallEvent, EventKind
from voicecall.phone import is_allowed, normalize_caller_id, parse_e164
from voicecall.providers.base import (
    DialRequest,
    Listen,
    ParsedWebhook,
    Provider,
    Reply,
    WebhookKind,
)

log = logging.getLogger("voicecall.manager")

MAX_MESSAGE_CHARS = 4000
# how long after the provider's own ring timeout we step in if it never told us anything
RING_BACKSTOP_GRACE_SECONDS = 30.0
# a create request whose answer was lost: wait this long for the provider's first webhook
UNCONFIRMED_DIAL_SECONDS = 30.0
# spoken-words estimate used to arm the notify backstop (words per second)
WORDS_PER_SECOND = 2.5

_STATUS_SIGNAL: dict[EventKind, Signal] = {
    EventKind.RINGING: Signal.RINGING,
    EventKind.ANSWERED: Signal.ANSWERED,
}


@dataclass(slots=True)
class _Live:
    """The in-memory companion of a non-terminal call."""

    record: CallRecord
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    timers: dict[str, asyncio.TimerHandle] = field(default_factory=dict)
    waiters: dict[int, asyncio.Future[str]] = field(default_factory=dict)
    transcript_seq: int = 0
    channel: SpeechChannel | None = None
    reply_task: asyncio.Task[None] | None = None
    attached: asyncio.Event = field(default_factory=asyncio.Event)


class CallManager:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        provider: Provider,
        *,
        bus: EventBus | None = None,
        clock: Callable[[], float] = time.time,
        reaper_interval_seconds: float = 60.0,
        streaming: bool = False,
        stream_secret: str | bytes | None = None,
        stream_grace_seconds: float = 5.0,
        responder: Responder | None = None,
        memory: CallerMemory | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.provider = provider
        self.bus = bus or EventBus()
        self._clock = clock
        self._live: dict[str, _Live] = {}
        self._by_provider_id: dict[str, str] = {}
        self._pending_dials = 0
        self._reaper_interval = reaper_interval_seconds
        self._reaper: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[Any]] = set()
        #: speech flows over Media Streams (``<Connect><Stream>``) instead of <Say>/<Gather>
        self.streaming = streaming
        self._stream_key = stream_tokens.derive_key(stream_secret or secrets.token_bytes(32))
        self.stream_grace_seconds = stream_grace_seconds
        #: answers the caller on its own when no agent is waiting on the turn (None: agent only)
        self.responder = responder
        self.memory = memory
        #: how long a dial whose create response was lost waits for a confirming webhook
        self.unconfirmed_dial_seconds = UNCONFIRMED_DIAL_SECONDS
        #: the outbound policy and audit trail every dialled number goes through
        self.outbound = OutboundGate(settings, store, clock=clock)
        self.counters: dict[str, int] = {
            "calls_placed": 0,
            "calls_finalized": 0,
            "webhook_duplicates": 0,
            "events_applied": 0,
            "inbound_rejected": 0,
            "reaped": 0,
        }

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Reload non-terminal calls and reconcile each with the provider. Never re-dials."""
        for record in await self.store.list_active():
            await self._restore(record)
        if self._reaper_interval > 0:
            self._reaper = asyncio.create_task(self._reap_forever(), name="voicecall-reaper")

    async def stop(self) -> None:
        if self._reaper:
            self._reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reaper
        for task in list(self._background):
            task.cancel()
        for live in self._live.values():
            for handle in live.timers.values():
                handle.cancel()
            for fut in live.waiters.values():
                if not fut.done():
                    fut.set_exception(CallNotActive("the server is shutting down"))
        self._live.clear()

    async def _restore(self, record: CallRecord) -> None:
        if record.provider_call_id is None:
            # We may or may not have reached the provider before the crash. Dialing again could
            # ring the person twice, so the call ends here with the reason spelled out.
            await self._store_terminal(
                record,
                EndReason.ERROR,
                error="the server stopped before the provider confirmed this call; not re-dialed",
            )
            return
        live = self._register(record)
        try:
            remote = await self.provider.fetch_status(record.provider_call_id)
        except ProviderError as exc:
            log.warning("reconcile: status of %s unknown (%s); keeping it", record.call_id, exc)
            self._arm_restored_timers(live)
            return
        if not remote.live:
            await self._finalize(record.call_id, remote.end_reason or EndReason.COMPLETED)
            return
        self._arm_restored_timers(live)

    def _arm_restored_timers(self, live: _Live) -> None:
        rec = live.record
        now = self._clock()
        if rec.answered_at is not None:
            remaining = rec.answered_at + self.settings.max_duration_seconds - now
            self._arm(live, "max-duration", max(remaining, 0.0), self._on_max_duration)
        else:
            deadline = rec.created_at + self.settings.ring_timeout_seconds
            remaining = deadline + RING_BACKSTOP_GRACE_SECONDS - now
            self._arm(live, "ring", max(remaining, 0.0), self._on_ring_timeout)

    # ------------------------------------------------------------------ queries

    @property
    def live_count(self) -> int:
        return len(self._live)

    @property
    def active_count(self) -> int:
        return len(self._live) + self._pending_dials

    async def get_call(self, call_id: str) -> CallRecord:
        live = self._live.get(call_id)
        if live is not None:
            return live.record
        record = await self.store.get_call(call_id)
        if record is None:
            raise UnknownCall(f"no call with id {call_id!r}")
        return record

    async def transcript(self, call_id: str) -> list[TranscriptEntry]:
        await self.get_call(call_id)
        return await self.store.transcript(call_id)

    async def list_calls(
        self, *, limit: int = 50, cursor: str | None = None, active: bool | None = None
    ) -> CallPage:
        try:
            return await self.store.list_calls(limit=limit, cursor=cursor, active=active)
        except ValueError as exc:  # a malformed cursor or limit: the caller's fault
            raise InvalidRequest(str(exc)) from None

    # ------------------------------------------------------------------ outbound

    async def check_outbound(
        self,
        number: str,
        *,
        surface: str = "api",
        token_fingerprint: str | None = None,
        field: str = "to",
    ) -> str:
        """The outbound policy for a number dialled within a call that is up (a transfer):
        returns it in E.164 or raises (and audits) the refusal. See :class:`OutboundGate`."""
        return await self.outbound.check_outbound(
            number, surface=surface, token_fingerprint=token_fingerprint, field=field
        )

    async def place_call(
        self,
        *,
        to: str | None,
        message: str,
        mode: CallMode | str | None = None,
        requester: Requester | None = None,
    ) -> CallRecord:
        """Check the outbound policy, store the call, audit it, then dial it. Returns the
        stored record (state ``initiated``)."""
        to_number = parse_e164(to, field="to") if to else self.settings.to_number
        if not to_number:
            raise InvalidPhoneNumber("to: no number given and no default to_number configured")
        if not self.settings.from_number:
            raise InvalidPhoneNumber("from_number is not configured")
        message = _check_message(message)
        call_mode = CallMode(mode) if mode else CallMode(self.settings.outbound.default_mode.value)
        who = requester or Requester()
        async with self.outbound.lock:  # from the policy's counts to the stored call row
            await self.outbound.check_outbound(
                to_number,
                surface=who.surface,
                token_fingerprint=who.token_fingerprint,
                active_calls=self.active_count,
            )
            now = self._clock()
            record = CallRecord(
                call_id=new_call_id(),
                direction=Direction.OUTBOUND,
                mode=call_mode,
                from_number=self.settings.from_number,
                to_number=to_number,
                provider=self.provider.name,
                message=message,
                created_at=now,
                updated_at=now,
                dial_started_at=now,
            )
            self._pending_dials += 1
            try:
                await self.store.commit(
                    record, transcript=[self._line(record, 0, Speaker.BOT, message, turn=0)]
                )
            finally:
                self._pending_dials -= 1
            live = self._register(record)
            live.transcript_seq = 1
        try:
            await self.outbound.record_placed(
                to_number,
                record.call_id,
                surface=who.surface,
                token_fingerprint=who.token_fingerprint,
            )
        except StoreError as exc:  # a call the audit trail does not know is never dialled
            await self._finalize(
                record.call_id, EndReason.FAILED, error=f"not dialled: audit trail: {exc}"
            )
            raise
        self._arm(
            live,
            "ring",
            self.settings.ring_timeout_seconds + RING_BACKSTOP_GRACE_SECONDS,
            self._on_ring_timeout,
        )
        self._publish("call.created", record)
        self._publish_line(self._line(record, 0, Speaker.BOT, message, turn=0))
        try:
            sid = await self.provider.initiate(
                DialRequest(
                    call_id=record.call_id,
                    to=to_number,
                    from_=self.settings.from_number,
                    ring_timeout_seconds=self.settings.ring_timeout_seconds,
                    time_limit_seconds=int(self.settings.max_duration_seconds) + 60,
                )
            )
        except ProviderError as exc:
            if not exc.maybe_created:
                await self._finalize(record.call_id, EndReason.FAILED, error=str(exc))
                raise
            # The request may have reached the provider (its answer was lost). Dialling again
            # could ring the person twice, so we wait for the provider's signed webhooks to tell
            # us: they carry our call id. Without any within the window, the call ends failed.
            return await self._await_confirmation(live, str(exc))
        async with live.lock:
            if live.record.is_terminal:
                return live.record
            updated = live.record.copy(provider_call_id=sid, updated_at=self._clock())
            await self.store.commit(updated)
            live.record = updated
            self._by_provider_id[sid] = record.call_id
        self.counters["calls_placed"] += 1
        return updated

    async def _await_confirmation(self, live: _Live, detail: str) -> CallRecord:
        async with live.lock:
            if live.record.is_terminal or live.record.provider_call_id is not None:
                return live.record  # a webhook already confirmed (or ended) the call
            note = (
                f"{detail}; outcome unknown, waiting for the provider's webhooks (not re-dialled)"
            )
            updated = live.record.copy(error=note, updated_at=self._clock())
            await self.store.commit(updated)
            live.record = updated
        self._arm(live, "unconfirmed", self.unconfirmed_dial_seconds, self._on_unconfirmed)
        return updated

    async def _on_unconfirmed(self, call_id: str) -> None:
        live = self._live.get(call_id)
        if live is None or live.record.provider_call_id is not None:
            return
        await self._finalize(
            call_id,
            EndReason.FAILED,
            error="the provider never confirmed the call; not retried (no double dial)",
        )

    # ------------------------------------------------------------------ webhooks

    async def handle_webhook(self, hook: ParsedWebhook) -> Reply:
        """Apply a verified, parsed webhook; return what the provider should do next."""
        call_id = hook.call_id or self._by_provider_id.get(hook.provider_call_id)
        live = self._live.get(call_id) if call_id else None
        if live is None:
            record = await self._lookup(call_id, hook.provider_call_id)
            if record is None:
                if hook.inbound and hook.kind is WebhookKind.VOICE:
                    return await self._inbound(hook)
                log.info("webhook for unknown call %s ignored", hook.provider_call_id)
                return Reply.empty()
            if record.is_terminal:
                return await self._reply_for_ended(record, hook)
            live = self._register(record)
        async with live.lock:
            if live.record.is_terminal:
                return await self._reply_for_ended(live.record, hook)
            return await self._apply_locked(live, hook)

    async def _lookup(self, call_id: str | None, provider_call_id: str) -> CallRecord | None:
        if call_id:
            record = await self.store.get_call(call_id)
            if record is not None:
                if record.provider_call_id not in (None, provider_call_id):
                    # a signed webhook naming our call but another provider call: refuse to mix
                    log.warning("webhook names call %s with a foreign call sid", call_id)
                    return None
                return record
        return await self.store.get_call_by_provider_id(provider_call_id)

    async def _reply_for_ended(self, record: CallRecord, hook: ParsedWebhook) -> Reply:
        # still record the event (history + dedupe) but change nothing about the call
        for event in hook.events:
            await self.store.commit(None, event=self._event_row(record.call_id, event))
        if (
            hook.kind is WebhookKind.VOICE
            and record.mode is CallMode.NOTIFY
            and record.answered_at is not None
            and record.end_reason is not EndReason.REJECTED
        ):
            # a late redelivery of the first fetch gets the same answer it got the first time
            return self._notify_reply(record)
        return self._reply(record, hook)  # status: empty; rejected: reject; else hang up

    async def _apply_locked(self, live: _Live, hook: ParsedWebhook) -> Reply:
        if live.record.provider_call_id is None:
            live.record = live.record.copy(provider_call_id=hook.provider_call_id)
            self._by_provider_id[hook.provider_call_id] = live.record.call_id
        events = hook.events or (self._synthetic_event(hook),)
        for i, event in enumerate(events):
            new, actions, end, line, wake = self._fold(
                live.record, event, hook, live.transcript_seq
            )
            if i == len(events) - 1 and hook.kind is WebhookKind.VOICE and end is None:
                new = self._on_voice_fetch(new)
            lines = [line] if line is not None else []
            changed = _differs(new, live.record)
            new = new.copy(updated_at=self._clock()) if changed else new
            # an event that changes nothing about the call is stored for dedupe/history only
            stored = await self.store.commit(
                new if changed or lines else None,
                event=self._event_row(new.call_id, event),
                transcript=lines,
            )
            if not stored:  # seen before: acknowledge, change nothing
                self.counters["webhook_duplicates"] += 1
                continue
            self.counters["events_applied"] += 1
            live.record = new
            live.transcript_seq += len(lines)
            for entry in lines:
                self._publish_line(entry)
            if changed:
                self._publish("call.updated", new)
            self._run_actions(live, actions)
            if wake is not None:
                fut = live.waiters.pop(wake[0], None)
                if fut is not None and not fut.done():
                    fut.set_result(wake[1])
                elif fut is None:
                    self._maybe_autoreply(live)
            if end is not None:
                await self._finalize(new.call_id, end, locked=True)
                break
        return self._reply(live.record, hook)

    def _synthetic_event(self, hook: ParsedWebhook) -> CallEvent:
        """A webhook that yields no normalized event still needs a dedupe identity."""
        return CallEvent(
            kind=EventKind.INITIATED,
            dedupe_key=f"{self.provider.name}:{hook.provider_call_id}:{hook.kind}:{hook.turn}:"
            f"{hook.token}:noop",
            provider_call_id=hook.provider_call_id,
            call_id=hook.call_id,
        )

    def _fold(
        self, record: CallRecord, event: CallEvent, hook: ParsedWebhook, seq: int
    ) -> tuple[
        CallRecord,
        tuple[Action, ...],
        EndReason | None,
        TranscriptEntry | None,
        tuple[int, str] | None,
    ]:
        """Fold one new event into the record. Pure apart from reading the clock."""
        now = self._clock()
        if event.sequence is not None and event.sequence > record.last_sequence:
            record = record.copy(last_sequence=event.sequence)
        if event.kind in _STATUS_SIGNAL:
            t = states.apply(record.state, _STATUS_SIGNAL[event.kind])
            if not t.changed:
                return record, (), None, None, None
            changes: dict[str, Any] = {"state": t.state}
            if event.kind is EventKind.ANSWERED and record.answered_at is None:
                changes["answered_at"] = now
            if event.answered_by and event.answered_by.startswith("machine"):
                changes["metadata"] = {**record.metadata, "answered_by": event.answered_by}
            return record.copy(**changes), t.actions, None, None, None
        if event.kind is EventKind.ENDED:
            return record, (), self._end_reason_for(record, event), None, None
        if event.kind in (EventKind.SPEECH, EventKind.DTMF):
            text = event.transcript if event.kind is EventKind.SPEECH else event.digits
            if not text:
                return record, (), None, None, None
            current = event.turn == record.turn and hook.token == record.metadata.get("turn_token")
            line = self._line(
                record,
                seq,
                Speaker.USER,
                text if event.kind is EventKind.SPEECH else f"[dtmf] {text}",
                turn=event.turn,
                final=True,
            )
            if not current:
                log.info(
                    "late result for turn %s of call %s (now turn %s) kept, not used",
                    event.turn,
                    record.call_id,
                    record.turn,
                )
                return record, (), None, line, None
            return record, (), None, line, (record.turn, text)
        return record, (), None, None, None

    def _end_reason_for(self, record: CallRecord, event: CallEvent) -> EndReason:
        reason = event.end_reason or EndReason.COMPLETED
        if reason is EndReason.COMPLETED:
            if record.metadata.get("hangup_requested"):
                return EndReason.HANGUP_BOT
            if str(record.metadata.get("answered_by", "")).startswith("machine"):
                return EndReason.VOICEMAIL
            if record.mode is CallMode.CONVERSATION and record.answered_at is not None:
                return EndReason.HANGUP_USER
        return reason

    def _on_voice_fetch(self, record: CallRecord) -> CallRecord:
        """The provider asks what to do on an answered call: move it on and open turn 1."""
        t1 = states.apply(record.state, Signal.ANSWERED)
        rec = record.copy(state=t1.state) if t1.changed else record
        if rec.answered_at is None:
            rec = rec.copy(answered_at=self._clock())
        t2 = states.apply(rec.state, Signal.ACTIVATED)
        if t2.changed:
            rec = rec.copy(state=t2.state)
        if rec.mode is CallMode.CONVERSATION and rec.turn == 0:
            rec = rec.copy(
                turn=1,
                state=CallState.LISTENING,
                metadata={**rec.metadata, "turn_token": secrets.token_urlsafe(12)},
            )
            if self.streaming:
                rec = self._next_stream_generation(rec)
        return rec

    def _next_stream_generation(self, record: CallRecord) -> CallRecord:
        """Allow one more stream for this call (first answer, or after a drop we saw)."""
        md = record.metadata
        return record.copy(
            metadata={
                **md,
                "stream_gen": int(md.get("stream_gen", 0)) + 1,
                "stream_expires": int(self._clock() + stream_tokens.TOKEN_TTL_SECONDS),
            }
        )

    def _stream_reply(self, record: CallRecord) -> Reply:
        md = record.metadata
        generation = int(md.get("stream_gen", 0))
        if generation <= int(md.get("stream_used", 0)) or record.provider_call_id is None:
            return Reply(hold_call_id=record.call_id)  # a stream is (or was) attached already
        token = stream_tokens.mint(
            self._stream_key,
            call_sid=record.provider_call_id,
            call_id=record.call_id,
            generation=generation,
            expires=int(md.get("stream_expires", 0)),
        )
        return Reply(stream_call_id=record.call_id, stream_token=token)

    def _reply(self, record: CallRecord, hook: ParsedWebhook) -> Reply:
        """The answer to ``hook`` given the call as stored: a pure function of the record, so a
        redelivered request gets the same answer."""
        if hook.kind is WebhookKind.STATUS:
            return Reply.empty()
        if record.is_terminal:
            return (
                Reply(reject=True)
                if record.end_reason is EndReason.REJECTED
                else Reply(hangup=True)
            )
        if (
            self.streaming
            and record.mode is CallMode.CONVERSATION
            and hook.kind
            in (
                WebhookKind.VOICE,
                WebhookKind.HOLD,
            )
        ):
            return self._stream_reply(record)
        if hook.kind is WebhookKind.VOICE:
            if record.mode is CallMode.NOTIFY:
                return self._notify_reply(record)
            greeting = (
                record.message
                if record.direction is Direction.OUTBOUND
                else self.settings.inbound_greeting
            )
            if record.turn <= 1:
                return Reply(say=greeting, listen=self._listen(record))
            return Reply(listen=self._listen(record))
        if hook.kind is WebhookKind.GATHER:
            if hook.turn != record.turn or hook.token != record.metadata.get("turn_token"):
                # a late result: keep waiting for the current question's answer
                return Reply(listen=self._listen(record))
            return Reply(hold_call_id=record.call_id)
        return Reply(hold_call_id=record.call_id)

    def _notify_reply(self, record: CallRecord) -> Reply:
        return Reply(
            say=record.message,
            pause_after_seconds=self.settings.outbound.notify_hangup_delay_seconds,
            hangup=True,
        )

    def _listen(self, record: CallRecord) -> Listen:
        return Listen(
            call_id=record.call_id,
            turn=record.turn,
            token=str(record.metadata.get("turn_token", "")),
        )

    # ------------------------------------------------------------------ inbound

    async def _inbound(self, hook: ParsedWebhook) -> Reply:
        caller = normalize_caller_id(hook.from_number)
        policy = self.settings.inbound_policy
        accepted = policy is InboundPolicy.OPEN or (
            policy is InboundPolicy.ALLOWLIST and is_allowed(caller, self.settings.allow_from)
        )
        busy = accepted and self.active_count >= self.settings.max_concurrent_calls
        now = self._clock()
        record = CallRecord(
            call_id=new_call_id(),
            direction=Direction.INBOUND,
            mode=CallMode.CONVERSATION,
            from_number=caller,
            to_number=normalize_caller_id(hook.to_number),
            provider=self.provider.name,
            provider_call_id=hook.provider_call_id,
            created_at=now,
            updated_at=now,
        )
        event = hook.events[0] if hook.events else self._synthetic_event(hook)
        if not accepted or busy:
            why = "busy: max_concurrent_calls reached" if busy else f"inbound policy {policy}"
            record = record.copy(
                state=CallState.HANGUP_BOT, end_reason=EndReason.REJECTED, ended_at=now, error=why
            )
            stored = await self.store.commit(record, event=self._event_row(record.call_id, event))
            if stored:
                self.counters["inbound_rejected"] += 1
                self._publish("call.rejected", record)
            return Reply(reject=True)
        record = record.copy(
            state=CallState.LISTENING,
            answered_at=now,
            turn=1,
            metadata={"turn_token": secrets.token_urlsafe(12)},
        )
        if self.streaming:
            record = self._next_stream_generation(record)
        greeting = self.settings.inbound_greeting
        stored = await self.store.commit(
            record,
            event=self._event_row(record.call_id, event),
            transcript=[self._line(record, 0, Speaker.BOT, greeting, turn=1)],
        )
        if not stored:
            existing = await self.store.get_call_by_provider_id(hook.provider_call_id)
            return self._reply(existing, hook) if existing else Reply(hangup=True)
        live = self._register(record)
        live.transcript_seq = 1
        self._arm(live, "max-duration", self.settings.max_duration_seconds, self._on_max_duration)
        self._publish("call.created", record)
        if self.streaming:
            return self._stream_reply(record)
        return Reply(say=greeting, listen=self._listen(record))

    # ------------------------------------------------------------------ agent operations

    async def speak(self, call_id: str, message: str) -> CallRecord:
        """Say ``message`` on a live call, then keep the line open. Returns once queued."""
        message = _check_message(message)
        live = await self._require_answered(call_id)
        async with live.lock:
            rec = live.record
            t = states.apply(rec.state, Signal.SPEAKING)
            updated = rec.copy(state=t.state, updated_at=self._clock())
            line = self._line(rec, live.transcript_seq, Speaker.BOT, message, turn=rec.turn)
            await self.store.commit(updated, transcript=[line])
            live.record = updated
            live.transcript_seq += 1
        self._publish_line(line)
        if self._streams(live):
            channel = await self._channel(live)
            self._spawn(self._say_on_stream(live, channel, message))
            return updated
        assert rec.provider_call_id is not None
        await self.provider.redirect(rec.provider_call_id, Reply(say=message, hold_call_id=call_id))
        return updated

    async def continue_call(
        self, call_id: str, message: str, *, wait_seconds: float | None = None
    ) -> str:
        """Say ``message``, then wait for the caller's next final transcript of that turn."""
        message = _check_message(message)
        live = await self._require_answered(call_id)
        self._cancel_autoreply(live)  # the agent takes this turn
        updated, fut = await self._open_turn(live, message, wait=True)
        assert fut is not None
        wait = (
            wait_seconds if wait_seconds is not None else self.settings.transcript_timeout_seconds
        )
        try:
            await self._deliver_turn(live, updated, message)
            return await asyncio.wait_for(fut, wait)
        except TimeoutError:
            raise TurnTimeout(f"no answer from the caller within {wait:.0f} s") from None
        finally:
            if live.waiters.get(updated.turn) is fut:
                live.waiters.pop(updated.turn, None)

    async def _open_turn(
        self, live: _Live, message: str, *, wait: bool
    ) -> tuple[CallRecord, asyncio.Future[str] | None]:
        """Store the bot's line as a new turn (fresh Gather token); optionally register the
        waiter for the caller's answer, inside the lock so no answer can slip past it."""
        async with live.lock:
            rec = live.record
            if rec.is_terminal:
                raise CallNotActive(f"call {rec.call_id} has ended ({rec.state})")
            turn = rec.turn + 1
            t = states.apply(rec.state, Signal.SPEAKING)
            updated = rec.copy(
                turn=turn,
                state=t.state if self._streams(live) else CallState.LISTENING,
                updated_at=self._clock(),
                metadata={**rec.metadata, "turn_token": secrets.token_urlsafe(12)},
            )
            line = self._line(rec, live.transcript_seq, Speaker.BOT, message, turn=turn)
            await self.store.commit(updated, transcript=[line])
            live.record = updated
            live.transcript_seq += 1
            fut: asyncio.Future[str] | None = None
            if wait:
                fut = asyncio.get_running_loop().create_future()
                live.waiters[turn] = fut
        self._publish_line(line)
        return updated, fut

    async def _deliver_turn(self, live: _Live, updated: CallRecord, message: str) -> None:
        if self._streams(live):
            channel = await self._channel(live)
            await self._say_on_stream(live, channel, message)
            return
        assert updated.provider_call_id is not None
        await self.provider.redirect(
            updated.provider_call_id, Reply(say=message, listen=self._listen(updated))
        )

    # ------------------------------------------------------------------ automatic replies

    def _maybe_autoreply(self, live: _Live) -> None:
        """The caller finished a turn nobody is waiting for: let the responder answer."""
        if self.responder is None or live.record.mode is not CallMode.CONVERSATION:
            return
        self._cancel_autoreply(live)  # the caller spoke again: the old reply is stale
        live.reply_task = asyncio.create_task(self._autoreply(live))

    def _cancel_autoreply(self, live: _Live) -> None:
        task = live.reply_task
        if task is not None and not task.done() and task is not asyncio.current_task():
            task.cancel()
        live.reply_task = None

    async def _autoreply(self, live: _Live) -> None:
        assert self.responder is not None
        rec = live.record
        caller = rec.from_number if rec.direction is Direction.INBOUND else rec.to_number
        lines = await self.store.transcript(rec.call_id)
        memory: list[str] = []
        if self.memory is not None:
            try:
                memory = await self.memory.recall(caller)
            except StoreError as exc:  # a reply without memory beats no reply
                log.warning("caller memory unavailable for call %s: %s", rec.call_id, exc)
        ctx = ConversationContext(
            call_id=rec.call_id,
            direction=rec.direction.value,
            caller=caller,
            transcript=[(ln.speaker.value, ln.text) for ln in lines],
            memory=memory,
        )
        sentences: list[str] = []
        goodbye: EndCall | None = None
        gen = self.responder.reply(ctx)
        try:
            async for out in gen:
                if isinstance(out, EndCall):
                    goodbye = out
                    break
                if not out.text.strip():
                    continue
                if self._streams(live):
                    # speech starts with the first sentence while the rest is still generated
                    if not sentences:
                        await self._open_turn(live, out.text, wait=False)
                    else:
                        await self._bot_line(live, out.text)
                    channel = await self._channel(live)
                    self._spawn(self._say_on_stream(live, channel, out.text))
                sentences.append(out.text)
        except CallNotActive:
            return
        finally:
            await gen.aclose()  # type: ignore[attr-defined]
        if live.record.is_terminal:
            return
        if self._streams(live):
            if goodbye is not None:
                await self.end_call(rec.call_id, message=goodbye.goodbye)
            return
        text = " ".join(sentences)
        if goodbye is not None:
            farewell = " ".join(x for x in (text, goodbye.goodbye or "") if x).strip()
            await self.end_call(rec.call_id, message=farewell or None)
        elif text:
            updated, _ = await self._open_turn(live, text, wait=False)
            await self._deliver_turn(live, updated, text)

    async def _bot_line(self, live: _Live, text: str) -> None:
        async with live.lock:
            rec = live.record
            line = self._line(rec, live.transcript_seq, Speaker.BOT, text, turn=rec.turn)
            await self.store.commit(None, transcript=[line])
            live.transcript_seq += 1
        self._publish_line(line)

    async def forget_caller(self, number: str) -> bool:
        """Erase what is remembered about a caller (E.164); ``True`` if there was something.

        Works whether or not a responder is configured: memory written earlier is erased too.
        """
        caller = parse_e164(number, field="caller")
        return await self.store.forget_caller(caller)

    async def end_call(self, call_id: str, *, message: str | None = None) -> CallRecord:
        """Hang up (after saying ``message``, if given). Idempotent."""
        live = self._live.get(call_id)
        if live is None:
            return await self.get_call(call_id)
        goodbye = _check_message(message) if message else None
        async with live.lock:
            if live.record.is_terminal:
                return live.record
            rec = live.record.copy(
                metadata={**live.record.metadata, "hangup_requested": True},
                updated_at=self._clock(),
            )
            lines = []
            if goodbye:
                lines.append(
                    self._line(rec, live.transcript_seq, Speaker.BOT, goodbye, turn=rec.turn)
                )
            await self.store.commit(rec, transcript=lines)
            live.record = rec
            live.transcript_seq += len(lines)
        for entry in lines:
            self._publish_line(entry)
        sid = rec.provider_call_id
        if sid is None:
            await self._finalize(call_id, EndReason.HANGUP_BOT)
            return await self.get_call(call_id)
        if goodbye and live.channel is not None:
            # the mark echo tells us the caller heard the whole goodbye before we hang up
            await live.channel.say(goodbye)
        elif goodbye:
            # say goodbye through the provider's own markup so the hang-up cannot cut it off
            await self.provider.redirect(sid, Reply(say=goodbye, hangup=True))
            return rec
        await self._hangup_remote(sid)
        await self._finalize(call_id, EndReason.HANGUP_BOT)
        return await self.get_call(call_id)

    # ------------------------------------------------------------------ media streams (StreamHost)

    def _streams(self, live: _Live) -> bool:
        return self.streaming and live.record.mode is CallMode.CONVERSATION

    async def _channel(self, live: _Live) -> SpeechChannel:
        """The call's live stream, waiting up to the reconnect grace for one to attach."""
        if live.channel is None:
            try:
                await asyncio.wait_for(live.attached.wait(), self.stream_grace_seconds)
            except TimeoutError:
                raise CallNotActive("no media stream is attached to this call") from None
        assert live.channel is not None
        return live.channel

    async def _say_on_stream(self, live: _Live, channel: SpeechChannel, text: str) -> None:
        result = await channel.say(text)
        async with live.lock:
            rec = live.record
            if rec.is_terminal:
                return
            t = states.apply(rec.state, Signal.LISTENING)
            if t.changed:
                live.record = rec.copy(state=t.state)
        if not result.completed:
            log.info(
                "call %s: the caller heard %d of %d ms",
                rec.call_id,
                result.heard_ms,
                result.total_ms,
            )

    async def claim_stream(self, *, token: str, call_sid: str) -> str:
        call_id = self._by_provider_id.get(call_sid)
        live = self._live.get(call_id) if call_id else None
        if live is None or call_id is None:
            raise StreamRejected("no live call with that CallSid")
        async with live.lock:
            rec = live.record
            md = rec.metadata
            claim = stream_tokens.check(
                self._stream_key,
                token,
                call_sid=call_sid,
                call_id=call_id,
                now=self._clock(),
                current_generation=int(md.get("stream_gen", 0)),
                used_generation=int(md.get("stream_used", 0)),
            )
            if not claim.ok:
                raise StreamRejected(claim.reason)
            updated = rec.copy(metadata={**md, "stream_used": claim.generation})
            await self.store.commit(updated)
            live.record = updated
        return call_id

    async def stream_attached(self, call_id: str, channel: SpeechChannel) -> None:
        live = self._live.get(call_id)
        if live is None or live.record.is_terminal:
            await channel.close("the call has ended")
            return
        live.channel = channel
        live.attached.set()
        handle = live.timers.pop("stream-grace", None)
        if handle is not None:
            handle.cancel()
        self.bus.publish({"type": "stream.attached", "at": self._clock(), "call_id": call_id})
        if not live.record.metadata.get("opening_spoken"):
            async with live.lock:
                rec = live.record.copy(metadata={**live.record.metadata, "opening_spoken": True})
                await self.store.commit(rec)
                live.record = rec
            opening = (
                rec.message
                if rec.direction is Direction.OUTBOUND
                else self.settings.inbound_greeting
            )
            if opening:
                self._spawn(self._say_on_stream(live, channel, opening))

    async def stream_detached(self, call_id: str, *, reason: str) -> None:
        live = self._live.get(call_id)
        if live is None:
            return
        live.channel = None
        live.attached.clear()
        if live.record.is_terminal:
            return
        async with live.lock:
            rec = self._next_stream_generation(live.record)
            await self.store.commit(rec)
            live.record = rec
        self.bus.publish(
            {"type": "stream.detached", "at": self._clock(), "call_id": call_id, "reason": reason}
        )

        async def lost(cid: str) -> None:
            await self._timeout_hangup(cid, EndReason.ERROR, f"media stream lost ({reason})")

        self._arm(live, "stream-grace", self.stream_grace_seconds, lost)

    async def caller_said(self, call_id: str, text: str, *, final: bool) -> None:
        live = self._live.get(call_id)
        if live is None or not text.strip():
            return
        if not final:
            self.bus.publish(
                {
                    "type": "transcript.partial",
                    "at": self._clock(),
                    "call_id": call_id,
                    "text": text,
                }
            )
            return
        async with live.lock:
            rec = live.record
            if rec.is_terminal:
                return
            line = self._line(rec, live.transcript_seq, Speaker.USER, text.strip(), turn=rec.turn)
            await self.store.commit(rec.copy(updated_at=self._clock()), transcript=[line])
            live.transcript_seq += 1
            fut = live.waiters.pop(rec.turn, None)
        self._publish_line(line)
        if fut is not None and not fut.done():
            fut.set_result(line.text)
        elif fut is None:
            self._maybe_autoreply(live)

    async def caller_pressed(self, call_id: str, digit: str) -> None:
        await self.caller_said(call_id, f"[dtmf] {digit}", final=True)

    async def bot_interrupted(self, call_id: str, result: SpokenResult) -> None:
        """Barge-in: the transcript keeps what the caller actually heard of the bot's line."""
        live = self._live.get(call_id)
        if live is not None:
            async with live.lock:
                lines = await self.store.transcript(call_id)
                last = next((ln for ln in reversed(lines) if ln.speaker is Speaker.BOT), None)
                if last is not None and not last.text.endswith("[cut off]"):
                    heard = result.heard_text.strip()
                    cut = dataclasses.replace(
                        last, text=f"{heard} [cut off]" if heard else "[cut off]"
                    )
                    await self.store.commit(None, transcript=[cut])
        self.bus.publish(
            {
                "type": "bot.interrupted",
                "at": self._clock(),
                "call_id": call_id,
                "heard_ms": result.heard_ms,
                "total_ms": result.total_ms,
                "heard_text": result.heard_text,
            }
        )

    async def _require_answered(self, call_id: str) -> _Live:
        live = self._live.get(call_id)
        if live is None:
            record = await self.get_call(call_id)  # raises UnknownCall
            raise CallNotActive(f"call {call_id} has ended ({record.state})")
        if live.record.answered_at is None or live.record.provider_call_id is None:
            raise CallNotActive(
                f"call {call_id} has not been answered yet (state {live.record.state})"
            )
        return live

    # ------------------------------------------------------------------ timers

    def _arm(self, live: _Live, name: str, delay: float, handler: Callable[[str], Any]) -> None:
        old = live.timers.pop(name, None)
        if old is not None:
            old.cancel()
        loop = asyncio.get_running_loop()
        call_id = live.record.call_id
        live.timers[name] = loop.call_later(delay, lambda: self._spawn(handler(call_id)))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _run_actions(self, live: _Live, actions: Iterable[Action]) -> None:
        for action in actions:
            if action is Action.CANCEL_RING_TIMER:
                handle = live.timers.pop("ring", None)
                if handle:
                    handle.cancel()
            elif action is Action.ARM_MAX_DURATION:
                self._arm(
                    live, "max-duration", self.settings.max_duration_seconds, self._on_max_duration
                )
                if live.record.mode is CallMode.NOTIFY and live.record.message:
                    words = len(live.record.message.split())
                    backstop = (
                        words / WORDS_PER_SECOND
                        + self.settings.outbound.notify_hangup_delay_seconds
                        + 30.0
                    )
                    self._arm(live, "notify", backstop, self._on_notify_backstop)

    async def _on_ring_timeout(self, call_id: str) -> None:
        live = self._live.get(call_id)
        if live is None or live.record.answered_at is not None:
            return
        sid = live.record.provider_call_id
        if sid is not None:
            await self._hangup_remote(sid)
        await self._finalize(
            call_id, EndReason.NO_ANSWER, error="no answer before the ring timeout"
        )

    async def _on_max_duration(self, call_id: str) -> None:
        await self._timeout_hangup(call_id, EndReason.TIMEOUT, "max_duration_seconds reached")

    async def _on_notify_backstop(self, call_id: str) -> None:
        await self._timeout_hangup(
            call_id, EndReason.HANGUP_BOT, "notify message delivered; provider never hung up"
        )

    async def _timeout_hangup(self, call_id: str, reason: EndReason, why: str) -> None:
        live = self._live.get(call_id)
        if live is None:
            return
        sid = live.record.provider_call_id
        if sid is not None:
            await self._hangup_remote(sid)
        await self._finalize(call_id, reason, error=why)

    async def _hangup_remote(self, provider_call_id: str) -> None:
        try:
            await self.provider.hangup(provider_call_id)
        except ProviderError as exc:
            log.warning("hang-up of %s failed: %s", provider_call_id, exc)

    # ------------------------------------------------------------------ reaper

    async def _reap_forever(self) -> None:
        while True:
            await asyncio.sleep(self._reaper_interval)
            try:
                await self.reap_once()
            except Exception:  # the reaper must outlive any one failure
                log.exception("reaper pass failed")

    async def reap_once(self) -> int:
        """End calls that look stale *and* that the provider says are over. Returns how many."""
        now = self._clock()
        stale_after = self.settings.max_duration_seconds + self.settings.ring_timeout_seconds + 60.0
        ended = 0
        for call_id, live in list(self._live.items()):
            rec = live.record
            if now - rec.updated_at < stale_after:
                continue
            if rec.provider_call_id is None:
                await self._finalize(call_id, EndReason.ERROR, error="never reached the provider")
                ended += 1
                continue
            try:
                remote = await self.provider.fetch_status(rec.provider_call_id)
            except ProviderError as exc:
                log.warning("reaper: status of %s unknown (%s)", call_id, exc)
                continue
            if remote.live:
                continue  # never end a call the provider says is live
            await self._finalize(call_id, remote.end_reason or EndReason.COMPLETED)
            ended += 1
        self.counters["reaped"] += ended
        return ended

    # ------------------------------------------------------------------ finalize

    async def _finalize(
        self, call_id: str, reason: EndReason, *, error: str | None = None, locked: bool = False
    ) -> None:
        live = self._live.get(call_id)
        if live is None:
            return
        if locked:
            await self._finalize_locked(live, reason, error)
        else:
            async with live.lock:
                await self._finalize_locked(live, reason, error)

    async def _finalize_locked(self, live: _Live, reason: EndReason, error: str | None) -> None:
        rec = live.record
        if rec.is_terminal and self._live.get(rec.call_id) is not live:
            return
        t = states.apply(rec.state, Signal.ENDED, reason)
        final = rec
        if t.changed:
            now = self._clock()
            final = rec.copy(
                state=t.state,
                end_reason=reason,
                ended_at=now,
                updated_at=now,
                error=error or rec.error,
            )
            try:
                await self.store.commit(final)
            except StoreError as exc:
                # memory must still let go of the call (a failed save must never wedge calling);
                # the reaper/restart reconciles the stored row with the provider later
                log.error("could not store the end of call %s: %s", rec.call_id, exc)
        live.record = final
        self._cancel_autoreply(live)
        if self.memory is not None and t.changed:
            self._spawn(self._remember(final))
        if live.channel is not None:
            self._spawn(live.channel.close("call ended"))
            live.channel = None
        for handle in live.timers.values():
            handle.cancel()
        live.timers.clear()
        for fut in live.waiters.values():
            if not fut.done():
                fut.set_exception(CallNotActive(f"the call ended ({final.state})"))
        live.waiters.clear()
        self._live.pop(rec.call_id, None)
        if rec.provider_call_id:
            self._by_provider_id.pop(rec.provider_call_id, None)
        self.counters["calls_finalized"] += 1
        self._publish("call.ended", final)

    async def _remember(self, record: CallRecord) -> None:
        caller = record.from_number if record.direction is Direction.INBOUND else record.to_number
        if self.memory is None or caller is None:
            return
        try:
            lines = await self.store.transcript(record.call_id)
            summary = summarize_exchange([(ln.speaker.value, ln.text) for ln in lines])
            await self.memory.remember(caller, summary, now=self._clock())
        except StoreError as exc:
            log.error("could not remember call %s for its caller: %s", record.call_id, exc)

    async def _store_terminal(self, record: CallRecord, reason: EndReason, *, error: str) -> None:
        t = states.apply(record.state, Signal.ENDED, reason)
        now = self._clock()
        final = record.copy(
            state=t.state, end_reason=reason, ended_at=now, updated_at=now, error=error
        )
        await self.store.commit(final)
        self._publish("call.ended", final)

    # ------------------------------------------------------------------ helpers

    def _register(self, record: CallRecord) -> _Live:
        live = self._live.get(record.call_id)
        if live is None:
            live = _Live(record=record)
            self._live[record.call_id] = live
        if record.provider_call_id:
            self._by_provider_id[record.provider_call_id] = record.call_id
        return live

    def _event_row(self, call_id: str, event: CallEvent) -> EventRow:
        detail = event.kind.value
        if event.sequence is not None:
            detail += f" seq={event.sequence}"
        if event.end_reason is not None:
            detail += f" reason={event.end_reason.value}"
        return EventRow(
            dedupe_key=event.dedupe_key,
            call_id=call_id,
            kind=event.kind.value,
            at=self._clock(),
            detail=detail,
        )

    def _line(
        self,
        record: CallRecord,
        seq: int,
        speaker: Speaker,
        text: str,
        *,
        turn: int | None,
        final: bool = True,
    ) -> TranscriptEntry:
        return TranscriptEntry(
            call_id=record.call_id,
            seq=seq,
            speaker=speaker,
            text=text,
            at=self._clock(),
            final=final,
            turn=turn,
        )

    def _publish(self, kind: str, record: CallRecord) -> None:
        self.bus.publish({"type": kind, "at": self._clock(), "call": record.to_json()})

    def _publish_line(self, line: TranscriptEntry) -> None:
        self.bus.publish(
            {"type": "transcript", "at": line.at, "call_id": line.call_id, **line.to_json()}
        )


# every field the record's == compares, except the bookkeeping ones (read in one C call)
_NOT_BOOKKEEPING = operator.attrgetter(
    *(
        f.name
        for f in dataclasses.fields(CallRecord)
        if f.compare and f.name not in ("last_sequence", "updated_at")
    )
)


def _differs(new: CallRecord, old: CallRecord) -> bool:
    """Whether ``new`` changes anything beyond bookkeeping (the highest sequence number seen).

    The same as ``new.copy(last_sequence=old.last_sequence, updated_at=old.updated_at) != old``
    without building that copy (it ran for every status callback)."""
    return bool(_NOT_BOOKKEEPING(new) != _NOT_BOOKKEEPING(old))


def _check_message(message: str) -> str:
    text = (message or "").strip()
    if not text:
        raise InvalidRequest("message: must not be empty")
    if len(text) > MAX_MESSAGE_CHARS:
        raise InvalidRequest(f"message: longer than {MAX_MESSAGE_CHARS} characters")
    return text
