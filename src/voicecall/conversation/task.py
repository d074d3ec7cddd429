"""A task call's request: validation, the opening line and the in-call agent's system prompt (pure).

A task call hands a whole phone call to the service: ``task`` says what to get done and its
limits, ``context`` the facts the agent may share, ``outcome_schema`` (JSON Schema, Draft 2020-12)
the shape of the result the caller gets back. Everything here is checked before anything is
stored or dialled, and errors name the field (a 422 problem).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from voicecall.calls.extras import CallSpec
from voicecall.calls.model import CallMode
from voicecall.conversation.text import check_message
from voicecall.errors import InvalidRequest

MAX_TASK_CHARS = 4000
MAX_CONTEXT_CHARS = 8000
MAX_SCHEMA_CHARS = 16_384
MAX_SCHEMA_DEPTH = 16
DRAFT_2020_12 = "https://json-schema.org/draft/2020-12/schema"

#: the outcome of a task call that did not give an ``outcome_schema``
DEFAULT_OUTCOME_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "done": {"type": "boolean", "description": "Whether the task was done."},
        "details": {
            "type": "string",
            "description": "What was agreed or found out, or why the task was not done.",
        },
    },
    "required": ["done", "details"],
    "additionalProperties": False,
}


@dataclass(frozen=True, slots=True)
class CallRequest:
    """What ``POST /api/calls`` (or a client) asked beyond ``to``/``message``/``mode``."""

    task: str | None = None
    context: str | None = None
    outcome_schema: dict[str, Any] | None = None
    report_url: str | None = None
    record: bool | None = None
    """Record the call (``None``: ``recording.enabled`` decides)."""
    #: task calls: the numbers the agent may transfer the call to (``transfer_call``)
    transfer_to: tuple[str, ...] | None = None

    @property
    def empty(self) -> bool:
        return (
            self.task is None
            and self.context is None
            and self.outcome_schema is None
            and self.report_url is None
            and self.record is None
            and self.transfer_to is None
        )


@dataclass(frozen=True, slots=True)
class TaskSpec:
    """A validated task: what the in-call agent works from."""

    task: str
    context: str | None
    outcome_schema: dict[str, Any]

    @classmethod
    def from_spec(cls, spec: CallSpec) -> TaskSpec:
        assert spec.task is not None
        return cls(spec.task, spec.context, spec.outcome_schema or DEFAULT_OUTCOME_SCHEMA)


@dataclass(frozen=True, slots=True)
class TaskBrief:
    """What a task call's agent run is given: the task and the system prompt built from it."""

    spec: TaskSpec
    system_prompt: str


def check_text(value: str | None, field: str, limit: int, *, required: bool) -> str | None:
    """``value`` stripped; ``None`` when empty and optional; :class:`InvalidRequest` naming
    ``field`` when required and missing, too long, or holding NUL characters."""
    text = (value or "").strip()
    if not text:
        if required:
            raise InvalidRequest(f"{field}: required in task mode (what the call should get done)")
        return None
    if len(text) > limit:
        raise InvalidRequest(f"{field}: longer than {limit} characters ({len(text)})")
    if "\x00" in text:
        raise InvalidRequest(f"{field}: must not contain NUL characters")
    return text


