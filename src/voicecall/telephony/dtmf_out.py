"""Keypad out: press keys on a live call (``POST /api/calls/{id}/dtmf``, the ``send_dtmf`` tool).

The path is decided by :func:`~voicecall.telephony.keypad.plan_keys`: on a Media Stream the
keys are in-band Q.23 tones (μ-law, :func:`~voicecall.audio.dtmf.dtmf_ulaw`) queued on the
call's voice pipeline behind any speech already queued, so "one moment" then ``2`` reach the
other side in that order; on a ``<Gather>`` call the live call is updated with
``<Play digits>`` followed by the same ``<Gather>`` (the call goes back to listening).

Bad input changes nothing: invalid digits are a 422 naming ``digits`` (checked before the call
is looked at), a call that is not live, not answered, ending or handed to a transfer is a 409.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from voicecall.audio.dtmf import dtmf_ulaw, validate_digits
from voicecall.calls.channel import SpokenResult
from voicecall.calls.live import LiveCall
from voicecall.calls.model import CallState
from voicecall.errors import CallNotActive, VoicecallError
from voicecall.providers.base import Reply
from voicecall.telephony.keypad import KeyPath, KeyPlan, plan_keys
from voicecall.telephony.transfer_plan import transfer_of

if TYPE_CHECKING:
    from voicecall.calls.manager import CallManager

log = logging.getLogger("voicecall.telephony")


@runtime_checkable
class ToneChannel(Protocol):
    """A speech channel that can also play prepared μ-law audio in order with speech."""

    async def play_audio(self, ulaw: bytes, label: str) -> SpokenResult: ...


@dataclass(frozen=True, slots=True)
class KeysSent:
    call_id: str
    digits: str
    path: KeyPath
    seconds: float

    def to_json(self) -> dict[str, object]:
        return {
            "call_id": self.call_id,
            "digits": self.digits,
            "via": self.path.value,
            "seconds": round(self.seconds, 2),
        }


class Keypad:
    def __init__(self, core: CallManager) -> None:
        self.core = core

    async def send(self, call_id: str, digits: str, *, wait: bool = False) -> KeysSent:
        """Press ``digits`` on the call. Returns once they are queued (``wait``: played)."""
        core = self.core
        validate_digits(digits)  # 422 before anything about the call is looked at
        live = await core.require_answered(call_id)
        plan = plan_keys(digits, streams=core.streams(live))
        _not_transferring(live)
        if plan.path is KeyPath.STREAM:
            await self._in_band(live, plan, wait=wait)
        else:
            await self._play(live, plan)
        sent = KeysSent(call_id, plan.digits, plan.path, plan.seconds)
        log.info("call %s: keys %s sent (%s)", call_id, plan.digits, plan.path.value)
        core.bus.publish({"type": "dtmf.sent", "at": core.now(), **sent.to_json()})
        return sent

    async def _in_band(self, live: LiveCall, plan: KeyPlan, *, wait: bool) -> None:
        channel = await self.core.turns.channel(live)
        if not isinstance(channel, ToneChannel):
            raise CallNotActive("this call's media stream cannot play keypad tones")
        audio = dtmf_ulaw(plan.digits)
        playing = channel.play_audio(audio, f"[keys {plan.digits}]")
        if wait:
            await playing
        else:
            self.core.spawn(_logged(live.call_id, playing))

    async def _play(self, live: LiveCall, plan: KeyPlan) -> None:
        core = self.core
        async with live.lock:
            # a new turn with a fresh Gather token: what the other side says after the keys is
            # a new answer (the old Gather is abandoned by the update; its key is used up)
            rec = live.record
            if rec.is_terminal or rec.state is CallState.ENDING:
                raise CallNotActive(f"call {live.call_id} is ending or over")
            metadata = {**rec.metadata, "turn_token": secrets.token_urlsafe(12)}
            record = rec.copy(
                turn=rec.turn + 1,
                state=CallState.LISTENING,
                metadata=metadata,
                updated_at=core.now(),
            )
            await core.commit(live, record)
        sid = record.provider_call_id
        assert sid is not None  # require_answered checked it
        reply = Reply(digits=plan.digits, listen=core.replies.listen(record))
        await core.provider.redirect(sid, reply)


def _not_transferring(live: LiveCall) -> None:
    transfer = transfer_of(live.record.metadata)
    if transfer is not None and transfer.status.under_way:
        raise CallNotActive(
            f"call {live.call_id} is being transferred ({transfer.status.value}): "
            "it is not the agent's right now"
        )


async def _logged(call_id: str, playing: Coroutine[Any, Any, SpokenResult]) -> None:
    try:
        await playing
    except VoicecallError as exc:
        log.warning("call %s: keypad tones not played: %s", call_id, exc)
