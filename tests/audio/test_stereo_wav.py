"""Stereo call recording: alignment by stream position, watermark, crash and repair."""

from __future__ import annotations

import struct
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from voicecall.audio.stereo_wav import (
    HEADER_BYTES,
    MAX_DATA_BYTES,
    StereoRecorder,
    WavFile,
    WavFormatError,
    parse_wav_header,
    plan_repair,
    repair,
    wav_header,
)

I16 = npt.NDArray[np.int16]
MS = 8


def ramp(n: int, start: int = 1) -> I16:
    return (np.arange(start, start + n) % 30000).astype(np.int16)


def stereo(data: bytes) -> I16:
    return np.frombuffer(data, dtype="<i2").reshape(-1, 2)


def read_wave(path: Path) -> I16:
    """Through the standard library's reader."""
    with wave.open(str(path)) as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (2, 2, 8000)
        return np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").reshape(-1, 2)


def read_numpy(path: Path) -> I16:
    """An independent parser: walk the RIFF chunks with numpy/struct only."""
    raw = path.read_bytes()
    assert raw[:4] == b"RIFF" and raw[8:12] == b"WAVE"
    assert struct.unpack("<I", raw[4:8])[0] == len(raw) - 8 or True  # may be stale on purpose
    pos = 12
    while pos < len(raw):
        cid, size = raw[pos : pos + 4], struct.unpack("<I", raw[pos + 4 : pos + 8])[0]
        if cid == b"fmt ":
            fmt = np.frombuffer(raw[pos + 8 : pos + 24], dtype="<u2")
            assert fmt[0] == 1 and fmt[1] == 2 and fmt[7] == 16  # PCM, stereo, 16-bit
        if cid == b"data":
            return np.frombuffer(raw[pos + 8 : pos + 8 + size], dtype="<i2").reshape(-1, 2)
        pos += 8 + size + (size & 1)
    raise AssertionError("no data chunk")


# -- the recorder --------------------------------------------------------------------------------


def test_bot_utterance_lands_where_it_was_played() -> None:
    rec = StereoRecorder()
    for k in range(100):  # 2 s of caller audio, 20 ms at a time
        rec.caller(k * 160, np.full(160, 1000 + k, np.int16))
    rec.bot(4000, ramp(800))
    out = stereo(rec.drain(final=True))
    assert out.shape == (16000, 2)
    assert np.array_equal(out[4000:4800, 1], ramp(800))
    assert not out[:4000, 1].any() and not out[4800:, 1].any()
    assert out[0, 0] == 1000 and out[15999, 0] == 1099
    assert rec.stats.bot_samples == 800 and rec.stats.caller_samples == 16000


def test_caller_gap_is_silence_and_counted() -> None:
    rec = StereoRecorder()
    rec.caller(0, np.full(160, 7, np.int16))
    rec.caller(480, np.full(160, 9, np.int16))  # two frames lost
    out = stereo(rec.drain(final=True))
    assert out.shape == (640, 2)
    assert (out[:160, 0] == 7).all() and not out[160:480, 0].any() and (out[480:, 0] == 9).all()
    assert rec.stats.caller_gap_samples == 320


def test_watermark_trails_the_caller_by_the_late_window() -> None:
    rec = StereoRecorder(late_window_ms=500)
    rec.caller(0, ramp(8000))  # 1 s
    assert rec.watermark == 4000
    first = rec.drain()
    assert len(first) == 4000 * 4 and rec.emitted == 4000
    assert rec.drain() == b""  # nothing new
    rec.bot(4200, ramp(400, 50))  # late, but within the window
    rec.caller(8000, ramp(800, 8001))
    second = stereo(rec.drain())
    assert second.shape[0] == 800
    assert np.array_equal(second[200:600, 1], ramp(400, 50))


def test_too_late_bot_audio_is_dropped_and_counted() -> None:
    rec = StereoRecorder(late_window_ms=100)
    rec.caller(0, ramp(8000))
    rec.drain()  # up to 7200
    rec.bot(7000, ramp(400, 5))  # 200 samples fall before the watermark
    assert rec.stats.late_bot_samples == 200 and rec.stats.bot_samples == 200
    out = stereo(rec.drain(final=True))
    assert np.array_equal(out[:200, 1], ramp(400, 5)[200:])
    rec.bot(0, ramp(50))
    assert rec.stats.late_bot_samples == 250


