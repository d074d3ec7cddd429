"""A virtual-time driver for the pure call simulator: no sockets, no sleeps.

``make(twiml_or_responder, script=..., **spec)`` builds a :class:`Driver` around a
:class:`~voicecall.emulator.sim.CallSim`; ``driver.start().run()`` fires its timers in order,
answering every TwiML request at once with the responder. ``<Dial>`` children are created with
the scripts in ``driver.scripts`` (by dialled address), ``<Play>`` URLs are answered from
``driver.media`` (URL -> μ-law bytes; anything else is a 404), conferences are kept in
``driver.conferences``. Used by the emulator's tests and useful for anyone checking what a
TwiML app does on a call without running servers.
"""

from __future__ import annotations

import contextlib
import heapq
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from voicecall.emulator.conference import Conferences
from voicecall.emulator.ids import IdSource
from voicecall.emulator.recording import Recording
from voicecall.emulator.scripts import CalleeScript, parse_script
from voicecall.emulator.sim import CallSim
from voicecall.emulator.simtypes import (
    CallFinished,
    CallSpec,
    CallStatus,
    CloseStream,
    EndLeg,
    FetchMedia,
    HttpRequest,
    InvalidCallState,
    JoinConference,
    LeaveConference,
    LegEvent,
    OpenStream,
    Purpose,
    RecordingReady,
    SimAction,
    SimConfig,
    StartLeg,
    StartTimer,
)

__all__ = ["ACCOUNT", "T0", "Driver", "make"]

ACCOUNT = "AC" + "ab" * 16
T0 = 1_700_000_000.0

Responder = Callable[[HttpRequest], "tuple[int, str] | str | None"]


@dataclass
class Driver:
    sim: CallSim
    responder: Responder
    now: float = T0
    requests: list[tuple[float, HttpRequest]] = field(default_factory=list)
    opened: list[OpenStream] = field(default_factory=list)
    closed: list[CloseStream] = field(default_factory=list)
    finished: list[CallFinished] = field(default_factory=list)
    held: list[HttpRequest] = field(default_factory=list)
    scripts: dict[str, CalleeScript] = field(default_factory=dict)
    media: dict[str, bytes] = field(default_factory=dict)
    sims: dict[str, CallSim] = field(default_factory=dict)
    conferences: Conferences = field(default_factory=Conferences)
    recordings: list[Recording] = field(default_factory=list)
    origin: dict[int, str] = field(default_factory=dict)  # id(request) -> call sid
    _timers: list[tuple[float, int, str, str, int]] = field(default_factory=list)
    _seq: int = 0

    def __post_init__(self) -> None:
        self.sims.setdefault(self.sim.sid, self.sim)

    @property
    def legs(self) -> list[CallSim]:
        """``<Dial>`` children, in creation order."""
        return [s for s in self.sims.values() if s.parent_call_sid is not None]

    def call_of(self, req: HttpRequest) -> CallSim:
        return self.sims[self.origin[id(req)]]

    def feed(self, actions: list[SimAction], sim: CallSim | None = None) -> None:
        sim = sim or self.sim
        for a in actions:
            if isinstance(a, StartTimer):
                self._seq += 1
                heapq.heappush(self._timers, (a.at, self._seq, sim.sid, a.name, a.token))
            elif isinstance(a, HttpRequest):
                self.requests.append((self.now, a))
                self.origin[id(a)] = sim.sid
                if a.purpose.expects_twiml:
                    answer = self.responder(a)
                    if answer is None:
                        self.held.append(a)
                        continue
                    status, body = (200, answer) if isinstance(answer, str) else answer
                    self.feed(sim.http_response(a.request_id, status, body, self.now), sim)
            elif isinstance(a, FetchMedia):
                audio = self.media.get(a.url)
                error = None if audio is not None else "HTTP 404"
                self.feed(sim.media_fetched(a.request_id, audio, self.now, error), sim)
            elif isinstance(a, OpenStream):
                self.opened.append(a)
            elif isinstance(a, CloseStream):
                self.closed.append(a)
            elif isinstance(a, StartLeg):
                self._start_leg(a)
            elif isinstance(a, EndLeg):
                leg = self.sims.get(a.sid)
                if leg is not None and not leg.is_over:
                    with contextlib.suppress(InvalidCallState):
                        self.feed(leg.hangup(self.now, CallStatus.COMPLETED), leg)
            elif isinstance(a, LegEvent):
                parent = self.sims.get(a.parent_sid)
                if parent is not None:
                    self.feed(
                        parent.leg_event(a.child_sid, a.event, a.status, a.duration, self.now),
                        parent,
                    )
            elif isinstance(a, JoinConference):
                for sid, reason in self.conferences.join(
                    self.now, a.room, a.call_sid, a.conference
                ):
                    self._kick(sid, a.room, reason)
            elif isinstance(a, LeaveConference):
                for sid, reason in self.conferences.leave(self.now, a.room, a.call_sid):
                    self._kick(sid, a.room, reason)
            elif isinstance(a, RecordingReady):
                if all(r is not a.recording for r in self.recordings):
                    self.recordings.append(a.recording)
            elif isinstance(a, CallFinished):
                self.finished.append(a)

    def _kick(self, sid: str, room: str, reason: str) -> None:
        member = self.sims.get(sid)
        if member is not None:
            self.feed(member.conference_ended(room, self.now, reason), member)

    def _start_leg(self, a: StartLeg) -> None:
        leg = CallSim(
            sid=a.sid,
            account_sid=self.sim.account_sid,
            spec=a.spec,
            script=self.scripts.get(a.spec.to, parse_script(None)),
            now=self.now,
            config=self.sim.config,
            ids=self.sim.ids,
        )
        self.sims[a.sid] = leg
        self.feed(leg.start(self.now), leg)

    def add_call(self, sim: CallSim) -> Driver:
        """Run another call on the same clock (e.g. a second conference participant)."""
        self.sims[sim.sid] = sim
        self.feed(sim.start(self.now), sim)
        return self

    def start(self) -> Driver:
        self.feed(self.sim.start(self.now))
        return self

    def run(self, until: float | None = None) -> Driver:
        """Fire timers in order until none are left (or the virtual time passes ``until``)."""
        while self._timers:
            at, _, sid, name, token = self._timers[0]
            if until is not None and at > until:
                self.now = until
                return self
            heapq.heappop(self._timers)
            self.now = max(self.now, at)
            sim = self.sims[sid]
            self.feed(sim.timer_fired(name, token, self.now), sim)
        if until is not None:
            self.now = max(self.now, until)
        return self

    def advance(self, seconds: float) -> Driver:
        return self.run(self.now + seconds)

    @property
    def callbacks(self) -> list[HttpRequest]:
        return [
            r
            for _, r in self.requests
            if r.purpose is Purpose.STATUS_CALLBACK and self.origin[id(r)] == self.sim.sid
        ]

    @property
    def fetches(self) -> list[HttpRequest]:
        """The main call's TwiML requests (and other webhooks that are not status callbacks)."""
        return [
            r
            for _, r in self.requests
            if r.purpose is not Purpose.STATUS_CALLBACK and self.origin[id(r)] == self.sim.sid
        ]

    def of_purpose(self, purpose: Purpose) -> list[HttpRequest]:
        return [r for _, r in self.requests if r.purpose is purpose]


