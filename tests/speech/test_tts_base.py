"""PCM → μ-law conversion and the streamed WAV header parser."""

from __future__ import annotations

import contextlib
import struct

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from voicecall.audio.g711 import ulaw_decode
from voicecall.speech.tts.base import PcmToUlaw
from voicecall.speech.tts.wav import WavFormatError, WavStreamParser


def wav_header(
    rate: int = 22050, *, bits: int = 16, channels: int = 1, extra: bytes = b""
) -> bytes:
    fmt = struct.pack("<HHIIHH", 1, channels, rate, rate * 2, 2, bits)
    return (
        b"RIFF" + struct.pack("<I", 0x7FFFFFFF) + b"WAVE"
        + b"fmt " + struct.pack("<I", len(fmt)) + fmt
        + extra
        + b"data" + struct.pack("<I", 0x7FFFFFFF)
    )  # fmt: skip


def test_pcm_to_ulaw_carries_odd_bytes_and_flushes_the_tail() -> None:
    samples = (np.sin(np.arange(24_000) * 2 * np.pi * 440 / 24_000) * 10_000).astype("<i2")
    data = samples.tobytes()
    conv = PcmToUlaw(24_000)
    out = b"".join(conv.feed(data[i : i + 333]) for i in range(0, len(data), 333)) + conv.flush()
    assert len(out) == 8000  # exactly one second at 8 kHz, nothing lost at the end
    decoded = ulaw_decode(out).astype(np.float64)
    assert np.sqrt(np.mean(decoded[-400:] ** 2)) > 5000  # the tail is audio, not padding


def test_pcm_to_ulaw_8k_passthrough_is_exact_length() -> None:
    conv = PcmToUlaw(8000)
    out = conv.feed(np.zeros(800, "<i2").tobytes()) + conv.flush()
    assert out == b"\xff" * 800


def test_wav_parser_reads_format_and_returns_pcm() -> None:
    parser = WavStreamParser()
    pcm = bytes(range(100))
    assert parser.feed(wav_header(extra=b"LIST" + struct.pack("<I", 3) + b"abc\x00")) == b""
    assert parser.format is not None and parser.format.sample_rate == 22050
    assert parser.feed(pcm) == pcm


@given(st.binary(max_size=300), st.lists(st.integers(1, 50), max_size=20))
def test_wav_parser_split_anywhere_gives_the_same_pcm(pcm: bytes, cuts: list[int]) -> None:
    stream = wav_header(16000) + pcm
    parser = WavStreamParser()
    out, pos = b"", 0
    for n in cuts:
        out += parser.feed(stream[pos : pos + n])
        pos += n
    out += parser.feed(stream[pos:])
    assert out == pcm
    assert parser.format is not None and parser.format.sample_rate == 16000


@given(st.binary(max_size=200))
def test_wav_parser_garbage_raises_only_format_error(data: bytes) -> None:
    parser = WavStreamParser()
    with contextlib.suppress(WavFormatError):
        parser.feed(data)


@pytest.mark.parametrize(
    "header",
    [wav_header(bits=8), wav_header(channels=2), b"RIFX" + b"\x00" * 8, wav_header(rate=10)],
)
def test_wav_parser_refuses_what_it_cannot_play(header: bytes) -> None:
    with pytest.raises(WavFormatError):
        WavStreamParser().feed(header)
