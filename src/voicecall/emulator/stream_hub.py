"""The running emulator's Media Streams: one session per stream, its plan, its callee (I/O).

:class:`StreamHub` opens a WebSocket runner for every :class:`~voicecall.emulator.simtypes.
OpenStream` action and stops it on ``CloseStream``. What the person on the line does comes from
the call's script: a classic script's ``say_at`` lines and unused ``replies`` (a
:class:`~voicecall.emulator.media.StreamPlan`), or a scripted callee (human, IVR, voicemail)
driven through :class:`~voicecall.emulator.callee_stream.CalleeOnStream`.

Tracks: ``<Connect><Stream>`` carries the inbound track (the person); a ``<Start><Stream>``
fork carries ``inbound_track`` (default), ``outbound_track`` or ``both_tracks`` (``start.tracks``
lists them; ``media.track`` says which each frame is). The outbound track is what the person
hears: the audio a ``<Connect><Stream>`` app is playing at that moment, else the call's own
sounds (``<Say>`` spoken by espeak-ng, ``<Play>`` audio, keypad tones), see
:mod:`~voicecall.emulator.outbound`. Media, marks and clears an app sends on a fork are ignored
(Twilio plays nothing from a unidirectional stream).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from voicecall.emulator.callee_stream import CalleeOnStream
from voicecall.emulator.media import MediaSession, StreamPlan, Utterance, run_stream
from voicecall.emulator.outbound import OutboundAudio
from voicecall.emulator.scripts import DigitsReply, SpeechReply
from voicecall.emulator.signing import sign_websocket_upgrade
from voicecall.emulator.sim import CallSim
from voicecall.emulator.simtypes import CloseStream, OpenStream, SimAction
from voicecall.emulator.twiml import StreamTrack

if TYPE_CHECKING:
    from voicecall.emulator.runtime import Emulator

__all__ = ["StreamHub"]

_TRACKS = {
    StreamTrack.INBOUND: ("inbound",),
    StreamTrack.OUTBOUND: ("outbound",),
    StreamTrack.BOTH: ("inbound", "outbound"),
}
STREAM_WPM = 160.0  # real-sounding speech whatever the TwiML timing model says


class StreamHub:
    def __init__(self, emu: Emulator) -> None:
        self.emu = emu
        self.open: dict[str, OpenStream] = {}
        self.sessions: dict[str, tuple[MediaSession, asyncio.Event]] = {}

    def session(self, stream_sid: str) -> MediaSession:
        return self.sessions[stream_sid][0]

    def of_call(self, call_sid: str) -> list[str]:
        return [sid for sid, (s, _) in self.sessions.items() if s.call_sid == call_sid]

    def connect_session(self, call_sid: str) -> MediaSession | None:
        """The call's live bidirectional stream, if any."""
        for sid in self.of_call(call_sid):
            session = self.sessions[sid][0]
            if session.bidirectional and sid in self.open:
                return session
        return None

    def _plan(self, sim: CallSim, listener: CalleeOnStream | None) -> StreamPlan:
        emu = self.emu
        classic = sim.callee is None
        return StreamPlan(
            say_at=[(line.at_ms, Utterance(line.text, line.wav)) for line in sim.script.say_at]
            if classic
            else [],
            replies=[
                ("speech", Utterance(r.text, r.wav))
                if isinstance(r, SpeechReply)
                else ("digits", r.digits)
                if isinstance(r, DigitsReply)
                else ("silence", "")
                for r in sim.unused_replies
            ]
            if classic
            else [],
            reply_delay_ms=sim.script.reply_delay_ms,
            drop_after_s=emu.faults.ws_drop_after(),
            words_per_minute=STREAM_WPM,
            voice=sim.script.voice,
            listener=listener,
        )

    def open_stream(self, sim: CallSim, action: OpenStream) -> list[SimAction]:
        emu = self.emu
        now = emu.now()
        session = MediaSession(
            account_sid=emu.account_sid,
            call_sid=sim.sid,
            stream_sid=action.stream_sid,
            custom_parameters=dict(action.stream.parameters),
            tracks=_TRACKS[action.stream.track] if not action.bidirectional else ("inbound",),
            bidirectional=action.bidirectional,
        )

        def record(kind: str, **data: Any) -> None:
            sim.record(emu.now(), kind, **data)
            emu.notify()

        listener: CalleeOnStream | None = None
        callee = sim.callee
        if callee is not None:
            hear = action.bidirectional
            if hear and callee.listens:
                missing = CalleeOnStream.hearing_missing()
                if missing is not None:
                    message = (
                        f"the {sim.script.kind} script has to hear the bot on this Media Stream, "
                        f"but {missing}"
                    )
                    return sim.script_failed(now, message)
            listener = CalleeOnStream(
                callee,
                session,
                voice=sim.script.voice,
                words_per_minute=STREAM_WPM,
                listen=hear,
                hear=hear,
                record=record,
                on_change=lambda t: emu.apply(sim, sim.callee_update(t)),
            )
        plan = self._plan(sim, listener)
        if "outbound" in session.tracks:
            plan.outbound = OutboundAudio(sim, self, emu.audio_cache).frame
        stop = asyncio.Event()
        self.open[action.stream_sid] = action
        self.sessions[action.stream_sid] = (session, stop)
        sim.record(now, "stream-opening", stream_sid=action.stream_sid, url=action.stream.url,
                   tracks=list(session.tracks))  # fmt: skip

        async def run() -> None:
            reason = await run_stream(
                url=action.stream.url,
                signature=sign_websocket_upgrade(emu.auth_token, action.stream.url),
                session=session,
                plan=plan,
                stop=stop,
                record=record,
                clock=emu.now,
            )
            self.open.pop(action.stream_sid, None)
            sim.record(emu.now(), "stream-stats", reason=reason, **session.summary())
            emu.apply(sim, sim.stream_ended(action.stream_sid, emu.now(), reason))

        emu.spawn(sim.sid, run())
        return []

    def close_stream(self, sim: CallSim, action: CloseStream) -> None:
        self.open.pop(action.stream_sid, None)
        sim.record(
            self.emu.now(), "stream-closed", stream_sid=action.stream_sid, reason=action.reason
        )
        entry = self.sessions.get(action.stream_sid)
        if entry is not None:
            entry[1].set()
