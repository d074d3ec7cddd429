"""The tools of a call's agent: their schemas, a per-call :class:`ToolBox`, and held runs.

A :class:`ToolBox` is made per call. Tools are *registered* with a handler; only registered tools
are offered to the model (``send_dtmf`` and ``transfer_call`` have schemas here, and the telephony
code registers their handlers when it can perform them). The box keeps the call's tool exchanges
(the model's call and the result fed back), so each later model request carries them as
``assistant``/``tool`` messages.

A handler returns a :class:`ToolOutcome`: a JSON result for the model, optionally an
:class:`~voicecall.agent.responder.EndCall` (``end_call``), or ``pending`` when the result comes
later (``ask_owner``: the run stops there, and a new run starts once :meth:`ToolBox.resolve`
gave the result).

**Speculative runs.** A run started before the caller has surely finished (issue 10) must have
no side effects. :meth:`ToolBox.held` gives such a run a :class:`HeldTools` view: tools declared
without side effects run as usual (their exchanges kept in the view), every other call is
*held* — recorded, not executed — and the run stops there as if the result were pending. When the
run is confirmed, :meth:`HeldTools.commit` moves its exchanges into the box and executes the held
calls (returning their outcomes: a continuation run should follow unless one is pending or ends
the call); when it is dropped, :meth:`HeldTools.discard` forgets them and nothing happened.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from jsonschema import Draft202012Validator

from voicecall.agent.responder import EndCall
from voicecall.conversation.chat import ToolRequest

log = logging.getLogger("voicecall.tools")


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """A tool as the model sees it. ``side_effects=False`` only for tools whose effect is carried
    by the run's own output (``end_call``) or that change nothing: they run in held runs too."""

    name: str
    description: str
    parameters: dict[str, Any]
    side_effects: bool = True

    def schema(self) -> dict[str, Any]:
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": self.parameters,
            },
        }


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A validated call of a registered tool. ``said`` is what the agent said in the same reply
    before calling it (a handler may want to know whether the caller already heard something)."""

    id: str
    name: str
    arguments: dict[str, Any]
    call_id: str
    said: str = ""


@dataclass(frozen=True, slots=True)
class ToolOutcome:
    """What a tool call did: ``result`` is fed back to the model (JSON)."""

    result: dict[str, Any]
    end: EndCall | None = None
    pending: bool = False


ToolHandler = Callable[[ToolCall], Awaitable[ToolOutcome]]


@dataclass(slots=True)
class Exchange:
    """One tool call and its result, placed after the first ``anchor`` transcript lines."""

    anchor: int
    round: int
    said: str
    request: ToolRequest
    result: dict[str, Any] | None = None


class Tools(Protocol):
    """What an agent run uses: a :class:`ToolBox`, or a speculative run's :class:`HeldTools`."""

    def offered(self) -> list[dict[str, Any]]: ...

    def exchanges(self) -> list[Exchange]: ...

    def next_round(self) -> int: ...

    async def run(
        self, request: ToolRequest, *, anchor: int, round: int, said: str
    ) -> ToolOutcome: ...


# ----------------------------------------------------------------------------- built-in schemas

END_CALL = ToolSpec(
    "end_call",
    "Hang up the phone call. Use it when the task is done or cannot be done, or when the other "
    "person says goodbye or wants to end the call. Say a short goodbye in `goodbye`.",
    {
        "type": "object",
        "properties": {
            "goodbye": {
                "type": "string",
                "maxLength": 500,
                "description": "A short closing sentence spoken before hanging up.",
            }
        },
        "required": [],
    },
    side_effects=False,  # its effect is the run's EndCall output, applied only when confirmed
)

