"""A scripted phone menu (IVR): prompts, keypad branches, hold music, then a person (pure).

Script (the ``ivr`` key of a callee script)::

    ivr:
      start: main                   # the first node (default: the first one listed)
      answer_delay_ms: 500          # from answer to the first prompt
      nodes:
        main:                       # a menu: a prompt and keys
          say: "Thanks for calling. For bookings press 1, for opening hours press 2."
          options: {"1": bookings, "2": hours}
          timeout_ms: 5000          # silence after the prompt before it is repeated
          repeats: 2                # repeats before no_input (else: hang up)
          no_input: goodbye         # optional
          invalid: main             # optional: node for a key not in options (default: repeat)
        bookings:                   # hold music, then the next node
          music: {seconds: 20, style: chords}      # chords | melody
          next: announcement
        announcement:               # a recorded announcement (say: or wav:)
          say: "Your call is important to us. Please stay on the line."
          next: agent
        hours: {say: "We are open from six to eleven. Goodbye.", then: hangup}
        goodbye: {say: "Goodbye.", then: hangup}
        agent:
          human: {greeting: "Hello, bookings, Anna speaking.", rules: [...]}

Keys reach the menu from ``<Play digits>``, ``SendDigits``, or as in-band tones in the bot's
Media Stream audio (heard by :mod:`~voicecall.emulator.dtmf_detect`). A key pressed while a
menu's prompt plays stops the prompt. Keys are ignored outside menus (during hold music,
announcements). Nodes are scheduled ahead (prompts, repeats, music) and re-planned when a key
arrives; the timeline gets ``callee-ivr-node`` as each node is reached and ``callee-ivr-key``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from voicecall.emulator.callee import Callee, Sound, Timing
from voicecall.emulator.human import HumanCallee, HumanSpec, parse_human
from voicecall.emulator.strict import Fields, ScriptError
from voicecall.emulator.tones import MUSIC_STYLES
from voicecall.emulator.voices import VoiceError, load_wav

__all__ = ["IvrCallee", "IvrNode", "IvrSpec", "parse_ivr"]

KEY_REACTION = 0.3  # seconds from a key to the next prompt
_HORIZON = 3600.0
_MAX_STEPS = 2000
_KEYS = frozenset("0123456789*#ABCD")


@dataclass(frozen=True, slots=True)
class IvrNode:
    name: str
    say: str | None = None
    wav: str | None = None
    wav_seconds: float | None = None
    music_seconds: float | None = None
    music_style: str = "chords"
    human: HumanSpec | None = None
    options: tuple[tuple[str, str], ...] = ()
    timeout_ms: int = 5000
    repeats: int = 2
    no_input: str | None = None
    invalid: str | None = None
    next: str | None = None
    hangup: bool = False

    @property
    def is_menu(self) -> bool:
        return bool(self.options)

    def option(self, digit: str) -> str | None:
        return dict(self.options).get(digit)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key in ("say", "wav", "no_input", "invalid", "next"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        if self.music_seconds is not None:
            out["music"] = {"seconds": self.music_seconds, "style": self.music_style}
        if self.human is not None:
            out["human"] = self.human.to_dict()
        if self.options:
            out.update(options=dict(self.options), timeout_ms=self.timeout_ms)
            out["repeats"] = self.repeats
        if self.hangup:
            out["then"] = "hangup"
        return out


@dataclass(frozen=True, slots=True)
class IvrSpec:
    nodes: tuple[IvrNode, ...]
    start: str
    answer_delay_ms: int = 500

    def node(self, name: str) -> IvrNode:
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(name)

    def build(self, timing: Timing) -> IvrCallee:
        return IvrCallee(self, timing)

    def to_dict(self) -> dict[str, Any]:
        return {
            "start": self.start,
            "answer_delay_ms": self.answer_delay_ms,
            "nodes": {n.name: n.to_dict() for n in self.nodes},
        }


def _node(name: str, data: Any, where: str) -> IvrNode:
    f = Fields(data, where)
    say, wav = f.text("say"), f.text("wav")
    wav_seconds: float | None = None
    if wav is not None:
        try:
            wav_seconds = load_wav(wav).seconds
        except VoiceError as exc:
            raise ScriptError(f"{where}.wav: {exc}") from None
    music_seconds: float | None = None
    style = "chords"
    if f.has("music"):
        m = Fields(f.raw("music"), f.path("music"))
        music_seconds = m.number("seconds", 30.0, minimum=0.5, maximum=3600.0)
        style = m.choice("style", MUSIC_STYLES, "chords") or "chords"
        m.done()
    human = parse_human(f.raw("human"), f.path("human")) if f.has("human") else None
    kinds = [k for k, v in (("say", say), ("wav", wav), ("music", music_seconds)) if v is not None]
    if human is not None:
        kinds.append("human")
    if len(kinds) != 1:
        raise ScriptError(f"{where}: needs exactly one of say, wav, music, human (got {kinds})")
    options: list[tuple[str, str]] = []
    if f.has("options"):
        raw = f.raw("options")
        if not isinstance(raw, dict) or not raw:
            raise ScriptError(f"{where}.options: must be a mapping of key -> node")
        for key, target in raw.items():
            key_s = str(key)
            if key_s not in _KEYS or not isinstance(target, str):
                raise ScriptError(f"{where}.options: {key!r}: {target!r} is not a key -> node")
            options.append((key_s, target))
        if music_seconds is not None or human is not None:
            raise ScriptError(f"{where}.options: only a spoken prompt (say/wav) can have keys")
    node = IvrNode(
        name=name,
        say=say,
        wav=wav,
        wav_seconds=wav_seconds,
        music_seconds=music_seconds,
        music_style=style,
        human=human,
        options=tuple(options),
        timeout_ms=f.integer("timeout_ms", 5000, minimum=100, maximum=600_000),
        repeats=f.integer("repeats", 2, maximum=100),
        no_input=f.text("no_input"),
        invalid=f.text("invalid"),
        next=f.text("next"),
        hangup=f.choice("then", ("hangup",), None) == "hangup",
    )
    f.done()
    if node.options and (node.next is not None or node.hangup):
        raise ScriptError(f"{where}: a menu (options) cannot also have next/then")
    if not node.options and (node.no_input or node.invalid):
        raise ScriptError(f"{where}: no_input/invalid need options")
    if node.human is not None and (node.next is not None or node.hangup):
        raise ScriptError(f"{where}: a human node is the end of the menu (no next/then)")
    return node


def parse_ivr(data: Any, where: str = "ivr") -> IvrSpec:
    f = Fields(data, where)
    raw = f.raw("nodes")
    if not isinstance(raw, dict) or not raw:
        raise ScriptError(f"{where}.nodes: must be a non-empty mapping of name -> node")
    nodes = tuple(_node(str(k), v, f"{where}.nodes.{k}") for k, v in raw.items())
    names = {n.name for n in nodes}
    start = f.text("start", nodes[0].name) or nodes[0].name
    if start not in names:
        raise ScriptError(f"{where}.start: no node named {start!r}")
    for n in nodes:
        refs = [t for _, t in n.options] + [r for r in (n.no_input, n.invalid, n.next) if r]
        for ref in refs:
            if ref not in names:
                raise ScriptError(f"{where}.nodes.{n.name}: no node named {ref!r}")
    spec = IvrSpec(nodes, start, f.integer("answer_delay_ms", 500, maximum=60_000))
    f.done()
    return spec


@dataclass(slots=True)
class _Entry:
    at: float
    node: str
    repeat: int = 0
    noted: bool = False


@dataclass(slots=True)
class _Tail:
    """Where planning stopped: the next step starts ``node`` (repetition ``repeat``) at ``at``."""

    at: float
    node: str | None  # None: nothing more (hung up, or a human took over)
    repeat: int = 0
    entries: list[_Entry] = field(default_factory=list)


class IvrCallee(Callee):
    kind = "ivr"
    hears_keys = True

    def __init__(self, spec: IvrSpec, timing: Timing) -> None:
        super().__init__(timing)
        self.spec = spec
        self.keys: list[dict[str, Any]] = []
        self.human: HumanCallee | None = None
        self._tail = _Tail(0.0, None)
        self._entries: list[_Entry] = []  # provisional beyond the committed time
        self._human_at: float | None = None
        self.listens = any(n.human is not None for n in spec.nodes)

    # ------------------------------------------------------------------ planning

    def answered(self, now: float) -> None:
        super().answered(now)
        self._tail = _Tail(now + self.spec.answer_delay_ms / 1000.0, self.spec.start)
        self.ensure(now + _HORIZON)

    def ensure(self, until: float) -> None:
        steps = 0
        while self._tail.node is not None and self._tail.at <= until and steps < _MAX_STEPS:
            self._step()
            steps += 1
        if self._human_at is not None and self.human is None and self._human_at <= until:
            self._start_human()

    def _step(self) -> None:
        tail = self._tail
        assert tail.node is not None
        node = self.spec.node(tail.node)
        t = tail.at
        self._entries.append(_Entry(t, node.name, tail.repeat))
        if node.human is not None:
            self._human_at = t
            self._tail = _Tail(t, None)
            return
        if node.music_seconds is not None:
            self.add(
                Sound(t, t + node.music_seconds, "music", text=node.name, style=node.music_style)
            )
            end = t + node.music_seconds
        else:
            end = self.speak(t, node.say or "", wav=node.wav, seconds=node.wav_seconds).end
        if node.is_menu:
            wait_end = end + node.timeout_ms / 1000.0
            if tail.repeat < node.repeats:
                self._tail = _Tail(wait_end, node.name, tail.repeat + 1)
            elif node.no_input is not None:
                self._tail = _Tail(wait_end, node.no_input)
            else:
                self._hangup_planned(wait_end)
            return
        if node.hangup:
            self._hangup_planned(end + 0.5)
        elif node.next is not None:
            self._tail = _Tail(end, node.next)
        else:
            self._tail = _Tail(end, None)  # stays on the line, silent

    def _hangup_planned(self, at: float) -> None:
        self.hangup_at = at
        self._tail = _Tail(at, None)

    # ------------------------------------------------------------------ state

    def advance(self, now: float) -> None:
        self.ensure(now + _HORIZON)
        for entry in self._entries:
            if not entry.noted and entry.at <= now:
                entry.noted = True
                self.note(entry.at, "callee-ivr-node", node=entry.node, repeat=entry.repeat)
        if self.human is not None:
            self.human.advance(now)

    def _human_active(self, t: float) -> bool:
        return self.human is not None and self._human_at is not None and self._human_at <= t

    def _start_human(self) -> None:
        assert self._human_at is not None
        entry = [e for e in self._entries if e.at <= self._human_at][-1]
        spec = self.spec.node(entry.node).human
        assert spec is not None
        self.human = HumanCallee(spec, self.timing)
        self.human.sounds = self.sounds  # one schedule for the whole call
        self.human.answered(self._human_at)

    def node_at(self, t: float) -> _Entry | None:
        current: _Entry | None = None
        for entry in self._entries:
            if entry.at <= t:
                current = entry
        return current

    # ------------------------------------------------------------------ inputs

    def heard_digit(self, now: float, digit: str) -> None:
        self.advance(now)
        entry = self.node_at(now)
        node = None if entry is None else self.spec.node(entry.node)
        if node is None or not node.is_menu or self._human_active(now):
            self.keys.append({"at": now, "digit": digit, "node": entry and entry.node})
            self.note(
                now, "callee-ivr-key", digit=digit, node=entry and entry.node, action="ignored"
            )
            return
        target = node.option(digit)
        action = "go"
        if target is None:
            target, action = (node.invalid or node.name), "invalid"
        self.keys.append({"at": now, "digit": digit, "node": node.name, "to": target})
        self.note(now, "callee-ivr-key", digit=digit, node=node.name, to=target, action=action)
        self.cancel_after(now)
        self._entries = [e for e in self._entries if e.at <= now]
        if self._human_at is not None and self._human_at > now:
            self._human_at, self.human = None, None
        self._tail = _Tail(now + KEY_REACTION, target)
        self.ensure(now + _HORIZON)

    def heard_text(self, now: float, text: str, end: float) -> None:
        self.advance(now)
        if self.human is not None and self._human_active(now):
            self.human.heard_text(now, text, end)

    def turn_ended(self, now: float, at: float | None = None) -> None:
        self.advance(now)
        if self.human is not None and self._human_active(now):
            self.human.turn_ended(now, at)
            self.hangup_at = self.human.hangup_at

    def drain_notes(self, now: float) -> list[Any]:
        notes = super().drain_notes(now)
        if self.human is not None:
            notes += self.human.drain_notes(now)
        return sorted(notes, key=lambda n: n.at)

    def summary(self) -> dict[str, Any]:
        out = super().summary()
        out["keys"] = list(self.keys)
        out["nodes"] = [{"at": e.at, "node": e.node} for e in self._entries]
        if self.human is not None:
            out["human"] = self.human.summary()
        return out
