"""Prompts in the call simulator (pure): ``<Say>``, ``<Play>`` (audio, keypad digits), ``<Pause>``.

A ``<Say>`` lasts its words at ``SimConfig.words_per_minute``; the callee hears its text. A
``<Play>`` of a URL is fetched first (:class:`~voicecall.emulator.simtypes.FetchMedia`) and
lasts as long as its audio (times ``loop``); an IVR callee hears the keypad tones in it (the
emulator's own DTMF detector); a URL that gives no playable audio is a warning (11200, or 12300
for an unplayable content type) and the ``<Play>`` is skipped. ``<Play digits>`` plays keypad
tones (``w`` = 0.5 s, ``W`` = 1 s) that the callee hears key by key. A prompt inside a
``<Gather>`` can be stopped early (``stop_at``) by a key the callee presses.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from voicecall.emulator.dtmf_detect import DtmfDetector
from voicecall.emulator.simtypes import FetchMedia, HeardItem, SimAction
from voicecall.emulator.twiml import Play, Prompt, Say

if TYPE_CHECKING:
    from voicecall.emulator.sim import CallSim

__all__ = ["PromptRun"]

SAMPLE_RATE = 8000


@dataclass(slots=True)
class _PendingMedia:
    verb: Play
    stop_at: float | None


class PromptRun:
    def __init__(self, sim: CallSim) -> None:
        self.sim = sim
        self._pending: dict[int, _PendingMedia] = {}

    def abandon(self) -> None:
        self._pending.clear()

    def media_fetched(
        self, request_id: int, ulaw: bytes | None, now: float, error: str | None = None
    ) -> list[SimAction]:
        """The audio of a ``<Play>`` URL (8 kHz μ-law), or ``None`` and why it failed."""
        pending = self._pending.pop(request_id, None)
        if pending is None:
            return []
        verb = pending.verb
        if ulaw is None or not ulaw:
            code = 12300 if error and "content" in error.lower() else 11200
            message = f"<Play> {verb.url}: {error or 'no audio'}"
            self.sim.record(now, "warning", code=code, message=message)
            self.sim.record(now, "verb-skipped", verb="Play", url=verb.url, reason=message)
            return self.sim.verb_done(now)
        one = len(ulaw) / SAMPLE_RATE
        seconds = one * verb.loop
        extra = {"url": verb.url, "audio_seconds": one}
        for i in range(min(verb.loop, 20)):
            self.sim.heard.append(
                HeardItem(now + i * one, now + (i + 1) * one, "play", verb.url, extra=extra)
            )
        self.sim.record(now, "verb", verb="Play", url=verb.url, loop=verb.loop, seconds=seconds)
        if self.sim.callee is not None:
            self._callee_hears_audio(now, ulaw, verb.loop)
        return self._prompt_timer(now, seconds, pending.stop_at) + self.sim.callee_sync(now)

    def digits_to_callee(self, start: float, digits: str) -> None:
        if self.sim.callee is None:
            return
        t = start
        for d in digits:
            if d in "wW":
                t += 0.5 if d == "w" else 1.0
                continue
            self.sim.callee.heard_digit(t, d)
            t += self.sim.config.dtmf_digit_seconds

    def _callee_hears_audio(self, now: float, ulaw: bytes, loop: int) -> None:
        callee = self.sim.callee
        assert callee is not None
        if callee.hears_keys:
            detector = DtmfDetector()
            one = len(ulaw) / SAMPLE_RATE
            for i in range(min(loop, 20)):
                for press in detector.feed_ulaw(ulaw):
                    callee.heard_digit(now + i * one + press.sample / SAMPLE_RATE, press.digit)

    def _prompt_timer(self, now: float, seconds: float, stop_at: float | None) -> list[SimAction]:
        if stop_at is not None and stop_at < now + seconds:
            if self.sim.heard and self.sim.heard[-1].end > stop_at:
                self.sim.heard[-1].end = max(self.sim.heard[-1].start, stop_at)
            self.sim.record(stop_at, "prompt-interrupted", by="dtmf")
            self.sim.prompt_cut(stop_at)
            return [self.sim.timer("verb", max(now, stop_at))]
        return [self.sim.timer("verb", now + seconds)]

    def play(self, now: float, verb: Prompt, stop_at: float | None = None) -> list[SimAction]:
        """Play ``verb`` to the callee; a ``verb`` timer fires when it is over."""
        callee = self.sim.callee
        if isinstance(verb, Say):
            one = self.sim.say_seconds(verb.text)
            seconds = one * verb.loop
            for i in range(min(verb.loop, 20)):
                start = now + i * one
                if stop_at is not None and start >= stop_at:
                    break
                item = HeardItem(start, start + one, "say", verb.text, verb.voice, verb.language)
                self.sim.heard.append(item)
                if callee is not None:
                    callee.heard_text(start, verb.text, start + one)
            self.sim.record(
                now,
                "verb",
                verb="Say",
                text=verb.text,
                voice=verb.voice,
                language=verb.language,
                loop=verb.loop,
                seconds=seconds,
            )
            return self._prompt_timer(now, seconds, stop_at) + self.sim.callee_sync(now)
        if isinstance(verb, Play):
            if verb.digits is not None:
                seconds = sum(
                    (0.5 if d == "w" else 1.0 if d == "W" else self.sim.config.dtmf_digit_seconds)
                    for d in verb.digits
                )
                self.sim.heard.append(HeardItem(now, now + seconds, "digits", verb.digits))
                self.sim.record(now, "verb", verb="Play", digits=verb.digits, seconds=seconds)
                self.digits_to_callee(now, verb.digits)
                return self._prompt_timer(now, seconds, stop_at) + self.sim.callee_sync(now)
            rid = self.sim.new_request_id()
            url = self.sim.resolve(verb.url)
            self._pending[rid] = _PendingMedia(verb, stop_at)
            return [FetchMedia(rid, url)]
        self.sim.record(now, "verb", verb="Pause", seconds=verb.length)
        return self._prompt_timer(now, verb.length, stop_at)