ASK_OWNER = ToolSpec(
    "ask_owner",
    "Ask the person you work for (the owner) a short question when you need a fact or a decision "
    "that the task and the facts do not give you. Tell the other person you are checking first. "
    "The owner's answer comes back as this tool's result (or a note that they did not answer).",
    {
        "type": "object",
        "properties": {
            "question": {
                "type": "string",
                "minLength": 1,
                "maxLength": 500,
                "description": "One short, self-contained question for the owner.",
            }
        },
        "required": ["question"],
    },
)

SEND_DTMF = ToolSpec(
    "send_dtmf",
    "Press keys on the phone keypad (for menus: 'press 2 for reservations'). Digits 0-9, * and #, "
    "A-D; w waits half a second.",
    {
        "type": "object",
        "properties": {
            "digits": {
                "type": "string",
                "pattern": "^[0-9*#A-Dw]{1,64}$",
                "description": "The keys to press, in order, e.g. '2' or '1w23#'.",
            }
        },
        "required": ["digits"],
    },
)

TRANSFER_CALL = ToolSpec(
    "transfer_call",
    "Transfer the call to another phone number. cold: connect at once; warm: the other number "
    "first hears `summary`, then the call is connected (if they do not answer, you are back on "
    "the call).",
    {
        "type": "object",
        "properties": {
            "to": {"type": "string", "description": "The number in E.164 form, e.g. +15551234567."},
            "mode": {"type": "string", "enum": ["cold", "warm"]},
            "summary": {
                "type": "string",
                "maxLength": 1000,
                "description": "For warm transfers: what the other number hears first.",
            },
        },
        "required": ["to", "mode"],
    },
)

BUILTIN_TOOLS = {spec.name: spec for spec in (END_CALL, ASK_OWNER, SEND_DTMF, TRANSFER_CALL)}


async def end_call_handler(call: ToolCall) -> ToolOutcome:
    """``end_call``: the run ends with an :class:`EndCall` (the pipeline says it and hangs up)."""
    goodbye = call.arguments.get("goodbye")
    text = " ".join(goodbye.split()) if isinstance(goodbye, str) else ""
    return ToolOutcome({"status": "ending the call"}, end=EndCall(text or None))


# ----------------------------------------------------------------------------- the box


@dataclass(slots=True)
class _Entry:
    spec: ToolSpec
    handler: ToolHandler
    validator: Draft202012Validator


