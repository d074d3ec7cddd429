"""An API or ``<Dial>`` call's way to its answer (sans-I/O): ``initiated``, ``ringing``, then
answered, ``busy`` or ``no-answer`` (the ring ``Timeout``, plus Twilio's buffer on API calls) as
the callee's script says; each step is the ``progress`` timer."""

from __future__ import annotations

from typing import TYPE_CHECKING

from voicecall.emulator.scripts import Outcome
from voicecall.emulator.simtypes import CallStatus, Direction, SimAction

if TYPE_CHECKING:
    from voicecall.emulator.sim import CallSim


class ProgressRun:
    def __init__(self, sim: CallSim) -> None:
        self.sim = sim
        self.step = ""

    def begin(self, now: float) -> list[SimAction]:
        sim = self.sim
        self.step = "initiate"
        return [sim.timer("progress", now + sim.config.initiate_delay)]

    def ring_timeout(self) -> float:
        sim = self.sim
        buffer = 0.0
        if sim.spec.direction is Direction.OUTBOUND_API:
            buffer = sim.config.ring_timeout_buffer
        return float(sim.spec.timeout) + buffer

    def fired(self, now: float) -> list[SimAction]:
        """The ``progress`` timer: take the next step."""
        sim = self.sim
        step = self.step
        script = sim.script
        if step == "initiate":
            sim.start_time = now
            out = sim.lifecycle.set_status(now, CallStatus.INITIATED)
            if script.outcome is Outcome.FAILED:
                return out + sim.lifecycle.end(now, CallStatus.FAILED)
            self.step = "ring"
            return [*out, sim.timer("progress", now + sim.config.ring_delay)]
        if step == "ring":
            out = sim.lifecycle.set_status(now, CallStatus.RINGING)
            answer_after = script.answer_after_ms / 1000.0
            timeout = self.ring_timeout()
            if script.outcome is Outcome.ANSWER and answer_after < timeout:
                self.step = "answer"
                return [*out, sim.timer("progress", now + answer_after)]
            if script.outcome is Outcome.BUSY and answer_after < timeout:
                self.step = "busy"
                return [*out, sim.timer("progress", now + answer_after)]
            self.step = "no-answer"
            return [*out, sim.timer("progress", now + timeout)]
        if step == "busy":
            return sim.lifecycle.end(now, CallStatus.BUSY)
        if step == "no-answer":
            return sim.lifecycle.end(now, CallStatus.NO_ANSWER)
        if step == "answer":
            out = sim.lifecycle.answer(now)
            if sim.spec.amd and not sim.spec.async_amd:
                return out  # Twilio runs no TwiML until detection is done
            return out + sim.first_document(now)
        return []
