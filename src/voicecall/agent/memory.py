"""Caller memory: short summaries of past calls per caller number, kept in the durable store.

The manager recalls a caller's notes into :attr:`ConversationContext.memory` and writes one
:func:`summarize_exchange` line when a call ends.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import time
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from voicecall.agent.sentences import squash_spaces

if TYPE_CHECKING:
    from voicecall.calls.store.base import Store

log = logging.getLogger("voicecall.responder")


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
        summary = squash_spaces(summary)[: self.max_chars]
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
