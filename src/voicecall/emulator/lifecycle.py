"""A call's lifecycle moves (sans-I/O): a status change (and its callback), the answer (what
starts with it: detection, recording, the time limit), a ``<Dial>`` child bridged to its
caller, and the end (every part stopped, the final status, the leg's end for its parent)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from voicecall.emulator.simtypes import (
    CallFinished,
    CallStatus,
    Direction,
    HeardItem,
    LegEvent,
    SimAction,
)
from voicecall.emulator.status_callbacks import StatusCallbacks

if TYPE_CHECKING:
    from voicecall.emulator.parts import SimParts
    from voicecall.emulator.sim import CallSim


class Lifecycle:
    def __init__(self, sim: CallSim, parts: SimParts) -> None:
        self.sim = sim
        self.parts = parts
        self.status_callbacks = StatusCallbacks(sim, parts.recorder)

    def set_status(self, now: float, status: CallStatus) -> list[SimAction]:
        sim = self.sim
        sim.status = status
        sim.date_updated = now
        sim.record(now, "status", status=status.value)
        return self.status_callbacks.due(now)

    def answer(self, now: float) -> list[SimAction]:
        sim, parts = self.sim, self.parts
        sim.answer_time = now
        out = self.set_status(now, CallStatus.IN_PROGRESS)
        spec = sim.spec
        if spec.direction is Direction.OUTBOUND_DIAL:
            out.append(
                LegEvent(spec.parent_call_sid or "", sim.sid, "answered", CallStatus.IN_PROGRESS)
            )
        if sim.callee is not None:
            sim.callee.answered(now)
        if spec.send_digits:
            sim.record(now, "send-digits", digits=spec.send_digits)
            parts.prompts.digits_to_callee(now + 0.5, spec.send_digits)
        if spec.machine_detection and spec.send_digits:
            sim.record(now, "amd-skipped", reason="SendDigits disables MachineDetection")
        if spec.amd:
            out += parts.amd.start(now)
        if spec.record:
            out += parts.recorder.start(now)
        if sim.script.hangup_after_ms is not None:
            sim.hangup_after = now + sim.script.hangup_after_ms / 1000.0
        out.append(sim.timer("time-limit", now + spec.time_limit))
        return out + sim.callee_sync(now)

    def bridge(self, now: float) -> list[SimAction]:
        """A ``<Dial>`` child's whisper is over (or there was none): connect the caller."""
        sim = self.sim
        sim.bridged = True
        sim.documents.current = None
        sim.record(now, "bridged", parent=sim.spec.parent_call_sid)
        return [LegEvent(sim.spec.parent_call_sid or "", sim.sid, "bridged", sim.status)]

    def end(self, now: float, status: CallStatus) -> list[SimAction]:
        sim, parts = self.sim, self.parts
        out: list[SimAction] = []
        out += parts.streams.close_all("call ended")
        sim.status = status  # requests made on the way out carry the final CallStatus
        out += parts.record.call_ended(now)
        out += parts.dial.call_ended(now)
        parts.gather.abandon()
        parts.requests.clear()
        parts.prompts.abandon()
        parts.timers.clear()
        sim.documents.current = None
        sim.end_time = now
        if sim.start_time is None:
            sim.start_time = now
        if sim.callee is not None:
            sim.callee.finished(now)
            for note in sim.callee.drain_notes(now):
                sim.record(note.at, note.kind, **note.data)
        out += parts.recorder.finish(now)
        out += self.set_status(now, status)
        if sim.spec.direction is Direction.OUTBOUND_DIAL:
            out.append(
                LegEvent(
                    sim.spec.parent_call_sid or "", sim.sid, "ended", status, sim.duration or 0
                )
            )
        out.append(CallFinished(status))
        return out

    def app_error(self, now: float, code: int, message: str) -> list[SimAction]:
        sim = self.sim
        sim.error = (code, message)
        sim.record(now, "error", code=code, message=message)
        if sim.status is CallStatus.IN_PROGRESS:
            text = sim.config.app_error_text
            sim.heard.append(HeardItem(now, now + sim.say_seconds(text), "app-error", text))
        return self.end(now, sim.config.app_error_status)
