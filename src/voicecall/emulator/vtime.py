"""A virtual-time driver for the pure call simulator: no sockets, no sleeps.

``make(twiml_or_responder, script=..., **spec)`` builds a :class:`Driver` around a
:class:`~voicecall.emulator.sim.CallSim`; ``driver.start().run()`` fires its timers in order,
answering every TwiML request at once with the responder. Used by the emulator's tests and
useful for anyone checking what a TwiML app does on a call without running servers.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from dataclasses import dataclass, field

from voicecall.emulator.ids import IdSource
from voicecall.emulator.scripts import CalleeScript, parse_script
from voicecall.emulator.sim import (
    CallFinished,
    CallSim,
    CallSpec,
    CloseStream,
    HttpRequest,
    OpenStream,
    Purpose,
    SimAction,
    SimConfig,
    StartTimer,
)

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
    _timers: list[tuple[float, int, str, int]] = field(default_factory=list)
    _seq: int = 0
    held: list[HttpRequest] = field(default_factory=list)

    def feed(self, actions: list[SimAction]) -> None:
        for a in actions:
            if isinstance(a, StartTimer):
                self._seq += 1
                heapq.heappush(self._timers, (a.at, self._seq, a.name, a.token))
            elif isinstance(a, HttpRequest):
                self.requests.append((self.now, a))
                if a.purpose.expects_twiml:
                    answer = self.responder(a)
                    if answer is None:
                        self.held.append(a)
                        continue
                    status, body = (200, answer) if isinstance(answer, str) else answer
                    self.feed(self.sim.http_response(a.request_id, status, body, self.now))
            elif isinstance(a, OpenStream):
                self.opened.append(a)
            elif isinstance(a, CloseStream):
                self.closed.append(a)
            elif isinstance(a, CallFinished):
                self.finished.append(a)

    def start(self) -> Driver:
        self.feed(self.sim.start(self.now))
        return self

    def run(self, until: float | None = None) -> Driver:
        """Fire timers in order until none are left (or the virtual time passes ``until``)."""
        while self._timers:
            at, _, name, token = self._timers[0]
            if until is not None and at > until:
                self.now = until
                return self
            heapq.heappop(self._timers)
            self.now = max(self.now, at)
            self.feed(self.sim.timer_fired(name, token, self.now))
        if until is not None:
            self.now = max(self.now, until)
        return self

    def advance(self, seconds: float) -> Driver:
        return self.run(self.now + seconds)

    @property
    def callbacks(self) -> list[HttpRequest]:
        return [r for _, r in self.requests if r.purpose is Purpose.STATUS_CALLBACK]

    @property
    def fetches(self) -> list[HttpRequest]:
        return [r for _, r in self.requests if r.purpose is not Purpose.STATUS_CALLBACK]


def make(
    twiml_answer: Responder | str | None = None,
    *,
    script: CalleeScript | dict[str, object] | None = None,
    config: SimConfig | None = None,
    **spec: object,
) -> Driver:
    """A driver for one outbound call (override any :class:`CallSpec` field by keyword)."""
    fields: dict[str, object] = {
        "to": "+15551230001",
        "from_": "+15557654321",
        "url": "https://app.example.com/voice",
        "status_callback": "https://app.example.com/status",
    }
    fields.update(spec)
    if "twiml" in spec and "url" not in spec:
        fields["url"] = None
    call_spec = CallSpec(**fields)  # type: ignore[arg-type]
    sim = CallSim(
        sid="CA" + "0" * 31 + "1",
        account_sid=ACCOUNT,
        spec=call_spec,
        script=parse_script(script) if script is not None else parse_script(None),
        now=T0,
        config=config,
        ids=IdSource(1),
    )
    if twiml_answer is None:
        responder: Responder = lambda req: "<Response/>"  # noqa: E731
    elif isinstance(twiml_answer, str):
        text = twiml_answer
        responder = lambda req: text  # noqa: E731
    else:
        responder = twiml_answer
    return Driver(sim, responder)
