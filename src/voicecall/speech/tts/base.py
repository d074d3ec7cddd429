"""The streaming TTS interface and the PCM → μ-law 8 kHz conversion every provider shares.

A provider turns text into G.711 μ-law, 8 kHz, mono bytes and yields them *as the engine produces
them*: the first chunk is out long before synthesis ends, so the call hears audio at once.
Chunks have no fixed size (the pacer frames them). Barge-in cancels the consuming task; the
provider's generator then stops its engine (kills the subprocess, closes the HTTP stream, or
tells the synthesis thread to stop) before the cancellation propagates.

Consume with :func:`contextlib.aclosing` when you may stop early without cancelling, so the
generator is closed at once rather than when it is garbage-collected::

    async with aclosing(tts.synthesize("Hello there.")) as audio:
        async for chunk in audio:
            pacer.push(chunk)
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Final, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from voicecall.audio.g711 import SAMPLE_RATE, ulaw_encode
from voicecall.audio.resample import StreamResampler

__all__ = ["PcmToUlaw", "TtsProvider", "pcm_stream_to_ulaw"]

_SAMPLE_WIDTH: Final = 2  # 16-bit little-endian PCM


@runtime_checkable
class TtsProvider(Protocol):
    """A streaming text-to-speech engine or service."""

    @property
    def name(self) -> str:
        """Short provider name as used in the configuration (``openai``, ``espeak`` …)."""
        ...

    def synthesize(self, text: str) -> AsyncIterator[bytes]:
        """Yield μ-law 8 kHz mono chunks of ``text`` as soon as the engine produces them.

        Implemented as an ``async def`` generator. Raises a
        :class:`~voicecall.speech.errors.SpeechError` subclass when the engine or service fails.
        """
        ...

    async def aclose(self) -> None:
        """Release the engine or HTTP client (idempotent)."""
        ...


class PcmToUlaw:
    """16-bit little-endian mono PCM at ``in_rate`` → μ-law 8 kHz, chunk by chunk.

    Byte chunks may split a sample (HTTP bodies arrive in arbitrary pieces): the odd byte is
    carried to the next chunk. :meth:`flush` ends one utterance, returning the resampler's tail.
    """

    def __init__(self, in_rate: int) -> None:
        self.in_rate: Final = in_rate
        self._resampler = StreamResampler(in_rate, SAMPLE_RATE)
        self._carry = b""

    def feed(self, pcm: bytes) -> bytes:
        """Convert one chunk of PCM bytes; may return ``b""`` while the filter fills."""
        data = self._carry + pcm
        usable = len(data) - len(data) % _SAMPLE_WIDTH
        self._carry = data[usable:]
        if usable == 0:
            return b""
        samples = np.frombuffer(data[:usable], dtype="<i2").astype(np.int16)
        return self.feed_samples(samples)

    def feed_samples(self, samples: npt.NDArray[np.int16] | npt.NDArray[np.float32]) -> bytes:
        """Convert int16 or float32 samples (already decoded)."""
        out = self._resampler.process(samples)
        return ulaw_encode(out) if out.size else b""

    def flush(self) -> bytes:
        """End the utterance: the filter tail (a trailing odd byte is dropped)."""
        self._carry = b""
        tail = self._resampler.flush()
        return ulaw_encode(tail) if tail.size else b""


async def pcm_stream_to_ulaw(chunks: AsyncIterator[bytes], in_rate: int) -> AsyncIterator[bytes]:
    """Re-yield a PCM byte stream at ``in_rate`` as μ-law 8 kHz, flushed at its end."""
    conv = PcmToUlaw(in_rate)
    async for chunk in chunks:
        out = conv.feed(chunk)
        if out:
            yield out
    tail = conv.flush()
    if tail:
        yield tail
