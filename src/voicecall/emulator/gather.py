"""``<Gather>`` in the call simulator (pure): prompts, then what the callee says or presses.

Nested ``<Say>``/``<Play>``/``<Pause>`` play first. Then the callee answers:

* A classic script: its next reply (speech, digits, or silence). A digits reply with ``at_ms``
  is pressed that long after the ``<Gather>`` starts; a key pressed while a prompt plays stops
  that prompt (and skips the rest), as on Twilio.
* A scripted callee (human, IVR, voicemail): the bot has yielded the floor, so the callee may
  reply; the ``<Gather>`` hears the first speech that overlaps its listening window (an utterance
  already under way counts: Twilio listens during the prompts too).

Speech is posted ``speechTimeout`` after it ends (``auto``: ``SimConfig.speech_auto_endpoint``);
digits at ``finishOnKey`` / ``numDigits``, else after ``timeout``. No input: the document goes
on after the ``<Gather>`` (or posts an empty result with ``actionOnEmptyResult``).

With ``partialResultCallback``, interim results are posted while the callee speaks (the first
:data:`PARTIAL_FIRST_S` after the speech starts, then every :data:`PARTIAL_EVERY_S` until it
ends): ``UnstableSpeechResult`` (the words so far), ``StableSpeechResult`` (all but the last
of them), ``Stability`` and ``SequenceNumber`` (from 1 per Gather), answer ignored. A REST
redirect during the speech abandons the Gather: no more partials, and no final result.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from voicecall.emulator.scripts import DigitsReply, SilenceReply, SpeechReply
from voicecall.emulator.simtypes import Purpose, SimAction
from voicecall.emulator.twiml import Gather

if TYPE_CHECKING:
    from voicecall.emulator.sim import CallSim

__all__ = ["PARTIAL_EVERY_S", "PARTIAL_FIRST_S", "GatherRun"]

PARTIAL_FIRST_S = 0.3
PARTIAL_EVERY_S = 0.5


def _confidence(value: float) -> str:
    return f"{value:.8f}".rstrip("0").rstrip(".") or "0"


@dataclass(slots=True)
class _State:
    verb: Gather
    started: float
    prompt_index: int = 0
    listening: bool = False
    barge_at: float | None = None  # a key pressed during the prompts
    barge_digits: str = ""
    result: tuple[tuple[str, str], ...] | None = None  # params to post, None = no input
    # interim results still to post: (at, words so far); and how many were posted
    partials: list[tuple[float, str]] | None = None
    partial_seq: int = 0


class GatherRun:
    def __init__(self, sim: CallSim) -> None:
        self.sim = sim
        self.state: _State | None = None

    @property
    def active(self) -> bool:
        return self.state is not None

    def start(self, now: float, verb: Gather) -> list[SimAction]:
        sim = self.sim
        self.state = state = _State(verb, now)
        sim.record(
            now,
            "verb",
            verb="Gather",
            input=sorted(verb.input),
            action=verb.action,
            timeout=verb.timeout,
            speech_timeout=verb.speech_timeout,
            num_digits=verb.num_digits,
        )
        upcoming = sim.peek_reply()
        if (
            sim.callee is None
            and isinstance(upcoming, DigitsReply)
            and upcoming.at_ms is not None
            and "dtmf" in verb.input
        ):
            sim.next_reply()
            state.barge_at = now + upcoming.at_ms / 1000.0
            state.barge_digits = upcoming.digits
        return self.step(now)

    def abandon(self) -> None:
        self.state = None

    def step(self, now: float) -> list[SimAction]:
        """The previous prompt ended (or the Gather just began): next prompt, or listen."""
        state = self.state
        assert state is not None
        verb = state.verb
        sim = self.sim
        if state.barge_at is not None and now >= state.barge_at:
            return self._listen(now)
        if state.prompt_index < len(verb.prompts):
            prompt = verb.prompts[state.prompt_index]
            state.prompt_index += 1
            return sim.play_prompt(now, prompt, stop_at=state.barge_at)
        return self._listen(now)

    def prompt_cut(self, now: float) -> None:
        """A prompt was stopped by a key: skip the remaining prompts."""
        if self.state is not None:
            self.state.prompt_index = len(self.state.verb.prompts)

    def _listen(self, now: float) -> list[SimAction]:
        state = self.state
        assert state is not None
        verb, sim = state.verb, self.sim
        state.listening = True
        if state.barge_at is not None:
            return self._digits(state.barge_at, state.barge_digits)
        if sim.callee is not None:
            return self._listen_to_callee(now)
        reply = sim.next_reply()
        delay = sim.script.reply_delay_ms / 1000.0
        if isinstance(reply, SpeechReply) and "speech" in verb.input:
            start = now + delay
            wav_seconds = reply.seconds
            end = start + (sim.say_seconds(reply.text) if wav_seconds is None else wav_seconds)
            sim.callee_inputs.append({"start": start, "end": end, "speech": reply.text})
            extra = {"wav": reply.wav} if reply.wav is not None else {}
            sim.record(now, "callee-speech", start=start, end=end, text=reply.text, **extra)
            if reply.text:
                state.result = (
                    ("SpeechResult", reply.text),
                    ("Confidence", _confidence(reply.confidence)),
                )
            return [
                sim.timer("gather", end + self._tail()),
                *self._plan_partials(start, end, reply.text),
            ]
        if isinstance(reply, DigitsReply) and "dtmf" in verb.input:
            return self._digits(now + delay, reply.digits)
        if not isinstance(reply, SilenceReply):
            # Said something the Gather was not listening for (speech to a dtmf-only Gather...).
            sim.record(now, "callee-ignored-input", reply=repr(reply), input=sorted(verb.input))
        state.result = None
        return [sim.timer("gather", now + verb.timeout)]

    def _tail(self) -> float:
        state = self.state
        assert state is not None
        tail = state.verb.speech_timeout
        return self.sim.config.speech_auto_endpoint if tail is None else tail

    def _listen_to_callee(self, now: float) -> list[SimAction]:
        state = self.state
        assert state is not None
        verb, sim = state.verb, self.sim
        callee = sim.callee
        assert callee is not None
        callee.turn_ended(now)
        out = sim.callee_sync(now)
        sound = callee.speech_for(now, now + verb.timeout)
        if sound is None:
            state.result = None
            return [*out, sim.timer("gather", now + verb.timeout)]
        start = max(sound.start, now)
        if "speech" not in verb.input:
            sim.record(now, "callee-ignored-input", speech=sound.text, input=sorted(verb.input))
            state.result = None
            return [*out, sim.timer("gather", now + verb.timeout)]
        sim.callee_inputs.append({"start": start, "end": sound.end, "speech": sound.text})
        extra = {"wav": sound.wav} if sound.wav is not None else {}
        sim.record(now, "callee-speech", start=start, end=sound.end, text=sound.text, **extra)
        state.result = (
            (("SpeechResult", sound.text), ("Confidence", _confidence(0.92)))
            if sound.text
            else None
        )
        return [
            *out,
            sim.timer("gather", sound.end + self._tail()),
            *self._plan_partials(start, sound.end, sound.text),
        ]

    def _plan_partials(self, start: float, end: float, text: str) -> list[SimAction]:
        """Schedule the interim results of an utterance (``partialResultCallback`` only)."""
        state = self.state
        assert state is not None
        words = text.split()
        if state.verb.partial_result_callback is None or not words or end <= start:
            return []
        plan: list[tuple[float, str]] = []
        at = start + PARTIAL_FIRST_S
        while at < end:
            heard = max(1, round(len(words) * (at - start) / (end - start)))
            plan.append((at, " ".join(words[:heard])))
            at += PARTIAL_EVERY_S
        if not plan:
            plan.append((start + (end - start) / 2, words[0]))
        state.partials = plan
        return [self.sim.timer("gather-partial", plan[0][0])]

    def partial_due(self, now: float) -> list[SimAction]:
        """Post the next interim result (the Gather may have been abandoned meanwhile)."""
        state, sim = self.state, self.sim
        if state is None or not state.partials or state.verb.partial_result_callback is None:
            return []
        _at, words = state.partials.pop(0)
        state.partial_seq += 1
        stable = words.rsplit(" ", 1)[0] if " " in words else ""
        params = [
            *sim.common_params(),
            ("LanguageCode", state.verb.language),
            ("SequenceNumber", str(state.partial_seq)),
            ("StableSpeechResult", stable),
            ("Stability", "0.8"),
            ("UnstableSpeechResult", words),
        ]
        sim.record(now, "gather-partial", seq=state.partial_seq, text=words)
        url = sim.resolve(state.verb.partial_result_callback)
        out: list[SimAction] = [
            sim.notify(
                Purpose.GATHER_PARTIAL, url, state.verb.partial_result_callback_method, params
            )
        ]
        if state.partials:
            out.append(sim.timer("gather-partial", state.partials[0][0]))
        return out

    def _digits(self, start: float, digits: str) -> list[SimAction]:
        state = self.state
        assert state is not None
        verb, sim = state.verb, self.sim
        t = start
        collected = ""
        for d in digits:
            t += 0.5 if d == "w" else sim.config.dtmf_digit_seconds
            if d == "w":
                continue
            if verb.finish_on_key and d == verb.finish_on_key:
                break
            collected += d
            if verb.num_digits is not None and len(collected) >= verb.num_digits:
                break
        else:
            t += verb.timeout  # no terminator: Twilio waits `timeout` for another digit
        sim.callee_inputs.append({"start": start, "end": t, "digits": digits})
        sim.record(start, "callee-digits", digits=digits, collected=collected)
        state.result = (("Digits", collected),) if collected else None
        return [sim.timer("gather", max(t, start))]

    def input_done(self, now: float) -> list[SimAction]:
        state = self.state
        if state is None:
            return []
        self.state = None
        verb, sim = state.verb, self.sim
        if state.result is None and not verb.action_on_empty_result:
            sim.record(now, "gather-no-input")
            return sim.advance(now)
        target = sim.resolve(verb.action) if verb.action else sim.document_url
        if not target:
            sim.record(now, "gather-no-action-url", note="inline TwiML and no action")
            return sim.advance(now)
        extra = list(state.result or ())
        sim.gather_posts.append({"at": now, "url": target, "params": dict(extra)})
        sim.record(now, "gather-result", url=target, **{k: v for k, v in extra})
        sim.leave_document()
        return sim.fetch(now, Purpose.GATHER_ACTION, target, verb.method, extra)