class ToolBox:
    """One call's tools and the record of their use."""

    def __init__(self, call_id: str) -> None:
        self.call_id = call_id
        self._entries: dict[str, _Entry] = {}
        self._exchanges: list[Exchange] = []
        self._rounds = 0

    def register(self, spec: ToolSpec, handler: ToolHandler) -> None:
        Draft202012Validator.check_schema(spec.parameters)
        self._entries[spec.name] = _Entry(spec, handler, Draft202012Validator(spec.parameters))

    def names(self) -> list[str]:
        return list(self._entries)

    def spec(self, name: str) -> ToolSpec | None:
        entry = self._entries.get(name)
        return entry.spec if entry is not None else None

    def offered(self) -> list[dict[str, Any]]:
        """The schemas of the registered tools (unregistered ones are never offered)."""
        return [entry.spec.schema() for entry in self._entries.values()]

    def exchanges(self) -> list[Exchange]:
        return list(self._exchanges)

    def next_round(self) -> int:
        self._rounds += 1
        return self._rounds

    def waiting(self) -> bool:
        """Whether a tool's result is still to come (e.g. the owner has not answered)."""
        return any(ex.result is None for ex in self._exchanges)

    def resolve(self, tool_call_id: str, result: dict[str, Any]) -> bool:
        """Give a pending exchange its result; ``False`` if there is no such pending call."""
        for ex in self._exchanges:
            if ex.request.id == tool_call_id and ex.result is None:
                ex.result = result
                return True
        return False

    def held(self) -> HeldTools:
        """A view for a speculative run (see the module docstring)."""
        return HeldTools(self)

    async def run(self, request: ToolRequest, *, anchor: int, round: int, said: str) -> ToolOutcome:
        exchange = Exchange(anchor, round, said, request)
        return await self.execute(exchange, into=self._exchanges)

    async def execute(self, exchange: Exchange, *, into: list[Exchange]) -> ToolOutcome:
        """Check and run one call; record its exchange in ``into`` — even if the run that asked
        is cancelled meanwhile (the caller spoke again): the tool's effect happens, so its
        record must too."""
        return await asyncio.shield(self._execute(exchange, into))

    async def _execute(self, exchange: Exchange, into: list[Exchange]) -> ToolOutcome:
        request = exchange.request
        entry = self._entries.get(request.name)
        if entry is None:
            outcome = ToolOutcome({"error": f"there is no tool named {request.name[:60]!r}"})
        else:
            outcome = await self._invoke(entry, exchange)
        exchange.result = None if outcome.pending else outcome.result
        into.append(exchange)
        return outcome

    async def _invoke(self, entry: _Entry, exchange: Exchange) -> ToolOutcome:
        request = exchange.request
        try:
            args = json.loads(request.arguments or "{}")
        except ValueError:
            return ToolOutcome({"error": "the arguments are not valid JSON; call it again"})
        if not isinstance(args, dict):
            return ToolOutcome({"error": "the arguments must be a JSON object; call it again"})
        problems = sorted(entry.validator.iter_errors(args), key=lambda e: list(e.path))
        if problems:
            first = problems[0]
            where = ".".join(str(p) for p in first.path) or "arguments"
            return ToolOutcome({"error": f"{where}: {first.message}; call it again"})
        call = ToolCall(request.id, request.name, args, self.call_id, exchange.said)
        try:
            return await entry.handler(call)
        except Exception as exc:  # a broken handler must not end the conversation
            log.exception("call %s: tool %s failed", self.call_id, request.name)
            return ToolOutcome({"error": f"the tool failed ({type(exc).__name__}); go on without"})


@dataclass(slots=True)
class _Held:
    exchange: Exchange


class HeldTools:
    """A speculative run's view of a :class:`ToolBox`: nothing with side effects happens until
    :meth:`commit`; :meth:`discard` drops the run's tool calls as if they were never made."""

    def __init__(self, box: ToolBox) -> None:
        self.box = box
        self._own: list[Exchange] = []
        self._held: list[_Held] = []
        self._done = False

    def offered(self) -> list[dict[str, Any]]:
        return self.box.offered()

    def exchanges(self) -> list[Exchange]:
        return [*self.box.exchanges(), *self._own]

    def next_round(self) -> int:
        # rounds only order exchanges; a held run's rounds are taken from the box's counter
        return self.box.next_round()

    @property
    def holding(self) -> list[ToolRequest]:
        """The calls held back, in order."""
        return [h.exchange.request for h in self._held]

    async def run(self, request: ToolRequest, *, anchor: int, round: int, said: str) -> ToolOutcome:
        if self._done:
            raise RuntimeError("this held run was already committed or discarded")
        exchange = Exchange(anchor, round, said, request)
        spec = self.box.spec(request.name)
        if spec is not None and not spec.side_effects:
            return await self.box.execute(exchange, into=self._own)
        self._held.append(_Held(exchange))
        return ToolOutcome({"status": "held until this reply is confirmed"}, pending=True)

    async def commit(self) -> list[ToolOutcome]:
        """The run was confirmed: keep its exchanges and execute what it held, in order."""
        if self._done:
            raise RuntimeError("this held run was already committed or discarded")
        self._done = True
        self.box._exchanges.extend(self._own)
        outcomes = []
        for held in self._held:
            held.exchange.result = None
            outcomes.append(await self.box.execute(held.exchange, into=self.box._exchanges))
        return outcomes

    def discard(self) -> None:
        """The run was dropped (the caller said something else): nothing it asked for happens."""
        self._done = True
        self._own.clear()
        self._held.clear()
