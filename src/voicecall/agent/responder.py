"""The conversation responder: what the bot says on its own in conversation-mode and inbound calls.

A :class:`Responder` turns the conversation so far (:class:`ConversationContext`) into outputs:
sentences to speak (:class:`Sentence`, yielded one by one as soon as each is complete, so speech
starts while the rest is still being generated) and at most one :class:`EndCall`.

Implementations:

- :class:`ChatResponder`: any OpenAI-compatible ``POST {base_url}/chat/completions`` with
  ``stream: true`` (OpenAI, Azure-compatible gateways, Ollama, vLLM, llama.cpp …). The model
  gets an ``end_call`` tool to end the call politely.
- :class:`HookResponder`: a user function ``"package.module:function"`` (sync or async,
  returning a string, or iterating strings / outputs).
- :class:`ScriptedResponder`: a small rule-based bot for the demo (no LLM).

Failures never mean silence: a timeout, an HTTP error or a broken hook yields
:data:`FALLBACK_LINE` (and the error is logged, without secrets). :class:`CallerMemory` keeps
short summaries of past calls per caller number in the durable store, which the manager passes in
as ``memory``.

:class:`SentenceSplitter` is sans-I/O: feed it text deltas, it returns finished sentences.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import inspect
import json
import logging
import math
import os
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeAlias, runtime_checkable

import httpx

from voicecall.errors import ConfigError

if TYPE_CHECKING:
    from voicecall.calls.store.base import Store
    from voicecall.conversation.task import TaskBrief
    from voicecall.conversation.tools import Tools

log = logging.getLogger("voicecall.responder")

FALLBACK_LINE = "Sorry, I didn't catch that — could you say it again?"
DEFAULT_BASE_URL = "https://api.openai.com/v1"
DEFAULT_MODEL = "gpt-4o-mini"
DEFAULT_SYSTEM_PROMPT = (
    "You are a helpful voice assistant speaking with someone on the phone. Your words are "
    "read aloud by text-to-speech: answer in short, natural spoken sentences (one to three), "
    "no lists, markdown, emoji or URLs. Ask one question at a time. When the conversation is "
    "finished or the person wants to hang up, call the end_call tool with a short goodbye."
)


# ----------------------------------------------------------------------------- interface


@dataclass(frozen=True, slots=True)
class ConversationContext:
    """What a responder knows when it is asked for the next reply.

    ``transcript`` holds ``(speaker, text)`` pairs in order, speaker ``"bot"`` or ``"user"``;
    ``memory`` holds summaries of this caller's earlier calls (oldest first). Task calls also
    carry ``task`` (the brief: what the call is for, the system prompt) and ``tools`` (what this
    reply may use: the call's tool box, or a speculative run's held view of it).
    """

    call_id: str
    direction: str
    caller: str | None
    transcript: list[tuple[str, str]]
    memory: list[str] = field(default_factory=list)
    task: TaskBrief | None = None
    tools: Tools | None = None
    #: an empty answer is silence, not the fallback line (the call has been on hold: the model
    #: may choose to say nothing to a recorded announcement)
    allow_silence: bool = False


@dataclass(frozen=True, slots=True)
class Sentence:
    """One sentence to speak now."""

    text: str


@dataclass(frozen=True, slots=True)
class EndCall:
    """End the call after the sentences so far, saying ``goodbye`` first if given."""

    goodbye: str | None = None


ResponderOutput: TypeAlias = Sentence | EndCall


@runtime_checkable
class Responder(Protocol):
    """Produces the bot's next reply. ``reply`` is an async generator: consume it with
    ``async for`` and close it (``aclose``) to stop early, e.g. when the caller barges in."""

    def reply(self, ctx: ConversationContext) -> AsyncIterator[ResponderOutput]: ...


# ----------------------------------------------------------------------------- sentences

# Lower-case words that end with "." without ending a sentence.
ABBREVIATIONS = frozenset(
    re.findall(
        r"\S+",
        """mr mrs ms dr prof sr jr st mt vs etc approx dept inc ltd corp vol ave blvd jan feb apr
        jun jul aug sept oct nov mon tue thu fri""",
    )
)
# Abbreviations only before a number ("No. 5", "pp. 12"): "no." otherwise ends a sentence.
NUMBER_ABBREVIATIONS = frozenset({"no", "nos", "pp", "p", "fig", "ch", "art"})
_DOTTED = re.compile(r"^(?:[a-z]\.){1,4}[a-z]?$", re.IGNORECASE)  # e.g. i.e. a.m. U.S.
_ENDERS = ".!?…"
_CLOSERS = "\"')]}»”’"


class SentenceSplitter:
    """Sans-I/O: ``feed`` text deltas, get back the sentences they complete; ``flush`` at the end.

    A sentence ends at ``.``, ``!``, ``?`` or ``…`` (plus closing quotes/brackets) followed by
    whitespace, or at a line break. A period does not end a sentence after a known
    abbreviation ("Dr.", "etc."), a dotted abbreviation ("e.g.", "a.m."), a single-letter
    initial ("J. Smith") or inside a number ("3.14"). A run longer than ``max_chars`` with no
    sentence end is cut at its last comma or space so speech never waits for a huge sentence.
    """

    def __init__(self, *, max_chars: int = 250) -> None:
        self._buf = ""
        self._scan = 0
        self.max_chars = max_chars

    def feed(self, text: str) -> list[str]:
        self._buf += text
        out: list[str] = []
        while True:
            cut = self._find_end()
            if cut is None:
                break
            sentence = _clean(self._buf[:cut])
            self._buf = self._buf[cut:]
            self._scan = 0
            if sentence:
                out.append(sentence)
        if len(self._buf) > self.max_chars:
            head = self._buf[: self.max_chars]
            at = max(head.rfind(", "), head.rfind("; "))
            at = at + 1 if at > self.max_chars // 3 else head.rfind(" ")
            if at <= 0:
                at = self.max_chars
            sentence = _clean(self._buf[:at])
            self._buf = self._buf[at:]
            self._scan = 0
            if sentence:
                out.append(sentence)
        return out

    def flush(self) -> str | None:
        """The unfinished rest (``None`` if only whitespace), and reset."""
        rest = _clean(self._buf)
        self._buf = ""
        self._scan = 0
        return rest or None

    def _find_end(self) -> int | None:
        buf = self._buf
        i = self._scan
        n = len(buf)
        while i < n:
            ch = buf[i]
            if ch == "\n":
                if buf[:i].strip():
                    return i + 1
                i += 1
                continue
            if ch in _ENDERS:
                j = i + 1
                while j < n and (buf[j] in _ENDERS or buf[j] in _CLOSERS):
                    j += 1
                if j >= n:
                    self._scan = i  # wait: we need the next character to decide
                    return None
                if buf[j].isspace() and not (ch == "." and self._is_abbreviation(i)):
                    return j
                i = j
                continue
            i += 1
        self._scan = n
        return None

    def _is_abbreviation(self, dot: int) -> bool:
        start = dot
        while start > 0 and not self._buf[start - 1].isspace():
            start -= 1
        word = self._buf[start:dot].lstrip("\"'([{«“‘")
        if not word:
            return False
        low = word.lower()
        if low in ABBREVIATIONS:
            return True
        if low in NUMBER_ABBREVIATIONS:
            rest = self._buf[dot + 1 :].lstrip()
            return bool(rest) and rest[0].isdigit()
        if len(word) == 1 and word.isalpha() and word.isupper():
            return True  # an initial: "J. Smith"
        return bool(_DOTTED.match(word))


def _clean(text: str) -> str:
    return " ".join(text.split())


def split_sentences(text: str) -> list[str]:
    """All sentences of a complete text."""
    splitter = SentenceSplitter()
    out = splitter.feed(text)
    rest = splitter.flush()
    return [*out, rest] if rest else out


# ----------------------------------------------------------------------------- memory


class CallerMemory:
    """Short summaries of past calls, per caller (E.164), kept in the durable store.

    The notes live in the store's ``caller_memory`` table (:meth:`Store.remember_caller`), so they
    survive a restart and a standby that takes over the store recalls what the previous active
    instance remembered. Bounded: at most ``max_entries`` summaries per caller (oldest dropped),
    each at most ``max_chars``, and at most ``max_callers`` callers (least recently updated
    dropped). Anonymous callers (``None``, ``""``, ``anonymous``, ``unknown``, ``restricted``)
    are never remembered. Store failures raise :class:`voicecall.errors.StoreError`.
    """

    def __init__(
        self,
        store: Store,
        *,
        max_entries: int = 10,
        max_chars: int = 400,
        max_callers: int = 1000,
    ) -> None:
        if min(max_entries, max_chars, max_callers) < 1:
            raise ValueError("max_entries, max_chars and max_callers must be >= 1")
        self.store = store
        self.max_entries = max_entries
        self.max_chars = max_chars
        self.max_callers = max_callers

    @staticmethod
    def _known(caller: str | None) -> bool:
        return bool(caller) and caller not in ("anonymous", "unknown", "restricted")

    async def recall(self, caller: str | None) -> list[str]:
        """This caller's summaries, oldest first (``[]`` for an anonymous caller)."""
        if not self._known(caller):
            return []
        assert caller is not None
        return await self.store.caller_notes(caller)

    async def remember(self, caller: str | None, summary: str, *, now: float | None = None) -> None:
        """Append one summary (durable when this returns); anonymous callers are ignored."""
        summary = _clean(summary)[: self.max_chars]
        if not self._known(caller) or not summary:
            return
        assert caller is not None
        await self.store.remember_caller(
            caller,
            summary,
            max_entries=self.max_entries,
            max_chars=self.max_chars,
            max_callers=self.max_callers,
            now=time.time() if now is None else now,
        )

    async def forget(self, caller: str) -> bool:
        """Drop everything remembered about ``caller``; ``True`` if there was something."""
        if not self._known(caller):
            return False
        return await self.store.forget_caller(caller)

    async def import_file(self, path: str | Path) -> int:
        """One-time import of a memory file written by voicecall before the store kept memory.

        Callers the store does not know yet get the file's notes (with their original update
        times, so pruning keeps the most recent); callers the store already knows are left as
        they are, so running it again never duplicates a note. After a successful
        import the file is renamed to ``<name>.imported`` and never read or written again. A
        missing file is nothing to do; an unreadable one is logged and left in place. Returns
        the number of callers imported.
        """
        src = await asyncio.to_thread(lambda: Path(path).expanduser())
        try:
            raw = await asyncio.to_thread(src.read_text, encoding="utf-8")
        except FileNotFoundError:
            return 0
        except OSError as exc:
            log.warning("caller memory file %s unreadable, not imported (%s)", src, exc)
            return 0
        try:
            entries = _parse_memory_file(raw)
        except (ValueError, TypeError, AttributeError) as exc:
            log.warning("caller memory file %s is not valid, not imported (%s)", src, exc)
            return 0
        imported = 0
        for number, notes, updated in sorted(entries, key=lambda e: e[2]):
            if not self._known(number) or await self.store.caller_notes(number):
                continue
            for note in notes[-self.max_entries :]:
                await self.remember(number, note, now=updated)
            imported += 1
        done = src.with_name(src.name + ".imported")
        try:
            await asyncio.to_thread(os.replace, src, done)
        except OSError as exc:
            log.warning("caller memory file %s imported but not renamed (%s)", src, exc)
        log.warning(
            "caller memory: imported %d caller(s) from %s into the store; the file is no longer "
            "used (renamed to %s); remove responder.memory_path from the configuration",
            imported,
            src,
            done.name,
        )
        return imported


