"""Two-track call recording as a stereo 16-bit 8 kHz WAV, written while the call goes on.

Left channel: the caller; right channel: the bot. Both are placed by **sample position on the
stream's clock** (8 kHz samples since the Media Stream started: Twilio's media ``timestamp`` in
ms × 8), so the tracks stay aligned whatever order the audio arrives in.

Pure core, :class:`StereoRecorder` (no file, no clock)::

    rec = StereoRecorder()
    rec.caller(pos, pcm)          # inbound audio: continuous; a gap is filled with silence
    rec.bot(pos, pcm)             # what the bot played, where it was played; silence elsewhere
    data = rec.drain()            # interleaved little-endian stereo frames, up to the watermark
    data = rec.drain(final=True)  # at the end: everything, up to the last sample written

The *watermark* is the caller track's end minus ``late_window_ms`` (1 s): bot audio may arrive
that late (marks are echoed after playout) or out of order and still land where it belongs.
Audio for positions already drained is dropped and counted in :attr:`StereoRecorder.stats`;
a write to a position already written but not drained replaces it (last write wins; use
:meth:`StereoRecorder.erase_bot` to blank audio that turned out not to have been played, e.g.
after a ``clear``). Writes further than ``max_ahead_ms`` (60 s) past the caller track's end are
refused with ``ValueError`` (bounded memory).

The WAV container: :func:`wav_header` writes a canonical 44-byte header; after each flush the
RIFF and data sizes are rewritten in place (:class:`WavFile`), so a crash leaves a file whose
header describes everything up to the last flush (readers ignore the trailing bytes after
it). :func:`repair` fixes a file whose header is stale (the process died between appending
and updating the sizes): the sizes then cover every whole frame on disk, and a torn last frame
is cut off. :func:`plan_repair` is the pure part of it.

Limits: PCM 16-bit only; one file holds at most 4 GiB of data (about 37 hours of 8 kHz stereo);
positions are plain sample counts (no wrap-around of Twilio's 32-bit ms timestamps, which
happens after 49 days).
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Final

import numpy as np
import numpy.typing as npt

from voicecall.audio.g711 import SAMPLE_RATE

__all__ = [
    "HEADER_BYTES",
    "MAX_DATA_BYTES",
    "RecorderStats",
    "RepairPlan",
    "StereoRecorder",
    "WavFile",
    "WavFormatError",
    "WavLayout",
    "parse_wav_header",
    "plan_repair",
    "repair",
    "wav_header",
]

CHANNELS: Final = 2
SAMPLE_BYTES: Final = 2
FRAME_BYTES: Final = CHANNELS * SAMPLE_BYTES  # one stereo sample frame
HEADER_BYTES: Final = 44
MAX_DATA_BYTES: Final = 0xFFFFFFFF - (HEADER_BYTES - 8)
_MS: Final = SAMPLE_RATE // 1000
_PCM: Final = 1


# -- the pure recorder -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RecorderStats:
    caller_samples: int
    """Caller samples accepted."""
    bot_samples: int
    """Bot samples accepted."""
    caller_gap_samples: int
    """Silence filled in where the caller track skipped ahead (lost media)."""
    late_caller_samples: int
    """Caller samples dropped: their position was already drained."""
    late_bot_samples: int
    """Bot samples dropped: their position was already drained (later than the window)."""
    emitted_frames: int
    """Stereo frames returned by :meth:`StereoRecorder.drain` so far."""


def _as_pcm(pcm: npt.NDArray[np.int16]) -> npt.NDArray[np.int16]:
    samples = np.asarray(pcm)
    if samples.dtype != np.int16 or samples.ndim != 1:
        raise TypeError(f"expected 1-D int16 samples, got {samples.dtype} {samples.shape}")
    return samples


class StereoRecorder:
    """Aligns caller and bot audio by sample position and hands out interleaved stereo PCM."""

    def __init__(
        self, late_window_ms: int = 1000, max_ahead_ms: int = 60_000, initial_ms: int = 4000
    ) -> None:
        """``initial_ms``: the buffer's starting size (it grows on demand, and drops what was
        drained when it runs out of room: it stays about twice the window plus what is ahead)."""
        if late_window_ms < 0:
            raise ValueError("late_window_ms must be >= 0")
        if max_ahead_ms <= 0 or initial_ms <= 0:
            raise ValueError("max_ahead_ms and initial_ms must be > 0")
        self.late_window: Final = late_window_ms * _MS
        self.max_ahead: Final = max_ahead_ms * _MS
        self._buf = np.zeros((initial_ms * _MS, CHANNELS), dtype=np.int16)
        self._base = 0  # the stream position of self._buf[0]; [base, emitted) is spent
        self._emitted = 0  # stereo frames drained so far
        self._caller_end = 0
        self._bot_end = 0
        self._caller_samples = 0
        self._bot_samples = 0
        self._gap = 0
        self._late_caller = 0
        self._late_bot = 0

    # -- writes --------------------------------------------------------------------------------

    def caller(self, pos: int, pcm: npt.NDArray[np.int16]) -> None:
        """Caller audio starting at stream position ``pos`` (usually where the last ended)."""
        samples = _as_pcm(pcm)
        if pos > self._caller_end:
            self._gap += pos - self._caller_end
        accepted = self._write(0, pos, samples)
        self._late_caller += samples.size - accepted
        self._caller_samples += accepted
        self._caller_end = max(self._caller_end, pos + samples.size)

    def bot(self, pos: int, pcm: npt.NDArray[np.int16]) -> None:
        """Bot audio that was played starting at stream position ``pos``."""
        samples = _as_pcm(pcm)
        accepted = self._write(1, pos, samples)
        self._late_bot += samples.size - accepted
        self._bot_samples += accepted
        self._bot_end = max(self._bot_end, pos + samples.size)

    def erase_bot(self, start: int, end: int | None = None) -> int:
        """Blank the bot track from ``start`` to ``end`` (default: all of it written so far),
        where not drained yet; returns how many samples were blanked."""
        stop = self._bot_end if end is None else end
        lo, hi = max(start, self._emitted), min(stop, self.end)
        if hi <= lo:
            return 0
        self._buf[lo - self._base : hi - self._base, 1] = 0
        return hi - lo

    # -- reads ---------------------------------------------------------------------------------

    @property
    def watermark(self) -> int:
        """Position up to which :meth:`drain` hands out audio now."""
        return max(self._emitted, self._caller_end - self.late_window)

    @property
    def emitted(self) -> int:
        """Stereo frames handed out so far (the position the next drain starts at)."""
        return self._emitted

    @property
    def end(self) -> int:
        """One past the last position written on either track."""
        return max(self._caller_end, self._bot_end)

    @property
    def stats(self) -> RecorderStats:
        return RecorderStats(
            caller_samples=self._caller_samples,
            bot_samples=self._bot_samples,
            caller_gap_samples=self._gap,
            late_caller_samples=self._late_caller,
            late_bot_samples=self._late_bot,
            emitted_frames=self._emitted,
        )

    def drain(self, final: bool = False) -> bytes:
        """Interleaved stereo int16 little-endian frames from :attr:`emitted` up to the
        watermark (``final``: up to :attr:`end`). Positions nobody wrote are silence."""
        stop = max(self.end, self._emitted) if final else self.watermark
        if stop <= self._emitted:
            return b""
        self._ensure(stop)
        frames = self._buf[self._emitted - self._base : stop - self._base]
        self._emitted = stop
        return frames.astype("<i2", copy=False).tobytes()

    # -- internals -----------------------------------------------------------------------------

    def _write(self, channel: int, pos: int, samples: npt.NDArray[np.int16]) -> int:
        """Place ``samples`` at ``pos``; returns how many landed (the rest was already drained)."""
        if pos < 0:
            raise ValueError(f"position must be >= 0, got {pos}")
        end = pos + samples.size
        limit = max(self._caller_end, self._emitted) + self.max_ahead
        if end > limit:
            raise ValueError(
                f"audio up to position {end} is more than {self.max_ahead // _MS} ms past the "
                f"caller track's end ({self._caller_end})"
            )
        skip = max(0, self._emitted - pos)
        if skip >= samples.size:
            return 0
        self._ensure(end)
        self._buf[pos + skip - self._base : end - self._base, channel] = samples[skip:]
        return samples.size - skip

    def _ensure(self, end: int) -> None:
        """Make room up to position ``end``: drop the spent head, grow if still short."""
        if end - self._base <= self._buf.shape[0]:
            return
        live_end = max(self.end, self._emitted)
        live = self._buf[self._emitted - self._base : live_end - self._base]
        size = self._buf.shape[0]
        while end - self._emitted > size // 2:  # keep at least half free after compacting
            size *= 2
        fresh = np.zeros((size, CHANNELS), dtype=np.int16)
        fresh[: live.shape[0]] = live
        self._buf = fresh
        self._base = self._emitted


# -- the WAV container (pure) ------------------------------------------------------------------


class WavFormatError(ValueError):
    """Not a WAV file this module can read or repair (names what is wrong)."""


def wav_header(
    data_bytes: int, channels: int = CHANNELS, rate: int = SAMPLE_RATE, bits: int = 16
) -> bytes:
    """A canonical 44-byte PCM WAV header for ``data_bytes`` of sample data."""
    if not 0 <= data_bytes <= MAX_DATA_BYTES:
        raise ValueError(f"data size must be within 0..{MAX_DATA_BYTES}, got {data_bytes}")
    if channels <= 0 or rate <= 0 or bits % 8 or bits <= 0:
        raise ValueError("channels, rate and bits must be positive (bits a multiple of 8)")
    block = channels * bits // 8
    return struct.pack(
        "<4sI4s4sIHHIIHH4sI",
        b"RIFF",
        HEADER_BYTES - 8 + data_bytes,
        b"WAVE",
        b"fmt ",
        16,
        _PCM,
        channels,
        rate,
        rate * block,
        block,
        bits,
        b"data",
        data_bytes,
    )


@dataclass(frozen=True, slots=True)
class WavLayout:
    channels: int
    rate: int
    bits: int
    data_offset: int
    """Where the sample data starts."""
    data_bytes: int
    """The data size the header declares."""
    riff_bytes: int
    """The RIFF size the header declares."""

    @property
    def block_align(self) -> int:
        return self.channels * self.bits // 8


def parse_wav_header(head: bytes) -> WavLayout:
    """Read the layout of a PCM WAV from its first bytes (the chunks up to ``data``)."""
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        raise WavFormatError("not a RIFF/WAVE file")
    riff = struct.unpack_from("<I", head, 4)[0]
    offset = 12
    fmt: tuple[int, int, int, int] | None = None
    while offset + 8 <= len(head):
        chunk_id = head[offset : offset + 4]
        size = struct.unpack_from("<I", head, offset + 4)[0]
        body = offset + 8
        if chunk_id == b"fmt ":
            if size < 16 or body + 16 > len(head):
                raise WavFormatError("fmt chunk is truncated")
            tag, channels, rate, _byte_rate, _block, bits = struct.unpack_from(
                "<HHIIHH", head, body
            )
            fmt = (tag, channels, rate, bits)
        elif chunk_id == b"data":
            if fmt is None:
                raise WavFormatError("data chunk before the fmt chunk")
            tag, channels, rate, bits = fmt
            if tag != _PCM or channels <= 0 or bits <= 0 or bits % 8:
                raise WavFormatError(f"unsupported format (tag {tag}, {channels} ch, {bits} bit)")
            return WavLayout(channels, rate, bits, body, size, riff)
        offset = body + size + (size & 1)
    raise WavFormatError("no data chunk in the header bytes")


@dataclass(frozen=True, slots=True)
class RepairPlan:
    """What :func:`repair` writes: the sizes, and where the file is cut (a torn last frame)."""

    data_bytes: int
    riff_bytes: int
    truncate_to: int
    data_size_offset: int
    """Where the data chunk's size field is."""
    frames: int
    """Whole sample frames the repaired file holds."""


