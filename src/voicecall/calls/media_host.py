"""The call manager's side of the Media Streams seam (:class:`~voicecall.calls.channel.StreamHost`).

It decides whether a stream may attach to a call (single-use, CallSid-bound tokens), speaks the
opening line when one does, applies the reconnect grace when it drops, and turns what the
pipeline hears into transcript lines, answers to waiting agents and automatic replies.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from voicecall.calls import stream_tokens
from voicecall.calls.channel import SpeechChannel, SpokenResult, StreamRejected
from voicecall.calls.continuation import continuation
from voicecall.calls.fold import next_stream_generation
from voicecall.calls.model import EndReason, Speaker, TranscriptEntry
from voicecall.telephony.keypad import pressed
from voicecall.telephony.transfer_plan import transfer_under_way
from voicecall.textrules import caller_text

if TYPE_CHECKING:
    from voicecall.calls.manager import CallManager

log = logging.getLogger("voicecall.manager")


class MediaHost:
    def __init__(self, core: CallManager) -> None:
        self.core = core

    async def claim_stream(self, *, token: str, call_sid: str) -> str:
        core = self.core
        live = core.live_by_provider_id(call_sid)
        if live is None:
            raise StreamRejected("no live call with that CallSid")
        call_id = live.call_id
        async with live.lock:
            rec = live.record
            md = rec.metadata
            claim = stream_tokens.check(
                core.stream_key,
                token,
                call_sid=call_sid,
                call_id=call_id,
                now=core.now(),
                current_generation=int(md.get("stream_gen", 0)),
                used_generation=int(md.get("stream_used", 0)),
            )
            if not claim.ok:
                raise StreamRejected(claim.reason)
            await core.commit(live, rec.copy(metadata={**md, "stream_used": claim.generation}))
        return call_id

    async def stream_attached(self, call_id: str, channel: SpeechChannel) -> None:
        core = self.core
        live = core.live(call_id)
        if live is None or live.record.is_terminal:
            await channel.close("the call has ended")
            return
        live.channel = channel
        live.attached.set()
        core.disarm(live, "stream-grace")
        core.bus.publish({"type": "stream.attached", "at": core.now(), "call_id": call_id})
        core.voicemail.stream_attached(live, channel)
        core.hold.stream_attached(live, channel)
        if live.record.metadata.get("opening_spoken") or core.voicemail.holds_opening(live):
            return
        async with live.lock:
            rec = live.record.copy(metadata={**live.record.metadata, "opening_spoken": True})
            await core.commit(live, rec)
        opening = core.replies.opening(rec)
        if opening:
            # the opening is the call's first stored line (seq 0, written when it was created)
            first = TranscriptEntry(call_id, 0, Speaker.BOT, opening, rec.created_at, turn=None)
            core.spawn(core.turns.say_on_stream(live, channel, opening, line=first))

    async def stream_detached(self, call_id: str, *, reason: str) -> None:
        core = self.core
        live = core.live(call_id)
        if live is None:
            return
        live.channel = None
        live.attached.clear()
        if live.record.is_terminal:
            return
        async with live.lock:
            await core.commit(live, next_stream_generation(live.record, now=core.now()))
        core.bus.publish(
            {"type": "stream.detached", "at": core.now(), "call_id": call_id, "reason": reason}
        )

        if transfer_under_way(live.record.metadata):
            return  # the call was handed to a <Dial>: the transfer's result decides what next

        async def lost(cid: str) -> None:
            await core.timeout_hangup(cid, EndReason.ERROR, f"media stream lost ({reason})")

        core.arm(live, "stream-grace", core.stream_grace_seconds, lost)

    async def caller_said(
        self, call_id: str, text: str, *, final: bool, resumed: bool = False
    ) -> None:
        core = self.core
        live = core.live(call_id)
        text = caller_text(text)  # what recognition heard, made storable
        if live is None or not text.strip():
            return
        if core.hold.drops(live):  # hold music/ringing: never a line, never to the model
            log.info("call %s: on hold; a transcript of the hold audio was dropped", call_id)
            return
        if not final:
            core.bus.publish(
                {"type": "transcript.partial", "at": core.now(), "call_id": call_id, "text": text}
            )
            core.autoreply.speculate(live, text)
            return
        if resumed:  # the last final heard again with more: store only the more
            text = await self._beyond_last_line(call_id, text)
        async with live.lock:
            rec = live.record
            if rec.is_terminal:
                return
            line = live.line(Speaker.USER, text.strip(), at=core.now(), turn=rec.turn)
            await core.commit(live, rec.copy(updated_at=core.now()), [line])
            fut = live.waiters.pop(rec.turn, None)
        core.publish_line(line)
        if fut is not None and not fut.done():
            fut.set_result(line.text)
        elif fut is None:
            core.autoreply.maybe(live, line.text)

    async def _beyond_last_line(self, call_id: str, text: str) -> str:
        """What ``text`` adds to the caller's last stored line when it repeats that line's words
        first (see calls/continuation.py); else all of ``text``."""
        lines = await self.core.store.transcript(call_id)
        last = next((ln for ln in reversed(lines) if ln.speaker is Speaker.USER), None)
        rest = None if last is None else continuation(last.text, text)
        if rest is None:
            return text
        log.info(
            "call %s: the caller went on; stored what was new (%d of %d characters)",
            call_id,
            len(rest),
            len(text),
        )
        return rest

    async def caller_pressed(self, call_id: str, digit: str) -> None:
        await self.caller_said(call_id, pressed(digit), final=True)

    async def bot_interrupted(self, call_id: str, result: SpokenResult) -> None:
        """Barge-in. The line that was cut is amended by whoever spoke it (``say_on_stream``
        knows which line it was; the last bot line may be one still queued behind it)."""
        core = self.core
        core.bus.publish(
            {
                "type": "bot.interrupted",
                "at": core.now(),
                "call_id": call_id,
                "heard_ms": result.heard_ms,
                "total_ms": result.total_ms,
                "heard_text": result.heard_text,
            }
        )
