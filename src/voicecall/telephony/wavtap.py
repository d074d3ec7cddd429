"""The recorder of one call's Media Streams: a :class:`~voicecall.voice.tap.MediaTap` that
places both tracks on the stream's clock (:class:`~voicecall.telephony.recording.StreamTape`)
and appends them to a stereo WAV as the call goes.

Every ``flush_every`` caller frames (50: one second) what is final is appended and the header
rewritten (no fsync: the bytes are in the operating system's hands, so a ``kill -9`` of the
server keeps them; the header describes everything up to that flush, and
:func:`~voicecall.audio.stereo_wav.repair` fixes a header a crash left stale). The end of a
stream and the end of the call write everything and fsync. Disk errors stop the recording (once,
logged), never the call.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Final

from voicecall.audio.stereo_wav import FRAME_BYTES, WavFile
from voicecall.telephony.recording import StreamTape, seconds_of

__all__ = ["WavTap"]

log = logging.getLogger("voicecall.recording")


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

    # -- MediaTap -------------------------------------------------------------------------------

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
            self._write(final=False, sync=False)

    def outbound(self, position: int, ulaw: bytes, now: float) -> None:
        if not self.closed:
            self.tape.outbound(position, ulaw, now)

    def cleared(self, now: float) -> None:
        if not self.closed:
            self.tape.cleared(now)

    def stream_ended(self, now: float) -> None:
        if not self.closed:
            self.tape.end_stream(now)
            self._write(final=True, sync=True)

    # -- the end ----------------------------------------------------------------------------

    def close(self) -> float:
        """Write everything, fsync, close; returns the recording's length in seconds."""
        if not self.closed:
            self._write(final=True, sync=False)
            self.closed = True
            try:
                self.wav.close()  # flush(sync=True)
            except OSError as exc:
                self._fail(exc)
        return self.seconds

    def _write(self, *, final: bool, sync: bool) -> None:
        if self.failed is not None:
            return
        try:
            data = self.tape.drain(final=final)
            if data:
                self.wav.append(data)
            self.wav.flush(sync=sync)
        except (OSError, ValueError) as exc:
            self._fail(exc)

    def _fail(self, exc: Exception) -> None:
        if self.failed is None:
            self.failed = f"{type(exc).__name__}: {exc}"
            log.error("recording %s stopped: %s", self.path, self.failed)
        self.closed = True
