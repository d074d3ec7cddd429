"""An in-process fan-out of call events to live subscribers (SSE, `voicecall tail`, the client).

Publishing never blocks: each subscriber has a bounded queue and a slow subscriber loses its
oldest items (and is told how many) rather than stalling calls.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

Event = dict[str, Any]


class EventBus:
    def __init__(self, *, queue_size: int = 1000) -> None:
        self._subscribers: set[asyncio.Queue[Event]] = set()
        self._queue_size = queue_size
        self.published = 0
        self.dropped = 0
        self._listeners: list[Callable[[Event], None]] = []

    def add_listener(self, listener: Callable[[Event], None]) -> None:
        """Call ``listener`` synchronously for every event (metrics); it must not block."""
        self._listeners.append(listener)

    def publish(self, event: Event) -> None:
        self.published += 1
        for listener in self._listeners:
            listener(event)
        for queue in list(self._subscribers):
            if queue.full():
                with contextlib.suppress(asyncio.QueueEmpty):
                    queue.get_nowait()  # the slow subscriber loses its oldest event
                self.dropped += 1
            queue.put_nowait(event)

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)

    @contextlib.asynccontextmanager
    async def subscribe(self) -> AsyncIterator[asyncio.Queue[Event]]:
        queue: asyncio.Queue[Event] = asyncio.Queue(self._queue_size)
        self._subscribers.add(queue)
        try:
            yield queue
        finally:
            self._subscribers.discard(queue)