def test_out_of_order_bot_writes() -> None:
    rec = StereoRecorder()
    rec.caller(0, np.zeros(8000, np.int16))
    rec.bot(3000, ramp(500, 100))
    rec.bot(1000, ramp(500, 200))  # earlier position, written later
    rec.bot(2000, ramp(500, 300))
    out = stereo(rec.drain(final=True))
    for pos, start in ((1000, 200), (2000, 300), (3000, 100)):
        assert np.array_equal(out[pos : pos + 500, 1], ramp(500, start))


def test_last_write_wins_and_erase() -> None:
    rec = StereoRecorder()
    rec.caller(0, np.zeros(4000, np.int16))
    rec.bot(1000, np.full(1000, 5, np.int16))
    rec.bot(1500, np.full(200, 6, np.int16))
    assert rec.erase_bot(1800) == 200  # played up to 1800 only (barge-in)
    out = stereo(rec.drain(final=True))
    assert (out[1000:1500, 1] == 5).all() and (out[1500:1700, 1] == 6).all()
    assert (out[1700:1800, 1] == 5).all() and not out[1800:, 1].any()
    assert rec.erase_bot(0) == 0  # all drained: nothing left to erase
    assert rec.erase_bot(0, 10_000) == 0


def test_bot_ahead_of_caller_and_final_drain() -> None:
    rec = StereoRecorder()
    rec.caller(0, np.zeros(800, np.int16))
    rec.bot(800, ramp(1600))  # played beyond what the caller track has reached
    assert rec.watermark == 0 and rec.drain() == b""
    out = stereo(rec.drain(final=True))
    assert out.shape[0] == 2400 and np.array_equal(out[800:, 1], ramp(1600))


def test_refuses_bad_input() -> None:
    rec = StereoRecorder(max_ahead_ms=1000)
    with pytest.raises(ValueError, match="position"):
        rec.caller(-1, np.zeros(10, np.int16))
    with pytest.raises(TypeError):
        rec.bot(0, np.zeros(10, np.float32))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="past the caller"):
        rec.bot(8000, np.zeros(10, np.int16))
    with pytest.raises(ValueError):
        StereoRecorder(late_window_ms=-1)
    with pytest.raises(ValueError):
        StereoRecorder(max_ahead_ms=0)


def test_long_call_memory_stays_bounded() -> None:
    rec = StereoRecorder()
    total = 0
    for k in range(3000):  # 60 s, drained every second
        rec.caller(k * 160, ramp(160, k))
        if k % 50 == 0:
            rec.bot(k * 160, ramp(160, 7))
            total += len(rec.drain())
    total += len(rec.drain(final=True))
    assert total == 3000 * 160 * 4
    assert rec._buf.shape[0] <= 4 * 8000


# -- the WAV container ---------------------------------------------------------------------------


def test_header_is_canonical_and_parses() -> None:
    h = wav_header(4000)
    assert len(h) == HEADER_BYTES
    layout = parse_wav_header(h)
    assert (layout.channels, layout.rate, layout.bits) == (2, 8000, 16)
    assert (layout.data_offset, layout.data_bytes, layout.riff_bytes) == (44, 4000, 4036)
    assert layout.block_align == 4
    with pytest.raises(ValueError):
        wav_header(-1)
    with pytest.raises(ValueError):
        wav_header(MAX_DATA_BYTES + 1)


@pytest.mark.parametrize(
    ("head", "fragment"),
    [
        (b"", "RIFF"),
        (b"RIFX" + b"\0" * 40, "RIFF"),
        (wav_header(0)[:30], "truncated"),
        (wav_header(0)[:36], "no data chunk"),
        (wav_header(0).replace(b"\x01\x00\x02\x00", b"\x03\x00\x02\x00", 1), "unsupported"),
        (b"RIFF\0\0\0\0WAVEdata\0\0\0\0", "before the fmt"),
    ],
)
def test_bad_headers_are_named(head: bytes, fragment: str) -> None:
    with pytest.raises(WavFormatError, match=fragment):
        parse_wav_header(head)