def _parse_memory_file(raw: str) -> list[tuple[str, list[str], float]]:
    """``(caller, notes, updated)`` of a version-1 memory file ``{"callers": {number: {…}}}``."""
    doc = json.loads(raw)
    if not isinstance(doc, dict) or not isinstance(doc.get("callers", {}), dict):
        raise ValueError("expected an object with a 'callers' object")
    out: list[tuple[str, list[str], float]] = []
    for number, entry in doc.get("callers", {}).items():
        notes = entry.get("notes") if isinstance(entry, dict) else None
        if not isinstance(notes, list):
            continue
        updated = float(entry.get("updated", 0.0))
        if not math.isfinite(updated):
            updated = 0.0
        out.append((str(number), [str(n) for n in notes], updated))
    return out


def summarize_exchange(
    transcript: Iterable[tuple[str, str]], *, when: float | None = None, max_chars: int = 300
) -> str:
    """A deterministic one-line summary of a finished call for :class:`CallerMemory`."""
    lines = list(transcript)
    said = [t for s, t in lines if s == "user" and t.strip()]
    stamp = time.strftime("%Y-%m-%d", time.localtime(when if when is not None else time.time()))
    if not said:
        return f"{stamp}: called, said nothing."
    text = " / ".join(said)
    if len(text) > max_chars:
        text = text[: max_chars - 1].rstrip() + "…"
    return f"{stamp}: caller said: {text}"


