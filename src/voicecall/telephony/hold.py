"""Hold and IVR menus on a Media Stream: the I/O around ``telephony.holdwatch.HoldWatch``.

On an outbound streamed call with ``hold_detect`` ``auto`` (the default), the callee's audio is
watched (sampled, see ``holdwatch``). On hold (music, ring-back, a tone) the bot stays silent:
what it was saying is cut, no automatic reply starts, and transcripts of that audio are dropped
before they reach the transcript, an agent or the model. After ``max_hold_seconds`` on hold the
call hangs up (end reason ``timeout``, the error says why). Speech after hold (a person, or a
recorded announcement) is heard again: it goes to the model, which greets the person who picked
up; on a call that has been on hold an empty model answer is silence, never a fallback line.
Menus are heard as speech; the model presses keys with ``send_dtmf``.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from voicecall.calls.channel import InboundTap, SpeechChannel, TappableChannel
from voicecall.calls.live import LiveCall
from voicecall.calls.model import Direction, EndReason
from voicecall.telephony.holdwatch import HoldChange, HoldWatch
from voicecall.telephony.machine import MD_VERDICT, voicemail_pending
from voicecall.telephony.options import hold_settings

if TYPE_CHECKING:
    from voicecall.calls.manager import CallManager

log = logging.getLogger("voicecall.hold")

#: metadata: when the current hold began (absent: not on hold); ``held``: ever on hold
MD_ON_HOLD = "on_hold_since"
MD_HELD = "held"
_TIMER = "max-hold"


class Hold:
    """One per manager; see the module docs."""

    def __init__(self, core: CallManager) -> None:
        self.core = core
        self.watches: dict[str, HoldWatch] = {}
        core.bus.add_listener(self._on_event)

    def stream_attached(self, live: LiveCall, channel: SpeechChannel) -> None:
        rec = live.record
        detect, _ = hold_settings(rec, self.core.settings)
        if (
            not detect
            or rec.direction is not Direction.OUTBOUND
            or not isinstance(channel, TappableChannel)
        ):
            return
        watch = self.watches.get(live.call_id) or HoldWatch()
        self.watches[live.call_id] = watch
        call_id = live.call_id
        core = self.core

        def tap(payload: bytes) -> None:
            change = watch.feed(payload)
            if change is None:
                return
            # at once, in the audio path: the recogniser never hears the hold audio that
            # follows, and hears the person from their first word
            if change is HoldChange.HOLD:
                channel.hold_stt(True)
            else:
                channel.hold_stt(False, replay_frames=watch.frames - watch.person_from + 1)
            core.spawn(self.changed(call_id, change))

        channel.add_tap(InboundTap(tap))

    def drops(self, live: LiveCall) -> bool:
        """Whether what the caller's side says now is hold audio (never reaches anyone).

        The stored record says so until the change off hold is committed, which can take a
        while on a loaded store; the watcher in the audio path knew at once. Once it has heard
        the person, their words are theirs, whether or not the record has caught up (a loaded
        CI run dropped "Hello, yes, I am here." that way)."""
        if MD_ON_HOLD not in live.record.metadata:
            return False
        watch = self.watches.get(live.call_id)
        return watch is None or watch.on_hold

    def silence_ok(self, live: LiveCall) -> bool:
        """Whether an empty model answer is silence (the call has been on hold)."""
        return bool(live.record.metadata.get(MD_HELD))

    async def changed(self, call_id: str, change: HoldChange) -> None:
        core = self.core
        live = core.live(call_id)
        if live is None:
            return
        async with live.lock:
            rec = live.record
            if rec.is_terminal or voicemail_pending(rec) or rec.metadata.get(MD_VERDICT) == "leave":
                return  # a greeting's beep is no hold; a message being left is not cut
            md = dict(rec.metadata)
            if change is HoldChange.HOLD:
                if MD_ON_HOLD in md:
                    return
                md[MD_ON_HOLD] = core.now()
                md[MD_HELD] = True
            else:
                if md.pop(MD_ON_HOLD, None) is None:
                    return
            rec = rec.copy(metadata=md, updated_at=core.now())
            await core.commit(live, rec)
        core.publish("call.updated", rec)
        core.bus.publish({"type": f"call.{change.value}", "at": core.now(), "call_id": call_id})
        if change is HoldChange.HOLD:
            log.info("call %s: on hold; the bot waits silently", call_id)
            core.autoreply.cancel(live)
            if live.channel is not None:
                core.spawn(live.channel.interrupt())
            _, seconds = hold_settings(rec, core.settings)
            core.arm(live, _TIMER, seconds, self._too_long)
        else:
            log.info("call %s: off hold; someone is talking", call_id)
            core.disarm(live, _TIMER)

    async def _too_long(self, call_id: str) -> None:
        live = self.core.live(call_id)
        if live is None or MD_ON_HOLD not in live.record.metadata:
            return
        _, seconds = hold_settings(live.record, self.core.settings)
        await self.core.timeout_hangup(
            call_id, EndReason.TIMEOUT, f"on hold longer than max_hold_seconds ({seconds:g} s)"
        )

    def _on_event(self, event: dict[str, Any]) -> None:
        if event.get("type") == "call.ended":
            call_id = event["call"]["call_id"]
            self.watches.pop(call_id, None)
