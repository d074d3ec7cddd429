"""A local fake of an OpenAI-compatible ``POST /v1/chat/completions`` endpoint (streaming only).

- Bearer auth: a wrong or missing key gets 401 with OpenAI's error shape
  (``invalid_api_key``); the body is checked like the real one (``model``, ``messages`` with
  roles and string contents, ``stream: true``, ``tools`` of type function).
- Answers are planned per request with :class:`Plan`: text streamed as SSE
  ``chat.completion.chunk`` events a few characters at a time with small delays, an optional
  streamed tool call (name first, arguments in fragments, ``finish_reason: tool_calls``), then
  ``data: [DONE]``.
- ``hold_after``: stop after that many characters of text until ``release`` is set, so a test
  can observe that the client acts before the stream finishes (no timing involved).
- ``stall_after``: send that many characters, then go silent (keeping the connection open).
- ``status``: answer that HTTP status with an error body instead of a stream.
- ``GET /v1/models`` lists ``model`` (``{"object":"list","data":[{"id":…,"object":"model",…}]}``)
  with the same bearer check, as OpenAI's does.
- Tool calls: ``tool_call`` (one) or ``tool_calls`` (several, streamed by ``index``, each with an
  ``id``). Messages are checked like the real endpoint: an ``assistant`` message with
  ``tool_calls`` (``content`` string or null) must be followed by one ``tool`` message per call id
  (with ``tool_call_id`` and string ``content``), else 400.
- Structured outputs: a request without ``stream`` answers one ``chat.completion`` whose content
  is the next :class:`JsonPlan`'s text. ``response_format`` is checked: ``json_schema`` with a
  ``name`` (``^[a-zA-Z0-9_-]{1,64}$``) and a ``schema``; with ``strict: true`` the schema must fit
  the strict subset (every object ``additionalProperties: false`` with all properties required,
  an object at the root, no unsupported keywords), else 400 ``invalid_request_error`` as OpenAI.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

ROLES = {"system", "user", "assistant", "tool", "developer"}


@dataclass
class Plan:
    text: str = ""
    tool_call: tuple[str, dict[str, Any]] | None = None
    tool_calls: list[tuple[str, dict[str, Any] | str]] = field(default_factory=list)
    chunk_chars: int = 4
    delay: float = 0.002
    hold_after: int | None = None
    release: asyncio.Event = field(default_factory=asyncio.Event)
    stall_after: int | None = None
    status: int | None = None


@dataclass
class JsonPlan:
    """The content of one non-streamed (structured output) completion."""

    text: str = ""
    status: int | None = None
    refusal: str | None = None
    #: answer only once this is set (a test can kill the client while the request is open)
    release: asyncio.Event | None = None


@dataclass
class Served:
    body: dict[str, Any]
    headers: dict[str, str]
    chunks_sent: int = 0
    finished: bool = False
    disconnected: bool = False


def _error(status: int, message: str, kind: str, code: str | None) -> JSONResponse:
    return JSONResponse(
        {"error": {"message": message, "type": kind, "param": None, "code": code}},
        status_code=status,
    )


def _check_body(body: Any) -> str | None:
    if not isinstance(body, dict):
        return "body must be a JSON object"
    if not isinstance(body.get("model"), str) or not body["model"]:
        return "you must provide a model parameter"
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return "messages must be a non-empty array"
    expected: list[str] = []  # tool_call ids still owed a tool message
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or m.get("role") not in ROLES:
            return f"messages[{i}].role is invalid"
        role = m["role"]
        if expected and role != "tool":
            return (
                "An assistant message with 'tool_calls' must be followed by tool messages "
                f"responding to each 'tool_call_id'. The following tool_call_ids did not have "
                f"response messages: {', '.join(expected)}"
            )
        if role == "assistant" and m.get("tool_calls"):
            if m.get("content") is not None and not isinstance(m.get("content"), str):
                return f"messages[{i}].content must be a string or null"
            for j, call in enumerate(m["tool_calls"]):
                fn = call.get("function") if isinstance(call, dict) else None
                if (
                    not isinstance(call, dict)
                    or call.get("type") != "function"
                    or not isinstance(call.get("id"), str)
                    or not isinstance(fn, dict)
                    or not isinstance(fn.get("name"), str)
                    or not isinstance(fn.get("arguments"), str)
                ):
                    return f"messages[{i}].tool_calls[{j}] is invalid"
                expected.append(call["id"])
            continue
        if role == "tool":
            if m.get("tool_call_id") not in expected:
                return (
                    f"messages[{i}]: messages with role 'tool' must be a response to a preceeding "
                    "message with 'tool_calls'."
                )
            expected.remove(m["tool_call_id"])
        if not isinstance(m.get("content"), str):
            return f"messages[{i}].content must be a string"
    if expected:
        return f"tool_call_ids without a response: {', '.join(expected)}"
    if body.get("stream") is not True and "response_format" not in body:
        return "this fake streams, or answers structured outputs (response_format)"
    for i, tool in enumerate(body.get("tools") or []):
        fn = tool.get("function") if isinstance(tool, dict) else None
        if tool.get("type") != "function" or not isinstance(fn, dict) or "name" not in fn:
            return f"tools[{i}] must be a function tool with a name"
    if "response_format" in body:
        return _check_response_format(body["response_format"])
    return None


_STRICT_OK = {
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


def _strict_problem(schema: Any, path: str) -> str | None:
    if not isinstance(schema, dict):
        return f"In context={path}, schema must be an object"
    extra = set(schema) - _STRICT_OK
    if extra:
        return f"In context={path}, '{sorted(extra)[0]}' is not permitted"
    types = schema.get("type")
    types = types if isinstance(types, list) else [types]
    if "object" in types:
        if schema.get("additionalProperties") is not False:
            return (
                f"In context={path}, 'additionalProperties' is required to be supplied and to "
                "be false"
            )
        props = schema.get("properties", {})
        missing = set(props) - set(schema.get("required", []))
        if missing:
            return (
                f"In context={path}, 'required' is required to be supplied and to be an array "
                f"including every key in properties. Missing '{sorted(missing)[0]}'"
            )
        for name, sub in props.items():
            problem = _strict_problem(sub, f"{path}, 'properties', '{name}'")
            if problem:
                return problem
    if "items" in schema:
        problem = _strict_problem(schema["items"], f"{path}, 'items'")
        if problem:
            return problem
    for k, sub in enumerate(schema.get("anyOf", [])):
        problem = _strict_problem(sub, f"{path}, 'anyOf', {k}")
        if problem:
            return problem
    for name, sub in (schema.get("$defs") or {}).items():
        problem = _strict_problem(sub, f"{path}, '$defs', '{name}'")
        if problem:
            return problem
    return None


def _check_response_format(rf: Any) -> str | None:
    if not isinstance(rf, dict) or rf.get("type") not in ("json_schema", "json_object", "text"):
        return "response_format.type must be text, json_object or json_schema"
    if rf["type"] != "json_schema":
        return None
    js = rf.get("json_schema")
    if not isinstance(js, dict) or not isinstance(js.get("name"), str):
        return "response_format.json_schema.name is required"
    if not re.fullmatch(r"[a-zA-Z0-9_-]{1,64}", js["name"]):
        return "response_format.json_schema.name must match ^[a-zA-Z0-9_-]{1,64}$"
    schema = js.get("schema")
    if not isinstance(schema, dict):
        return "response_format.json_schema.schema must be an object"
    if js.get("strict") is True:
        if schema.get("type") != "object" or "anyOf" in schema:
            return f"Invalid schema for response_format '{js['name']}': schema must be an object"
        problem = _strict_problem(schema, "()")
        if problem:
            return f"Invalid schema for response_format '{js['name']}': {problem}."
    return None


class FakeChat:
    def __init__(self, *, api_key: str = "sk-test-chat", model: str = "fake-model") -> None:
        self.api_key = api_key
        self.model = model
        self.plans: list[Plan] = []
        self.rule: Callable[[list[dict[str, Any]]], Plan | None] | None = None
        self.json_plans: list[JsonPlan] = []
        self.served: list[Served] = []
        self.rejected: list[str] = []  # 400 details (a test can show why a request failed)
        self.calls_made = 0

    def plan(self, plan: Plan) -> Plan:
        self.plans.append(plan)
        return plan

    def answer_from(self, rule: Callable[[list[dict[str, Any]]], Plan | None]) -> None:
        """Answer streamed requests from their content: ``rule(messages)`` (a plan, or ``None``
        for the next queued one). A pure function of the conversation answers a speculative
        run and the real one alike, as a model would; queued plans are used up by either."""
        self.rule = rule

    def plan_json(self, plan: JsonPlan | str) -> JsonPlan:
        item = plan if isinstance(plan, JsonPlan) else JsonPlan(plan)
        self.json_plans.append(item)
        return item

    @property
    def streamed(self) -> list[Served]:
        return [s for s in self.served if s.body.get("stream") is True]

    @property
    def structured(self) -> list[Served]:
        return [s for s in self.served if s.body.get("stream") is not True]

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/v1/chat/completions", self._complete, methods=["POST"]),
                Route("/v1/models", self._models, methods=["GET"]),
            ]
        )

    async def _models(self, request: Request) -> Response:
        if request.headers.get("authorization", "") != f"Bearer {self.api_key}":
            return _error(
                401, "Incorrect API key provided.", "invalid_request_error", "invalid_api_key"
            )
        model = {"id": self.model, "object": "model", "created": 1_700_000_000, "owned_by": "fake"}
        return JSONResponse({"object": "list", "data": [model]})

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> bytes:
        doc = {
            "id": "chatcmpl-fake",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": self.model,
            "system_fingerprint": None,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }
        return f"data: {json.dumps(doc)}\n\n".encode()

    async def _complete(self, request: Request) -> Response:
        auth = request.headers.get("authorization", "")
        if auth != f"Bearer {self.api_key}":
            return _error(
                401, "Incorrect API key provided.", "invalid_request_error", "invalid_api_key"
            )
        try:
            body = json.loads(await request.body())
        except ValueError:
            return _error(400, "could not parse the JSON body", "invalid_request_error", None)
        problem = _check_body(body)
        if problem:
            self.rejected.append(problem)
            return _error(400, problem, "invalid_request_error", None)
        served = Served(body=body, headers=dict(request.headers))
        self.served.append(served)
        if body.get("stream") is not True:
            return await self._completion(served)
        ruled = None if self.rule is None else self.rule(list(body.get("messages") or []))
        if ruled is not None:
            plan = ruled
        else:
            plan = self.plans.pop(0) if self.plans else Plan(text="Okay.")
        if plan.status is not None:
            return _error(plan.status, "The server had an error.", "server_error", None)
        return StreamingResponse(
            self._stream(plan, served), media_type="text/event-stream; charset=utf-8"
        )

    async def _completion(self, served: Served) -> Response:
        jp = self.json_plans.pop(0) if self.json_plans else JsonPlan("{}")
        if jp.release is not None:
            await jp.release.wait()
        if jp.status is not None:
            return _error(jp.status, "The server had an error.", "server_error", None)
        served.finished = True
        message: dict[str, Any] = {"role": "assistant", "content": jp.text, "refusal": None}
        if jp.refusal is not None:
            message = {"role": "assistant", "content": None, "refusal": jp.refusal}
        return JSONResponse(
            {
                "id": "chatcmpl-fake",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": self.model,
                "choices": [
                    {"index": 0, "message": message, "logprobs": None, "finish_reason": "stop"}
                ],
                "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
            }
        )

    async def _stream(self, plan: Plan, served: Served) -> AsyncIterator[bytes]:
        try:
            yield self._chunk({"role": "assistant", "content": ""})
            sent = 0
            text = plan.text
            while sent < len(text):
                if plan.stall_after is not None and sent >= plan.stall_after:
                    await asyncio.Event().wait()  # silent until the client goes away
                if plan.hold_after is not None and sent >= plan.hold_after:
                    await plan.release.wait()
                    plan.hold_after = None
                step = plan.chunk_chars
                if plan.hold_after is not None:
                    step = min(step, plan.hold_after - sent)
                if plan.stall_after is not None:
                    step = min(step, max(plan.stall_after - sent, 1))
                piece = text[sent : sent + step]
                sent += len(piece)
                served.chunks_sent += 1
                yield self._chunk({"content": piece})
                await asyncio.sleep(plan.delay)
            calls = list(plan.tool_calls)
            if plan.tool_call is not None:
                calls.insert(0, plan.tool_call)
            if calls:
                self.calls_made += 1
                for index, (name, args) in enumerate(calls):
                    yield self._chunk(
                        {
                            "tool_calls": [
                                {
                                    "index": index,
                                    "id": f"call_fake{self.calls_made}_{index}",
                                    "type": "function",
                                    "function": {"name": name, "arguments": ""},
                                }
                            ]
                        }
                    )
                    encoded = args if isinstance(args, str) else json.dumps(args)
                    for i in range(0, len(encoded), 5):
                        yield self._chunk(
                            {
                                "tool_calls": [
                                    {"index": index, "function": {"arguments": encoded[i : i + 5]}}
                                ]
                            }
                        )
                        await asyncio.sleep(plan.delay)
                yield self._chunk({}, finish="tool_calls")
            else:
                yield self._chunk({}, finish="stop")
            yield b"data: [DONE]\n\n"
            served.finished = True
        except asyncio.CancelledError:
            served.disconnected = True
            raise