# ----------------------------------------------------------------------------- chat


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
                async for data in _sse_data(response):
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


async def _sse_data(response: httpx.Response) -> AsyncIterator[str]:
    data: list[str] = []
    async for line in response.aiter_lines():
        if line.startswith("data:"):
            data.append(line[5:].removeprefix(" "))
        elif line == "" and data:
            yield "\n".join(data)
            data = []
    if data:
        yield "\n".join(data)


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
                goodbye = _clean(args["goodbye"]) or None
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


# ----------------------------------------------------------------------------- hook

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


# ----------------------------------------------------------------------------- scripted

_STOPWORDS = frozenset(
    re.findall(
        r"\S+",
        """a about above after again against all also am an and any are aren as at be because been
    before being below between both but by can could did do does doing don down during each few
    for from further get got had has have having he her here hers herself him himself his how i
    if in into is it its itself just know let like me more most my myself need no nor not now of
    off ok okay on once only or other our ours ourselves out over own please really right same
    say she should so some such than thank thanks that the their theirs them themselves then
    there these they this those through to too under until up very want was we well were what
    when where which while who whom why will with would yeah yes you your yours yourself
    yourselves hello hi hey um uh oh""",
    )
)


class ScriptedResponder:
    """A tiny rule-based bot for demos without an LLM.

    With no caller words yet it greets; after each caller utterance it acknowledges by echoing
    its key words; it asks ``follow_ups`` follow-up questions, then thanks, says goodbye and
    ends the call. Deterministic: the stage is derived from the transcript alone.
    """

    def __init__(
        self,
        *,
        name: str = "the voicecall demo assistant",
        follow_ups: int = 1,
        greeting: str | None = None,
    ) -> None:
        self.name = name
        self.follow_ups = follow_ups
        self.greeting = greeting

    async def reply(self, ctx: ConversationContext) -> AsyncIterator[ResponderOutput]:
        for item in self.plan(ctx):
            yield item

    def plan(self, ctx: ConversationContext) -> list[ResponderOutput]:
        heard = [t for s, t in ctx.transcript if s == "user"]
        if not heard:
            hello = self.greeting or f"Hello, this is {self.name}."
            out: list[ResponderOutput] = [Sentence(s) for s in split_sentences(hello)]
            if ctx.memory:
                out.append(Sentence("Nice to hear from you again."))
            out.append(Sentence("What can I do for you today?"))
            return out
        last = heard[-1].strip()
        if not last:
            return [Sentence(FALLBACK_LINE)]
        words = key_words(last)
        ack = f"I heard you mention {_join(words)}." if words else f"You said: {_clip(last)}."
        if len(heard) <= self.follow_ups:
            return [Sentence(ack), Sentence("Could you tell me a little more about that?")]
        return [
            Sentence(ack),
            Sentence("Thank you, I have noted everything."),
            EndCall("Goodbye, and have a nice day!"),
        ]


def key_words(text: str, limit: int = 3) -> list[str]:
    """The first ``limit`` distinct content words of ``text`` (no stopwords or short words)."""
    out: list[str] = []
    for raw in re.findall(r"[A-Za-z][A-Za-z'\-]*|\d[\d:.,]*", text):
        word = raw.strip("'-.,")
        low = word.lower()
        if low in _STOPWORDS or (len(word) < 3 and not word[:1].isdigit()):
            continue
        if low not in (w.lower() for w in out):
            out.append(word)
        if len(out) == limit:
            break
    return out


def _join(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def _clip(text: str, limit: int = 80) -> str:
    text = _clean(text).rstrip(".!?")
    return text if len(text) <= limit else text[:limit].rsplit(" ", 1)[0]


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
