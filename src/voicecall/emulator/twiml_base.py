"""Shared pieces of the emulator's TwiML parser: the error, attribute readers (pure)."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET

__all__ = ["LOOP_FOREVER", "METHODS", "Attrs", "TwimlError", "fail", "no_children", "text_of"]

# Twilio treats loop="0" as "repeat until the call ends"; the emulator caps it.
LOOP_FOREVER = 1000
METHODS = frozenset({"GET", "POST"})


class TwimlError(Exception):
    """The document cannot be executed. ``code`` is Twilio's error code (12100)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


def fail(message: str) -> TwimlError:
    return TwimlError(12100, message)


class Attrs:
    """Attribute reader that turns bad values into 12200 warnings and defaults."""

    def __init__(self, el: ET.Element, warnings: list[str]) -> None:
        self.el = el
        self.warnings = warnings

    def warn(self, name: str, value: str) -> None:
        self.warnings.append(f"12200: <{self.el.tag}> {name}={value!r} is not valid; default used")

    def get(self, name: str) -> str | None:
        value = self.el.get(name)
        return value if value else None

    def method(self, name: str = "method") -> str:
        value = self.el.get(name)
        if value is None:
            return "POST"
        if value.upper() not in METHODS:
            self.warn(name, value)
            return "POST"
        return value.upper()

    def number(self, name: str, default: float, *, minimum: float = 0.0) -> float:
        value = self.el.get(name)
        if value is None:
            return default
        try:
            num = float(value.strip())
        except ValueError:
            self.warn(name, value)
            return default
        if math.isnan(num) or num < minimum or num > 86_400:  # NaN or out of range
            self.warn(name, value)
            return default
        return num

    def integer(self, name: str, default: int, *, minimum: int = 0) -> int:
        value = self.el.get(name)
        if value is None:
            return default
        try:
            num = int(value.strip())
        except ValueError:
            self.warn(name, value)
            return default
        if num < minimum or num > 1_000_000:
            self.warn(name, value)
            return default
        return num

    def loop(self) -> int:
        n = self.integer("loop", 1)
        return LOOP_FOREVER if n == 0 else min(n, LOOP_FOREVER)

    def boolean(self, name: str, default: bool) -> bool:
        value = self.el.get(name)
        if value is None:
            return default
        if value.strip().lower() in {"true", "false"}:
            return value.strip().lower() == "true"
        self.warn(name, value)
        return default


def text_of(el: ET.Element) -> str:
    return " ".join("".join(el.itertext()).split())


def no_children(el: ET.Element) -> None:
    if len(el):
        raise fail(f"<{el.tag}> cannot contain <{el[0].tag}>")
