"""Strict readers for script mappings (pure): every problem is one line naming where it is.

``Fields(data, "human.rules[2]")`` reads typed values and, with :meth:`Fields.done`, refuses any
key it was not asked about, so a typo in a script is an error at load, never a silent default.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

__all__ = ["Fields", "ScriptError"]


class ScriptError(ValueError):
    """A script is malformed (the test or operator who wrote it is at fault)."""


class Fields:
    def __init__(self, data: Any, where: str) -> None:
        if not isinstance(data, Mapping):
            raise ScriptError(f"{where}: must be a mapping, got {type(data).__name__}")
        bad = [k for k in data if not isinstance(k, str)]
        if bad:
            raise ScriptError(f"{where}: keys must be strings, got {bad[0]!r}")
        self.data: Mapping[str, Any] = data
        self.where = where
        self._seen: set[str] = set()

    def path(self, key: str) -> str:
        return f"{self.where}.{key}" if self.where else key

    def has(self, key: str) -> bool:
        self._seen.add(key)
        return key in self.data and self.data[key] is not None

    def raw(self, key: str) -> Any:
        self._seen.add(key)
        return self.data.get(key)

    def text(self, key: str, default: str | None = None, *, required: bool = False) -> str | None:
        value = self.raw(key)
        if value is None:
            if required:
                raise ScriptError(f"{self.path(key)}: is required")
            return default
        if not isinstance(value, str):
            raise ScriptError(f"{self.path(key)}: must be a string")
        if required and not value.strip():
            raise ScriptError(f"{self.path(key)}: must not be empty")
        return value

    def number(
        self, key: str, default: float, *, minimum: float = 0.0, maximum: float = math.inf
    ) -> float:
        value = self.raw(key)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ScriptError(f"{self.path(key)}: must be a number")
        if not math.isfinite(value) or not minimum <= value <= maximum:
            raise ScriptError(f"{self.path(key)}: must be within {minimum:g}..{maximum:g}")
        return float(value)

    def integer(self, key: str, default: int, *, minimum: int = 0, maximum: int = 10**9) -> int:
        value = self.number(key, default, minimum=minimum, maximum=maximum)
        if value != int(value):
            raise ScriptError(f"{self.path(key)}: must be a whole number")
        return int(value)

    def boolean(self, key: str, default: bool) -> bool:
        value = self.raw(key)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise ScriptError(f"{self.path(key)}: must be true or false")
        return value

    def texts(self, key: str) -> tuple[str, ...]:
        """A list of non-empty strings (a single string is accepted as a list of one)."""
        value = self.raw(key)
        if value is None:
            return ()
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ScriptError(f"{self.path(key)}: must be a list of strings")
        if any(not v.strip() for v in value):
            raise ScriptError(f"{self.path(key)}: strings must not be empty")
        return tuple(value)

    def choice(self, key: str, allowed: tuple[str, ...], default: str | None) -> str | None:
        value = self.raw(key)
        if value is None:
            return default
        if value not in allowed:
            raise ScriptError(f"{self.path(key)}: must be one of {list(allowed)}, got {value!r}")
        return str(value)

    def done(self) -> None:
        unknown = sorted(set(self.data) - self._seen)
        if unknown:
            raise ScriptError(f"{self.where or 'script'}: unknown keys {unknown}")
