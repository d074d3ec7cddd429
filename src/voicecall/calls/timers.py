"""A call's clocks: the ring backstop, the longest a call may last, the notify backstop, and the
reaper that ends calls which look stale *and* that the provider says are over.

Each handler gets a call id (timers are armed with :meth:`CallManager.arm`) and ends the call
through the manager's one finalize path; none of them ever ends a call the provider reports live.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING

from voicecall.calls.live import LiveCall
from voicecall.calls.model import CallMode, CallState, EndReason
from voicecall.calls.states import Action
from voicecall.errors import ProviderError

if TYPE_CHECKING:
    from voicecall.calls.manager import CallManager

log = logging.getLogger("voicecall.manager")

# how long after the provider's own ring timeout we step in if it never told us anything
RING_BACKSTOP_GRACE_SECONDS = 30.0
# spoken-words estimate used to arm the notify backstop (words per second)
WORDS_PER_SECOND = 2.5


class CallTimers:
    def __init__(self, core: CallManager, *, reaper_interval_seconds: float) -> None:
        self.core = core
        self.reaper_interval = reaper_interval_seconds

    # ------------------------------------------------------------------ arming

    def run_actions(self, live: LiveCall, actions: Iterable[Action]) -> None:
        """The timer side of a state transition's actions."""
        core = self.core
        for action in actions:
            if action is Action.CANCEL_RING_TIMER:
                core.disarm(live, "ring")
            elif action is Action.ARM_MAX_DURATION:
                core.arm(
                    live, "max-duration", core.settings.max_duration_seconds, self.on_max_duration
                )
                if live.record.mode is CallMode.NOTIFY and live.record.message:
                    words = len(live.record.message.split())
                    backstop = (
                        words / WORDS_PER_SECOND
                        + core.settings.outbound.notify_hangup_delay_seconds
                        + 30.0
                    )
                    core.arm(live, "notify", backstop, self.on_notify_backstop)

    def arm_ring(self, live: LiveCall) -> None:
        """A just-dialled call: step in if the provider never tells us how the ringing ended."""
        delay = self.core.settings.ring_timeout_seconds + RING_BACKSTOP_GRACE_SECONDS
        self.core.arm(live, "ring", delay, self.on_ring_timeout)

    def arm_max_duration(self, live: LiveCall) -> None:
        self.core.arm(
            live, "max-duration", self.core.settings.max_duration_seconds, self.on_max_duration
        )

    def arm_restored(self, live: LiveCall) -> None:
        """The timers of a call read back from the store, from its stored times."""
        core = self.core
        rec = live.record
        now = core.now()
        if rec.answered_at is not None:
            remaining = rec.answered_at + core.settings.max_duration_seconds - now
            core.arm(live, "max-duration", max(remaining, 0.0), self.on_max_duration)
        else:
            deadline = rec.created_at + core.settings.ring_timeout_seconds
            remaining = deadline + RING_BACKSTOP_GRACE_SECONDS - now
            core.arm(live, "ring", max(remaining, 0.0), self.on_ring_timeout)
        if rec.state is CallState.ENDING:
            # the goodbye was under way when we stopped: do not leave the call up
            core.arm(live, "ending", 0.0, core.turns.on_ending_backstop)

    # ------------------------------------------------------------------ handlers

    async def on_ring_timeout(self, call_id: str) -> None:
        live = self.core.live(call_id)
        if live is None or live.record.answered_at is not None:
            return
        sid = live.record.provider_call_id
        if sid is not None:
            await self.core.hangup_remote(sid)
        await self.core.finalize(
            call_id, EndReason.NO_ANSWER, error="no answer before the ring timeout"
        )

    async def on_max_duration(self, call_id: str) -> None:
        await self.core.timeout_hangup(call_id, EndReason.TIMEOUT, "max_duration_seconds reached")

    async def on_notify_backstop(self, call_id: str) -> None:
        await self.core.timeout_hangup(
            call_id, EndReason.HANGUP_BOT, "notify message delivered; provider never hung up"
        )

    # ------------------------------------------------------------------ reaper

    async def reap_forever(self) -> None:
        while True:
            await asyncio.sleep(self.reaper_interval)
            try:
                await self.reap_once()
            except Exception:  # the reaper must outlive any one failure
                log.exception("reaper pass failed")

    async def reap_once(self) -> int:
        """End calls that look stale *and* that the provider says are over. Returns how many."""
        core = self.core
        now = core.now()
        settings = core.settings
        stale_after = settings.max_duration_seconds + settings.ring_timeout_seconds + 60.0
        ended = 0
        for live in core.live_calls():
            rec = live.record
            call_id = rec.call_id
            if now - rec.updated_at < stale_after:
                continue
            if rec.provider_call_id is None:
                await core.finalize(call_id, EndReason.ERROR, error="never reached the provider")
                ended += 1
                continue
            try:
                remote = await core.provider.fetch_status(rec.provider_call_id)
            except ProviderError as exc:
                log.warning("reaper: status of %s unknown (%s)", call_id, exc)
                continue
            if remote.live:
                continue  # never end a call the provider says is live
            await core.finalize(call_id, remote.end_reason or EndReason.COMPLETED)
            ended += 1
        core.counters["reaped"] += ended
        return ended
