"""A faithful local Twilio: Calls REST API, call simulator, signed webhooks (and Media Streams).

An independent twin of the service's Twilio code: it imports nothing protocol-related from
``voicecall`` (own signing, TwiML parsing and form encoding), so the two cannot share a bug.
See ``docs/emulator.md``.
"""

from voicecall.emulator.faults import FaultConfig, Faults, RestFault
from voicecall.emulator.runtime import Emulator, NumberConfig, serve
from voicecall.emulator.scenarios import SCENARIOS, restaurant_script
from voicecall.emulator.scripts import CalleeScript, ScriptError, parse_script
from voicecall.emulator.sim import CallSim, CallSpec, CallStatus, Direction, SimConfig

__all__ = [
    "SCENARIOS",
    "CallSim",
    "CallSpec",
    "CallStatus",
    "CalleeScript",
    "Direction",
    "Emulator",
    "FaultConfig",
    "Faults",
    "NumberConfig",
    "RestFault",
    "ScriptError",
    "SimConfig",
    "parse_script",
    "restaurant_script",
    "serve",
]
