"""``<Dial>`` in the call simulator (pure): ring other parties, bridge, report, go on.

Each ``<Number>``/``<Client>``/``<Sip>`` becomes a child call (``Direction=outbound-dial``,
``ParentCallSid``), its own :class:`~voicecall.emulator.sim.CallSim` answered (or not) by the
script of the dialled address. The first child to answer is bridged, the others are cancelled.
With ``<Number url=…>`` the child first fetches that URL (signed, like every webhook) and plays
its TwiML to the dialled party only (a whisper); when that document ends the legs are bridged
(a ``<Hangup/>`` in it declines the call). The bridge lasts until either party hangs up, the
parent is redirected or hung up over REST, or ``timeLimit`` passes.

When the dial is over, ``action`` is requested with ``DialCallStatus`` (``completed`` after a
bridge; else the child's ``busy`` / ``no-answer`` / ``failed`` / ``canceled``; a whisper that
hung up reads ``no-answer``), ``DialCallSid`` and ``DialCallDuration``, and the call runs the
TwiML it returns; without ``action`` the document goes on after ``<Dial>``. If the caller hangs
up first, the action is still requested and its TwiML ignored.

``<Dial><Conference>`` puts the call in a named room (see :mod:`~voicecall.emulator.conference`)
until the room ends (the last other participant left, or one with ``endConferenceOnExit``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from voicecall.emulator.forms import is_e164
from voicecall.emulator.simtypes import (
    CallSpec,
    CallStatus,
    Direction,
    EndLeg,
    JoinConference,
    LeaveConference,
    Purpose,
    SimAction,
    StartLeg,
)
from voicecall.emulator.twiml import Dial, DialTarget

if TYPE_CHECKING:
    from voicecall.emulator.sim import CallSim

__all__ = ["DialRun", "is_dialable"]


def is_dialable(target: DialTarget) -> bool:
    if target.kind == "number":
        return is_e164(target.to)
    return True


@dataclass(slots=True)
class _Dialing:
    verb: Dial
    started: float
    legs: dict[str, CallStatus | None] = field(default_factory=dict)  # sid -> final status
    answered: str | None = None
    bridged: str | None = None
    bridged_at: float | None = None
    declined: set[str] = field(default_factory=set)
    room: str | None = None


class DialRun:
    def __init__(self, sim: CallSim) -> None:
        self.sim = sim
        self.state: _Dialing | None = None

    @property
    def active(self) -> bool:
        return self.state is not None

    @property
    def bridged_to(self) -> str | None:
        return None if self.state is None else self.state.bridged

    def start(self, now: float, verb: Dial) -> list[SimAction]:
        sim = self.sim
        self.state = state = _Dialing(verb, now)
        if verb.conference is not None:
            room = verb.conference.name
            state.room = room
            sim.record(now, "verb", verb="Dial/Conference", room=room)
            return [JoinConference(room, sim.sid, verb.conference)]
        out: list[SimAction] = []
        caller_id = verb.caller_id or sim.spec.from_
        for target in verb.targets:
            sid = sim.ids.sid("CA")
            state.legs[sid] = None
            if not is_dialable(target):
                sim.record(now, "dial-failed", to=target.to, reason="not a valid number")
                state.legs[sid] = CallStatus.FAILED
                continue
            spec = CallSpec(
                to=target.to,
                from_=caller_id,
                direction=Direction.OUTBOUND_DIAL,
                url=sim.resolve(target.url) if target.url else None,
                method=target.method,
                status_callback=sim.resolve(target.status_callback)
                if target.status_callback
                else None,
                status_callback_method=target.status_callback_method,
                status_callback_events=target.status_callback_events,
                timeout=verb.timeout,
                time_limit=verb.time_limit,
                send_digits=target.send_digits,
                parent_call_sid=sim.sid,
            )
            out.append(StartLeg(sid, spec))
        sim.record(
            now,
            "verb",
            verb="Dial",
            to=[t.to for t in verb.targets],
            legs=list(state.legs),
            caller_id=caller_id,
            timeout=verb.timeout,
            action=verb.action,
        )
        if all(s is not None for s in state.legs.values()):
            return out + self._finish(now)
        return out

    # ------------------------------------------------------------------ child legs

    def leg_event(
        self, now: float, child: str, event: str, status: CallStatus, duration: int
    ) -> list[SimAction]:
        state = self.state
        if state is None or child not in state.legs:
            return [EndLeg(child, "the dial is over")] if event != "ended" else []
        sim = self.sim
        if event == "answered":
            if state.answered is not None and state.answered != child:
                return [EndLeg(child, "another leg answered first")]
            state.answered = child
            sim.record(now, "dial-answered", leg=child)
            return [EndLeg(s, "another leg answered first") for s in self._ringing(child)]
        if event == "bridged":
            if state.bridged is not None:
                return [EndLeg(child, "already bridged")]
            state.bridged, state.bridged_at = child, now
            sim.record(now, "dial-bridged", leg=child)
            return []
        # ended
        state.legs[child] = status
        if child == state.answered and child != state.bridged:
            state.declined.add(child)  # hung up during its whisper
        sim.record(now, "dial-leg-ended", leg=child, status=status.value, duration=duration)
        if child == state.bridged or all(s is not None for s in state.legs.values()):
            return self._finish(now, duration if child == state.bridged else 0)
        return []

    def _ringing(self, winner: str) -> list[str]:
        state = self.state
        assert state is not None
        return [s for s, st in state.legs.items() if st is None and s != winner]

    def _dial_status(self) -> tuple[str, str | None]:
        state = self.state
        assert state is not None
        if state.bridged is not None:
            return "completed", state.bridged
        statuses = [(sid, st) for sid, st in state.legs.items() if st is not None]
        for wanted in ("busy", "no-answer", "failed", "canceled"):
            for sid, st in statuses:
                value = "no-answer" if sid in state.declined else st.value
                if value == wanted:
                    return wanted, sid
        return "no-answer", next(iter(state.legs), None)

    def _finish(self, now: float, duration: int = 0) -> list[SimAction]:
        state = self.state
        assert state is not None
        status, leg = self._dial_status()
        self.state = None
        sim = self.sim
        extra = [("DialCallStatus", status)]
        if leg is not None:
            extra.append(("DialCallSid", leg))
        extra.append(("DialCallDuration", str(duration)))
        extra.append(("DialBridged", "true" if state.bridged else "false"))
        sim.record(now, "dial-result", **dict(extra))
        verb = state.verb
        if verb.action:
            sim.leave_document()
            return sim.fetch(now, Purpose.DIAL_ACTION, sim.resolve(verb.action), verb.method, extra)
        return sim.advance(now)

    # ------------------------------------------------------------------ conference

    def conference_ended(self, now: float, room: str, reason: str) -> list[SimAction]:
        state = self.state
        if state is None or state.room != room:
            return []
        self.state = None
        sim = self.sim
        sim.record(now, "conference-left", room=room, reason=reason)
        verb = state.verb
        if verb.action:
            sim.leave_document()
            return sim.fetch(now, Purpose.DIAL_ACTION, sim.resolve(verb.action), verb.method, ())
        return sim.advance(now)

    # ------------------------------------------------------------------ the call changes

    def abandon(self, now: float, reason: str) -> list[SimAction]:
        """The document was replaced (REST redirect): hang up the legs, leave the room."""
        state = self.state
        if state is None:
            return []
        self.state = None
        if state.room is not None:
            return [LeaveConference(state.room, self.sim.sid)]
        return [EndLeg(s, reason) for s, st in state.legs.items() if st is None]

    def call_ended(self, now: float) -> list[SimAction]:
        """The caller hung up mid-dial: legs end; the action is requested, its TwiML ignored."""
        state = self.state
        if state is None:
            return []
        self.state = None
        sim = self.sim
        if state.room is not None:
            return [LeaveConference(state.room, sim.sid)]
        out: list[SimAction] = [
            EndLeg(s, "the caller hung up") for s, st in state.legs.items() if st is None
        ]
        if state.verb.action:
            bridged = state.bridged
            duration = 0 if state.bridged_at is None else round(now - state.bridged_at)
            extra = [
                ("DialCallStatus", "completed" if bridged else "canceled"),
                ("DialCallSid", bridged or next(iter(state.legs), "")),
                ("DialCallDuration", str(duration)),
                ("DialBridged", "true" if bridged else "false"),
            ]
            out += sim.fetch(
                now, Purpose.DIAL_ACTION, sim.resolve(state.verb.action), state.verb.method, extra
            )
        return out
