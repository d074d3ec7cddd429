"""The paced sender: every :class:`Player` on an event loop runs on one shared clock.

The :class:`Pacer` is pure; this is its clock. A task (or a timer) per stream, waking for each
message, costs a timer, a future and a task switch per message: 25 000 wake-ups a second for
500 streams of 20 ms messages. Instead one :class:`PlayoutTicker` per event loop keeps a timer
wheel of ``SLOT`` (5 ms) slots: a player with audio queued sits in the slot of its pacer's next
deadline, and one timer callback per slot sends, back to back, what every player of that slot
has due. Players are spread over the slots by their own timelines (each talk-spurt starts when
its audio arrives), so each wake-up carries a fraction of the streams. An idle player (nothing
queued) is in no slot and costs nothing.

Scheduling is absolute: the pacer's timeline, not the time of the last send, decides what is
due, so a late wake-up is caught up (everything overdue goes at once), never turned into drift.
A player is serviced at the start of its deadline's slot and sends what falls due within one
slot, i.e. at most ``SLOT`` early, never late by design (the lead, ~120 ms, absorbs early
audio). :meth:`Player.push` onto an idle pacer services the player on the next loop turn, so
audio starts as soon as the first TTS bytes arrive.

``emit`` is synchronous (it queues frames and writes them without awaiting; see
:func:`drive`), so one slow socket never holds the others' audio.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import weakref
from collections.abc import Callable, Coroutine
from typing import Any, Final

from voicecall.audio.pacer import Item, Pacer

__all__ = ["SLOT", "Emit", "Player", "PlayoutTicker", "drive"]

log = logging.getLogger("voicecall.voice")

SLOT: Final = 0.005
"""Seconds per ticker slot: the granularity of sends (audio goes out at most this early)."""

Emit = Callable[[list[Item], float], None]
"""Sends the due items; gets them and the loop time they were found due. Must not block."""


class PlayoutTicker:
    """The shared clock of every :class:`Player` on one event loop (see the module docs)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, slot: float = SLOT) -> None:
        if slot <= 0:
            raise ValueError("slot must be > 0")
        self._loop = loop
        self.slot: Final = slot
        self._origin = loop.time()
        self._wheel: dict[int, list[Player]] = {}
        self._keys: list[int] = []  # heap of the wheel's keys
        self._timer: asyncio.TimerHandle | None = None
        self._armed: int | None = None  # slot the timer fires for
        self._ticking = False  # servicing a slot: the timer is armed once, afterwards
        self.wakeups = 0
        """Timer callbacks run so far (one per busy slot)."""
        self.arms = 0
        """Timers set so far: at most one per wake-up (the players a slot serves reschedule
        themselves, the timer is then set once for the earliest of them) and one per player
        pushed onto an earlier slot between wake-ups."""

    @classmethod
    def for_loop(cls, loop: asyncio.AbstractEventLoop) -> PlayoutTicker:
        ticker = _tickers.get(loop)
        if ticker is None:
            ticker = _tickers[loop] = cls(loop)
        return ticker

    def __len__(self) -> int:
        """Players waiting in a slot."""
        return sum(1 for bucket in self._wheel.values() for p in bucket if p._slot is not None)

    def slot_of(self, deadline: float) -> int:
        """The slot whose start is the last one at or before ``deadline``."""
        return int((deadline - self._origin) // self.slot)

    def schedule(self, player: Player, deadline: float) -> None:
        """Service ``player`` in the slot of ``deadline`` (its previous slot is forgotten)."""
        key = self.slot_of(deadline)
        player._slot = key
        bucket = self._wheel.get(key)
        if bucket is None:
            self._wheel[key] = [player]
            heapq.heappush(self._keys, key)
        else:
            bucket.append(player)
        if not self._ticking and (self._armed is None or key < self._armed):
            self._arm(key)

    def _arm(self, key: int) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._armed = key
        self.arms += 1
        self._timer = self._loop.call_at(self._origin + key * self.slot, self._tick)

    def _tick(self) -> None:
        fired = self._armed
        self._timer = None
        self._armed = None
        self.wakeups += 1
        now = self._loop.time()
        current = self.slot_of(now)
        if fired is not None and fired > current:  # a timer may fire a hair early
            current = fired
        horizon = self._origin + (current + 1) * self.slot  # the end of this slot
        keys, wheel = self._keys, self._wheel
        self._ticking = True  # the players reschedule themselves: one timer for all, below
        try:
            while keys and keys[0] <= current:
                key = heapq.heappop(keys)
                for player in wheel.pop(key):
                    if player._slot == key:  # else rescheduled or closed since (a stale entry)
                        player._slot = None
                        player.service(now, horizon)
        finally:
            self._ticking = False
        if keys:
            self._arm(keys[0])


_tickers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, PlayoutTicker] = (
    weakref.WeakKeyDictionary()
)


