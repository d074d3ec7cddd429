"""The TwiML document a call runs (sans-I/O): loading one (fetched or inline), running its verbs
in order until one takes time, abandoning it on a redirect, and what happens at its end (the
call completes; a ``<Dial>`` child's whisper bridges it)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from voicecall.emulator.simtypes import CallStatus, Direction, Purpose, SimAction
from voicecall.emulator.twiml import (
    Connect,
    Dial,
    Gather,
    Hangup,
    Pause,
    Play,
    Record,
    Redirect,
    Reject,
    Say,
    Start,
    Stop,
    TwimlError,
    Verb,
    parse_twiml,
)

if TYPE_CHECKING:
    from voicecall.emulator.parts import SimParts
    from voicecall.emulator.sim import CallSim


@dataclass(slots=True)
class Document:
    verbs: tuple[Verb, ...]
    url: str | None  # where it came from (base for relative URLs, default Gather action)
    index: int = 0


class DocumentRun:
    """The call's current document and the verb runs it drives."""

    def __init__(self, sim: CallSim, parts: SimParts) -> None:
        self.sim = sim
        self.current: Document | None = None
        self._parts = parts

    def load(self, now: float, body: bytes | str, source: str, url: str | None) -> list[SimAction]:
        """Parse a TwiML answer (``source``: why it was fetched, or ``inline``) and run it; a
        document Twilio would refuse is an application error."""
        sim = self.sim
        try:
            parsed = parse_twiml(body)
        except TwimlError as exc:
            return sim.lifecycle.app_error(now, exc.code, exc.message)
        for warning in parsed.warnings:
            sim.record(now, "warning", code=12200, message=warning)
        sim.record(now, "twiml", source=source, url=url, verbs=len(parsed.verbs))
        return self.begin(now, Document(parsed.verbs, url))

    def abandon(self, now: float, reason: str) -> list[SimAction]:
        out: list[SimAction] = []
        self._stop_playing(now, reason)
        self._parts.timers.cancel("verb", "gather", "record")
        self._parts.requests.drop_twiml()
        self._parts.prompts.abandon()
        self._parts.gather.abandon()
        self._parts.record.abandon()
        out += self._parts.dial.abandon(now, reason)
        self.current = None
        out += self._parts.streams.abandon(reason)
        return out

    def _stop_playing(self, now: float, reason: str) -> None:
        """Twilio stops the verb a call update interrupts at once: what was being said or
        played ends now, and the loops of it still to come are never heard."""
        heard = self.sim.heard
        cut = False
        while heard and heard[-1].end > now:
            item = heard[-1]
            if item.start >= now:
                heard.pop()
            else:
                item.end = now
            cut = True
        if cut:
            self.sim.record(now, "prompt-interrupted", by=reason)

    def begin(self, now: float, doc: Document) -> list[SimAction]:
        sim = self.sim
        out: list[SimAction] = []
        if sim.status is not CallStatus.IN_PROGRESS:
            # Inbound call still ringing: a first <Reject> refuses it unanswered.
            if doc.verbs and isinstance(doc.verbs[0], Reject):
                reject = doc.verbs[0]
                sim.record(now, "verb", verb="Reject", reason=reject.reason)
                status = CallStatus.BUSY if reject.reason == "busy" else CallStatus.NO_ANSWER
                return sim.lifecycle.end(now, status)
            out += sim.lifecycle.answer(now)
        self.current = doc
        self._parts.gather.abandon()
        return out + self.run(now)

    def advance(self, now: float) -> list[SimAction]:
        """The current verb is done: run the next ones."""
        if self.current is not None:
            self.current.index += 1
        return self.run(now)

    def run(self, now: float) -> list[SimAction]:
        """Execute verbs until one takes time or the document ends."""
        sim = self.sim
        out: list[SimAction] = []
        while not sim.is_over:
            doc = self.current
            if doc is None:
                return out
            if doc.index >= len(doc.verbs):
                if sim.spec.direction is Direction.OUTBOUND_DIAL and not sim.bridged:
                    sim.record(now, "whisper-ended")
                    return out + sim.lifecycle.bridge(now)
                sim.record(now, "document-ended")
                return out + sim.lifecycle.end(now, CallStatus.COMPLETED)
            verb = doc.verbs[doc.index]
            step = self.execute(now, verb)
            if step is None:
                doc.index += 1
                continue
            return out + step
        return out

    def execute(self, now: float, verb: Verb) -> list[SimAction] | None:
        """Start ``verb``; ``None`` means it finished at once (go on to the next)."""
        sim = self.sim
        if isinstance(verb, Say | Play | Pause):
            return sim.play_prompt(now, verb)
        if isinstance(verb, Gather):
            return self._parts.gather.start(now, verb)
        if isinstance(verb, Record):
            return self._parts.record.start(now, verb)
        if isinstance(verb, Dial):
            if sim.spec.direction is Direction.OUTBOUND_DIAL:
                return sim.lifecycle.app_error(now, 12100, "<Dial> in a dialled leg's whisper")
            return self._parts.dial.start(now, verb)
        if isinstance(verb, Hangup | Reject):
            sim.record(now, "verb", verb=type(verb).__name__)
            return sim.lifecycle.end(now, CallStatus.COMPLETED)
        if isinstance(verb, Redirect):
            url = sim.resolve(verb.url)
            sim.record(now, "verb", verb="Redirect", url=url, method=verb.method)
            self.current = None
            return sim.fetch(now, Purpose.REDIRECT, url, verb.method, ())
        if isinstance(verb, Connect | Start | Stop):
            return self._parts.streams.execute(now, verb)
        raise AssertionError(f"unhandled verb {verb!r}")  # pragma: no cover

    def verb_done(self, now: float) -> list[SimAction]:
        if self._parts.gather.active:
            return self._parts.gather.step(now)
        return self.advance(now)
