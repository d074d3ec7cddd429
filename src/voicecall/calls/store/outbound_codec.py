"""The outbound-safety codec (migration 3): do-not-call entries and the audit trail, validated
before any I/O, and their rows read back (pure, no I/O)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from voicecall.calls.store import base  # base uses the codecs too: attribute access at call time
from voicecall.calls.store.rows import Row, finite, no_nul

#: Longest ``reason`` of a do-not-call entry, and ``detail`` of an audit entry, that is stored.
MAX_BLOCK_REASON_CHARS = 500
MAX_AUDIT_DETAIL_CHARS = 1000
AUDIT_OUTCOMES = frozenset({"placed", "refused"})
#: Column order of the ``outbound_audit`` table (``id`` first, assigned by the store).
AUDIT_COLUMNS: tuple[str, ...] = (
    "id",
    "at",
    "number",
    "surface",
    "token_fingerprint",
    "outcome",
    "call_id",
    "rule",
    "detail",
)
BLOCKED_COLUMNS: tuple[str, ...] = ("number", "reason", "created_at")


@dataclass(frozen=True, slots=True)
class BlockWrite:
    """One validated ``block_number`` write."""

    number: str
    reason: str | None
    created_at: float


@dataclass(frozen=True, slots=True)
class UnblockWrite:
    number: str


@dataclass(frozen=True, slots=True)
class AuditWrite:
    """One validated audit entry (bind parameters without ``id``) and the pruning cut-off."""

    row: tuple[Any, ...]
    prune_before: float | None


def _check_number_key(number: str) -> str:
    if not isinstance(number, str) or not number:
        raise ValueError("number must be a non-empty E.164 string")
    no_nul((number,), ("number",))
    return number


def prepare_block(number: str, reason: str | None, now: float) -> BlockWrite:
    """Validate a do-not-call entry before any I/O (``ValueError``; NUL: ``StoreError``)."""
    _check_number_key(number)
    if reason is not None:
        no_nul((reason,), ("reason",))
        if len(reason) > MAX_BLOCK_REASON_CHARS:
            raise ValueError(f"reason is longer than {MAX_BLOCK_REASON_CHARS} characters")
    return BlockWrite(number, reason or None, finite(now, "now"))


def prepare_unblock(number: str) -> UnblockWrite:
    return UnblockWrite(_check_number_key(number))


def prepare_audit(entry: base.AuditEntry, prune_before: float | None) -> AuditWrite:
    """Validate an audit entry before any I/O; the detail is cut to its maximum length."""
    if entry.outcome not in AUDIT_OUTCOMES:
        raise ValueError(f"outcome must be one of {sorted(AUDIT_OUTCOMES)}")
    if not entry.surface:
        raise ValueError("surface must not be empty")
    _check_number_key(entry.number)
    detail = entry.detail[:MAX_AUDIT_DETAIL_CHARS] if entry.detail is not None else None
    row = (
        finite(entry.at, "at"),
        entry.number,
        entry.surface,
        entry.token_fingerprint,
        entry.outcome,
        entry.call_id,
        entry.rule,
        detail,
    )
    no_nul(row, AUDIT_COLUMNS[1:])
    cut = None if prune_before is None else finite(prune_before, "prune_before")
    return AuditWrite(row, cut)


def row_to_audit(row: Row) -> base.AuditEntry:
    return base.AuditEntry(
        id=int(row[0]),
        at=float(row[1]),
        number=row[2],
        surface=row[3],
        token_fingerprint=row[4],
        outcome=row[5],
        call_id=row[6],
        rule=row[7],
        detail=row[8],
    )


def row_to_blocked(row: Row) -> base.BlockedNumber:
    return base.BlockedNumber(number=row[0], reason=row[1], created_at=float(row[2]))


def check_before(before: int | None) -> int | None:
    """An audit page cursor: the ``id`` to list entries below (``None``: the newest)."""
    if before is None:
        return None
    if isinstance(before, bool) or not isinstance(before, int) or before < 1:
        raise ValueError("before must be a positive audit entry id")
    return before
