"""Voicemail: the I/O around :mod:`voicecall.telephony.machine`'s decisions.

A ``voicemail`` call is silent from the answer until it is decided (the reply policy holds the
``<Gather>`` call with ``<Pause>``/``<Redirect>``; on a stream the opening is not spoken). Two
things decide it: Twilio's async AMD verdict (the ``kind=amd`` webhook, folded into the record's
``answered_by``) and, on a Media Stream, our :class:`~voicecall.audio.beep.BeepDetector` fed the
callee's audio from the stream's first frame. The verdict is stored once (``vm_verdict``), then:

* **human**: the call goes on as if just answered (the opening is said; a task agent opens);
* **leave**: the message (the call's ``voicemail_message``, else its message; task calls
  without one: written by the model from the task, prepared while the greeting plays) is said,
  then the call hangs up and ends ``voicemail``; the unspoken opening line is marked so;
* **hang up**: a fax.

``detect`` calls only store ``answered_by`` (the fold does it); nothing here acts on them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, Any

from voicecall.audio.beep import BeepDetector, BeepEvent
from voicecall.calls.channel import InboundTap, SpeechChannel, TappableChannel
from voicecall.calls.live import LiveCall
from voicecall.calls.model import CallMode, EndReason, Speaker, TranscriptEntry
from voicecall.errors import ProviderError, StoreError, VoicecallError
from voicecall.providers.base import ParsedWebhook, Reply, WebhookKind
from voicecall.telephony.machine import (
    MD_ANSWERED_BY,
    MD_GREETING_END,
    MD_VERDICT,
    Verdict,
    decide,
    message_for,
    voicemail_pending,
)

if TYPE_CHECKING:
    from voicecall.calls.manager import CallManager

log = logging.getLogger("voicecall.voicemail")

#: after the message was sent, hang up this long after its estimated end if the call is up
MESSAGE_GRACE_SECONDS = 10.0
#: what is left when nothing else can be (a task model that failed, no message)
FALLBACK_MESSAGE = "Hello, sorry we missed you. We will try again later. Goodbye."


class Voicemail:
    """One per manager; see the module docs."""

    def __init__(self, core: CallManager) -> None:
        self.core = core
        self._untap: dict[str, object] = {}
        self._prepared: dict[str, asyncio.Future[str | None]] = {}
        #: beep-detector events of live calls (call id → event)
        self.greeting_ends: dict[str, BeepEvent] = {}
        core.bus.add_listener(self._on_event)

    def _on_event(self, event: dict[str, Any]) -> None:
        if event.get("type") != "call.ended":
            return
        call_id = event["call"]["call_id"]
        self.greeting_ends.pop(call_id, None)
        self._untap.pop(call_id, None)
        fut = self._prepared.pop(call_id, None)
        if fut is not None:
            fut.cancel()

    # ------------------------------------------------------------------ seams

    def holds_opening(self, live: LiveCall) -> bool:
        """Whether the opening must wait (an undecided ``voicemail`` call)."""
        return voicemail_pending(live.record)

    def after_webhook(self, live: LiveCall, hook: ParsedWebhook) -> None:
        """A webhook was applied: an AMD verdict may decide the call."""
        rec = live.record
        if not voicemail_pending(rec):
            return
        if hook.kind is WebhookKind.VOICE and rec.mode is CallMode.TASK:
            self._prepare(live)
        if rec.metadata.get(MD_ANSWERED_BY):
            self.core.spawn(self.settle(live.call_id))

    def stream_attached(self, live: LiveCall, channel: SpeechChannel) -> None:
        """An undecided ``voicemail`` call's stream: listen for the end of the greeting."""
        if not voicemail_pending(live.record) or not isinstance(channel, TappableChannel):
            return
        detector = BeepDetector()
        call_id = live.call_id
        remove = None

        def tap(payload: bytes) -> None:
            event = detector.feed_ulaw(payload) if len(payload) == 160 else None
            if event is not None:
                if remove is not None:
                    remove()
                self.greeting_ends[call_id] = event
                self.core.spawn(self.greeting_ended(call_id, event))

        remove = channel.add_tap(InboundTap(tap))
        self._untap[call_id] = remove

    # ------------------------------------------------------------------ decisions

    async def greeting_ended(self, call_id: str, event: BeepEvent) -> None:
        """Our detector heard the greeting end (a beep, or a long silence after it)."""
        live = self.core.live(call_id)
        if live is None:
            return
        log.info("call %s: greeting ended (%s)", call_id, event.kind.value)
        async with live.lock:
            rec = live.record
            if not voicemail_pending(rec) or MD_GREETING_END in rec.metadata:
                return
            md = {**rec.metadata, MD_GREETING_END: event.kind.value}
            await self.core.commit(live, rec.copy(metadata=md, updated_at=self.core.now()))
        await self.settle(call_id)

    async def settle(self, call_id: str) -> None:
        """Decide the call if what is known allows it, once; then act on the verdict."""
        core = self.core
        live = core.live(call_id)
        if live is None:
            return
        async with live.lock:
            rec = live.record
            if not voicemail_pending(rec):
                return
            answered_by = rec.metadata.get(MD_ANSWERED_BY)
            greeting = rec.metadata.get(MD_GREETING_END)
            verdict = decide(
                str(answered_by) if answered_by else None, str(greeting) if greeting else None
            )
            if verdict is Verdict.WAIT:
                return
            rec = rec.copy(metadata={**rec.metadata, MD_VERDICT: verdict.value})
            await core.commit(live, rec.copy(updated_at=core.now()))
        untap = self._untap.pop(call_id, None)
        if callable(untap):
            untap()
        log.info("call %s: answered by %s → %s", call_id, answered_by or "?", verdict.value)
        core.publish("call.updated", live.record)
        if verdict is Verdict.HUMAN:
            await self._human(live)
        elif verdict is Verdict.LEAVE:
            await self._leave(live)
        else:
            await core.timeout_hangup(call_id, EndReason.HANGUP_BOT, "a fax answered")

    # ------------------------------------------------------------------ acts

    async def _human(self, live: LiveCall) -> None:
        """Go on as if just answered: say the opening (or let a task agent open)."""
        core = self.core
        self._prepared.pop(live.call_id, None)
        rec = live.record
        if rec.message is None:
            core.autoreply.maybe(live)  # a task call without an opening: its agent opens
            return
        first = TranscriptEntry(rec.call_id, 0, Speaker.BOT, rec.message, rec.created_at)
        try:
            if core.streams(live):
                channel = await core.turns.channel(live)
                async with live.lock:
                    md = {**live.record.metadata, "opening_spoken": True}
                    await core.commit(live, live.record.copy(metadata=md))
                await core.turns.say_on_stream(live, channel, rec.message, line=first)
                if rec.mode is CallMode.NOTIFY:
                    await core.timeout_hangup(rec.call_id, EndReason.COMPLETED, None)
                return
            then = "hangup" if rec.mode is CallMode.NOTIFY else "listen"
            await core.provider.redirect(
                _sid(rec), core.replies.line(rec, rec.message, then, seq=0)
            )
        except (VoicecallError, ProviderError) as exc:
            log.warning("call %s: the opening was not said (%s)", rec.call_id, exc)

    async def _leave(self, live: LiveCall) -> None:
        """Leave the message, then hang up; the call ends ``voicemail``."""
        core = self.core
        rec = live.record
        text = message_for(rec) or await self._written(live) or rec.message or FALLBACK_MESSAGE
        async with live.lock:
            if live.record.is_terminal:
                return
            line = live.line(Speaker.BOT, text, at=core.now(), turn=live.record.turn)
            await core.commit(live, live.record.copy(updated_at=core.now()), [line])
        core.publish_line(line)
        if rec.message is not None and rec.message != text:
            await self._not_spoken(rec.call_id, rec.message, rec.created_at)
        core.disarm(live, "notify")  # the notify backstop counted from the answer, not the beep
        core.arm(
            live,
            "voicemail",
            len(text.split()) / 2.5 + MESSAGE_GRACE_SECONDS,
            self._backstop,
        )
        if core.streams(live):
            try:
                channel = await core.turns.channel(live)
                await core.turns.say_on_stream(live, channel, text, line=line)
            except VoicecallError as exc:
                log.warning("call %s: the voicemail message was not said (%s)", rec.call_id, exc)
            await core.timeout_hangup(rec.call_id, EndReason.VOICEMAIL, None)
            return
        try:
            reply: Reply = core.replies.line(rec, text, "hangup", seq=line.seq)
            await core.provider.redirect(_sid(rec), reply)
        except ProviderError as exc:
            log.warning("call %s: the voicemail message was not sent (%s)", rec.call_id, exc)
            await core.timeout_hangup(rec.call_id, EndReason.VOICEMAIL, str(exc))

    async def _backstop(self, call_id: str) -> None:
        await self.core.timeout_hangup(call_id, EndReason.VOICEMAIL, None)

    async def _not_spoken(self, call_id: str, text: str, at: float) -> None:
        line = TranscriptEntry(call_id, 0, Speaker.BOT, f"[not spoken] {text}", at)
        with contextlib.suppress(StoreError):
            await self.core.store.amend_lines([line])

    # ------------------------------------------------------------------ task calls

    def _prepare(self, live: LiveCall) -> None:
        """A task call's message is written while the greeting plays (the model takes time)."""
        if live.call_id in self._prepared or message_for(live.record) is not None:
            return
        self._prepared[live.call_id] = self.core.spawn(
            self.core.tasks.voicemail_message(live.record)
        )

    async def _written(self, live: LiveCall) -> str | None:
        self._prepare(live)
        fut = self._prepared.pop(live.call_id, None)
        if fut is None:
            return None
        try:
            return await fut
        except Exception:  # a message of some kind is better than none
            log.exception("call %s: the voicemail message could not be written", live.call_id)
            return None


def _sid(record: object) -> str:
    sid = getattr(record, "provider_call_id", None)
    if not sid:
        raise ProviderError("the call has no provider call id yet")
    return str(sid)
