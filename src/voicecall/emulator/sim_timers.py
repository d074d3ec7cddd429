"""A call's named timers (sans-I/O): starting one returns the :class:`StartTimer` action for the
I/O layer; a firing counts only if it carries the token of the timer's latest start."""

from __future__ import annotations

from voicecall.emulator.simtypes import StartTimer


class Timers:
    def __init__(self) -> None:
        self._tokens = 0
        self._armed: dict[str, int] = {}

    def start(self, name: str, at: float) -> StartTimer:
        """(Re)arm ``name`` to fire at ``at``; an earlier start of it no longer counts."""
        self._tokens += 1
        self._armed[name] = self._tokens
        return StartTimer(name, self._tokens, at)

    def take(self, name: str, token: int) -> bool:
        """Whether a firing of ``name`` with ``token`` is due (and disarm it)."""
        if self._armed.get(name) != token:
            return False
        del self._armed[name]
        return True

    def cancel(self, *names: str) -> None:
        for name in names:
            self._armed.pop(name, None)

    def clear(self) -> None:
        self._armed.clear()
