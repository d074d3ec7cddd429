"""The conversation responder: what the bot says on its own in conversation-mode and inbound calls.

A :class:`Responder` turns the conversation so far (:class:`ConversationContext`) into outputs:
sentences to speak (:class:`Sentence`, yielded one by one as soon as each is complete, so speech
starts while the rest is still being generated) and at most one :class:`EndCall`
(:mod:`voicecall.agent.reply`).

Implementations:

- :class:`ChatResponder` (:mod:`voicecall.agent.chat_responder`): any OpenAI-compatible
  ``POST {base_url}/chat/completions`` with ``stream: true`` (OpenAI, Azure-compatible gateways,
  Ollama, vLLM, llama.cpp …). The model gets an ``end_call`` tool to end the call politely.
- :class:`HookResponder` (:mod:`voicecall.agent.hook_responder`): a user function
  ``"package.module:function"`` (sync or async, returning a string, or iterating strings /
  outputs).
- :class:`ScriptedResponder` (:mod:`voicecall.agent.scripted`): a small rule-based bot for the
  demo (no LLM).

Failures never mean silence: a timeout, an HTTP error or a broken hook yields
:data:`FALLBACK_LINE` (and the error is logged, without secrets). :class:`CallerMemory`
(:mod:`voicecall.agent.memory`) keeps short summaries of past calls per caller number in the
durable store, which the manager passes in as ``memory``.

:class:`SentenceSplitter` (:mod:`voicecall.agent.sentences`) is sans-I/O: feed it text deltas, it
returns finished sentences.

This module builds the configured responder (:func:`responder_from_settings`) and re-exports the
names above, so ``from voicecall.agent.responder import …`` keeps working.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

import httpx

from voicecall.agent.chat_responder import END_CALL_TOOL, ChatResponder
from voicecall.agent.hook_responder import HookFunction, HookResponder, load_hook
from voicecall.agent.memory import CallerMemory, summarize_exchange
from voicecall.agent.reply import (
    FALLBACK_LINE,
    ConversationContext,
    EndCall,
    Responder,
    ResponderOutput,
    Sentence,
)
from voicecall.agent.scripted import ScriptedResponder, key_words
from voicecall.agent.sentences import (
    ABBREVIATIONS,
    NUMBER_ABBREVIATIONS,
    SentenceSplitter,
    split_sentences,
)
from voicecall.errors import ConfigError

__all__ = [
    "ABBREVIATIONS",
    "DEFAULT_BASE_URL",
    "DEFAULT_MODEL",
    "DEFAULT_SYSTEM_PROMPT",
    "END_CALL_TOOL",
    "FALLBACK_LINE",
    "NUMBER_ABBREVIATIONS",
    "CallerMemory",
    "ChatResponder",
    "ConversationContext",
    "EndCall",
    "HookFunction",
    "HookResponder",
    "Responder",
    "ResponderConfig",
    "ResponderOutput",
    "ScriptedResponder",
    "Sentence",
    "SentenceSplitter",
    "key_words",
    "load_hook",
    "responder_from_settings",
    "split_sentences",
    "summarize_exchange",
]

DEFAULT_BASE_URL = "https://api.openai.com/v1"
DEFAULT_MODEL = "gpt-4o-mini"
DEFAULT_SYSTEM_PROMPT = (
    "You are a helpful voice assistant speaking with someone on the phone. Your words are "
    "read aloud by text-to-speech: answer in short, natural spoken sentences (one to three), "
    "no lists, markdown, emoji or URLs. Ask one question at a time. When the conversation is "
    "finished or the person wants to hang up, call the end_call tool with a short goodbye."
)


# ----------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class ResponderConfig:
    """Which responder to build. ``api_key`` falls back to ``OPENAI_API_KEY``."""

    kind: Literal["chat", "hook", "scripted", "none"] = "none"
    base_url: str = DEFAULT_BASE_URL
    model: str = DEFAULT_MODEL
    api_key: str | None = field(default=None, repr=False)
    system_prompt: str = DEFAULT_SYSTEM_PROMPT
    hook: str | None = None
    timeout_s: float = 10.0


def responder_from_settings(
    config: ResponderConfig,
    *,
    http: httpx.AsyncClient | None = None,
    env: Mapping[str, str] | None = None,
) -> Responder | None:
    """Build the configured responder (``None`` for ``kind="none"``).

    Raises :class:`ConfigError` (one line per problem) for a chat responder without ``http``
    or without a key for api.openai.com, or a hook that cannot be imported.
    """
    environ = os.environ if env is None else env
    if config.timeout_s <= 0:
        raise ConfigError(["responder.timeout_s: must be greater than 0"])
    if config.kind == "none":
        return None
    if config.kind == "scripted":
        return ScriptedResponder()
    if config.kind == "hook":
        if not config.hook:
            raise ConfigError(["responder.hook: required when responder is a hook"])
        return HookResponder(config.hook, timeout_s=config.timeout_s)
    if config.kind == "chat":
        problems = []
        key = config.api_key or environ.get("OPENAI_API_KEY") or None
        if not config.base_url.startswith(("http://", "https://")):
            problems.append(
                "responder.base_url: must be an http(s) URL such as " + DEFAULT_BASE_URL
            )
        if not config.model:
            problems.append("responder.model: required")
        if key is None and "api.openai.com" in config.base_url:
            problems.append("responder.api_key: required for api.openai.com (or OPENAI_API_KEY)")
        if http is None:
            problems.append("responder: the chat responder needs the shared http client")
        if problems:
            raise ConfigError(problems)
        assert http is not None
        return ChatResponder(
            config.base_url,
            config.model,
            key,
            config.system_prompt or DEFAULT_SYSTEM_PROMPT,
            config.timeout_s,
            http,
        )
    raise ConfigError([f"responder.kind: {config.kind!r} is not chat, hook, scripted or none"])
