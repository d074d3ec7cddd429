"""The pure parts of call recording: the two tracks on the stream's clock, the announcement,
who records, and what the retention sweeper deletes."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from voicecall.audio.g711 import ulaw_decode, ulaw_encode
from voicecall.calls.extras import RecordingRef, RecordingSource, RecordingStatus
from voicecall.telephony.recording import StreamTape, announce, expired, wants_recording

FRAME = 160  # 20 ms at 8 kHz


def tone(n: int, level: int = 8000) -> bytes:
    """μ-law of a constant-level signal (decodes to about ``level``, never to 0)."""
    return bytes(ulaw_encode(np.full(n, level, dtype=np.int16)))


def stereo(data: bytes) -> np.ndarray:
    return np.frombuffer(data, dtype="<i2").reshape(-1, 2)


def level(n: int = 1, value: int = 8000) -> int:
    return int(ulaw_decode(tone(n, value))[0])


def feed_caller(tape: StreamTape, frames: int, *, start_ms: int = 0, t0: float = 0.0) -> float:
    """Caller frames every 20 ms (arriving when they end); returns the last arrival time."""
    t = t0
    for i in range(frames):
        ts = start_ms + 20 * i
        t = t0 + (ts + 20) / 1000
        tape.inbound(ts, tone(FRAME, 1000), t)
    return t


def test_caller_frames_land_at_their_timestamps_with_silence_in_gaps() -> None:
    tape = StreamTape()
    tape.inbound(0, tone(FRAME, 1000), 0.02)
    tape.inbound(100, tone(FRAME, 1000), 0.12)  # 80 ms lost: silence, not shifted audio
    out = stereo(tape.drain(final=True))
    assert out.shape == (8 * 100 + FRAME, 2)
    caller = out[:, 0]
    assert (caller[:FRAME] == level(value=1000)).all()
    assert (caller[FRAME:800] == 0).all()
    assert (caller[800:] == level(value=1000)).all()
    assert (out[:, 1] == 0).all()  # the bot said nothing
    assert tape.recorder.stats.caller_gap_samples == 800 - FRAME


def test_bot_spurt_starts_at_the_streams_now_and_runs_contiguously() -> None:
    tape = StreamTape()
    t = feed_caller(tape, 50)  # 1 s of caller audio; "now" is 8000
    # the first chunk of a spurt is sent now; the rest go ahead of time (the lead)
    tape.outbound(0, tone(800), t)
    tape.outbound(800, tone(800), t + 0.001)
    tape.outbound(1600, tone(800), t + 0.002)
    out = stereo(tape.drain(final=True))
    bot = out[:, 1]
    assert (bot[:8000] == 0).all()
    assert (bot[8000:10400] == level()).all()
    assert tape.stats.spurts == 1


def test_a_later_spurt_starts_again_at_now() -> None:
    tape = StreamTape()
    t = feed_caller(tape, 10)  # 200 ms
    tape.outbound(0, tone(800), t)  # 1600..2400
    t = feed_caller(tape, 40, start_ms=200)  # up to 1 s
    tape.outbound(800, tone(400), t)  # pacer positions are contiguous; the stream is not
    out = stereo(tape.drain(final=True))
    bot = out[:, 1]
    assert (bot[1600:2400] == level()).all()
    assert (bot[2400:8000] == 0).all()
    assert (bot[8000:8400] == level()).all()
    assert tape.stats.spurts == 2


def test_now_is_extrapolated_between_frames_at_most_100_ms() -> None:
    tape = StreamTape()
    feed_caller(tape, 5)  # last frame ends at 800, arrived at t=0.1
    assert tape.now_position(0.1) == 800
    assert tape.now_position(0.11) == 880
    assert tape.now_position(5.0) == 800 + 800


def test_clear_blanks_bot_audio_queued_but_never_played() -> None:
    tape = StreamTape()
    t = feed_caller(tape, 25)  # now = 4000
    tape.outbound(0, tone(2400), t)  # 300 ms queued at Twilio: 4000..6400
    tape.cleared(t + 0.1)  # barge-in 100 ms later: 4800 onwards never played
    feed_caller(tape, 25, start_ms=500, t0=0.0)
    out = stereo(tape.drain(final=True))
    bot = out[:, 1]
    assert (bot[4000:4800] == level()).all()
    assert (bot[4800:6400] == 0).all()
    assert tape.stats.erased_samples == 1600


def test_a_reconnected_stream_continues_after_the_gap() -> None:
    tape = StreamTape()
    tape.begin_stream(0.0)
    t = feed_caller(tape, 10)  # 0..1600
    tape.end_stream(t)  # at 0.2 s
    tape.begin_stream(t + 0.5)  # 500 ms later; its timestamps start at 0 again
    tape.inbound(0, tone(FRAME, 1000), t + 0.52)
    out = stereo(tape.drain(final=True))
    assert out.shape[0] == 1600 + 4000 + FRAME
    caller = out[:, 0]
    assert (caller[1600:5600] == 0).all()
    assert (caller[5600:] == level(value=1000)).all()


def test_writes_too_far_ahead_are_counted_not_raised() -> None:
    tape = StreamTape()
    tape.inbound(0, tone(FRAME), 0.02)
    tape.inbound(10 * 60 * 1000, tone(FRAME), 0.04)  # a timestamp 10 minutes on: refused
    assert tape.stats.refused == 1


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["in", "out", "clear"]),
            st.integers(0, 3000),
            st.integers(1, 400),
        ),
        max_size=60,
    )
)
def test_any_event_order_yields_whole_aligned_frames(events: list[tuple[str, int, int]]) -> None:
    """Whatever arrives (out of order, duplicated, late), the tape never raises and hands out
    whole stereo frames, as many as its end position."""
    tape = StreamTape()
    pacer = 0
    for i, (kind, ms, n) in enumerate(events):
        now = i * 0.02
        if kind == "in":
            tape.inbound(ms, tone(n, 500), now)
        elif kind == "out":
            tape.outbound(pacer, tone(n), now)
            pacer += n
        else:
            tape.cleared(now)
    data = tape.drain(final=True)
    assert len(data) % 4 == 0
    assert len(data) // 4 == tape.recorder.emitted


def test_announce_goes_first() -> None:
    assert announce("Hello Sam.", "This call is recorded.") == "This call is recorded. Hello Sam."
    assert announce(None, " This call is recorded. ") == "This call is recorded."


@pytest.mark.parametrize(
    ("asked", "enabled", "records"),
    [(None, False, False), (None, True, True), (True, False, True), (False, True, False)],
)
def test_who_records(asked: bool | None, enabled: bool, records: bool) -> None:
    assert wants_recording(asked, enabled=enabled) is records


def _ref(call_id: str, started: float, status: RecordingStatus) -> RecordingRef:
    return RecordingRef(call_id, RecordingSource.STREAM, status, started, started, path="/x")


def test_expired_by_age_never_one_being_written_or_deleted() -> None:
    day = 86_400.0
    now = 100 * day
    refs = [
        _ref("old", now - 31 * day, RecordingStatus.COMPLETED),
        _ref("young", now - 29 * day, RecordingStatus.COMPLETED),
        _ref("writing", now - 40 * day, RecordingStatus.RECORDING),
        _ref("gone", now - 40 * day, RecordingStatus.DELETED),
        _ref("absent", now - 40 * day, RecordingStatus.ABSENT),
    ]
    assert [r.call_id for r in expired(refs, now=now, retention_days=30)] == ["old", "absent"]
    assert expired(refs, now=now, retention_days=None) == []
