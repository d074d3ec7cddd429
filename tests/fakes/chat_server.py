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
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
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
    chunk_chars: int = 4
    delay: float = 0.002
    hold_after: int | None = None
    release: asyncio.Event = field(default_factory=asyncio.Event)
    stall_after: int | None = None
    status: int | None = None


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
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or m.get("role") not in ROLES:
            return f"messages[{i}].role is invalid"
        if not isinstance(m.get("content"), str):
            return f"messages[{i}].content must be a string"
    if body.get("stream") is not True:
        return "this fake only streams: set stream to true"
    for i, tool in enumerate(body.get("tools") or []):
        fn = tool.get("function") if isinstance(tool, dict) else None
        if tool.get("type") != "function" or not isinstance(fn, dict) or "name" not in fn:
            return f"tools[{i}] must be a function tool with a name"
    return None


class FakeChat:
    def __init__(self, *, api_key: str = "sk-test-chat", model: str = "fake-model") -> None:
        self.api_key = api_key
        self.model = model
        self.plans: list[Plan] = []
        self.served: list[Served] = []

    def plan(self, plan: Plan) -> Plan:
        self.plans.append(plan)
        return plan

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
            return _error(400, problem, "invalid_request_error", None)
        served = Served(body=body, headers=dict(request.headers))
        self.served.append(served)
        plan = self.plans.pop(0) if self.plans else Plan(text="Okay.")
        if plan.status is not None:
            return _error(plan.status, "The server had an error.", "server_error", None)
        return StreamingResponse(
            self._stream(plan, served), media_type="text/event-stream; charset=utf-8"
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
            if plan.tool_call is not None:
                name, args = plan.tool_call
                yield self._chunk(
                    {
                        "tool_calls": [
                            {
                                "index": 0,
                                "id": "call_fake1",
                                "type": "function",
                                "function": {"name": name, "arguments": ""},
                            }
                        ]
                    }
                )
                encoded = json.dumps(args)
                for i in range(0, len(encoded), 5):
                    yield self._chunk(
                        {
                            "tool_calls": [
                                {"index": 0, "function": {"arguments": encoded[i : i + 5]}}
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
