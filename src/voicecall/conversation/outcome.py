"""A finished task call's summary and outcome.

One chat-completions request over the transcript asks for ``{"summary": …, "outcome": …}`` with
``response_format`` ``json_schema`` — ``strict`` when the schema fits the strict subset of
structured outputs (:func:`fits_strict`), else a plain JSON-schema request. The outcome is then
validated with ``jsonschema`` against the call's ``outcome_schema`` (Draft 2020-12): an invalid
one is asked for once more, with what was wrong; after that ``outcome`` stays ``None`` and
``outcome_error`` says why. An outcome that fails its schema is never stored.

A call that never connected (busy, no answer, failed) gets a plain summary and no model request.
"""

from __future__ import annotations

import asyncio
import copy
import json
import logging
import time
from collections.abc import Sequence
from typing import Any

from jsonschema import Draft202012Validator

from voicecall.calls.extras import CallResult, OwnerQuestion, QuestionStatus
from voicecall.calls.model import CallRecord, EndReason, Speaker, TranscriptEntry
from voicecall.conversation.chat import ChatModel, ModelError
from voicecall.conversation.task import TaskSpec

log = logging.getLogger("voicecall.outcome")

SCHEMA_NAME = "call_outcome"
MAX_SUMMARY_CHARS = 2000
ATTEMPTS = 2

#: keywords structured outputs accept in strict mode (anything else: a non-strict request)
STRICT_KEYWORDS = frozenset(
    {
        "type",
        "properties",
        "required",
        "additionalProperties",
        "items",
        "enum",
        "const",
        "anyOf",
        "description",
        "title",
        "$defs",
        "$ref",
        "pattern",
        "format",
        "minimum",
        "maximum",
        "exclusiveMinimum",
        "exclusiveMaximum",
        "multipleOf",
        "minItems",
        "maxItems",
    }
)

INSTRUCTIONS = (
    "You review a phone call that an AI assistant made for its owner, from its transcript. "
    "Answer with JSON: `summary` is 2 to 4 plain sentences saying what happened on the call and "
    "how it ended; `outcome` is the result of the task, exactly in the given schema. Use only "
    "what the transcript and the owner's answers show: never guess. Where something did not "
    "happen or is unknown, use what the schema allows for that (false, null, an empty string)."
)


# ----------------------------------------------------------------------------- schema


def fits_strict(schema: Any, *, root: bool = True) -> bool:
    """Whether ``schema`` fits the strict subset of structured outputs: only supported keywords,
    every object closed (``additionalProperties: false``) with all its properties required, an
    object at the root (not ``anyOf``)."""
    if not isinstance(schema, dict):
        return False
    if root and (schema.get("type") != "object" or "anyOf" in schema):
        return False
    if set(schema) - STRICT_KEYWORDS:
        return False
    types = schema.get("type")
    type_list = types if isinstance(types, list) else [types]
    if "object" in type_list or "properties" in schema:
        props = schema.get("properties", {})
        if not isinstance(props, dict) or schema.get("additionalProperties") is not False:
            return False
        if set(schema.get("required", [])) != set(props):
            return False
        if not all(fits_strict(p, root=False) for p in props.values()):
            return False
    items = schema.get("items")
    if items is not None and not fits_strict(items, root=False):
        return False
    for option in schema.get("anyOf", []):
        if not fits_strict(option, root=False):
            return False
    defs = schema.get("$defs", {})
    return isinstance(defs, dict) and all(fits_strict(d, root=False) for d in defs.values())


def _rebase_refs(node: Any) -> Any:
    """References of the outcome schema, once it sits under ``properties.outcome``."""
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str) and value.startswith("#"):
                pointer = value[1:]
                out[key] = (
                    value if pointer.startswith("/$defs/") else f"#/properties/outcome{pointer}"
                )
            else:
                out[key] = _rebase_refs(value)
        return out
    if isinstance(node, list):
        return [_rebase_refs(v) for v in node]
    return node


def wrapped_schema(outcome_schema: dict[str, Any]) -> dict[str, Any]:
    """The schema of the one answer asked for: ``{"summary": str, "outcome": <outcome_schema>}``.
    The outcome's ``$defs`` move to the root so ``#/$defs/…`` references still resolve."""
    inner = copy.deepcopy(outcome_schema)
    inner.pop("$schema", None)
    inner.pop("$id", None)
    defs = inner.pop("$defs", None)
    inner = _rebase_refs(inner)
    wrapper: dict[str, Any] = {
        "type": "object",
        "properties": {
            "summary": {
                "type": "string",
                "description": "2 to 4 sentences: what happened on the call and how it ended.",
            },
            "outcome": inner,
        },
        "required": ["summary", "outcome"],
        "additionalProperties": False,
    }
    if defs:
        wrapper["$defs"] = _rebase_refs(defs)
    return wrapper


def check_answer(text: str, validator: Draft202012Validator) -> tuple[str | None, Any, str | None]:
    """``(summary, outcome, problem)`` of the model's answer; ``problem`` is ``None`` only when
    the outcome is valid (a summary alone may still be usable)."""
    try:
        doc = json.loads(text)
    except ValueError:
        return None, None, "the answer is not JSON"
    if not isinstance(doc, dict):
        return None, None, "the answer is not a JSON object with summary and outcome"
    raw = doc.get("summary")
    summary = " ".join(raw.split())[:MAX_SUMMARY_CHARS] if isinstance(raw, str) else None
    if "outcome" not in doc:
        return summary or None, None, "the answer has no outcome"
    outcome = doc["outcome"]
    errors = sorted(validator.iter_errors(outcome), key=lambda e: list(e.path))
    if errors:
        first = errors[0]
        where = "outcome" + "".join(f"[{p!r}]" for p in first.path)
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        return summary or None, None, f"{where}: {first.message[:300]}{more}"
    return summary or None, outcome, None