def make_sim(
    *,
    script: CalleeScript | Mapping[str, object] | str | None = None,
    config: SimConfig | None = None,
    sid: str = "CA" + "0" * 31 + "1",
    ids: IdSource | None = None,
    **spec: object,
) -> CallSim:
    fields: dict[str, object] = {
        "to": "+15551230001",
        "from_": "+15557654321",
        "url": "https://app.example.com/voice",
        "status_callback": "https://app.example.com/status",
    }
    fields.update(spec)
    if "twiml" in spec and "url" not in spec:
        fields["url"] = None
    return CallSim(
        sid=sid,
        account_sid=ACCOUNT,
        spec=CallSpec(**fields),  # type: ignore[arg-type]
        script=parse_script(script),
        now=T0,
        config=config,
        ids=ids or IdSource(1),
    )


def make(
    twiml_answer: Responder | str | None = None,
    *,
    script: CalleeScript | Mapping[str, object] | str | None = None,
    config: SimConfig | None = None,
    scripts: Mapping[str, CalleeScript | Mapping[str, Any] | str] | None = None,
    media: Mapping[str, bytes] | None = None,
    **spec: object,
) -> Driver:
    """A driver for one outbound call (override any :class:`CallSpec` field by keyword).

    ``scripts`` are the scripts of parties a ``<Dial>`` may ring; ``media`` the audio served for
    ``<Play>`` URLs.
    """
    sim = make_sim(script=script, config=config, **spec)  # type: ignore[arg-type]
    if twiml_answer is None:
        responder: Responder = lambda req: "<Response/>"  # noqa: E731
    elif isinstance(twiml_answer, str):
        text = twiml_answer
        responder = lambda req: text  # noqa: E731
    else:
        responder = twiml_answer
    driver = Driver(sim, responder)
    for number, s in (scripts or {}).items():
        driver.scripts[number] = parse_script(s)
    driver.media.update(media or {})
    return driver
