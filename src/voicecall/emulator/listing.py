"""List filters and paging for the emulator's REST lists (pure).

Time filters as Twilio's Calls list takes them (and the official SDK sends them):
``StartTime=2024-05-01`` (that day, UTC), ``StartTime>=…``/``StartTime>`` (on or after),
``StartTime<=…``/``StartTime<`` (before), the same for ``EndTime`` and ``DateCreated``. Values are
``YYYY-MM-DD`` or ``YYYY-MM-DDTHH:MM:SSZ``; a date compares by day, a date-time by instant.
A call that has not started yet never matches a ``StartTime`` filter.

Paging: ``PageSize`` (1-1000) and ``Page``, plus Twilio's cursor ``PageToken``: every page's
``next_page_uri`` carries ``PageToken=PA<last sid of this page>``; a request with a token starts
right after that sid, so a list that grows while it is read is neither repeated nor skipped.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, date, datetime
from typing import Any

__all__ = ["ListError", "page_after", "time_filters"]

TIME_FIELDS = ("StartTime", "EndTime", "DateCreated")


class ListError(ValueError):
    """A list query parameter is malformed (one line)."""


def _parse(name: str, value: str) -> tuple[date | None, datetime | None]:
    v = value.strip()
    try:
        if len(v) == 10:
            return date.fromisoformat(v), None
        dt = datetime.fromisoformat(v.replace("Z", "+00:00"))
    except ValueError:
        raise ListError(f"{name}: {value!r} is not YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ") from None
    return None, dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def _cmp(a: Any, b: Any, op: str) -> bool:
    if op == "":
        return bool(a == b)
    if op in (">", ">="):
        return bool(a >= b)
    return bool(a < b) if op == "<" else bool(a <= b)


def _one(name: str, op: str, value: str) -> Callable[[float | None], bool]:
    day, instant = _parse(name + op, value)

    def test(ts: float | None) -> bool:
        if ts is None:
            return False
        when = datetime.fromtimestamp(ts, UTC)
        if day is not None:
            return _cmp(when.date(), day, op)
        assert instant is not None
        if op == "":
            return when.date() == instant.date()
        return _cmp(when, instant, op)

    return test


def time_filters(query: Mapping[str, str]) -> list[tuple[str, Callable[[float | None], bool]]]:
    """``(field, predicate)`` for every time filter in ``query``. Raises :class:`ListError`."""
    out: list[tuple[str, Callable[[float | None], bool]]] = []
    for key, value in query.items():
        for name in TIME_FIELDS:
            if key.startswith(name):
                op = key[len(name) :]
                if op not in ("", ">", "<", ">=", "<="):
                    raise ListError(f"unknown filter {key!r}")
                out.append((name, _one(name, op, value)))
    return out


def page_after(
    rows: Sequence[dict[str, Any]], *, page: int, page_size: int, token: str | None
) -> tuple[list[dict[str, Any]], str | None]:
    """The page's rows and the token for the next one. Raises :class:`ListError`."""
    if token:
        if not token.startswith("PA"):
            raise ListError(f"PageToken {token!r} is not one this API gave out")
        after = token[2:]
        sids = [r["sid"] for r in rows]
        if after not in sids:
            raise ListError(f"PageToken {token!r} does not point into this list")
        start = sids.index(after) + 1
    else:
        start = page * page_size
    chunk = list(rows[start : start + page_size])
    more = start + len(chunk) < len(rows)
    return chunk, ("PA" + chunk[-1]["sid"]) if chunk and more else None