# ----------------------------------------------------------------------------- summaries


_NOT_CONNECTED = {
    EndReason.BUSY: "The line was busy; nobody answered the call.",
    EndReason.NO_ANSWER: "Nobody answered the call.",
    EndReason.FAILED: "The call could not be placed.",
    EndReason.CANCELED: "The call was cancelled before it was answered.",
    EndReason.REJECTED: "The call was refused.",
    EndReason.VOICEMAIL: "A voicemail answered the call; nothing was agreed.",
}


def plain_summary(record: CallRecord) -> str:
    """The summary of a call that never connected (no model request)."""
    reason = record.end_reason or EndReason.ERROR
    return _NOT_CONNECTED.get(reason, f"The call ended before anyone answered it ({reason.value}).")


def fallback_summary(record: CallRecord, lines: Sequence[TranscriptEntry]) -> str:
    """A plain summary of a connected call when the model could not write one."""
    seconds = 0.0
    if record.ended_at is not None and record.answered_at is not None:
        seconds = max(0.0, record.ended_at - record.answered_at)
    said = sum(1 for ln in lines if ln.speaker is Speaker.USER)
    reason = record.end_reason.value if record.end_reason else record.state.value
    return (
        f"The call was answered and lasted {seconds:.0f} seconds; the other person spoke "
        f"{said} time{'s' if said != 1 else ''}. It ended: {reason}."
    )


def _transcript_text(lines: Sequence[TranscriptEntry]) -> str:
    who = {Speaker.BOT: "assistant", Speaker.USER: "other person"}
    return "\n".join(f"{who[ln.speaker]}: {ln.text}" for ln in lines) or "(nothing was said)"


def review_messages(
    record: CallRecord,
    spec: TaskSpec,
    lines: Sequence[TranscriptEntry],
    questions: Sequence[OwnerQuestion],
) -> list[dict[str, Any]]:
    asked = []
    for q in questions:
        if q.status is QuestionStatus.ANSWERED:
            asked.append(f"- asked: {q.question}\n  owner answered: {q.answer}")
        else:
            asked.append(f"- asked: {q.question}\n  owner: no answer ({q.status.value})")
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(record.created_at or time.time()))
    ended = record.end_reason.value if record.end_reason else record.state.value
    duration = ""
    if record.ended_at is not None and record.answered_at is not None:
        duration = f", after {max(0.0, record.ended_at - record.answered_at):.0f} seconds"
    parts = [
        f"The task:\n{spec.task}",
        f"Facts the assistant had:\n{spec.context or '(none)'}",
        f"The call: placed {when} to {record.to_number}; it ended ({ended}){duration}.",
        "Questions to the owner during the call:\n" + ("\n".join(asked) if asked else "(none)"),
        f"Transcript:\n{_transcript_text(lines)}",
    ]
    return [
        {"role": "system", "content": INSTRUCTIONS},
        {"role": "user", "content": "\n\n".join(parts)},
    ]


# ----------------------------------------------------------------------------- the decision


async def decide(
    model: ChatModel | None,
    *,
    record: CallRecord,
    spec: TaskSpec,
    lines: Sequence[TranscriptEntry],
    questions: Sequence[OwnerQuestion] = (),
    now: float,
    timeout_s: float = 60.0,
) -> CallResult:
    """The call's final :class:`CallResult` (never an outcome that fails ``outcome_schema``)."""
    call_id = record.call_id
    if record.answered_at is None:
        reason = (record.end_reason or EndReason.ERROR).value
        return CallResult(
            call_id, plain_summary(record), None, f"the call never connected ({reason})", now
        )
    if model is None:
        return CallResult(
            call_id,
            fallback_summary(record, lines),
            None,
            "no model is configured to write the outcome",
            now,
        )
    schema = wrapped_schema(spec.outcome_schema)
    strict = fits_strict(schema)
    validator = Draft202012Validator(spec.outcome_schema)
    messages = review_messages(record, spec, lines, questions)
    summary: str | None = None
    problem = "no answer"
    for attempt in range(1, ATTEMPTS + 1):
        try:
            text = await asyncio.wait_for(
                model.complete_json(messages, name=SCHEMA_NAME, schema=schema, strict=strict),
                timeout_s,
            )
        except (ModelError, TimeoutError) as exc:
            problem = f"the model request failed ({exc or 'timed out'})"
            log.warning("call %s: outcome attempt %d: %s", call_id, attempt, problem)
            continue
        said, outcome, problem_now = check_answer(text, validator)
        summary = said or summary
        if problem_now is None:
            return CallResult(
                call_id, summary or fallback_summary(record, lines), outcome, None, now
            )
        problem = problem_now
        log.warning("call %s: outcome attempt %d invalid: %s", call_id, attempt, problem)
        messages = [
            *messages,
            {"role": "assistant", "content": text},
            {
                "role": "user",
                "content": f"That answer is not valid: {problem}. Answer again with JSON that "
                "matches the schema exactly.",
            },
        ]
    return CallResult(
        call_id,
        summary or fallback_summary(record, lines),
        None,
        f"no valid outcome after {ATTEMPTS} attempts: {problem}",
        now,
    )
