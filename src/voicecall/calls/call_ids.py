"""Call ids as people type them: a unique prefix of at least :data:`MIN_PREFIX` characters.

:func:`resolve_call_id` is the one resolver every control API route with a call id uses, so the
CLI, the MCP server and the Python client all accept prefixes without knowing about them.
Full-length ids are passed through untouched (no extra query); a shorter text is looked up as a
prefix (at most two matches are read: one means unique, two ambiguous).
"""

from __future__ import annotations

import itertools
from typing import Final

from voicecall.calls.store.base import Store
from voicecall.errors import AmbiguousCallId, UnknownCall

__all__ = ["FULL_ID_LENGTH", "MIN_PREFIX", "resolve_call_id", "unique_prefix_length"]

MIN_PREFIX: Final = 6
"""Shortest prefix accepted in place of a call id."""
FULL_ID_LENGTH: Final = 32
"""Length of the ids :func:`voicecall.calls.model.new_call_id` makes (uuid4 hex)."""


async def resolve_call_id(store: Store, text: str) -> str:
    """The call id ``text`` names: itself when it is a full id, else the one id it prefixes.

    Raises :class:`UnknownCall` (404) when nothing matches (or a prefix is shorter than
    :data:`MIN_PREFIX`) and :class:`AmbiguousCallId` (409) when several calls match.
    """
    if len(text) >= FULL_ID_LENGTH:
        return text
    matches = await store.call_ids_with_prefix(text, limit=2) if len(text) >= MIN_PREFIX else []
    if text in matches:
        return text
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        raise AmbiguousCallId(
            f"call id prefix {text!r} matches more than one call; give more characters"
        )
    if len(text) < MIN_PREFIX:
        raise UnknownCall(
            f"no call with id {text!r} (a call id prefix needs at least {MIN_PREFIX} characters)"
        )
    raise UnknownCall(f"no call with id {text!r}")


def unique_prefix_length(ids: list[str], *, minimum: int = 12) -> int:
    """The shortest length (at least ``minimum``) at which the ``ids`` are pairwise distinct."""
    length = max(minimum, MIN_PREFIX)
    ordered = sorted(set(ids))
    for a, b in itertools.pairwise(ordered):
        common = 0
        for x, y in zip(a, b, strict=False):
            if x != y:
                break
            common += 1
        length = max(length, common + 1)
    longest = max((len(i) for i in ordered), default=length)
    return min(length, longest) if ordered else length
