"""The hook responder: a user function ``"package.module:function"`` answers.

The function may be sync (run in a worker thread) or async, returning a string, or iterating
strings / outputs. A broken hook, an exception or a timeout yields the fallback line.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import inspect
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Any, TypeAlias

from voicecall.agent.reply import (
    FALLBACK_LINE,
    ConversationContext,
    EndCall,
    ResponderOutput,
    Sentence,
)
from voicecall.agent.sentences import SentenceSplitter
from voicecall.errors import ConfigError

log = logging.getLogger("voicecall.responder")

HookFunction: TypeAlias = Callable[[ConversationContext], Any]


def load_hook(spec: str) -> HookFunction:
    """Import ``"package.module:function"``; raises :class:`ConfigError` saying what is wrong."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ConfigError([f"responder.hook: {spec!r} is not of the form package.module:function"])
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError([f"responder.hook: cannot import {module_name!r} ({exc})"]) from None
    target: Any = module
    for part in attr.split("."):
        target = getattr(target, part, None)
        if target is None:
            raise ConfigError([f"responder.hook: {module_name!r} has no {attr!r}"])
    if not callable(target):
        raise ConfigError([f"responder.hook: {spec!r} is not callable"])
    fn: HookFunction = target
    return fn


class HookResponder:
    """Replies by calling a user function with the :class:`ConversationContext`.

    The function may be sync (run in a worker thread) or async, and may return a string,
    ``None`` (say nothing this turn), a :class:`Sentence`/:class:`EndCall`, or an (async)
    iterable of those and strings. Strings are split into sentences. ``timeout_s`` bounds the
    wait for each item; an exception or timeout yields the fallback line.
    """

    def __init__(
        self,
        hook: str | HookFunction,
        *,
        timeout_s: float = 10.0,
        fallback_line: str = FALLBACK_LINE,
    ) -> None:
        self.fn = load_hook(hook) if isinstance(hook, str) else hook
        self.name = hook if isinstance(hook, str) else getattr(hook, "__qualname__", "hook")
        self.timeout_s = timeout_s
        self.fallback_line = fallback_line

    def __repr__(self) -> str:
        return f"HookResponder({self.name!r})"

    async def reply(self, ctx: ConversationContext) -> AsyncIterator[ResponderOutput]:
        produced = False
        splitter = SentenceSplitter()
        try:
            if inspect.iscoroutinefunction(self.fn) or inspect.isasyncgenfunction(self.fn):
                result = self.fn(ctx)
            else:
                result = await asyncio.wait_for(asyncio.to_thread(self.fn, ctx), self.timeout_s)
            if inspect.isawaitable(result):
                result = await asyncio.wait_for(_awaited(result), self.timeout_s)
            async for item in self._raw(result):
                for out in _fold(splitter, item):
                    produced = True
                    yield out
            rest = splitter.flush()
            if rest:
                produced = True
                yield Sentence(rest)
        except TimeoutError:
            log.error("hook responder %s: no answer within %.1f s", self.name, self.timeout_s)
            if not produced:
                yield Sentence(self.fallback_line)
        except Exception as exc:
            log.error("hook responder %s failed: %s: %s", self.name, type(exc).__name__, exc)
            if not produced:
                yield Sentence(self.fallback_line)

    async def _raw(self, result: Any) -> AsyncIterator[Any]:
        """The hook's items, whatever shape it returned them in."""
        if result is None or isinstance(result, str | Sentence | EndCall):
            yield result
            return
        if hasattr(result, "__anext__"):
            iterator = result
            try:
                while True:
                    try:
                        item = await asyncio.wait_for(iterator.__anext__(), self.timeout_s)
                    except StopAsyncIteration:
                        return
                    yield item
            finally:
                if hasattr(iterator, "aclose"):
                    with contextlib.suppress(Exception):
                        await iterator.aclose()
        if isinstance(result, Iterable):
            for item in result:
                yield item
            return
        raise TypeError(f"hook returned {type(result).__name__}, not str or an iterable of str")


async def _awaited(result: Awaitable[Any]) -> Any:
    return await result


def _fold(splitter: SentenceSplitter, item: Any) -> list[ResponderOutput]:
    """Text deltas go through the splitter; a Sentence/EndCall first flushes what is pending."""
    if item is None:
        return []
    if isinstance(item, str):
        return [Sentence(s) for s in splitter.feed(item)]
    if isinstance(item, Sentence | EndCall):
        rest = splitter.flush()
        return [Sentence(rest), item] if rest else [item]
    raise TypeError(f"hook produced {type(item).__name__}, not str, Sentence or EndCall")
