"""The recorder of one call's Media Streams: a :class:`~voicecall.calls.channel.MediaTap` that
places both tracks on the stream's clock (:class:`~voicecall.telephony.recording.StreamTape`)
and appends them to a stereo WAV as the call goes.

The tape runs on the event loop (a decode and a copy per frame); the file is written by one
writer thread per process, never on the event loop (a ``write`` can block for seconds when the
kernel throttles dirty pages on a busy disk). Every ``flush_every`` caller frames (50: one
second) what is final is handed to the writer, which appends it and rewrites the header (no
fsync: the bytes are then the kernel's, so a ``kill -9`` of the server keeps them; the header
describes everything up to that flush, and :func:`~voicecall.audio.stereo_wav.repair` fixes a
header a crash left stale). The end of a stream hands over everything; :meth:`WavTap.finish`
(the call's end) hands over the rest, fsyncs and closes. Disk errors stop the recording (once,
logged), never the call.
"""

from __future__ import annotations

import concurrent.futures
import logging
import queue
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Final, TypeVar

from voicecall.audio.stereo_wav import FRAME_BYTES, WavFile
from voicecall.telephony.recording import StreamTape, seconds_of

__all__ = ["WavTap"]

log = logging.getLogger("voicecall.recording")

T = TypeVar("T")


class _Writer:
    """The one thread that writes recordings (jobs run in the order they were given)."""

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def submit(self, job: Callable[[], T]) -> concurrent.futures.Future[T]:
        done: concurrent.futures.Future[T] = concurrent.futures.Future()

        def run() -> None:
            try:
                done.set_result(job())
            except BaseException as exc:  # handed to whoever waits
                done.set_exception(exc)

        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="voicecall-recordings", daemon=True
                )
                self._thread.start()
        self._jobs.put(run)
        return done

    def _run(self) -> None:
        while True:
            self._jobs.get()()


_WRITER: Final = _Writer()


class WavTap:
    def __init__(self, path: Path, *, flush_every: int = 50) -> None:
        """Open ``path``: a new file, or one a previous run left (appended to after it)."""
        self.path: Final = path
        self.wav = WavFile(path, resume=path.exists())
        self.tape = StreamTape()  # its position 0 is where the file ends now
        self._every = max(1, flush_every)
        self._count = 0
        self.failed: str | None = None
        self.closed = False

    @property
    def seconds(self) -> float:
        """Audio written to the file so far."""
        return seconds_of(self.wav.data_bytes // FRAME_BYTES)

    # -- MediaTap (on the event loop) ---------------------------------------------------------

    def stream_started(self, now: float) -> None:
        if not self.closed:
            self.tape.begin_stream(now)

    def inbound(self, timestamp_ms: int, ulaw: bytes, now: float) -> None:
        if self.closed:
            return
        self.tape.inbound(timestamp_ms, ulaw, now)
        self._count += 1
        if self._count >= self._every:
            self._count = 0
            self._hand_over(final=False)

    def outbound(self, position: int, ulaw: bytes, now: float) -> None:
        if not self.closed:
            self.tape.outbound(position, ulaw, now)

    def cleared(self, now: float) -> None:
        if not self.closed:
            self.tape.cleared(now)

    def stream_ended(self, now: float) -> None:
        """Everything so far goes to the file (another stream may follow)."""
        if not self.closed:
            self.tape.end_stream(now)
            self._hand_over(final=True)

    # -- the end ----------------------------------------------------------------------------

    def finish(self) -> concurrent.futures.Future[float]:
        """Stop recording (call it on the event loop): the rest is written, fsynced and the
        file closed by the writer; the future gives the recording's length in seconds."""
        if not self.closed:
            self._hand_over(final=True)
            self.closed = True
        return _WRITER.submit(self._close)

    def close(self) -> float:
        """:meth:`finish` and wait (off the event loop: tests, benchmarks)."""
        return self.finish().result()

    def written(self) -> None:
        """Wait until what was handed over is in the file (tests)."""
        _WRITER.submit(lambda: None).result()

    # -- the writer thread's side -------------------------------------------------------------

    def _hand_over(self, *, final: bool) -> None:
        if self.failed is not None:
            return
        try:
            data = self.tape.drain(final=final)
        except ValueError as exc:  # pragma: no cover - the tape hands out whole frames
            self._fail(exc)
            return
        _WRITER.submit(lambda: self._append(data))

    def _append(self, data: bytes) -> None:
        if self.failed is not None or self.wav.closed:
            return
        try:
            if data:
                self.wav.append(data)
            self.wav.flush(sync=False)
        except (OSError, ValueError) as exc:
            self._fail(exc)

    def _close(self) -> float:
        if not self.wav.closed:
            try:
                self.wav.close()  # flush(sync=True)
            except (OSError, ValueError) as exc:
                self._fail(exc)
        return self.seconds

    def _fail(self, exc: Exception) -> None:
        if self.failed is None:
            self.failed = f"{type(exc).__name__}: {exc}"
            log.error("recording %s stopped: %s", self.path, self.failed)
        self.closed = True