def test_wav_file_is_readable_after_every_flush(tmp_path: Path) -> None:
    path = tmp_path / "call.wav"
    rec = StereoRecorder(late_window_ms=0)
    with WavFile(path) as wav:
        assert read_wave(path).shape == (0, 2)  # valid from the first byte
        for second in range(3):
            rec.caller(second * 8000, ramp(8000, second))
            rec.bot(second * 8000 + 100, ramp(50, 9))
            wav.append(rec.drain())
            wav.flush()
            assert read_wave(path).shape == ((second + 1) * 8000, 2)
            assert np.array_equal(read_numpy(path), read_wave(path))
        wav.append(rec.drain(final=True))
    assert wav.closed
    data = read_wave(path)
    assert data.shape == (24000, 2)
    assert np.array_equal(data[8100:8150, 1], ramp(50, 9))
    assert np.array_equal(data[8000:16000, 0], ramp(8000, 1))


def test_wav_file_refuses_to_overwrite_and_partial_frames(tmp_path: Path) -> None:
    path = tmp_path / "x.wav"
    path.write_bytes(b"keep me")
    with pytest.raises(FileExistsError):
        WavFile(path)
    assert path.read_bytes() == b"keep me"
    with WavFile(path, overwrite=True) as wav, pytest.raises(ValueError):
        wav.append(b"\0\0\0")
    assert read_wave(path).shape == (0, 2)


def test_crash_keeps_everything_up_to_the_last_flush_and_repair_recovers_the_rest(
    tmp_path: Path,
) -> None:
    path = tmp_path / "crash.wav"
    wav = WavFile(path)
    flushed = stereo(np.stack([ramp(8000), ramp(8000, 3)], axis=1).astype("<i2").tobytes())
    wav.append(flushed.tobytes())
    wav.flush()
    wav._file.close()
    with open(path, "ab") as f:  # what reached the disk after the last flush, torn mid-frame
        f.write(np.full((1000, 2), 77, "<i2").tobytes() + b"\x01\x02\x03")
    assert np.array_equal(read_wave(path), flushed)  # complete up to the last flush
    plan = repair(path)
    assert plan is not None and plan.frames == 9000 and plan.data_bytes == 36000
    data = read_wave(path)
    assert data.shape == (9000, 2) and (data[8000:] == 77).all()
    assert np.array_equal(read_numpy(path), data)
    assert path.stat().st_size == HEADER_BYTES + 36000  # the torn frame is cut off
    assert repair(path) is None  # consistent now


def test_killed_writer_process_then_repair(tmp_path: Path) -> None:
    """A real crash: a child process appends, flushes once, appends more and dies."""
    path = tmp_path / "killed.wav"
    script = f"""
import os, numpy as np
from voicecall.audio.stereo_wav import StereoRecorder, WavFile
rec, wav = StereoRecorder(late_window_ms=0), WavFile({str(path)!r})
rec.caller(0, np.full(8000, 5, np.int16)); wav.append(rec.drain()); wav.flush()
rec.caller(8000, np.full(4000, 6, np.int16)); wav.append(rec.drain())
wav._file.flush()
os._exit(9)
"""
    proc = subprocess.run([sys.executable, "-c", script], check=False)
    assert proc.returncode == 9
    assert read_wave(path).shape == (8000, 2)
    plan = repair(path)
    assert plan is not None and plan.frames == 12000
    assert (read_wave(path)[8000:, 0] == 6).all()


def test_repair_header_never_updated_and_extra_chunks(tmp_path: Path) -> None:
    path = tmp_path / "zero.wav"
    body = np.arange(4000, dtype="<i2").tobytes()
    path.write_bytes(wav_header(0) + body)
    assert read_wave(path).shape == (0, 2)
    assert repair(path) is not None
    assert read_wave(path).shape == (2000, 2)
    # a header with a LIST chunk before the data (other writers do that)
    h = wav_header(0)
    info = b"LIST" + struct.pack("<I", 5) + b"INFOx\0"  # odd size: padded
    other = tmp_path / "list.wav"
    other.write_bytes(h[:36] + info + h[36:] + body)
    layout, plan = plan_repair(other.read_bytes()[:200], other.stat().st_size)
    assert layout.data_offset == 44 + len(info)
    assert plan is not None and plan.frames == 2000
    repair(other)
    assert read_wave(other).shape == (2000, 2)


