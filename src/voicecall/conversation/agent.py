"""The in-call agent of a task call: a streaming chat loop whose tool calls the service executes.

:class:`TaskAgent` is a :class:`~voicecall.agent.responder.Responder`, so the automatic-reply
pipeline (``conversation/autoreply.py``) drives it like any other: it yields sentences as the
model streams them (speech starts on the first one) and at most one ``EndCall``. Inside one reply
it may make several model requests ("rounds"): when the model calls tools, the tools run (through
the call's :class:`~voicecall.conversation.tools.ToolBox`, or a speculative run's held view), their
results go back as ``tool`` messages, and the model continues — until it answers without a tool,
calls ``end_call``, calls a tool whose result comes later (``ask_owner``: a new reply starts when
the owner answers), or ``task.max_tool_rounds`` is reached.

The messages are rebuilt for every request from the transcript and the box's exchanges, so what
the caller said while a tool was pending is seen by the next reply.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

from voicecall.agent.responder import (
    FALLBACK_LINE,
    ConversationContext,
    ResponderOutput,
    Sentence,
    SentenceSplitter,
)
from voicecall.conversation.chat import ChatModel, ModelError, TextDelta, ToolRequest
from voicecall.conversation.tools import Exchange

log = logging.getLogger("voicecall.agent")

WAITING_RESULT = {"status": "waiting for the result"}


def _norm(text: str) -> str:
    return " ".join(text.split()).lower()


def build_messages(
    system: str, transcript: list[tuple[str, str]], exchanges: list[Exchange]
) -> list[dict[str, Any]]:
    """The chat messages: system prompt, then the transcript with each round of tool calls
    (``assistant`` with ``tool_calls``, then one ``tool`` message per call) placed after the
    lines that preceded it. Bot lines that repeat what a round said with its tool calls are not
    repeated."""
    out: list[dict[str, Any]] = [{"role": "system", "content": system}]

    def say(speaker: str, text: str) -> None:
        role = "assistant" if speaker == "bot" else "user"
        last = out[-1]
        if last["role"] == role and "tool_calls" not in last and isinstance(last["content"], str):
            out[-1] = {"role": role, "content": last["content"] + " " + text}
        else:
            out.append({"role": role, "content": text})

    rounds: dict[int, list[Exchange]] = {}
    for ex in exchanges:
        rounds.setdefault(ex.round, []).append(ex)
    index = 0
    repeated = ""  # what the rounds said: bot lines after them that only repeat it are skipped
    for number in sorted(rounds):
        group = rounds[number]
        anchor = min(group[0].anchor, len(transcript))
        while index < anchor:
            speaker, text = transcript[index]
            index += 1
            if not _skip(speaker, text, repeated):
                say(speaker, text)
        said = group[0].said.strip()
        out.append(
            {
                "role": "assistant",
                "content": said or None,
                "tool_calls": [
                    {
                        "id": ex.request.id,
                        "type": "function",
                        "function": {
                            "name": ex.request.name,
                            "arguments": ex.request.arguments or "{}",
                        },
                    }
                    for ex in group
                ],
            }
        )
        for ex in group:
            result = ex.result if ex.result is not None else WAITING_RESULT
            out.append(
                {
                    "role": "tool",
                    "tool_call_id": ex.request.id,
                    "content": json.dumps(result, ensure_ascii=False),
                }
            )
        repeated = f"{repeated} {_norm(said)}"
    for speaker, text in transcript[index:]:
        if not _skip(speaker, text, repeated):
            say(speaker, text)
    return out


def _skip(speaker: str, text: str, repeated: str) -> bool:
    return speaker == "bot" and bool(text.strip()) and _norm(text) in repeated


class TaskAgent:
    """Replies on a task call with a :class:`~voicecall.conversation.chat.ChatModel` and tools.

    Needs ``ctx.task`` (the brief: system prompt) and ``ctx.tools``. A model failure before
    anything was said yields :data:`~voicecall.agent.responder.FALLBACK_LINE` (never dead air);
    a model that answers with nothing at all is silence.
    """

    def __init__(
        self,
        model: ChatModel,
        *,
        max_rounds: int = 4,
        fallback_line: str = FALLBACK_LINE,
    ) -> None:
        self.model = model
        self.max_rounds = max_rounds
        self.fallback_line = fallback_line

    def __repr__(self) -> str:
        return f"TaskAgent({self.model.label!r})"

    async def reply(self, ctx: ConversationContext) -> AsyncIterator[ResponderOutput]:
        brief, tools = ctx.task, ctx.tools
        if brief is None or tools is None:
            log.error("call %s: a task agent was asked to reply without a task", ctx.call_id)
            yield Sentence(self.fallback_line)
            return
        anchor = len(ctx.transcript)
        spoke = False
        for _ in range(self.max_rounds):
            number = tools.next_round()
            messages = build_messages(brief.system_prompt, ctx.transcript, tools.exchanges())
            splitter = SentenceSplitter()
            said: list[str] = []
            requests: list[ToolRequest] = []
            failed = False
            try:
                async with contextlib.aclosing(
                    self.model.stream(messages, tools.offered())
                ) as events:
                    async for event in events:
                        if isinstance(event, TextDelta):
                            for sentence in splitter.feed(event.text):
                                said.append(sentence)
                                yield Sentence(sentence)
                        else:
                            requests.append(event)
            except ModelError as exc:
                log.error("call %s: the task model failed: %s", ctx.call_id, exc)
                failed = True
            rest = splitter.flush()
            if rest:
                said.append(rest)
                yield Sentence(rest)
            spoke = spoke or bool(said)
            if failed:
                if not spoke:
                    yield Sentence(self.fallback_line)
                return
            if not requests:
                if not spoke:
                    log.info("call %s: the task model answered nothing (silence)", ctx.call_id)
                return
            text = " ".join(said)
            end = None
            pending = False
            for request in requests:
                outcome = await tools.run(request, anchor=anchor, round=number, said=text)
                end = outcome.end or end
                pending = pending or outcome.pending
            if end is not None:
                yield end
                return
            if pending:
                return
        log.warning(
            "call %s: the task model used %d rounds of tools in one reply; stopped",
            ctx.call_id,
            self.max_rounds,
        )