def plan_repair(head: bytes, file_size: int) -> tuple[WavLayout, RepairPlan | None]:
    """The header fix a file of ``file_size`` bytes starting with ``head`` needs: ``None`` when
    its sizes already match what is on disk."""
    layout = parse_wav_header(head)
    available = max(0, file_size - layout.data_offset)
    data = min(available - available % layout.block_align, MAX_DATA_BYTES)
    data -= data % layout.block_align
    truncate_to = layout.data_offset + data
    riff = truncate_to - 8
    if data == layout.data_bytes and riff == layout.riff_bytes and truncate_to == file_size:
        return layout, None
    frames = data // layout.block_align
    return layout, RepairPlan(data, riff, truncate_to, layout.data_offset - 4, frames)


# -- the thin file adapter ----------------------------------------------------------------------


class WavFile:
    """A stereo 16-bit 8 kHz WAV on disk that grows by :meth:`append` and keeps its header true
    after every :meth:`flush`. Refuses to overwrite an existing file unless told to."""

    def __init__(
        self, path: str | os.PathLike[str], *, overwrite: bool = False, resume: bool = False
    ) -> None:
        """``resume``: append to an existing recording of this format (its header is
        repaired first if a crash left it stale); :class:`WavFormatError` if it is another."""
        self.path: Final = Path(path)
        if resume:
            repair(self.path)
            self._file: BinaryIO = open(self.path, "r+b")  # noqa: SIM115
            try:
                layout = parse_wav_header(self._file.read(4096))
                if (layout.channels, layout.rate, layout.bits, layout.data_offset) != (
                    CHANNELS,
                    SAMPLE_RATE,
                    8 * SAMPLE_BYTES,
                    HEADER_BYTES,
                ):
                    raise WavFormatError("not a stereo 16-bit 8 kHz recording of this module")
            except WavFormatError:
                self._file.close()
                raise
            self._file.seek(0, os.SEEK_END)
            self._data = self._declared = layout.data_bytes
            return
        self._file = open(self.path, "wb" if overwrite else "xb")  # noqa: SIM115
        self._file.write(wav_header(0))
        self._file.flush()
        self._data = 0
        self._declared = 0

    @property
    def data_bytes(self) -> int:
        """Sample bytes appended so far."""
        return self._data

    @property
    def closed(self) -> bool:
        return self._file.closed

    def append(self, data: bytes) -> None:
        """Append whole stereo frames (as :meth:`StereoRecorder.drain` returns them)."""
        if len(data) % FRAME_BYTES:
            raise ValueError(f"data must be whole {FRAME_BYTES}-byte stereo frames")
        if self._data + len(data) > MAX_DATA_BYTES:
            raise ValueError("the recording would exceed the WAV format's 4 GiB")
        self._file.write(data)
        self._data += len(data)

    def flush(self, *, sync: bool = False) -> None:
        """Write the data out, then the sizes that cover it (``sync``: fsync both steps)."""
        self._file.flush()
        if sync:
            os.fsync(self._file.fileno())
        if self._declared != self._data:
            # the whole canonical header in one positioned write (no seek: two system calls
            # per flush in all, which matters to a writer thread sharing the GIL)
            os.pwrite(self._file.fileno(), wav_header(self._data), 0)
            if sync:
                os.fsync(self._file.fileno())
            self._declared = self._data

    def close(self) -> None:
        if not self._file.closed:
            self.flush(sync=True)
            self._file.close()

    def __enter__(self) -> WavFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def repair(path: str | os.PathLike[str]) -> RepairPlan | None:
    """Make a crashed recording's header match its data (in place); ``None`` if it already did.

    Raises :class:`WavFormatError` for a file that is not a PCM WAV (or whose chunks before
    the data take more than 4 KiB). Changes nothing then."""
    p = Path(path)
    with open(p, "r+b") as f:
        head = f.read(4096)
        size = os.fstat(f.fileno()).st_size
        _layout, plan = plan_repair(head, size)
        if plan is None:
            return None
        if plan.truncate_to < size:
            f.truncate(plan.truncate_to)
        f.seek(4)
        f.write(struct.pack("<I", plan.riff_bytes))
        f.seek(plan.data_size_offset)
        f.write(struct.pack("<I", plan.data_bytes))
        f.flush()
        os.fsync(f.fileno())
    return plan
