"""Transfer a live call to another number (``POST /api/calls/{id}/transfer``, ``transfer_call``).

* **Cold**: the live call is updated with ``<Dial callerId=from><Number>to</Number></Dial>``;
  the call ends here at once as ``transferred`` (status ``handed-over``).
* **Warm**: ``<Dial action=…><Number url=…>to</Number></Dial>``. When the number answers it
  fetches the ``whisper`` webhook and hears the summary (``<Say>``), then the parties are
  connected (status ``connected``). The ``dial`` webhook (the ``<Dial action>``) says how it
  ended: ``completed`` ends the call as ``transferred``; ``busy``/``no-answer``/``failed``/
  ``canceled`` bring the caller back to the agent, who says so (a stored bot line), and the
  conversation goes on (a new ``<Gather>`` turn, or a fresh Media Stream).

Both webhooks are signed like every other and route by our signed ``callId`` + ``turn`` (the
transfer's ``seq``) + ``tok`` (its secret token); a stale or foreign one is refused politely
(the whisper hangs up that leg). Each is stored with a dedupe key from signed material
(``{provider}:{CallSid}:{kind}:{seq}:{tok}``), and the answer is a function of the stored call,
so a redelivery gets the same answer and changes nothing.

Every check comes before anything changes: the number (422, E.164 as written), the call (409:
not live, not answered, ending, a transfer already under way), the summary (422), then the
outbound policy (403/429 naming the rule, audited), under the outbound gate's lock.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING

from voicecall.calls import states
from voicecall.calls.fold import next_stream_generation
from voicecall.calls.live import LiveCall
from voicecall.calls.model import (
    CallRecord,
    CallState,
    Direction,
    EndReason,
    Speaker,
    TranscriptEntry,
)
from voicecall.calls.outbound import Requester
from voicecall.calls.states import Signal
from voicecall.calls.store.base import EventRow
from voicecall.errors import CallNotActive, InvalidRequest, ProviderError, VoicecallError
from voicecall.phone import parse_e164
from voicecall.providers.base import DialOut, Listen, ParsedWebhook, Reply, WebhookKind
from voicecall.telephony.transfer_plan import (
    METADATA_KEY,
    TransferMode,
    TransferState,
    TransferStatus,
    back_line,
    check_summary,
    dial_result,
    new_transfer,
    transfer_of,
)

if TYPE_CHECKING:
    from voicecall.calls.manager import CallManager

log = logging.getLogger("voicecall.telephony")


#: told a warm transfer's result (the model tool waiting on it)
ResultHandler = Callable[[TransferState], None]


class Transfers:
    def __init__(self, core: CallManager) -> None:
        self.core = core
        self._waiting: dict[str, ResultHandler] = {}

    def on_result(self, call_id: str, handler: ResultHandler) -> None:
        """Call ``handler`` with the result of the call's warm transfer under way; the agent
        that asked then says how it went (no fixed line is said)."""
        self._waiting[call_id] = handler

    # ------------------------------------------------------------------ the request

    async def start(
        self,
        call_id: str,
        *,
        to: str,
        mode: TransferMode | str,
        summary: str | None = None,
        requester: Requester | None = None,
    ) -> CallRecord:
        """Transfer the call; returns the record (ended ``transferred`` for a cold transfer)."""
        core = self.core
        try:
            how = TransferMode(mode)
        except ValueError:
            raise InvalidRequest("mode: must be cold or warm") from None
        number = parse_e164(to, field="to")
        live = await core.require_answered(call_id)
        self._check_free(live)
        text = check_summary(how, summary)
        who = requester or Requester()
        async with core.outbound.lock:
            await core.outbound.check_outbound(
                number, surface=who.surface, token_fingerprint=who.token_fingerprint, field="to"
            )
            async with live.lock:
                self._check_free(live)
                if live.record.is_terminal or live.record.state is CallState.ENDING:
                    raise CallNotActive(f"call {call_id} is ending or over")
                transfer = new_transfer(
                    transfer_of(live.record.metadata),
                    to=number,
                    mode=how,
                    summary=text,
                    token=secrets.token_urlsafe(12),
                    now=core.now(),
                )
                record = _with(live.record, transfer, now=core.now())
                await core.store.commit(record, event=self._row(record, transfer, "started"))
                live.record = record
            await core.outbound.record_placed(
                number, call_id, surface=who.surface, token_fingerprint=who.token_fingerprint
            )
        core.autoreply.cancel(live)  # the agent says nothing more of its own meanwhile
        self._published(record, transfer)
        sid = record.provider_call_id
        assert sid is not None  # require_answered checked it
        dial = DialOut(
            to=number,
            caller_id=_our_number(record) or core.settings.from_number or number,
            timeout_seconds=core.settings.transfer.ring_timeout_seconds,
            whisper=(call_id, transfer.seq, transfer.token) if how is TransferMode.WARM else None,
        )
        try:
            await core.provider.redirect(sid, Reply(dial=dial))
        except ProviderError as exc:
            if not exc.maybe_applied:
                await self._settle(live, transfer, TransferStatus.FAILED, error=str(exc))
            raise
        log.info("call %s: %s transfer to %s started", call_id, how.value, number)
        if how is TransferMode.COLD:
            await core.finalize(call_id, EndReason.TRANSFERRED)
        return await core.get_call(call_id)

    def _check_free(self, live: LiveCall) -> None:
        current = transfer_of(live.record.metadata)
        if current is not None and current.status.under_way:
            raise CallNotActive(
                f"call {live.call_id}: a transfer is already under way ({current.status.value})"
            )

    async def _settle(
        self, live: LiveCall, transfer: TransferState, status: TransferStatus, *, error: str
    ) -> None:
        core = self.core
        async with live.lock:
            moved = transfer.moved(status, now=core.now())
            record = _with(live.record, moved, now=core.now()).copy(error=error)
            await core.store.commit(record, event=self._row(record, moved, status.value))
            live.record = record
        self._published(record, moved)

    # ------------------------------------------------------------------ webhooks

    async def handle_webhook(self, hook: ParsedWebhook) -> Reply:
        """A ``whisper`` or ``dial`` webhook (verified and parsed by the provider)."""
        call_id = hook.call_id
        live = self.core.live(call_id) if call_id else None
        if live is None:
            if hook.kind is WebhookKind.WHISPER:
                return Reply(hangup=True)  # the call is over: decline the leg
            return Reply(hangup=True) if call_id is None else await self._for_ended(call_id)
        async with live.lock:
            if hook.kind is WebhookKind.WHISPER:
                return await self._whisper(live, hook)
            return await self._dialled(live, hook)

    async def _for_ended(self, call_id: str) -> Reply:
        record = await self.core.store.get_call(call_id)
        return Reply(hangup=True) if record is None or record.is_terminal else Reply()

    async def _whisper(self, live: LiveCall, hook: ParsedWebhook) -> Reply:
        """The number answered a warm transfer: it hears the summary, then it is connected."""
        core = self.core
        transfer = transfer_of(live.record.metadata)
        if (
            transfer is None
            or transfer.mode is not TransferMode.WARM
            or not transfer.matches(hook.turn, hook.token)
            or live.record.is_terminal
        ):
            log.warning("call %s: a whisper request for no transfer under way", live.call_id)
            return Reply(hangup=True)
        key = f"{core.provider.name}:{hook.provider_call_id}:whisper:{hook.turn}:{hook.token}"
        if transfer.status is TransferStatus.DIALING:
            moved = transfer.moved(
                TransferStatus.CONNECTED, now=core.now(), dial_call_sid=hook.provider_call_id
            )
            record = _with(live.record, moved, now=core.now())
            if await core.store.commit(record, event=self._row(record, moved, "connected", key)):
                live.record = record
                # the caller is with a person now: the agent's call time limit no longer applies
                core.disarm(live, "max-duration")
                self._published(record, moved)
        return Reply(
            say=transfer.summary or "You have a transferred call.",
            voice=core.settings.transfer.whisper_voice,
        )

    async def _dialled(self, live: LiveCall, hook: ParsedWebhook) -> Reply:
        """The transfer's ``<Dial>`` is over: connected and done, or back to the agent."""
        core = self.core
        transfer = transfer_of(live.record.metadata)
        if hook.provider_call_id != live.record.provider_call_id:
            log.warning("call %s: a dial result naming another call", live.call_id)
            return Reply(hangup=True)
        if transfer is None or not transfer.matches(hook.turn, hook.token):
            log.warning("call %s: a dial result for no transfer of this call", live.call_id)
            return self._reply(live.record, transfer)
        if not transfer.status.under_way:  # a redelivery: the same answer as the first time
            return self._reply(live.record, transfer)
        status = dial_result(hook.dial_status)
        handler = self._waiting.get(live.call_id)
        moved = transfer.moved(status, now=core.now(), dial_call_sid=hook.dial_call_sid)
        if handler is not None:
            moved = replace(moved, agent_answers=True)
        key = f"{core.provider.name}:{hook.provider_call_id}:dial:{hook.turn}:{hook.token}"
        record = _with(live.record, moved, now=core.now())
        lines: list[TranscriptEntry] = []
        if status.came_back:
            record, lines = self._back(live, record, moved)
        if not await core.store.commit(
            record, event=self._row(record, moved, status.value, key), transcript=lines
        ):
            return self._reply(live.record, transfer_of(live.record.metadata))
        live.record = record
        live.advance(len(lines))
        self._published(record, moved)
        for line in lines:
            core.publish_line(line)
        self._waiting.pop(live.call_id, None)
        if handler is not None:
            handler(moved)
        log.info("call %s: transfer to %s: %s", live.call_id, moved.to, status.value)
        if status is TransferStatus.COMPLETED:
            await core.finalize(live.call_id, EndReason.TRANSFERRED, locked=True)
            return Reply(hangup=True)
        if core.streams(live) and lines:
            core.spawn(self._say_back(live, lines[0]))
        return self._reply(record, moved)

    def _back(
        self, live: LiveCall, record: CallRecord, transfer: TransferState
    ) -> tuple[CallRecord, list[TranscriptEntry]]:
        """The caller is back: the agent's line opens a new turn (a fresh Gather token, or a
        fresh stream generation on streaming calls)."""
        core = self.core
        now = core.now()
        turn = record.turn + 1
        md = {**record.metadata, "turn_token": secrets.token_urlsafe(12)}
        t = states.apply(record.state, Signal.LISTENING)
        record = record.copy(turn=turn, metadata=md, state=t.state, updated_at=now)
        if core.streams(live):
            used = int(md.get("stream_used", 0))
            if int(md.get("stream_gen", 0)) <= used:  # no reconnect allowed yet: allow one
                record = next_stream_generation(record, now=now)
        if transfer.agent_answers:
            return record, []  # the model that asked for the transfer says how it went
        line = TranscriptEntry(
            live.call_id, live.next_seq, Speaker.BOT, back_line(transfer.status), now, turn=turn
        )
        return record, [line]

    def _reply(self, record: CallRecord, transfer: TransferState | None) -> Reply:
        """The answer to a dial webhook, from the stored call (redeliveries get the same)."""
        core = self.core
        if record.is_terminal or transfer is None:
            return Reply(hangup=True)
        if transfer.status.under_way:
            return Reply(hangup=True)  # cannot happen for a matching result; be safe
        if core.replies.streams(record):
            return core.replies.stream(record)
        if transfer.status.came_back and transfer.agent_answers:
            # the model says how it went (its line comes by redirect with a Gather): hold the
            # line until then, so nothing the caller says goes into a Gather about to be replaced
            return Reply(hold_call_id=record.call_id)
        if transfer.status.came_back:
            listen = Listen(
                call_id=record.call_id,
                turn=record.turn,
                token=str(record.metadata.get("turn_token", "")),
            )
            return Reply(say=back_line(transfer.status), listen=listen)
        return Reply(listen=core.replies.listen(record))

    async def _say_back(self, live: LiveCall, line: TranscriptEntry) -> None:
        """On a streaming call, the agent's line once the new stream is attached."""
        turns = self.core.turns
        try:
            channel = await turns.channel(live)
            await turns.say_on_stream(live, channel, line.text, line=line)
        except VoicecallError as exc:
            log.info("call %s: could not say the transfer result: %s", live.call_id, exc)

    # ------------------------------------------------------------------ helpers

    def _row(
        self, record: CallRecord, transfer: TransferState, what: str, key: str | None = None
    ) -> EventRow:
        return EventRow(
            dedupe_key=key or f"transfer:{record.call_id}:{transfer.seq}:{what}",
            call_id=record.call_id,
            kind="transfer",
            at=self.core.now(),
            detail=f"transfer {transfer.seq} {transfer.mode.value} {what}",
        )

    def _published(self, record: CallRecord, transfer: TransferState) -> None:
        core = self.core
        view = {k: v for k, v in transfer.to_metadata().items() if k != "token"}
        core.bus.publish(
            {"type": "call.transfer", "at": core.now(), "call_id": record.call_id, **view}
        )
        core.publish("call.updated", record)


def _our_number(record: CallRecord) -> str | None:
    """The number of ours on the call (the transfer's caller id must be a number we own)."""
    return record.to_number if record.direction is Direction.INBOUND else record.from_number


def _with(record: CallRecord, transfer: TransferState, *, now: float) -> CallRecord:
    return record.copy(
        metadata={**record.metadata, METADATA_KEY: transfer.to_metadata()}, updated_at=now
    )
