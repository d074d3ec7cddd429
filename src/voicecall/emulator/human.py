"""A scripted person who answers by keywords (pure).

Script (the ``human`` key of a callee script, or an IVR node)::

    human:
      greeting: "Trattoria Quercia, good evening, how can I help?"   # said on answer
      greeting_delay_ms: 400
      rules:                              # tried in order on every turn of the bot
        - name: offer                     # optional; other rules can require it (after)
          heard: [table, book, reservation]   # any of these phrases ("*": anything)
          also_heard: [seven]             # optional: and any of these
          not_heard: [thirty]             # optional: and none of these
          after: [greeting_rule]          # optional: only once one of these rules fired
          say: "Seven is full; I could offer seven thirty."
          then: hangup                    # optional: hang up once this line is said
          repeat: false                   # default: a rule fires once
      steps: ["line one", "line two"]     # instead of rules: one line per turn, in order
      default: "Sorry, could you say that again?"   # when nothing matches (null: silence)

Phrases are matched on whole words after :func:`~voicecall.emulator.phrases.normalize` (so
``seven thirty`` matches "7:30", "7.30", "730" and "seven-thirty"). A turn is everything the bot
said since the person last replied: ``<Say>`` text on TwiML calls, the transcript of the bot's
audio on Media Streams (faster-whisper tiny.en; see :mod:`~voicecall.emulator.hearing`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from voicecall.emulator.callee import Callee, Timing
from voicecall.emulator.phrases import matches_any, normalize
from voicecall.emulator.strict import Fields, ScriptError

__all__ = ["HumanCallee", "HumanSpec", "Rule", "parse_human"]

HANGUP_PAUSE = 1.0  # seconds between the last word and the click


@dataclass(frozen=True, slots=True)
class Rule:
    say: str
    heard: tuple[str, ...]
    also_heard: tuple[str, ...] = ()
    not_heard: tuple[str, ...] = ()
    after: tuple[str, ...] = ()
    name: str | None = None
    hangup: bool = False
    repeat: bool = False

    def matches(self, tokens: list[str], fired: set[str]) -> bool:
        if self.after and not fired & set(self.after):
            return False
        if not matches_any(tokens, self.heard):
            return False
        if self.also_heard and not matches_any(tokens, self.also_heard):
            return False
        return not (self.not_heard and matches_any(tokens, self.not_heard))

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"heard": list(self.heard), "say": self.say}
        for key, value in (
            ("name", self.name),
            ("also_heard", list(self.also_heard)),
            ("not_heard", list(self.not_heard)),
            ("after", list(self.after)),
        ):
            if value:
                out[key] = value
        if self.hangup:
            out["then"] = "hangup"
        if self.repeat:
            out["repeat"] = True
        return out


@dataclass(frozen=True, slots=True)
class Step:
    say: str
    hangup: bool = False


@dataclass(frozen=True, slots=True)
class HumanSpec:
    greeting: str | None = "Hello?"
    greeting_delay_ms: int = 400
    rules: tuple[Rule, ...] = ()
    steps: tuple[Step, ...] = ()
    default: str | None = "Sorry, could you say that again?"

    def build(self, timing: Timing) -> HumanCallee:
        return HumanCallee(self, timing)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "greeting": self.greeting,
            "greeting_delay_ms": self.greeting_delay_ms,
            "default": self.default,
        }
        if self.rules:
            out["rules"] = [r.to_dict() for r in self.rules]
        if self.steps:
            out["steps"] = [
                {"say": s.say, "then": "hangup"} if s.hangup else s.say for s in self.steps
            ]
        return out


def _then(f: Fields) -> bool:
    return f.choice("then", ("hangup",), None) == "hangup"


def _rule(data: Any, where: str, names: set[str]) -> Rule:
    f = Fields(data, where)
    heard = f.texts("heard")
    if not heard:
        raise ScriptError(f"{where}.heard: needs at least one phrase ('*' matches anything)")
    name = f.text("name")
    if name is not None:
        if not name.strip() or name in names:
            raise ScriptError(f"{where}.name: must be non-empty and unique, got {name!r}")
        names.add(name)
    rule = Rule(
        say=f.text("say", required=True) or "",
        heard=heard,
        also_heard=f.texts("also_heard"),
        not_heard=f.texts("not_heard"),
        after=f.texts("after"),
        name=name,
        hangup=_then(f),
        repeat=f.boolean("repeat", False),
    )
    f.done()
    return rule


def _step(data: Any, where: str) -> Step:
    if isinstance(data, str):
        if not data.strip():
            raise ScriptError(f"{where}: must not be empty")
        return Step(data)
    f = Fields(data, where)
    step = Step(f.text("say", required=True) or "", _then(f))
    f.done()
    return step


def _line(f: Fields, key: str, default: str) -> str | None:
    """A line to say: absent -> ``default``, null -> nothing, else non-empty text."""
    if key not in f.data:
        f.raw(key)
        return default
    if f.data[key] is None:
        f.raw(key)
        return None
    return f.text(key, required=True)


def parse_human(data: Any, where: str = "human") -> HumanSpec:
    f = Fields(data, where)
    rules_raw = f.raw("rules")
    steps_raw = f.raw("steps")
    if rules_raw is not None and steps_raw is not None:
        raise ScriptError(f"{where}: give rules or steps, not both")
    rules: list[Rule] = []
    names: set[str] = set()
    if rules_raw is not None:
        if not isinstance(rules_raw, list):
            raise ScriptError(f"{where}.rules: must be a list")
        rules = [_rule(r, f"{where}.rules[{i}]", names) for i, r in enumerate(rules_raw)]
        for i, rule in enumerate(rules):
            missing = [a for a in rule.after if a not in names]
            if missing:
                raise ScriptError(f"{where}.rules[{i}].after: no rule named {missing[0]!r}")
    steps: list[Step] = []
    if steps_raw is not None:
        if not isinstance(steps_raw, list):
            raise ScriptError(f"{where}.steps: must be a list")
        steps = [_step(s, f"{where}.steps[{i}]") for i, s in enumerate(steps_raw)]
    spec = HumanSpec(
        greeting=_line(f, "greeting", "Hello?"),
        greeting_delay_ms=f.integer("greeting_delay_ms", 400, maximum=60_000),
        rules=tuple(rules),
        steps=tuple(steps),
        default=_line(f, "default", "Sorry, could you say that again?"),
    )
    f.done()
    return spec


class HumanCallee(Callee):
    kind = "human"
    listens = True

    def __init__(self, spec: HumanSpec, timing: Timing) -> None:
        super().__init__(timing)
        self.spec = spec
        self.fired: set[str] = set()
        self.transcript: list[dict[str, Any]] = []  # both sides, in order
        self._heard: list[str] = []
        self._step = 0
        self._hanging_up = False

    def answered(self, now: float) -> None:
        super().answered(now)
        if self.spec.greeting:
            at = now + self.spec.greeting_delay_ms / 1000.0
            self.speak(at, self.spec.greeting)
            self.transcript.append({"at": at, "who": "callee", "text": self.spec.greeting})
            self.note(at, "callee-said", text=self.spec.greeting, why="greeting")

    def heard_text(self, now: float, text: str, end: float) -> None:
        if text.strip():
            self._heard.append(text.strip())
            self.transcript.append({"at": now, "who": "bot", "text": text.strip()})

    def turn_ended(self, now: float, at: float | None = None) -> None:
        if self._hanging_up:
            return
        text = " ".join(self._heard)
        self._heard.clear()
        if not text:
            return
        line, hangup, why = self._choose(normalize(text))
        self.note(now, "callee-heard", text=text)
        if line is None:
            return
        start = max(now, at if at is not None else now) + self.timing.reply_delay
        sound = self.speak(start, line)
        self.transcript.append({"at": start, "who": "callee", "text": line})
        self.note(now, "callee-said", text=line, why=why, start=start)
        if hangup:
            self._hanging_up = True
            self.hangup_at = sound.end + HANGUP_PAUSE

    def _choose(self, tokens: list[str]) -> tuple[str | None, bool, str]:
        spec = self.spec
        if spec.rules:
            for i, rule in enumerate(spec.rules):
                key = rule.name or f"#{i}"
                if not rule.repeat and key in self.fired:
                    continue
                if rule.matches(tokens, self.fired):
                    self.fired.add(key)
                    return rule.say, rule.hangup, f"rule {key}"
        elif self._step < len(spec.steps):
            step = spec.steps[self._step]
            self._step += 1
            return step.say, step.hangup, f"step {self._step}"
        return spec.default, False, "default"

    def summary(self) -> dict[str, Any]:
        out = super().summary()
        out.update(fired=sorted(self.fired), transcript=list(self.transcript))
        return out
