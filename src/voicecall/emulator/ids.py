"""Twilio-shaped identifiers (``CA`` + 32 hex digits), from a seedable source (pure)."""

from __future__ import annotations

import random
import re

__all__ = ["SID_RE", "IdSource"]

SID_RE = re.compile(r"^[A-Z]{2}[0-9a-f]{32}$")


class IdSource:
    """Makes sids. With a ``seed`` the sequence is reproducible (tests, fault replays)."""

    def __init__(self, seed: int | None = None) -> None:
        self._rng = random.Random(seed) if seed is not None else random.SystemRandom()

    def sid(self, prefix: str) -> str:
        if len(prefix) != 2 or not prefix.isalpha() or not prefix.isupper():
            raise ValueError("a sid prefix is two upper-case letters")
        return f"{prefix}{self._rng.getrandbits(128):032x}"
