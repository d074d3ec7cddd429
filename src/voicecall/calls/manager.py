"""The call manager: the call lifecycle — placement, webhooks, state, timers, the end.

It owns every live call's in-memory companion (:class:`~voicecall.calls.live.LiveCall`: timers,
turn waiters, a lock) and the one finalize path that releases them exactly once. The
conversation on top of a call lives beside it: :class:`~voicecall.conversation.turns.Turns`
(what agents say: speak, continue, end), :class:`~voicecall.conversation.autoreply.AutoReplier`
(the responder answering on its own) and :class:`~voicecall.calls.media_host.MediaHost` (the
Media Streams seam). They use the small set of public core methods below (``live``,
``commit``, ``publish_line``, ``arm`` …). Its rules:

* **Persist before acting.** Every change is written to the store (atomically with the dedupe
  key of the event that caused it) before memory changes or a webhook is acknowledged. A store
  failure raises :class:`StoreError`, so the webhook gets a 5xx and the provider retries.
* **Dedupe by signed identity.** An event whose key is already stored is acknowledged with the
  same answer and no side effect.
* **Never re-dial.** An outbound call is stored with ``dial_started_at`` *before* the create
  request; a restart reconciles such calls with the provider and never dials them again.
* **A transcript only grows.** A call loaded from the store (restart, standby takeover)
  continues its line numbers after the last stored line; the store refuses to overwrite one.
* **One finalize path** (:meth:`finalize`): terminal state stored, timers cancelled, waiters
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
from typing import Any

from voicecall.agent.responder import CallerMemory, Responder, summarize_exchange
from voicecall.calls import states, stream_tokens
from voicecall.calls.bus import EventBus
from voicecall.calls.channel import SpeechChannel, SpokenResult
from voicecall.calls.fold import fold, on_voice_fetch
from voicecall.calls.inbound import InboundDoor
from voicecall.calls.live import LiveCall, next_seq_after
from voicecall.calls.media_host import MediaHost
from voicecall.calls.model import (
    CallRecord,
    CallState,
    Direction,
    EndReason,
    Speaker,
    TranscriptEntry,
)
from voicecall.calls.outbound import OutboundGate
from voicecall.calls.placement import Placement
from voicecall.calls.replies import ReplyPolicy
from voicecall.calls.states import Signal
from voicecall.calls.store.base import CallPage, EventRow, Store
from voicecall.calls.timers import CallTimers
from voicecall.config import Settings
from voicecall.conversation.autoreply import AutoReplier
from voicecall.conversation.taskcalls import TaskCalls
from voicecall.conversation.turns import Turns
from voicecall.errors import (
    CallNotActive,
    InvalidRequest,
    ProviderError,
    StoreError,
    UnknownCall,
)
from voicecall.events import CallEvent, EventKind
from voicecall.phone import parse_e164
from voicecall.providers.base import (
    ParsedWebhook,
    Provider,
    Reply,
    WebhookKind,
)
from voicecall.telephony.hold import Hold
from voicecall.telephony.recordings import Recordings
from voicecall.telephony.voicemail import Voicemail

log = logging.getLogger("voicecall.manager")


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
        self._live: dict[str, LiveCall] = {}
        self._by_provider_id: dict[str, str] = {}
        #: outbound calls being stored right now (they count against max_concurrent_calls)
        self.pending_dials = 0
        self._reaper: asyncio.Task[None] | None = None
        self._background: set[asyncio.Future[Any]] = set()
        self.stream_key = stream_tokens.derive_key(stream_secret or secrets.token_bytes(32))
        self.replies = ReplyPolicy(
            streaming=streaming,
            inbound_greeting=settings.inbound_greeting,
            announcement=settings.recording.announcement,
            notify_pause_seconds=settings.outbound.notify_hangup_delay_seconds,
            stream_key=self.stream_key,
        )
        self.stream_grace_seconds = stream_grace_seconds
        #: answers the caller on its own when no agent is waiting on the turn (None: agent only)
        self.responder = responder
        self.memory = memory
        self.timers = CallTimers(self, reaper_interval_seconds=reaper_interval_seconds)
        self.placement = Placement(self)
        #: place an outbound call (see :meth:`Placement.place_call`: its arguments are the API's)
        self.place_call = self.placement.place_call
        self.inbound = InboundDoor(self)
        self.turns = Turns(self)
        self.autoreply = AutoReplier(self)
        self.media = MediaHost(self)
        #: the outbound policy and audit trail every dialled number goes through
        self.outbound = OutboundGate(settings, store, clock=clock)
        #: task calls, owner questions, outcomes and end-of-call reports (the end seam)
        self.tasks = TaskCalls(self)
        self.voicemail = Voicemail(self)  # answering machines (telephony/voicemail.py)
        self.hold = Hold(self)  # hold music and IVR waits on streams (telephony/hold.py)
        self.recordings = Recordings(self)  # call recordings (telephony/recordings.py)
        self.counters: dict[str, int] = {
            "calls_placed": 0,
            "calls_finalized": 0,
            "webhook_duplicates": 0,
            "events_applied": 0,
            "inbound_rejected": 0,
            "reaped": 0,
        }

    @property
    def streaming(self) -> bool:
        """Speech flows over Media Streams (``<Connect><Stream>``) instead of <Say>/<Gather>."""
        return self.replies.streaming

    @streaming.setter
    def streaming(self, value: bool) -> None:
        self.replies = dataclasses.replace(self.replies, streaming=value)

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Reload non-terminal calls and reconcile each with the provider. Never re-dials."""
        for record in await self.store.list_active():
            await self._restore(record)
        await self.tasks.start()
        if self.timers.reaper_interval > 0:
            self._reaper = asyncio.create_task(self.timers.reap_forever(), name="voicecall-reaper")

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
        live = await self._load(record)
        try:
            remote = await self.provider.fetch_status(record.provider_call_id)
        except ProviderError as exc:
            log.warning("reconcile: status of %s unknown (%s); keeping it", record.call_id, exc)
            self.timers.arm_restored(live)
            return
        if not remote.live:
            await self.finalize(record.call_id, remote.end_reason or EndReason.COMPLETED)
            return
        self.timers.arm_restored(live)

    # ------------------------------------------------------------------ queries

    @property
    def live_count(self) -> int:
        return len(self._live)

    @property
    def active_count(self) -> int:
        return len(self._live) + self.pending_dials

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

    async def reap_once(self) -> int:
        """One reaper pass (see :class:`~voicecall.calls.timers.CallTimers`)."""
        return await self.timers.reap_once()

    # ------------------------------------------------------------------ webhooks

    async def handle_webhook(self, hook: ParsedWebhook) -> Reply:
        """Apply a verified, parsed webhook; return what the provider should do next."""
        call_id = hook.call_id or self._by_provider_id.get(hook.provider_call_id)
        live = self._live.get(call_id) if call_id else None
        if hook.kind is WebhookKind.PARTIAL:
            # the caller started talking inside a <Gather>: nothing to store, only to know
            if live is not None:
                self.turns.caller_speaking(live, hook)
            return Reply.empty()
        if live is None:
            record = await self._lookup(call_id, hook.provider_call_id)
            if record is None:
                if hook.inbound and hook.kind is WebhookKind.VOICE:
                    return await self.inbound.answer(hook)
                log.info("webhook for unknown call %s ignored", hook.provider_call_id)
                return Reply.empty()
            if record.is_terminal:
                return await self._reply_for_ended(record, hook)
            live = await self._load(record)
        if hook.kind is WebhookKind.HOLD and hook.line_seq is not None:
            # a line said by a call update is over: the update waiting behind it may go (the
            # answer keeps the call open for it, an ending call's too: calls/replies.py)
            live.lines.heard(hook.line_seq)
        async with live.lock:
            if live.record.is_terminal:
                return await self._reply_for_ended(live.record, hook)
            if hook.kind is WebhookKind.LINE:
                return await self._line_reply(live.record, hook)
            return await self._apply_locked(live, hook)

    async def _line_reply(self, record: CallRecord, hook: ParsedWebhook) -> Reply:
        """The provider fetches a stored bot line (it was too long to send inline)."""
        lines = await self.store.transcript(record.call_id)
        line = next(
            (ln for ln in lines if ln.seq == hook.line_seq and ln.speaker is Speaker.BOT), None
        )
        then = hook.then or "hold"
        if line is None or line.text.startswith("[not spoken]"):
            return Reply(hangup=True) if then == "hangup" else self.replies.line(record, "", then)
        return self.replies.line(record, line.text, then, seq=line.seq)

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
            await self.store.commit(None, event=self.event_row(record.call_id, event))
        return self.replies.for_ended(record, hook)

    async def _apply_locked(self, live: LiveCall, hook: ParsedWebhook) -> Reply:
        if live.record.provider_call_id is None:
            live.record = live.record.copy(provider_call_id=hook.provider_call_id)
            self._by_provider_id[hook.provider_call_id] = live.record.call_id
        events = hook.events or (self.synthetic_event(hook),)
        for i, event in enumerate(events):
            folded = fold(live.record, event, hook, seq=live.next_seq, now=self._clock())
            new = folded.record
            if i == len(events) - 1 and hook.kind is WebhookKind.VOICE and folded.end is None:
                new = on_voice_fetch(
                    new,
                    now=self._clock(),
                    turn_token=secrets.token_urlsafe(12),
                    streaming=self.replies.streams(new),
                )
            lines = [folded.line] if folded.line is not None else []
            if i == len(events) - 1:
                # bot lines held back for the caller's utterance are said in this answer
                lines += self.turns.held_lines(live, hook, seq=live.next_seq + len(lines))
            changed = _differs(new, live.record)
            new = new.copy(updated_at=self._clock()) if changed else new
            # an event that changes nothing about the call is stored for dedupe/history only
            stored = await self.store.commit(
                new if changed or lines else None,
                event=self.event_row(new.call_id, event),
                transcript=lines,
            )
            if not stored:  # seen before: acknowledge, change nothing
                self.counters["webhook_duplicates"] += 1
                continue
            self.counters["events_applied"] += 1
            live.record = new
            live.advance(len(lines))
            for entry in lines:
                self.publish_line(entry)
            if changed:
                self.publish("call.updated", new)
            self.timers.run_actions(live, folded.actions)
            if folded.wake is not None:
                fut = live.waiters.pop(folded.wake[0], None)
                if fut is not None and not fut.done():
                    fut.set_result(folded.wake[1])
                elif fut is None:
                    self.autoreply.maybe(live)
            if folded.end is not None:
                await self.finalize(new.call_id, folded.end, locked=True)
                break
        if not live.record.is_terminal:
            self.turns.after_webhook(live, hook)
            self.tasks.after_webhook(live, hook)
            self.voicemail.after_webhook(live, hook)
        return self.replies.reply(live.record, hook)

    def synthetic_event(self, hook: ParsedWebhook) -> CallEvent:
        """A webhook that yields no normalized event still needs a dedupe identity."""
        return CallEvent(
            kind=EventKind.INITIATED,
            dedupe_key=f"{self.provider.name}:{hook.provider_call_id}:{hook.kind}:{hook.turn}:"
            f"{hook.token}:noop",
            provider_call_id=hook.provider_call_id,
            call_id=hook.call_id,
        )

    # ------------------------------------------------------------------ agent operations

    async def speak(self, call_id: str, message: str) -> CallRecord:
        """Say ``message`` on a live call, then keep the line open. Returns once queued."""
        return await self.turns.speak(call_id, message)

    async def continue_call(
        self, call_id: str, message: str, *, wait_seconds: float | None = None
    ) -> str:
        """Say ``message``, then wait for the caller's next final transcript of that turn."""
        return await self.turns.continue_call(call_id, message, wait_seconds=wait_seconds)

    async def end_call(self, call_id: str, *, message: str | None = None) -> CallRecord:
        """Hang up, after saying ``message`` if given (the call is ``ending`` meanwhile)."""
        return await self.turns.end_call(call_id, message=message)

    async def forget_caller(self, number: str) -> bool:
        """Erase what is remembered about a caller (E.164); ``True`` if there was something.

        Works whether or not a responder is configured: memory written earlier is erased too.
        """
        caller = parse_e164(number, field="caller")
        return await self.store.forget_caller(caller)

    # ------------------------------------------------------------------ media streams (StreamHost)

    async def claim_stream(self, *, token: str, call_sid: str) -> str:
        return await self.media.claim_stream(token=token, call_sid=call_sid)

    async def stream_attached(self, call_id: str, channel: SpeechChannel) -> None:
        await self.media.stream_attached(call_id, channel)

    async def stream_detached(self, call_id: str, *, reason: str) -> None:
        await self.media.stream_detached(call_id, reason=reason)

    async def caller_said(
        self, call_id: str, text: str, *, final: bool, resumed: bool = False
    ) -> None:
        await self.media.caller_said(call_id, text, final=final, resumed=resumed)

    async def caller_pressed(self, call_id: str, digit: str) -> None:
        await self.media.caller_pressed(call_id, digit)

    async def bot_interrupted(self, call_id: str, result: SpokenResult) -> None:
        await self.media.bot_interrupted(call_id, result)

    # ------------------------------------------------------------------ core, for collaborators

    def now(self) -> float:
        return self._clock()

    def live(self, call_id: str) -> LiveCall | None:
        """The live companion of a non-terminal call, if this process holds one."""
        return self._live.get(call_id)

    def live_by_provider_id(self, provider_call_id: str) -> LiveCall | None:
        call_id = self._by_provider_id.get(provider_call_id)
        return self._live.get(call_id) if call_id else None

    async def require_answered(self, call_id: str) -> LiveCall:
        """A live, answered call an agent may talk on (409 otherwise, 404 if unknown)."""
        live = self._live.get(call_id)
        if live is None:
            record = await self.get_call(call_id)  # raises UnknownCall
            raise CallNotActive(f"call {call_id} has ended ({record.state})")
        if live.record.answered_at is None or live.record.provider_call_id is None:
            raise CallNotActive(
                f"call {call_id} has not been answered yet (state {live.record.state})"
            )
        if live.record.state is CallState.ENDING:
            raise CallNotActive(f"call {call_id} is ending: an end was asked for")
        return live

    def streams(self, live: LiveCall) -> bool:
        """Whether this call's speech goes over its Media Stream."""
        return self.replies.streams(live.record)

    async def commit(
        self, live: LiveCall, record: CallRecord | None, lines: Iterable[TranscriptEntry] = ()
    ) -> None:
        """Store ``record`` and ``lines`` (hold ``live.lock``), then take them into memory."""
        batch = list(lines)
        await self.store.commit(record, transcript=batch)
        if record is not None:
            live.record = record
        live.advance(len(batch))

    def spawn(self, coro: Any) -> asyncio.Future[Any]:
        task: asyncio.Future[Any] = asyncio.ensure_future(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        return task

    def arm(self, live: LiveCall, name: str, delay: float, handler: Callable[[str], Any]) -> None:
        self.disarm(live, name)
        loop = asyncio.get_running_loop()
        call_id = live.call_id
        live.timers[name] = loop.call_later(delay, lambda: self.spawn(handler(call_id)))

    @staticmethod
    def disarm(live: LiveCall, name: str) -> bool:
        """Cancel a timer; ``True`` if it was armed."""
        handle = live.timers.pop(name, None)
        if handle is None:
            return False
        handle.cancel()
        return True

    async def timeout_hangup(self, call_id: str, reason: EndReason, why: str | None) -> None:
        """Hang the call up at the provider and end it here with ``reason``."""
        live = self._live.get(call_id)
        if live is None:
            return
        sid = live.record.provider_call_id
        if sid is not None:
            await self.hangup_remote(sid)
        await self.finalize(call_id, reason, error=why)

    async def hangup_remote(self, provider_call_id: str) -> None:
        try:
            await self.provider.hangup(provider_call_id)
        except ProviderError as exc:
            log.warning("hang-up of %s failed: %s", provider_call_id, exc)

    # ------------------------------------------------------------------ finalize

    async def finalize(
        self, call_id: str, reason: EndReason, *, error: str | None = None, locked: bool = False
    ) -> None:
        """End the call here (stored, timers cancelled, waiters woken, slot released); once."""
        live = self._live.get(call_id)
        if live is None:
            return
        if locked:
            await self._finalize_locked(live, reason, error)
        else:
            async with live.lock:
                await self._finalize_locked(live, reason, error)

    async def _finalize_locked(self, live: LiveCall, reason: EndReason, error: str | None) -> None:
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
                # the report outbox row is written with the end, in the same transaction
                await self.store.commit(final, outbox=await self.tasks.outbox(final))
            except StoreError as exc:
                # memory must still let go of the call (a failed save must never wedge calling);
                # the reaper/restart reconciles the stored row with the provider later
                log.error("could not store the end of call %s: %s", rec.call_id, exc)
        live.record = final
        self.autoreply.cancel(live)
        if self.memory is not None and t.changed:
            self.spawn(self._remember(final))
        if live.channel is not None:
            self.spawn(live.channel.close("call ended"))
            live.channel = None
        for handle in live.timers.values():
            handle.cancel()
        live.timers.clear()
        for fut in live.waiters.values():
            if not fut.done():
                fut.set_exception(CallNotActive(f"the call ended ({final.state})"))
        live.waiters.clear()
        live.lines.release()
        self._live.pop(rec.call_id, None)
        if rec.provider_call_id:
            self._by_provider_id.pop(rec.provider_call_id, None)
        self.counters["calls_finalized"] += 1
        self.publish("call.ended", final)
        if t.changed:
            self.tasks.ended(final)

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
        await self.store.commit(final, outbox=await self.tasks.outbox(final))
        self.publish("call.ended", final)
        self.tasks.ended(final)

    # ------------------------------------------------------------------ helpers

    def bind_provider_id(self, provider_call_id: str, call_id: str) -> None:
        self._by_provider_id[provider_call_id] = call_id

    def live_calls(self) -> list[LiveCall]:
        """A snapshot of the live calls this process holds."""
        return list(self._live.values())

    def register(self, record: CallRecord, *, next_seq: int) -> LiveCall:
        """Track a call this process just created (its transcript is known)."""
        live = LiveCall(record=record, next_seq=next_seq)
        self._live[record.call_id] = live
        if record.provider_call_id:
            self._by_provider_id[record.provider_call_id] = record.call_id
        return live

    async def _load(self, record: CallRecord) -> LiveCall:
        """Track a call read back from the store: its transcript continues after the last
        stored line (a restart or a standby takeover must never write over earlier lines)."""
        seq = next_seq_after(await self.store.transcript(record.call_id))
        live = self._live.get(record.call_id)  # another task may have loaded it meanwhile
        if live is None:
            live = self.register(record, next_seq=seq)
        return live

    def event_row(self, call_id: str, event: CallEvent) -> EventRow:
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

    def publish(self, kind: str, record: CallRecord) -> None:
        self.bus.publish({"type": kind, "at": self._clock(), "call": record.to_json()})

    def publish_line(self, line: TranscriptEntry) -> None:
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
