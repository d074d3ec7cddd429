"""One 20 ms clock for every Media Stream on the event loop.

A task per stream, each sleeping 20 ms and waking on its own, costs a timer, a future and a task
switch per frame: at 500 streams that is 25 000 wake-ups a second. Instead one ticker task wakes
:data:`SLOTS` times per 20 ms and, in each slot, calls ``tick()`` on every stream whose frame is
due, back to back. Streams are spread over the slots (a new stream takes the least crowded slot
within its first 20-40 ms), so each wake-up has about 1/SLOTS of the work and no burst holds all
frames.

Scheduling is absolute: a stream's n-th frame is due at ``t0 + n * 20 ms`` on the monotonic
clock, and a ticker that falls behind catches up (sends every overdue frame) rather than
skipping, so lateness accumulates visibly instead of being hidden. ``time.monotonic()`` is used
rather than ``loop.time()`` because uvloop's loop clock is cached per iteration in whole ms.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
import weakref
from typing import Protocol

from voicecall.emulator.lateness import LatenessHistogram

__all__ = ["FRAME_SECONDS", "SLOTS", "FrameTicker", "Ticking"]

FRAME_SECONDS = 0.020
SLOTS = 4

log = logging.getLogger("voicecall.emulator")


class Ticking(Protocol):
    """A stream driven by the ticker."""

    due: float  # monotonic time of its next frame; tick() advances it

    def tick(self) -> None: ...

    def tick_failed(self, exc: Exception) -> None: ...


_tickers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, FrameTicker] = (
    weakref.WeakKeyDictionary()
)


class FrameTicker:
    """The shared ticker of one event loop (see the module docstring)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, slots: int = SLOTS) -> None:
        self._loop = loop
        self._slots = slots
        self._slot_s = FRAME_SECONDS / slots
        self._origin = time.monotonic()
        self._buckets: list[list[Ticking]] = [[] for _ in range(slots)]
        self._count = 0
        self._task: asyncio.Task[None] | None = None
        self.wakeups = 0
        # Every frame's lateness since the owner last swapped it for a fresh one (a window).
        self.window = LatenessHistogram()

    @classmethod
    def for_loop(cls, loop: asyncio.AbstractEventLoop | None = None) -> FrameTicker:
        loop = loop or asyncio.get_running_loop()
        ticker = _tickers.get(loop)
        if ticker is None:
            ticker = _tickers[loop] = cls(loop)
        return ticker

    def __len__(self) -> int:
        return self._count

    def add(self, stream: Ticking) -> float:
        """Schedule ``stream``; returns (and sets) the due time of its first frame."""
        now = time.monotonic()
        first = math.ceil((now + FRAME_SECONDS - self._origin) / self._slot_s)
        k = min(
            range(first, first + self._slots), key=lambda j: len(self._buckets[j % self._slots])
        )
        stream.due = self._origin + k * self._slot_s
        self._buckets[k % self._slots].append(stream)
        self._count += 1
        if self._task is None or self._task.done():
            self._task = self._loop.create_task(self._run(), name="emulator-frame-ticker")
        return stream.due

    def remove(self, stream: Ticking) -> None:
        for bucket in self._buckets:
            try:
                bucket.remove(stream)
            except ValueError:
                continue
            self._count -= 1
            return

    async def _run(self) -> None:
        k = math.ceil((time.monotonic() - self._origin) / self._slot_s)
        while self._count:
            when = self._origin + k * self._slot_s
            delay = when - time.monotonic()
            while delay > 0:
                await asyncio.sleep(delay)
                delay = when - time.monotonic()
            self.wakeups += 1
            bucket = self._buckets[k % self._slots]
            horizon = when + 1e-6  # float error between t0 + n * 20 ms and origin + k * slot
            for stream in tuple(bucket):
                try:
                    while stream.due <= horizon:
                        stream.tick()
                except Exception as exc:  # one bad stream must not stop the others
                    log.exception("media stream tick failed")
                    self.remove(stream)
                    stream.tick_failed(exc)
            k += 1