class Player:
    """Runs a :class:`Pacer` on the loop's :class:`PlayoutTicker`; see the module docs."""

    def __init__(self, pacer: Pacer, emit: Emit, *, ticker: PlayoutTicker | None = None) -> None:
        self.pacer = pacer
        self._emit = emit
        self._loop = asyncio.get_running_loop()
        self._ticker = ticker if ticker is not None else PlayoutTicker.for_loop(self._loop)
        self._slot: int | None = None  # the ticker slot this player waits in
        self._kick: asyncio.Handle | None = None
        self._started = False
        self._closed = False
        self._seen_underruns = 0
        self.last_push = 0.0
        """When audio was last pushed (loop time): audio cannot be sent before it exists."""
        self.underruns = 0
        """Pacer underruns seen so far (the producer was slower than real time)."""

    @property
    def scheduled(self) -> bool:
        """Waiting for a ticker slot or a kick (audio or marks are queued)."""
        return self._slot is not None or self._kick is not None

    def start(self) -> None:
        if not self._started:
            self._started = True
            if not self.pacer.idle:
                self._wake()

    def push(self, ulaw: bytes, *, mark: str | None = None) -> None:
        """Queue audio (and a mark after it); an idle sender is woken on the next loop turn."""
        was_idle = self.pacer.idle
        self.pacer.push(ulaw, mark=mark)
        if ulaw:
            self.last_push = self._loop.time()
        if was_idle:
            self._wake()

    def clear(self) -> list[str]:
        """Drop queued audio and marks (barge-in); returns the dropped marks' names."""
        self._slot = None  # nothing left to send
        return self.pacer.clear()

    def now(self) -> float:
        return self._loop.time()

    async def aclose(self) -> None:
        self._closed = True
        self._slot = None
        if self._kick is not None:
            self._kick.cancel()
            self._kick = None

    def _wake(self) -> None:
        if self._started and not self._closed and self._kick is None:
            self._kick = self._loop.call_soon(self._kicked)

    def _kicked(self) -> None:
        self._kick = None
        self._slot = None
        now = self._loop.time()
        ticker = self._ticker
        self.service(now, ticker._origin + (ticker.slot_of(now) + 1) * ticker.slot)

    def service(self, now: float, horizon: float) -> None:
        """Send what falls due before ``horizon`` (the end of the ticker's current slot), then
        wait in the slot of the next deadline."""
        if self._closed:
            return
        pacer = self.pacer
        items = pacer.due(now, ahead=max(0.0, horizon - now))
        if items:
            try:
                self._emit(items, now)
            except Exception:  # one stream's failure must not stop the others
                log.exception("playout: sending failed")
            underruns = pacer.underruns
            if underruns != self._seen_underruns:
                self.underruns += underruns - self._seen_underruns
                self._seen_underruns = underruns
        if self._closed or self._kick is not None:
            return
        deadline = pacer.next_deadline(now)
        if deadline is not None:
            self._ticker.schedule(self, deadline)


def drive(coro: Coroutine[Any, Any, None]) -> asyncio.Task[None] | None:
    """Run ``coro`` now, synchronously, up to its first suspension.

    ``None`` when it finished without suspending (an ASGI ``send`` of a WebSocket frame
    normally does: it writes to the transport and returns). If it suspended (the socket's
    write buffer is full), the rest runs in a task, which is returned. Exceptions raised before
    the first suspension propagate here.
    """
    try:
        waiting = coro.send(None)
    except StopIteration:
        return None
    return asyncio.get_running_loop().create_task(_resume(coro, waiting))


async def _resume(coro: Coroutine[Any, Any, None], waiting: Any) -> None:
    """Finish a coroutine that :func:`drive` started and that yielded ``waiting``."""
    try:
        while True:
            if waiting is None:  # a bare yield (asyncio.sleep(0))
                await asyncio.sleep(0)
            else:  # a future it awaits: wait for it, the coroutine reads its outcome
                waiting._asyncio_future_blocking = False
                await asyncio.wait((waiting,))
            try:
                waiting = coro.send(None)
            except StopIteration:
                return
    except asyncio.CancelledError:
        coro.close()
        raise
