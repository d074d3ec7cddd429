"""Bot lines said by updating the call are said one after another, each to its end.

Without a media stream a bot line reaches the caller as a call update (REST ``redirect``: the
line's TwiML replaces what the call is running). Twilio stops the verb an update interrupts at
once, so an agent's ``speak`` followed at once by ``continue`` or ``end`` would cut the spoken
line after a few milliseconds. :class:`LineOrder` keeps a call's line updates in order: the next
one waits until the line before it was heard, which the provider tells us by requesting the
``<Redirect>`` that follows the line's ``<Say>`` (``kind=hold`` with the line's ``seq``), or,
if that request never comes, until the line's generous expected end.

Lines on a media stream never go through here: the stream plays its utterances in order.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

log = logging.getLogger("voicecall.calls")

__all__ = ["LineOrder"]


@dataclass(slots=True)
class _Saying:
    seq: int
    until: float  # loop time by which it should have been heard
    heard: asyncio.Event = field(default_factory=asyncio.Event)


class LineOrder:
    """One call's line updates, in order (process-local, like the rest of ``LiveCall``)."""

    __slots__ = ("_heard_upto", "_lock", "_saying")

    def __init__(self) -> None:
        self._lock = asyncio.Lock()  # FIFO: updates go out in the order they were asked for
        self._saying: _Saying | None = None
        # the last line reported heard (a short line may be over before its update's REST
        # call has returned; line numbers only grow)
        self._heard_upto = -1

    @asynccontextmanager
    async def turn(self) -> AsyncIterator[None]:
        """Wait for the lines before (each until heard, or its expected end), then hold the
        turn while the next update is sent (and marked with :meth:`saying`)."""
        async with self._lock:
            saying = self._saying
            if saying is not None:
                await _heard_or_over(saying)
                if self._saying is saying:
                    self._saying = None
            yield

    def saying(self, seq: int, seconds: float) -> None:
        """The update just sent says stored line ``seq``, which should be over in ``seconds``."""
        if seq <= self._heard_upto:
            return  # heard already
        until = asyncio.get_running_loop().time() + seconds
        self._saying = _Saying(seq, until)

    def heard(self, seq: int) -> None:
        """The provider is past line ``seq``: an update waiting behind it may go."""
        self._heard_upto = max(self._heard_upto, seq)
        saying = self._saying
        if saying is not None and saying.seq == seq:
            saying.heard.set()

    def release(self) -> None:
        """The call ended: nobody waits for its line any more."""
        if self._saying is not None:
            self._saying.heard.set()
            self._saying = None


async def _heard_or_over(saying: _Saying) -> None:
    remaining = saying.until - asyncio.get_running_loop().time()
    if saying.heard.is_set() or remaining <= 0:
        return
    try:
        await asyncio.wait_for(saying.heard.wait(), remaining)
    except TimeoutError:
        log.info("line %d: not reported heard by its expected end; the next one goes", saying.seq)
