"""A call's webhook requests (sans-I/O): request ids, and the TwiML fetches still waiting for
their answer (a late answer to an abandoned fetch is ignored)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from voicecall.emulator.simtypes import HttpRequest, Purpose


@dataclass(slots=True)
class Pending:
    """A request whose answer is TwiML for the call (or an error ending it)."""

    purpose: Purpose
    url: str


class Requests:
    def __init__(self) -> None:
        self._ids = 0
        self._pending: dict[int, Pending] = {}

    def new_id(self) -> int:
        self._ids += 1
        return self._ids

    def fetch(
        self, purpose: Purpose, url: str, method: str, params: Sequence[tuple[str, str]]
    ) -> HttpRequest:
        """A request whose answer the call waits for (see :meth:`answered`)."""
        rid = self.new_id()
        self._pending[rid] = Pending(purpose, url)
        return HttpRequest(rid, purpose, url, method, tuple(params))

    def notify(
        self, purpose: Purpose, url: str, method: str, params: Sequence[tuple[str, str]]
    ) -> HttpRequest:
        """A webhook that expects no TwiML (callbacks)."""
        return HttpRequest(self.new_id(), purpose, url, method, tuple(params))

    def answered(self, request_id: int) -> Pending | None:
        """The waiting request ``request_id`` is answered (``None``: nobody waits for it)."""
        return self._pending.pop(request_id, None)

    def drop_twiml(self) -> None:
        """The document changed: answers to earlier TwiML fetches are not waited for."""
        self._pending = {k: v for k, v in self._pending.items() if not v.purpose.expects_twiml}

    def clear(self) -> None:
        self._pending.clear()
