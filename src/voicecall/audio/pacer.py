"""A pure playout scheduler for outbound μ-law audio on a Twilio Media Stream.

No clock, no task, no socket: the I/O loop passes a monotonic ``now`` (seconds) and sends what
:meth:`Pacer.due` returns, then sleeps until :meth:`Pacer.next_deadline`::

    pacer.push(ulaw_bytes, mark="utt-7")          # from the TTS side, any size
    ...
    for item in pacer.due(time.monotonic()):      # in the sender loop
        if isinstance(item, Chunk): session.send_media(item.payload)
        else:                       session.send_mark(item.name)
    deadline = pacer.next_deadline(time.monotonic())   # None: wait for the next push

Timeline (absolute, like aiortc's ``AudioStreamTrack``): a *talk-spurt* starts at ``t0``, the
first ``due()``/``next_deadline()`` call after audio is pushed onto an idle pacer. The message
starting ``b`` bytes into the spurt is due at ``t0 + b / 8000 - lead``, so the first ``lead_ms``
of audio goes out at once (Twilio's buffer absorbs event-loop stalls) and from then on the pacer
stays ``lead_ms`` ahead of playout. Send times never depend on when the previous message was
actually sent, so lateness never accumulates into drift; after a stall every overdue message is
returned at once (a *catch-up*).

When the queue runs dry the spurt stays alive until its audio has finished playing
(``t0 + spurt_bytes / 8000``): audio pushed before then continues the same timeline seamlessly.
Audio pushed later starts a new spurt. Running dry before the audio pushed so far ended with a
mark counts as an *underrun* (the producer was slower than real time mid-utterance).

Messages are ``message_ms`` long (a multiple of the 20 ms frame). A message is shorter only when
a mark follows it (utterance end) or when its send time has come and no more audio is queued.

Marks: ``push(..., mark=name)`` queues a mark after the audio; it is returned right after the
last message before it, so Twilio echoes it when that audio has played. With
``mark_every_ms`` the pacer also emits periodic marks (``periodic=True``) so that "what the
caller heard" is known from the echoes. Every mark carries ``position``: the number of audio
bytes sent before it since the pacer was created.

Bounded queue (decision): :meth:`Pacer.push` raises :class:`PacerQueueFull` and queues nothing
when the audio would exceed ``max_queue_ms``. Silently dropping speech would be worse than a loud
error; producers apply back-pressure with :attr:`Pacer.free_bytes` before pushing.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Final

from voicecall.audio.g711 import BYTES_PER_SECOND, FRAME_MS
from voicecall.errors import VoicecallError

__all__ = [
    "Chunk",
    "Item",
    "MarkPoint",
    "Pacer",
    "PacerQueueFull",
    "PacerStats",
]

_BYTES_PER_MS: Final = BYTES_PER_SECOND // 1000  # 8
_TOLERANCE_S: Final = 1e-6  # float slack when comparing times


class PacerQueueFull(VoicecallError):
    """Pushing this audio would exceed the pacer's ``max_queue_ms``; nothing was queued."""


@dataclass(frozen=True, slots=True)
class Chunk:
    """One outbound media message: raw μ-law bytes to send now."""

    payload: bytes
    position: int
    """Bytes of audio sent before this chunk since the pacer was created."""
    due: float
    """When it was scheduled (monotonic seconds)."""

    def __post_init__(self) -> None:
        if not self.payload:
            raise ValueError("a chunk carries at least one byte")
        if self.position < 0:
            raise ValueError("position must be >= 0")


@dataclass(frozen=True, slots=True)
class MarkPoint:
    """A mark to send now; Twilio echoes it once the audio before it has played."""

    name: str
    position: int
    """Bytes of audio sent before this mark since the pacer was created."""
    periodic: bool = False

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("mark name must not be empty")
        if self.position < 0:
            raise ValueError("position must be >= 0")


Item = Chunk | MarkPoint


@dataclass(frozen=True, slots=True)
class PacerStats:
    messages_sent: int = 0
    bytes_sent: int = 0
    marks_sent: int = 0
    spurts: int = 0
    """Talk-spurts started (timeline restarts)."""
    underruns: int = 0
    """Spurts that ran dry mid-utterance (no mark at the end) and had to restart."""
    catch_ups: int = 0
    """``due()`` calls that returned at least one message late by more than one message."""
    late_messages: int = 0
    """Messages sent more than ``message_ms`` after their due time."""
    max_lateness_ms: float = 0.0
    bytes_dropped: int = 0
    """Audio discarded by ``clear()``."""


@dataclass(slots=True)
class _QueuedMark:
    name: str


