"""The latency record, pure: the stream clock → arrival mapping and the stage arithmetic."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from voicecall.voice.latency import (
    KEEP_FRAMES,
    STAGES,
    ArrivalClock,
    TurnLatency,
    TurnStamps,
    percentile,
    summarize,
)


def clock_with(frames: int, *, start: float = 100.0, every: float = 0.02) -> ArrivalClock:
    clock = ArrivalClock()
    for i in range(frames):
        clock.frame(160, timestamp_ms=i * 20, arrived=start + i * every)
    return clock


def test_a_position_maps_to_the_arrival_of_the_frame_holding_its_last_sample() -> None:
    clock = clock_with(10)
    # speech ended at 100 ms (sample 800): its last sample is in frame 4 (80-100 ms)
    assert clock.arrival_at_ms(100) == (pytest.approx(100.08), 100)
    # mid-frame end (90 ms): still frame 4; the media clock says 90 ms
    assert clock.arrival_at_ms(90) == (pytest.approx(100.08), 90)
    assert clock.arrival_at_ms(101) == (pytest.approx(100.10), 101)
    assert clock.arrival_at_ms(200) == (pytest.approx(100.18), 200)  # the last frame received
    assert clock.arrival_at_ms(201) is None  # not received yet
    assert clock.arrival_at_ms(0) is None  # an empty stretch has no last sample


def test_the_media_clock_is_the_timestamps_not_the_count() -> None:
    clock = ArrivalClock()
    clock.frame(160, timestamp_ms=0, arrived=1.0)
    clock.frame(160, timestamp_ms=60, arrived=1.02)  # two frames lost before this one
    assert clock.arrival_at_ms(40) == (pytest.approx(1.02), 80)


def test_old_frames_are_forgotten_and_say_so() -> None:
    clock = clock_with(3 * KEEP_FRAMES)
    assert clock.arrival_at_ms(20) is None
    last = 3 * KEEP_FRAMES * 20
    assert clock.arrival_at_ms(last) is not None
    assert clock.arrival_at_ms(last - KEEP_FRAMES * 20 + 20) is not None


def stamps(**over: float | None) -> TurnStamps:
    turn = TurnStamps(
        speech_end=10.0, speech_end_stream_ms=4000, turn_decided=10.4, transcript_final=10.9
    )
    marks = {
        "responder_first": 10.95,
        "tts_requested": 10.96,
        "tts_first_audio": 11.06,
        "first_frame_sent": 11.07,
    }
    marks.update(over)  # type: ignore[arg-type]
    for name, at in marks.items():
        if at is not None:
            turn.stamp(name, at)
    return turn


def test_stages_add_up_to_voice_to_voice() -> None:
    rec = stamps().build()
    assert rec is not None
    assert rec.voice_to_voice_ms == pytest.approx(1070.0)
    assert rec.end_of_turn_ms == pytest.approx(400.0)
    assert rec.stt_ms == pytest.approx(500.0)
    assert rec.responder_ms == pytest.approx(50.0)
    assert rec.tts_ms == pytest.approx(100.0)
    assert rec.overhead_ms == pytest.approx(20.0)  # 10 ms storing the line, 10 ms sending
    parts = sum(rec.stage_ms(s) for s in STAGES if s != "voice_to_voice")
    assert parts == pytest.approx(rec.voice_to_voice_ms)
    assert rec.speech_end_stream_ms == 4000
    assert rec.marks["first_frame_sent"] == pytest.approx(1070.0)
    assert TurnLatency.from_json(rec.to_json()) == rec


def test_no_record_before_the_first_frame_and_marks_are_set_once() -> None:
    turn = stamps(first_frame_sent=None)
    assert turn.build() is None
    turn.stamp("first_frame_sent", 11.5)
    turn.stamp("first_frame_sent", 12.5)  # later frames do not move it
    rec = turn.build()
    assert rec is not None and rec.voice_to_voice_ms == pytest.approx(1500.0)
    with pytest.raises(ValueError):
        turn.stamp("speech_end", 1.0)  # set from the clock, never stamped


def test_an_agents_own_text_counts_its_wait_as_the_responder() -> None:
    rec = stamps(responder_first=None).build()
    assert rec is not None and rec.responder_ms == pytest.approx(60.0)


def test_a_stage_out_of_order_counts_zero() -> None:
    rec = stamps(responder_first=10.5).build()  # started before the final transcript
    assert rec is not None and rec.responder_ms == 0.0
    assert rec.marks["responder_first"] == pytest.approx(500.0)


@given(st.lists(st.floats(0, 1e6), min_size=1, max_size=50), st.floats(0, 100))
def test_percentiles_stay_within_the_values(values: list[float], q: float) -> None:
    p = percentile(values, q)
    assert min(values) <= p <= max(values) or math.isclose(p, min(values))


def test_percentiles_and_summary() -> None:
    assert percentile([1, 2, 3, 4], 50) == 2.5
    assert percentile([5], 95) == 5
    with pytest.raises(ValueError):
        percentile([], 50)
    recs = [stamps(first_frame_sent=11.0 + i / 100).build() for i in range(20)]
    summary = summarize([r.to_json() for r in recs if r is not None])
    assert set(summary) == set(STAGES)
    assert summary["voice_to_voice"]["count"] == 20
    assert summary["voice_to_voice"]["p50"] == pytest.approx(1095.0)
    assert summary["voice_to_voice"]["max"] == pytest.approx(1190.0)


@given(st.dictionaries(st.text(max_size=25), st.none() | st.integers() | st.floats() | st.text()))
def test_from_json_refuses_what_is_not_a_record(data: dict[str, object]) -> None:
    try:
        rec = TurnLatency.from_json(data)
    except ValueError as exc:
        assert str(exc).startswith("latency")
    else:
        assert rec.voice_to_voice_ms >= 0


class _ListClock:
    """The straightforward clock (a list entry per frame, none forgotten): the oracle."""

    def __init__(self) -> None:
        self.frames: list[tuple[int, int, int, float]] = []  # start, size, stamp, arrival
        self.samples = 0

    def frame(self, n: int, ts: int, arrived: float) -> None:
        if n > 0:
            self.frames.append((self.samples, n, ts, arrived))
            self.samples += n

    def locate(self, end_sample: int) -> tuple[float, int] | None:
        last = end_sample - 1
        for index, (start, n, ts, arrived) in enumerate(self.frames):
            if start <= last < start + n:
                if index < len(self.frames) - KEEP_FRAMES:
                    return None
                return arrived, round(ts + (end_sample - start) / 8)
        return None


@given(
    st.lists(
        st.tuples(
            st.sampled_from([160, 160, 160, 160, 80, 0, 13]),
            st.sampled_from([0, 0, 0, 0, 20, 7, -5]),  # timestamp jump beyond the frame's end
        ),
        max_size=60,
    ),
    st.integers(0, 2),
    st.lists(st.integers(-5, 12_000), max_size=20),
)
def test_the_compact_clock_answers_as_a_list_of_every_frame_does(
    frames: list[tuple[int, int]], repeat: int, probes: list[int]
) -> None:
    clock, oracle = ArrivalClock(), _ListClock()
    ts, arrived = 0, 10.0
    for n, jump in frames * (1 + repeat * 40):  # long enough to forget frames and runs
        clock.frame(n, ts, arrived)
        oracle.frame(n, ts, arrived)
        ts += max(0, n // 8 + jump)
        arrived += 0.02
    assert clock.samples == oracle.samples
    ends = [*probes, oracle.samples, oracle.samples + 1, 1]
    ends += [oracle.samples - KEEP_FRAMES * 160 + d for d in (-200, -1, 0, 1, 161)]
    for end in ends:
        assert clock.locate(end) == oracle.locate(end), end


def test_a_long_call_keeps_a_bounded_clock() -> None:
    clock = ArrivalClock()
    for i in range(20 * KEEP_FRAMES):
        clock.frame(160, i * 20 + (i // 100) * 60, 1.0 + i * 0.02)  # a loss every 2 s: new runs
    assert len(clock._arrived) == KEEP_FRAMES
    assert len(clock._run_frame) <= KEEP_FRAMES // 100 + 66