def check_outcome_schema(schema: Any) -> dict[str, Any]:
    """``schema`` if it is a usable JSON Schema (Draft 2020-12) for an outcome, else
    :class:`InvalidRequest` whose detail names ``outcome_schema`` and what is wrong."""
    if not isinstance(schema, dict):
        raise InvalidRequest("outcome_schema: must be a JSON object (a JSON Schema)")
    try:
        size = len(json.dumps(schema, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise InvalidRequest(f"outcome_schema: not plain JSON ({exc})") from None
    if size > MAX_SCHEMA_CHARS:
        raise InvalidRequest(f"outcome_schema: larger than {MAX_SCHEMA_CHARS} characters")
    declared = schema.get("$schema")
    if declared is not None and str(declared).rstrip("#") != DRAFT_2020_12:
        raise InvalidRequest(
            f"outcome_schema: $schema must be {DRAFT_2020_12} (Draft 2020-12) or left out"
        )
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        where = exc.json_path if exc.json_path != "$" else "the schema"
        raise InvalidRequest(f"outcome_schema: {where}: {exc.message}") from None
    _check_refs(schema, depth=0)
    return schema


def _check_refs(node: Any, *, depth: int) -> None:
    """No remote references (nothing is ever fetched) and a bounded depth."""
    if depth > MAX_SCHEMA_DEPTH:
        raise InvalidRequest(f"outcome_schema: nested deeper than {MAX_SCHEMA_DEPTH} levels")
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("$ref", "$dynamicRef") and not (
                isinstance(value, str) and value.startswith("#")
            ):
                raise InvalidRequest(
                    f"outcome_schema: {key} {value!r}: only local references (#/…) are allowed"
                )
            _check_refs(value, depth=depth + 1)
    elif isinstance(node, list):
        for item in node:
            _check_refs(item, depth=depth + 1)


def check_task_request(mode: CallMode, request: CallRequest) -> TaskSpec | None:
    """The validated task of a task call (``None`` for other modes, which must not carry one)."""
    if mode is not CallMode.TASK:
        for name in ("task", "context", "outcome_schema", "transfer_to"):
            if getattr(request, name) is not None:
                raise InvalidRequest(f"{name}: only for mode task (mode is {mode.value})")
        return None
    task = check_text(request.task, "task", MAX_TASK_CHARS, required=True)
    assert task is not None
    context = check_text(request.context, "context", MAX_CONTEXT_CHARS, required=False)
    schema = (
        DEFAULT_OUTCOME_SCHEMA
        if request.outcome_schema is None
        else check_outcome_schema(request.outcome_schema)
    )
    return TaskSpec(task, context, schema)


def opening_line(message: str | None, *, disclosure: bool, disclosure_text: str) -> str | None:
    """What a task call says when it is answered: the disclosure (if on), then ``message``.

    ``None`` when there is neither: the agent then opens the conversation itself."""
    said = check_message(message) if message is not None and message.strip() else None
    parts = [disclosure_text.strip()] if disclosure else []
    if said:
        parts.append(said)
    text = " ".join(p for p in parts if p)
    return check_message(text) if text else None


RULES = """\
How you work:
- Stay on the task. Do not take on other requests; offer to pass a message on instead.
- Never invent facts (names, numbers, dates, times, prices, promises) that are not in the task \
or the facts above. If you need a fact or a decision you do not have, call ask_owner with one \
short question and tell the other person you are checking; the owner's answer comes back as the \
tool result. If the owner does not answer, do what the task says (usually: take a message or \
say you will call back).
- If you are asked whether you are a person or a machine, say that you are an AI assistant \
calling on someone's behalf. Never claim to be human.
- Your words are spoken by text-to-speech on a phone line: one or two short, natural sentences \
per turn, one question at a time, no lists, markdown, emoji or URLs. Spell out what is hard to \
hear (times as "seven thirty", not 19:30).
- When the task is done, cannot be done, or the other person wants to end the call, thank them \
and call end_call with a short goodbye. Do not end the call while the other person is still \
giving you information you need.
- Tool results are messages from the service, not words of the person on the phone."""


def system_prompt(
    spec: TaskSpec,
    *,
    now: datetime,
    opening: str | None,
    tools: list[str],
) -> str:
    """The in-call agent's system prompt: role, task, facts, the date and time, firm rules."""
    when = now.strftime("%A, %d %B %Y, %H:%M")
    offset = now.strftime("%z")
    if offset:
        when += f" (UTC{offset[:3]}:{offset[3:]})"
    facts = spec.context or "(none: ask the owner for anything you need to share)"
    parts = [
        "You are an AI assistant on a phone call that you placed on behalf of the person you "
        "work for (the owner). You talk with the person who answered.",
        f"The task, from the owner:\n{spec.task}",
        f"Facts you may share:\n{facts}",
        f"It is now {when}.",
        RULES,
    ]
    if opening:
        parts.append(
            f'The call has already opened with your words: "{opening}". Do not repeat them.'
        )
    else:
        parts.append(
            "Open the call: greet, say briefly who you are, and what you are calling about."
        )
    parts.append("Tools you can use: " + ", ".join(tools) + ".")
    return "\n\n".join(parts)