class Pacer:
    """Schedules queued μ-law audio and marks on an absolute timeline; see the module docs."""

    def __init__(
        self,
        frame_ms: int = FRAME_MS,
        lead_ms: int = 120,
        message_ms: int = FRAME_MS,
        max_queue_ms: int = 60_000,
        mark_every_ms: int | None = None,
        periodic_mark_prefix: str = "vc-tick-",
    ) -> None:
        if frame_ms != FRAME_MS:
            raise ValueError(f"frame_ms must be {FRAME_MS} (Twilio's μ-law frame)")
        if message_ms <= 0 or message_ms % frame_ms:
            raise ValueError(f"message_ms must be a positive multiple of {frame_ms}")
        if lead_ms < 0:
            raise ValueError("lead_ms must be >= 0")
        if max_queue_ms < message_ms:
            raise ValueError("max_queue_ms must hold at least one message")
        if mark_every_ms is not None and (mark_every_ms <= 0 or mark_every_ms % message_ms):
            raise ValueError("mark_every_ms must be a positive multiple of message_ms")
        if not periodic_mark_prefix:
            raise ValueError("periodic_mark_prefix must not be empty")
        self.frame_ms: Final = frame_ms
        self.lead_ms: Final = lead_ms
        self.message_ms: Final = message_ms
        self.max_queue_ms: Final = max_queue_ms
        self.mark_every_ms: Final = mark_every_ms
        self.periodic_mark_prefix: Final = periodic_mark_prefix
        self.message_bytes: Final = message_ms * _BYTES_PER_MS
        self._max_bytes = max_queue_ms * _BYTES_PER_MS
        self._lead_s = lead_ms / 1000.0
        self._message_s = message_ms / 1000.0
        self._every_bytes = None if mark_every_ms is None else mark_every_ms * _BYTES_PER_MS

        self._queue: deque[bytes | _QueuedMark] = deque()
        self._head_offset = 0  # bytes already taken from self._queue[0] when it is audio
        self._bytes_queued = 0
        # current talk-spurt
        self._t0: float | None = None
        self._spurt_bytes = 0  # bytes sent in the current spurt
        self._ended_with_mark = True  # the last item sent was a mark (clean utterance end)
        self._drained = False  # every queued audio byte of the spurt has been sent
        self._position = 0  # bytes sent since creation
        self._periodic_count = 0
        # stats
        self._messages_sent = 0
        self._marks_sent = 0
        self._spurts = 0
        self._underruns = 0
        self._catch_ups = 0
        self._late_messages = 0
        self._max_lateness = 0.0
        self._bytes_dropped = 0

    # -- producer side -------------------------------------------------------------------------

    def push(self, ulaw: bytes, *, mark: str | None = None) -> None:
        """Queue μ-law audio (any length, possibly empty) and then, if given, a mark.

        Raises :class:`PacerQueueFull` (queuing nothing) beyond ``max_queue_ms``.
        """
        if mark is not None and not mark:
            raise ValueError("mark name must not be empty")
        if self._bytes_queued + len(ulaw) > self._max_bytes:
            raise PacerQueueFull(
                f"pacer queue full: {self._bytes_queued} bytes queued, {len(ulaw)} more would "
                f"exceed max_queue_ms={self.max_queue_ms}"
            )
        if ulaw:
            self._queue.append(bytes(ulaw))
            self._bytes_queued += len(ulaw)
        if mark is not None:
            self._queue.append(_QueuedMark(mark))

    def clear(self) -> list[str]:
        """Drop all queued audio and marks (barge-in); returns the dropped marks' names in order.

        The timeline ends too: Twilio's buffer is cleared alongside, so the next push starts a
        new talk-spurt.
        """
        dropped = [entry.name for entry in self._queue if isinstance(entry, _QueuedMark)]
        self._bytes_dropped += self._bytes_queued
        self._queue.clear()
        self._head_offset = 0
        self._bytes_queued = 0
        self._t0 = None
        self._spurt_bytes = 0
        self._drained = False
        self._ended_with_mark = True
        return dropped

    @property
    def bytes_queued(self) -> int:
        """Audio bytes waiting to be sent."""
        return self._bytes_queued

    @property
    def queued_ms(self) -> float:
        return self._bytes_queued / _BYTES_PER_MS

    @property
    def free_bytes(self) -> int:
        """How many more audio bytes :meth:`push` accepts right now."""
        return self._max_bytes - self._bytes_queued

    @property
    def idle(self) -> bool:
        """Nothing queued (audio or marks)."""
        return not self._queue

    # -- sender side ---------------------------------------------------------------------------

    def playout_end(self) -> float | None:
        """When the audio sent in the current talk-spurt finishes playing (None: no spurt yet).

        Nominal: assumes Twilio played without gaps since the spurt started."""
        if self._t0 is None:
            return None
        return self._t0 + self._spurt_bytes / BYTES_PER_SECOND

    def next_deadline(self, now: float) -> float | None:
        """When :meth:`due` next has something to return (may be <= now), or None when idle."""
        if not self._queue:
            return None
        self._ensure_spurt(now)
        if isinstance(self._queue[0], _QueuedMark):
            return now
        return self._due_time()

    def due(self, now: float, *, ahead: float = 0.0) -> list[Item]:
        """Every chunk and mark whose send time has come, in order.

        ``ahead`` (seconds): also return what falls due before ``now + ahead`` (a sender that
        wakes on a coarse grid sends slightly early rather than late; the lead absorbs it).
        ``now`` stays the clock of the timeline (a new talk-spurt starts at ``now``).
        """
        queue = self._queue
        if not queue:
            return []
        self._ensure_spurt(now)
        horizon = now + ahead
        items: list[Item] = []
        late_here = False
        every = self._every_bytes
        limit = self._message_s + _TOLERANCE_S
        while queue:
            head = queue[0]
            if type(head) is _QueuedMark:
                queue.popleft()
                items.append(MarkPoint(head.name, self._position))
                self._marks_sent += 1
                self._ended_with_mark = True
                continue
            due_at = self._due_time()
            if due_at > horizon:
                break
            payload = self._take_message()
            size = len(payload)
            position = self._position
            items.append(Chunk(payload, position, due_at))
            start = self._t0
            assert start is not None, "audio queued without a talk-spurt"
            lateness = now - (due_at if due_at > start else start)
            if lateness > 0.0:
                if lateness > limit:
                    self._late_messages += 1
                    late_here = True
                if lateness * 1000.0 > self._max_lateness:
                    self._max_lateness = lateness * 1000.0
            self._messages_sent += 1
            self._ended_with_mark = False
            before = self._spurt_bytes
            self._spurt_bytes = before + size
            self._position = position = position + size
            if self._bytes_queued == 0:
                self._drained = True
            if every is not None and (before + size) // every > before // every:
                self._periodic_count += 1
                items.append(
                    MarkPoint(
                        f"{self.periodic_mark_prefix}{self._periodic_count}",
                        position,
                        periodic=True,
                    )
                )
                self._marks_sent += 1
        if late_here:
            self._catch_ups += 1
        return items

    @property
    def underruns(self) -> int:
        """:attr:`PacerStats.underruns`, without building the stats."""
        return self._underruns

    @property
    def stats(self) -> PacerStats:
        return PacerStats(
            messages_sent=self._messages_sent,
            bytes_sent=self._position,
            marks_sent=self._marks_sent,
            spurts=self._spurts,
            underruns=self._underruns,
            catch_ups=self._catch_ups,
            late_messages=self._late_messages,
            max_lateness_ms=self._max_lateness,
            bytes_dropped=self._bytes_dropped,
        )

    def __repr__(self) -> str:
        return (
            f"Pacer(lead_ms={self.lead_ms}, message_ms={self.message_ms}, "
            f"queued_ms={self.queued_ms:.0f}, spurt_bytes={self._spurt_bytes})"
        )

    # -- internals -----------------------------------------------------------------------------

    def _ensure_spurt(self, now: float) -> None:
        """Start a talk-spurt at ``now`` if audio is queued and no spurt is running.

        A spurt whose queue ran dry continues while its audio is still playing; a stall with
        audio still queued never restarts the timeline (the overdue audio is caught up instead).
        """
        if self._bytes_queued == 0:
            return  # only marks queued: no timeline needed
        if self._t0 is not None:
            if not self._drained:
                return
            end = self._t0 + self._spurt_bytes / BYTES_PER_SECOND
            if now < end:
                self._drained = False
                return
            if not self._ended_with_mark:
                self._underruns += 1
        self._t0 = now
        self._spurt_bytes = 0
        self._drained = False
        self._ended_with_mark = True
        self._spurts += 1

    def _spurt_start(self) -> float:
        assert self._t0 is not None, "audio queued without a talk-spurt"
        return self._t0

    def _due_time(self) -> float:
        assert self._t0 is not None, "audio queued without a talk-spurt"
        return self._t0 + self._spurt_bytes / BYTES_PER_SECOND - self._lead_s

    def _take_message(self) -> bytes:
        """Up to ``message_bytes`` of contiguous audio from the head, stopping at a mark."""
        parts: list[bytes] = []
        need = self.message_bytes
        while need and self._queue:
            head = self._queue[0]
            if isinstance(head, _QueuedMark):
                break
            available = len(head) - self._head_offset
            take = min(need, available)
            parts.append(head[self._head_offset : self._head_offset + take])
            need -= take
            if take == available:
                self._queue.popleft()
                self._head_offset = 0
            else:
                self._head_offset += take
        payload = b"".join(parts)
        self._bytes_queued -= len(payload)
        return payload
