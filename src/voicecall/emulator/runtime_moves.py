"""The running emulator's ``<Dial>`` legs, conference rooms, ``<Play>`` audio and recordings.

The pure simulator asks for these with actions (:class:`~voicecall.emulator.simtypes.StartLeg`,
``EndLeg``, ``LegEvent``, ``JoinConference``, ``LeaveConference``, ``FetchMedia``,
``RecordingReady``); :class:`Moves` performs them on the event loop for the
:class:`~voicecall.emulator.runtime.Emulator`.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Any

from voicecall.emulator.conference import Conferences
from voicecall.emulator.recording import Recording
from voicecall.emulator.recordings import MediaError, StreamAudio, fetch_audio, render_recording
from voicecall.emulator.sim import CallSim
from voicecall.emulator.simtypes import (
    CallStatus,
    EndLeg,
    FetchMedia,
    InvalidCallState,
    JoinConference,
    LeaveConference,
    LegEvent,
    RecordingReady,
    SimAction,
    StartLeg,
)
from voicecall.emulator.voices import load_wav

if TYPE_CHECKING:
    from voicecall.emulator.runtime import Emulator

__all__ = ["Moves"]


class Moves:
    def __init__(self, emu: Emulator) -> None:
        self.emu = emu
        self.conferences = Conferences()
        self.recordings: dict[str, Recording] = {}
        self.play_files: dict[str, str] = {}
        self.audio_cache: dict[str, bytes] = {}  # <Play> URL -> μ-law

    def perform(self, sim: CallSim, action: SimAction) -> None:
        emu = self.emu
        loop = asyncio.get_running_loop()
        if isinstance(action, FetchMedia):
            emu.spawn(sim.sid, self._fetch_media(sim, action))
        elif isinstance(action, StartLeg):
            loop.call_soon(self._start_leg, action)
        elif isinstance(action, EndLeg):
            loop.call_soon(self._end_leg, action.sid)
        elif isinstance(action, LegEvent):
            loop.call_soon(self._leg_event, action)
        elif isinstance(action, JoinConference):
            kicked = self.conferences.join(
                emu.now(), action.room, action.call_sid, action.conference
            )
            loop.call_soon(self._kick, kicked, action.room)
        elif isinstance(action, LeaveConference):
            kicked = self.conferences.leave(emu.now(), action.room, action.call_sid)
            loop.call_soon(self._kick, kicked, action.room)
        elif isinstance(action, RecordingReady):
            self.recordings[action.recording.sid] = action.recording

    def _start_leg(self, action: StartLeg) -> None:
        parent = self.emu.calls.get(action.spec.parent_call_sid or "")
        sim = CallSim(
            sid=action.sid,
            account_sid=self.emu.account_sid,
            spec=action.spec,
            script=self.emu.script_for(action.spec.to),
            now=self.emu.now(),
            config=self.emu.config,
            ids=self.emu.ids,
        )
        self.emu.add_call(sim)
        if parent is not None and parent.is_over:
            self.emu.apply(sim, sim.hangup(self.emu.now(), CallStatus.CANCELED))
            return
        self.emu.apply(sim, sim.start(self.emu.now()))

    def _end_leg(self, sid: str) -> None:
        sim = self.emu.calls.get(sid)
        if sim is None or sim.is_over:
            return
        with contextlib.suppress(InvalidCallState):
            self.emu.apply(sim, sim.hangup(self.emu.now(), CallStatus.COMPLETED))

    def _leg_event(self, event: LegEvent) -> None:
        parent = self.emu.calls.get(event.parent_sid)
        if parent is not None:
            actions = parent.leg_event(
                event.child_sid, event.event, event.status, event.duration, self.emu.now()
            )
            self.emu.apply(parent, actions)

    def _kick(self, kicked: list[tuple[str, str]], room: str) -> None:
        for sid, reason in kicked:
            sim = self.emu.calls.get(sid)
            if sim is not None:
                self.emu.apply(sim, sim.conference_ended(room, self.emu.now(), reason))

    def conference(self, name: str) -> dict[str, Any] | None:
        """A room (live, else the last one of that name that ended), as a dict."""
        room = self.conferences.room(name)
        if room is None:
            ended = [r for r in self.conferences.history if r.name == name]
            room = ended[-1] if ended else None
        return None if room is None else room.to_dict()

    # ------------------------------------------------------------------ <Play> audio

    def add_media(self, url: str, path: str) -> None:
        """Serve ``<Play>url</Play>`` from a local WAV file (checked now) instead of HTTP."""
        load_wav(path)
        self.play_files[url] = path

    async def _fetch_media(self, sim: CallSim, action: FetchMedia) -> None:
        audio, error = await self._media_audio(action.url)
        sim.record(
            self.emu.now(),
            "media-fetch",
            url=action.url,
            ok=audio is not None,
            error=error,
            seconds=None if audio is None else len(audio) / 8000,
        )
        self.emu.apply(sim, sim.media_fetched(action.request_id, audio, self.emu.now(), error))

    async def _media_audio(self, url: str) -> tuple[bytes | None, str | None]:
        cached = self.audio_cache.get(url)
        if cached is not None:
            return cached, None
        try:
            if url in self.play_files:
                audio = (await asyncio.to_thread(load_wav, self.play_files[url])).ulaw
            else:
                audio = await fetch_audio(self.emu.sender, url)
        except MediaError as exc:
            return None, str(exc)
        self.audio_cache[url] = audio
        return audio, None

    # ------------------------------------------------------------------ recordings

    async def recording_wav(self, sid: str) -> bytes:
        """The recording's audio as a WAV (speech synthesised, stream audio as carried)."""
        rec = self.recordings[sid]
        streams = [
            StreamAudio(session.started_at, bytes(session.spoken), bytes(session.heard))
            for session in (self.emu.media_session(s) for s in self.emu.streams_of(rec.call_sid))
            if session.started_at is not None
        ]
        return await render_recording(rec, streams, self.audio_cache.get)
