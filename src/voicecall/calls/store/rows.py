"""Row helpers shared by the store's codecs (pure, no I/O): the fetched-row type, the
single-statement write, and the checks every codec applies (NUL refused, finite timestamps,
readable enums and JSON). Errors name the column, never the value (rows hold phone numbers)."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any, TypeVar

from voicecall.errors import StoreError

Row = Sequence[Any]

_E = TypeVar("_E", bound=Enum)


@dataclass(frozen=True, slots=True)
class Statement:
    """One validated single-statement write: ``key`` names the SQL each backend holds for it;
    the writer answers whether it changed a row."""

    key: str
    params: tuple[Any, ...]


def opt_float(value: float | None) -> float | None:
    return None if value is None else float(value)


def enum_value(enum: type[_E], value: Any, column: str) -> _E:
    try:
        return enum(value)
    except ValueError:
        raise StoreError(f"unreadable stored value in column {column!r}") from None


def no_nul(row: tuple[Any, ...], columns: tuple[str, ...]) -> tuple[Any, ...]:
    """Refuse NUL characters in text (PostgreSQL cannot store them; both backends agree)."""
    for value, column in zip(row, columns, strict=True):
        if isinstance(value, str) and "\x00" in value:
            raise StoreError(f"text in column {column!r} contains a NUL character")
    return row


def finite(value: float, name: str) -> float:
    at = float(value)
    if not math.isfinite(at):
        raise ValueError(f"{name} must be a finite timestamp")
    return at


def json_text(value: Any, column: str) -> str:
    try:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise StoreError(f"{column} is not JSON-serializable: {exc}") from None


def json_value(text: Any, column: str) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except (TypeError, ValueError):
        raise StoreError(f"unreadable stored value in column {column!r}") from None
