"""Incremental WAV (RIFF) header parser for audio streamed by a subprocess (sans-I/O).

``espeak-ng --stdout`` writes a RIFF header whose sizes are placeholders (it does not know the
length in advance), then raw PCM as it synthesizes. :class:`WavStreamParser` takes bytes in any
pieces, reads the ``fmt `` chunk, skips other chunks, and from the ``data`` chunk on returns
PCM bytes untouched. The declared data size is ignored: the stream ends when the process does.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Final

__all__ = ["WavFormat", "WavFormatError", "WavStreamParser"]

_RIFF_HEADER: Final = 12
_CHUNK_HEADER: Final = 8
_PCM: Final = 1
_EXTENSIBLE: Final = 0xFFFE
_MAX_HEADER_BYTES: Final = 64 * 1024  # chunks before "data" larger than this are refused


class WavFormatError(ValueError):
    """The stream is not a 16-bit PCM WAV we can play."""


@dataclass(frozen=True, slots=True)
class WavFormat:
    sample_rate: int
    channels: int
    bits_per_sample: int

    def __post_init__(self) -> None:
        if not 1000 <= self.sample_rate <= 384_000:
            raise WavFormatError(f"implausible sample rate {self.sample_rate}")
        if self.channels != 1:
            raise WavFormatError(f"expected mono, got {self.channels} channels")
        if self.bits_per_sample != 16:
            raise WavFormatError(f"expected 16-bit samples, got {self.bits_per_sample}")


class WavStreamParser:
    """Feed WAV bytes; get PCM bytes back once the header has been read."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._consumed = 0  # header bytes consumed so far (bounded)
        self._riff_done = False
        self._skip = 0  # bytes of a non-data chunk still to skip
        self.format: WavFormat | None = None
        self.in_data = False

    def feed(self, data: bytes) -> bytes:
        """Return the PCM bytes contained in ``data`` (``b""`` while still in the header)."""
        if self.in_data:
            return data
        self._buf += data
        while not self.in_data:
            if not self._step():
                return b""
        pcm = bytes(self._buf)
        self._buf.clear()
        return pcm

    def _take(self, n: int) -> bytes:
        out = bytes(self._buf[:n])
        del self._buf[:n]
        self._consumed += n
        if self._consumed > _MAX_HEADER_BYTES:
            raise WavFormatError("no data chunk within the first 64 KiB")
        return out

    def _step(self) -> bool:
        """Advance one parsing step; False when more bytes are needed."""
        if not self._riff_done:
            if len(self._buf) < _RIFF_HEADER:
                return False
            head = self._take(_RIFF_HEADER)
            if head[:4] != b"RIFF" or head[8:12] != b"WAVE":
                raise WavFormatError("not a RIFF/WAVE stream")
            self._riff_done = True
            return True
        if self._skip:
            n = min(self._skip, len(self._buf))
            if n == 0:
                return False
            self._take(n)
            self._skip -= n
            return True
        if len(self._buf) < _CHUNK_HEADER:
            return False
        chunk_id, size = struct.unpack("<4sI", bytes(self._buf[:_CHUNK_HEADER]))
        if chunk_id == b"data":
            if self.format is None:
                raise WavFormatError("data chunk before fmt chunk")
            self._take(_CHUNK_HEADER)
            self.in_data = True
            return True
        if chunk_id == b"fmt ":
            if len(self._buf) < _CHUNK_HEADER + size:
                if size > _MAX_HEADER_BYTES:
                    raise WavFormatError("fmt chunk too large")
                return False
            self._take(_CHUNK_HEADER)
            body = self._take(size + (size & 1))[:size]
            if len(body) < 16:
                raise WavFormatError("fmt chunk too short")
            tag, channels, rate, _, _, bits = struct.unpack("<HHIIHH", body[:16])
            if tag not in (_PCM, _EXTENSIBLE):
                raise WavFormatError(f"unsupported WAV format tag {tag:#x}")
            self.format = WavFormat(rate, channels, bits)
            return True
        self._take(_CHUNK_HEADER)
        self._skip = size + (size & 1)
        return True
