"""The model behind a task call: any OpenAI-compatible chat completions endpoint.

Two requests are used:

* :meth:`ChatModel.stream`: ``POST {base_url}/chat/completions`` with ``stream: true`` and the
  call's tools; text deltas come out as they arrive (speech starts on the first sentence) and
  tool calls (their streamed ``id``/``name``/``arguments`` fragments joined per ``index``) come
  out when the stream ends.
* :meth:`ChatModel.complete_json`: one non-streamed request with ``response_format`` ``json_schema``
  (``strict`` when the schema fits the strict subset), for a finished call's summary and outcome.

Failures raise :class:`ModelError` carrying only the HTTP status and the provider's error code:
provider error messages can quote the key, so they are never logged or passed on.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass
from typing import Any, Protocol

import httpx

from voicecall.errors import VoicecallError

log = logging.getLogger("voicecall.chat")


class ModelError(VoicecallError):
    """The model request failed (status/code only; never the provider's message)."""

    http_status = 502


@dataclass(frozen=True, slots=True)
class TextDelta:
    text: str


@dataclass(frozen=True, slots=True)
class ToolRequest:
    """A tool call the model made: ``arguments`` is its raw JSON text."""

    id: str
    name: str
    arguments: str


ModelEvent = TextDelta | ToolRequest


class ChatModel(Protocol):
    """What a task call's agent and its outcome need from a model."""

    #: how the model is shown to people ("gpt-4o-mini at https://api.openai.com/v1")
    label: str

    def stream(
        self, messages: list[dict[str, Any]], tools: list[dict[str, Any]]
    ) -> AsyncGenerator[ModelEvent, None]: ...

    async def complete_json(
        self, messages: list[dict[str, Any]], *, name: str, schema: dict[str, Any], strict: bool
    ) -> str: ...


class OpenAIChat:
    """An OpenAI-compatible ``/chat/completions`` endpoint (OpenAI, Ollama, vLLM, llama.cpp …).

    ``timeout_s`` bounds connecting and each wait for more streamed bytes; ``max_reply_s`` a
    whole streamed reply; ``json_timeout_s`` the structured-output request.
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str | None,
        http: httpx.AsyncClient,
        *,
        timeout_s: float = 10.0,
        max_reply_s: float = 60.0,
        json_timeout_s: float = 60.0,
        max_tokens: int | None = 300,
        temperature: float | None = None,
    ) -> None:
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model = model
        self._api_key = api_key
        self._http = http
        self.timeout_s = timeout_s
        self.max_reply_s = max_reply_s
        self.json_timeout_s = json_timeout_s
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.label = f"{model} at {base_url.rstrip('/')}"

    def __repr__(self) -> str:  # never the key
        return f"OpenAIChat(url={self.url!r}, model={self.model!r})"

    def _headers(self, *, stream: bool) -> dict[str, str]:
        headers = {"accept": "text/event-stream" if stream else "application/json"}
        if self._api_key:
            headers["authorization"] = f"Bearer {self._api_key}"
        return headers

    async def stream(
        self, messages: list[dict[str, Any]], tools: list[dict[str, Any]]
    ) -> AsyncGenerator[ModelEvent, None]:
        body: dict[str, Any] = {"model": self.model, "messages": messages, "stream": True}
        if tools:
            body["tools"] = tools
        if self.max_tokens is not None:
            body["max_tokens"] = self.max_tokens
        if self.temperature is not None:
            body["temperature"] = self.temperature
        calls: dict[int, dict[str, str]] = {}
        deadline = asyncio.get_running_loop().time() + self.max_reply_s
        try:
            async with self._http.stream(
                "POST",
                self.url,
                json=body,
                headers=self._headers(stream=True),
                timeout=httpx.Timeout(self.timeout_s),
            ) as response:
                if response.status_code >= 400:
                    await response.aread()
                    raise ModelError(
                        f"{self.url} answered {response.status_code} ({error_code(response)})"
                    )
                async for data in sse_data(response):
                    if data == "[DONE]":
                        break
                    for text in fold_chunk(data, calls):
                        yield TextDelta(text)
                    if asyncio.get_running_loop().time() > deadline:
                        log.error("task model: reply exceeded %.0f s; cut", self.max_reply_s)
                        break
        except httpx.TimeoutException:
            raise ModelError(f"{self.url} timed out after {self.timeout_s:.1f} s") from None
        except httpx.HTTPError as exc:
            raise ModelError(f"{self.url} failed ({type(exc).__name__})") from None
        for index in sorted(calls):
            slot = calls[index]
            if slot["name"]:
                yield ToolRequest(slot["id"] or f"call_{index}", slot["name"], slot["args"])

    async def complete_json(
        self, messages: list[dict[str, Any]], *, name: str, schema: dict[str, Any], strict: bool
    ) -> str:
        body: dict[str, Any] = {
            "model": self.model,
            "messages": messages,
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": name, "schema": schema, "strict": strict},
            },
        }
        if self.temperature is not None:
            body["temperature"] = self.temperature
        try:
            response = await self._http.post(
                self.url,
                json=body,
                headers=self._headers(stream=False),
                timeout=httpx.Timeout(self.json_timeout_s, connect=self.timeout_s),
            )
        except httpx.TimeoutException:
            raise ModelError(f"{self.url} timed out after {self.json_timeout_s:.0f} s") from None
        except httpx.HTTPError as exc:
            raise ModelError(f"{self.url} failed ({type(exc).__name__})") from None
        if response.status_code >= 400:
            raise ModelError(f"{self.url} answered {response.status_code} ({error_code(response)})")
        try:
            message = response.json()["choices"][0]["message"]
        except (ValueError, KeyError, IndexError, TypeError):
            raise ModelError(
                f"{self.url} answered something that is not a chat completion"
            ) from None
        if isinstance(message, dict) and message.get("refusal"):
            raise ModelError("the model refused to write the outcome")
        content = message.get("content") if isinstance(message, dict) else None
        if not isinstance(content, str):
            raise ModelError(f"{self.url} answered a completion without text content")
        return content


async def sse_data(response: httpx.Response) -> AsyncIterator[str]:
    """The ``data:`` payloads of a server-sent event stream."""
    data: list[str] = []
    async for line in response.aiter_lines():
        if line.startswith("data:"):
            data.append(line[5:].removeprefix(" "))
        elif line == "" and data:
            yield "\n".join(data)
            data = []
    if data:
        yield "\n".join(data)


def fold_chunk(data: str, calls: dict[int, dict[str, str]]) -> list[str]:
    """One streamed ``chat.completion.chunk``: its text deltas; tool-call fragments are joined
    into ``calls`` by ``index`` (id and name arrive once, arguments in pieces)."""
    try:
        chunk = json.loads(data)
    except ValueError:
        log.warning("task model: skipped a chunk that is not JSON")
        return []
    if not isinstance(chunk, dict):
        return []
    if isinstance(chunk.get("error"), dict):
        raise ModelError(f"stream error ({chunk['error'].get('code') or 'no error code'})")
    out: list[str] = []
    for choice in chunk.get("choices") or []:
        delta = choice.get("delta") if isinstance(choice, dict) else None
        if not isinstance(delta, dict):
            continue
        content = delta.get("content")
        if isinstance(content, str) and content:
            out.append(content)
        for call in delta.get("tool_calls") or []:
            if not isinstance(call, dict):
                continue
            index = call.get("index", 0)
            slot = calls.setdefault(
                index if isinstance(index, int) else 0, {"id": "", "name": "", "args": ""}
            )
            if isinstance(call.get("id"), str) and not slot["id"]:
                slot["id"] = call["id"]
            fn = call.get("function") or {}
            if isinstance(fn, dict):
                if isinstance(fn.get("name"), str):
                    slot["name"] += fn["name"]
                if isinstance(fn.get("arguments"), str):
                    slot["args"] += fn["arguments"]
    return out


def error_code(response: httpx.Response) -> str:
    """The provider's error code/type only: error messages can quote the key."""
    try:
        err = response.json().get("error") or {}
        return str(err.get("code") or err.get("type") or "no error code")[:60]
    except (ValueError, AttributeError):
        return "no error body"