def test_repair_refuses_what_is_not_a_wav(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_bytes(b"hello, this is not audio")
    with pytest.raises(WavFormatError):
        repair(path)
    assert path.read_bytes() == b"hello, this is not audio"


# -- property tests ------------------------------------------------------------------------------

ops = st.lists(
    st.one_of(
        st.tuples(st.just("caller"), st.integers(0, 400), st.integers(0, 400)),  # gap, length
        st.tuples(st.just("bot"), st.integers(-3000, 3000), st.integers(0, 600)),  # offset, len
        st.tuples(st.just("erase"), st.integers(-3000, 3000), st.integers(0, 600)),
        st.tuples(st.just("drain"), st.just(0), st.just(0)),
    ),
    max_size=40,
)


@settings(max_examples=150, deadline=None)
@given(ops, st.integers(0, 300), st.integers(1, 100))
def test_matches_a_reference_model(
    sequence: list[tuple[str, int, int]], window_ms: int, initial_ms: int
) -> None:
    """Against a naive model holding the whole call in memory: the same bytes come out, and
    the same samples are counted as too late. A small first buffer exercises its growth."""
    rec = StereoRecorder(late_window_ms=window_ms, max_ahead_ms=2000, initial_ms=initial_ms)
    model = np.zeros((40000, 2), dtype=np.int16)
    emitted, out, value, late_bot, late_caller = 0, [], 1, 0, 0
    caller_end = 0
    for kind, a, n in sequence:
        value = (value * 7 + 3) % 20000
        pcm = np.arange(value, value + n, dtype=np.int64).astype(np.int16)
        if kind == "caller":
            pos = caller_end + a
            rec.caller(pos, pcm)
            lo = max(pos, emitted)
            model[lo : pos + n, 0] = pcm[lo - pos :]
            late_caller += min(n, max(0, emitted - pos))
            caller_end = max(caller_end, pos + n)
        elif kind == "bot":
            pos = max(0, caller_end + a)
            if pos + n > max(caller_end, emitted) + 2 * 8000:
                with pytest.raises(ValueError):
                    rec.bot(pos, pcm)
                continue
            rec.bot(pos, pcm)
            lo = max(pos, emitted)
            model[lo : pos + n, 1] = pcm[lo - pos :] if n else model[lo : pos + n, 1]
            late_bot += min(n, max(0, emitted - pos))
        elif kind == "erase":
            start = max(0, caller_end + a)
            end_written = rec.end
            erased = rec.erase_bot(start, start + n)
            lo, hi = max(start, emitted), min(start + n, end_written)
            assert erased == max(0, hi - lo)
            if hi > lo:
                model[lo:hi, 1] = 0
        else:
            data = rec.drain()
            out.append(data)
            emitted += len(data) // 4
            assert emitted == rec.emitted == max(emitted, caller_end - window_ms * 8)
    final = rec.drain(final=True)
    out.append(final)
    got = stereo(b"".join(out))
    assert got.shape[0] == rec.end
    assert np.array_equal(got, model[: rec.end])
    assert (rec.stats.late_bot_samples, rec.stats.late_caller_samples) == (late_bot, late_caller)


@given(st.binary(max_size=200), st.integers(0, 10_000))
def test_plan_repair_on_garbage_only_raises_format_errors(head: bytes, size: int) -> None:
    try:
        layout, plan = plan_repair(head, size)
    except WavFormatError:
        return
    if plan is not None:
        assert plan.data_bytes % layout.block_align == 0
        assert plan.truncate_to == layout.data_offset + plan.data_bytes <= max(size, 0) or (
            plan.data_bytes == 0
        )


@given(st.integers(0, 5000), st.binary(max_size=64))
def test_repair_round_trip_property(tmp_path_factory: pytest.TempPathFactory, frames: int,
                                    tail: bytes) -> None:  # fmt: skip
    path = tmp_path_factory.mktemp("r") / "p.wav"
    body = np.arange(frames * 2, dtype=np.int64).astype("<i2").tobytes()
    path.write_bytes(wav_header(0) + body + tail)
    repair(path)
    data = read_wave(path)
    assert data.shape[0] == frames + len(tail) // 4
    assert data[:frames].tobytes() == body
    assert repair(path) is None
