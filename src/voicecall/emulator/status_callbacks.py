"""A call's status callbacks (sans-I/O): which status changes are sent to ``StatusCallback``
(the subscribed ``StatusCallbackEvent``s), numbered by ``SequenceNumber``, with the duration,
the recording and ``AnsweredBy`` where Twilio sends them."""

from __future__ import annotations

from typing import TYPE_CHECKING

from voicecall.emulator.simtypes import EVENT_OF, Purpose, SimAction, rfc2822

if TYPE_CHECKING:
    from voicecall.emulator.recording import CallRecorder
    from voicecall.emulator.sim import CallSim


class StatusCallbacks:
    def __init__(self, sim: CallSim, recorder: CallRecorder) -> None:
        self.sim = sim
        self.recorder = recorder
        self.sequence = 0

    def due(self, now: float) -> list[SimAction]:
        """The callback for the call's current status, if one is subscribed."""
        sim = self.sim
        spec = sim.spec
        event = EVENT_OF.get(sim.status)
        if spec.status_callback is None or event is None:
            return []
        if event not in spec.status_callback_events:
            return []
        params = sim.common_params()
        params += [
            ("CallbackSource", "call-progress-events"),
            ("SequenceNumber", str(self.sequence)),
            ("Timestamp", rfc2822(now)),
        ]
        if event == "completed":
            params.append(("CallDuration", str(sim.duration or 0)))
            call_recording = self.recorder.done
            if call_recording is not None:  # Record=true: the recording goes with it
                params += [
                    ("RecordingUrl", call_recording.url),
                    ("RecordingSid", call_recording.sid),
                    ("RecordingDuration", str(call_recording.duration)),
                ]
        if sim.answered_by is not None:
            params.append(("AnsweredBy", sim.answered_by))
        self.sequence += 1
        return [
            sim.notify(
                Purpose.STATUS_CALLBACK, spec.status_callback, spec.status_callback_method, params
            )
        ]
