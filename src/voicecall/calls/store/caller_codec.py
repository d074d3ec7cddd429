"""The caller-memory codec (``caller_memory`` table, migration 2): one validated note write,
the notes' JSON encoding, and the bounded append (pure, no I/O)."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from voicecall.calls.store.rows import no_nul
from voicecall.errors import StoreError


@dataclass(frozen=True, slots=True)
class CallerNote:
    """One validated ``remember_caller`` write (the note already cut to ``max_chars``)."""

    caller: str
    note: str
    now: float
    max_entries: int
    max_callers: int


@dataclass(frozen=True, slots=True)
class ForgetCaller:
    """One validated ``forget_caller`` write."""

    caller: str


def prepare_caller_note(
    caller: str, note: str, *, max_entries: int, max_chars: int, max_callers: int, now: float
) -> CallerNote:
    """Validate one memory write before any I/O: bounds must be >= 1 and the caller non-empty
    (``ValueError``); NUL characters are refused with ``StoreError`` like everywhere else."""
    if not caller:
        raise ValueError("caller must be a non-empty number")
    for name, bound in (
        ("max_entries", max_entries),
        ("max_chars", max_chars),
        ("max_callers", max_callers),
    ):
        if bound < 1:
            raise ValueError(f"{name} must be >= 1")
    at = float(now)
    if not math.isfinite(at):
        raise ValueError("now must be a finite timestamp")
    no_nul((caller, note), ("caller", "notes"))
    return CallerNote(caller, note[:max_chars], at, int(max_entries), int(max_callers))


def encode_notes(notes: Sequence[str]) -> str:
    return json.dumps(list(notes), ensure_ascii=False, separators=(",", ":"))


def decode_notes(value: Any) -> list[str]:
    """A stored ``caller_memory.notes`` value (JSON text on SQLite, jsonb on PostgreSQL)."""
    try:
        notes = json.loads(value) if isinstance(value, str | bytes) else value
    except ValueError:
        notes = None
    if not isinstance(notes, list) or not all(isinstance(n, str) for n in notes):
        raise StoreError("column 'notes' of caller_memory is not a JSON array of strings")
    return notes


def append_note(notes: Sequence[str], note: str, max_entries: int) -> list[str]:
    """``notes`` plus ``note`` at the end, keeping the newest ``max_entries``."""
    return [*notes, note][-max_entries:]
