"""The parts of one emulated call: built by :class:`~voicecall.emulator.sim.CallSim`, shared by
the runs that drive each other (the document starts verbs, the end stops them all)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from voicecall.emulator.amd import AmdRun
    from voicecall.emulator.dial import DialRun
    from voicecall.emulator.gather import GatherRun
    from voicecall.emulator.prompts import PromptRun
    from voicecall.emulator.recording import CallRecorder, RecordRun
    from voicecall.emulator.sim_requests import Requests
    from voicecall.emulator.sim_timers import Timers
    from voicecall.emulator.streams import StreamRun


@dataclass(frozen=True, slots=True)
class SimParts:
    requests: Requests
    timers: Timers
    streams: StreamRun
    gather: GatherRun
    prompts: PromptRun
    amd: AmdRun
    record: RecordRun
    dial: DialRun
    recorder: CallRecorder
