"""The chat responder: any OpenAI-compatible ``POST {base_url}/chat/completions`` streaming.

Works with OpenAI, Azure-compatible gateways, Ollama, vLLM, llama.cpp … The model gets an
``end_call`` tool to end the call politely. Sentences are yielded as they complete; a timeout or
an HTTP error yields the fallback line (logged with the provider's error code only: messages can
quote the key).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx

from voicecall.agent.reply import (
    FALLBACK_LINE,
    ConversationContext,
    EndCall,
    ResponderOutput,
    Sentence,
)
from voicecall.agent.sentences import SentenceSplitter, squash_spaces
from voicecall.conversation.chat import sse_data

log = logging.getLogger("voicecall.responder")

END_CALL_TOOL: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "end_call",
        "description": (
            "Hang up the phone call. Use it when the conversation is complete, the caller "
            "says goodbye or asks to end the call. Say goodbye in `goodbye`."
        ),
        "parameters": {
            "type": "object",
            "properties": {
                "goodbye": {
                    "type": "string",
                    "description": "A short closing sentence spoken before hanging up.",
                }
            },
            "required": [],
        },
    },
}


class ChatResponder:
    """Replies with an OpenAI-compatible chat completions endpoint, streaming.

    ``base_url`` is the API root including its version (``https://api.openai.com/v1``,
    ``http://127.0.0.1:11434/v1`` for Ollama); requests go to ``{base_url}/chat/completions``.
    ``timeout_s`` bounds connecting and each wait for the next streamed bytes (a stalled
    stream ends the reply); ``max_reply_s`` bounds the whole reply.
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str | None,
        system_prompt: str,
        timeout_s: float,
        http: httpx.AsyncClient,
        *,
        max_reply_s: float = 60.0,
        max_tokens: int | None = 300,
        temperature: float | None = None,
        fallback_line: str = FALLBACK_LINE,
    ) -> None:
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model = model
        self._api_key = api_key
        self.system_prompt = system_prompt
        self.timeout_s = timeout_s
        self.max_reply_s = max_reply_s
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.fallback_line = fallback_line
        self._http = http

    def __repr__(self) -> str:  # no key
        return f"ChatResponder(url={self.url!r}, model={self.model!r})"

    def messages(self, ctx: ConversationContext) -> list[dict[str, Any]]:
        """The chat messages for ``ctx``: system prompt (with call facts and memory), then the
        transcript as assistant/user turns."""
        facts = [f"This is an {ctx.direction} phone call."]
        if ctx.caller:
            facts.append(f"The other party's number is {ctx.caller}.")
        system = self.system_prompt.strip() + "\n\n" + " ".join(facts)
        if ctx.memory:
            system += "\nWhat you remember from earlier calls with this person:\n" + "\n".join(
                f"- {m}" for m in ctx.memory
            )
        out: list[dict[str, Any]] = [{"role": "system", "content": system}]
        for speaker, text in ctx.transcript:
            role = "assistant" if speaker == "bot" else "user"
            if out[-1]["role"] == role and role != "system":
                out[-1] = {"role": role, "content": out[-1]["content"] + " " + text}
            else:
                out.append({"role": role, "content": text})
        return out

    def _body(self, ctx: ConversationContext) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model,
            "messages": self.messages(ctx),
            "stream": True,
            "tools": [END_CALL_TOOL],
        }
        if self.max_tokens is not None:
            body["max_tokens"] = self.max_tokens
        if self.temperature is not None:
            body["temperature"] = self.temperature
        return body

    async def reply(self, ctx: ConversationContext) -> AsyncIterator[ResponderOutput]:
        headers = {"accept": "text/event-stream"}
        if self._api_key:
            headers["authorization"] = f"Bearer {self._api_key}"
        splitter = SentenceSplitter()
        tools: dict[int, dict[str, str]] = {}
        spoke = False
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.max_reply_s
        try:
            async with self._http.stream(
                "POST",
                self.url,
                json=self._body(ctx),
                headers=headers,
                timeout=httpx.Timeout(self.timeout_s),
            ) as response:
                if response.status_code >= 400:
                    await response.aread()
                    log.error(
                        "chat responder: %s answered %d (%s)",
                        self.url,
                        response.status_code,
                        _error_code(response),
                    )
                    yield Sentence(self.fallback_line)
                    return
                async for data in sse_data(response):
                    if data == "[DONE]":
                        break
                    for piece in _apply_chunk(data, tools):
                        for sentence in splitter.feed(piece):
                            spoke = True
                            yield Sentence(sentence)
                    if loop.time() > deadline:
                        log.error("chat responder: reply exceeded %.0f s", self.max_reply_s)
                        break
        except httpx.TimeoutException:
            log.error("chat responder: %s timed out after %.1f s", self.url, self.timeout_s)
        except httpx.HTTPError as exc:
            log.error("chat responder: %s failed (%s)", self.url, type(exc).__name__)
        rest = splitter.flush()
        if rest:
            spoke = True
            yield Sentence(rest)
        end = _end_call(tools)
        if end is not None:
            yield end
        elif not spoke and not ctx.allow_silence:
            yield Sentence(self.fallback_line)


def _apply_chunk(data: str, tools: dict[int, dict[str, str]]) -> list[str]:
    """Fold one streamed chunk: return its text deltas, accumulate tool-call deltas."""
    try:
        chunk = json.loads(data)
    except ValueError:
        log.warning("chat responder: skipped a chunk that is not JSON")
        return []
    if not isinstance(chunk, dict):
        return []
    if isinstance(chunk.get("error"), dict):
        log.error("chat responder: stream error (%s)", chunk["error"].get("code") or "unknown")
        return []
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
            slot = tools.setdefault(
                index if isinstance(index, int) else 0, {"name": "", "args": ""}
            )
            fn = call.get("function") or {}
            if isinstance(fn.get("name"), str):
                slot["name"] += fn["name"]
            if isinstance(fn.get("arguments"), str):
                slot["args"] += fn["arguments"]
    return out


def _end_call(tools: dict[int, dict[str, str]]) -> EndCall | None:
    for slot in tools.values():
        if slot["name"] != "end_call":
            if slot["name"]:
                log.warning("chat responder: model called unknown tool %r", slot["name"][:40])
            continue
        goodbye = None
        try:
            args = json.loads(slot["args"] or "{}")
            if isinstance(args, dict) and isinstance(args.get("goodbye"), str):
                goodbye = squash_spaces(args["goodbye"]) or None
        except ValueError:
            log.warning("chat responder: end_call arguments are not JSON; ending without goodbye")
        return EndCall(goodbye)
    return None


def _error_code(response: httpx.Response) -> str:
    """The provider's error code/type only: error messages can quote the key."""
    try:
        err = response.json().get("error") or {}
        return str(err.get("code") or err.get("type") or "no error code")[:60]
    except (ValueError, AttributeError):
        return "no error body"
