"""Pacer: deterministic tests on a fake clock (no sleeps, no timing assertions on real time)."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from voicecall.audio.pacer import Chunk, Item, MarkPoint, Pacer, PacerQueueFull

MSG = 160  # bytes in a 20 ms message
EPS = 1e-9


def audio(ms: int, fill: int = 0x55) -> bytes:
    return bytes([fill]) * (ms * 8)


def chunks(items: list[Item]) -> list[Chunk]:
    return [i for i in items if isinstance(i, Chunk)]


def run(
    pacer: Pacer, start: float, stop: float, oversleep: float = 0.0, seed: int = 0
) -> list[tuple[float, Item]]:
    """Drive the pacer like the I/O loop: sleep until next_deadline (+ random oversleep)."""
    rng = random.Random(seed)
    now = start
    sent: list[tuple[float, Item]] = []
    while now <= stop:
        sent.extend((now, item) for item in pacer.due(now))
        deadline = pacer.next_deadline(now)
        if deadline is None:
            break
        now = max(now, deadline) + rng.uniform(0, oversleep)
    return sent


def test_lead_sends_first_lead_ms_at_once_then_one_message_per_20ms() -> None:
    p = Pacer(lead_ms=120)
    p.push(audio(1000))
    first = p.due(100.0)
    # messages 0..6 are due at t0 + k*20ms - 120ms <= t0
    assert [c.position for c in chunks(first)] == [k * MSG for k in range(7)]
    assert p.next_deadline(100.0) == pytest.approx(100.02)
    assert p.due(100.0199) == []
    assert [c.position for c in chunks(p.due(100.02))] == [7 * MSG]


def test_each_message_is_sent_exactly_lead_before_its_playout() -> None:
    p = Pacer(lead_ms=120)
    p.push(audio(2000))
    sent = run(p, 5.0, 10.0)
    t0 = 5.0
    msgs = [(t, i) for t, i in sent if isinstance(i, Chunk)]
    assert len(msgs) == 100
    for t, c in msgs:
        playout = t0 + c.position / 8000
        assert c.due == pytest.approx(playout - 0.120)
        assert t == pytest.approx(max(t0, c.due))  # never early, never late here
        if c.due >= t0:  # past the initial burst, the lead is kept exactly
            assert playout - t == pytest.approx(0.120)


def test_no_drift_over_60_seconds_with_jittery_wakeups() -> None:
    p = Pacer(lead_ms=120, max_queue_ms=70_000)
    p.push(audio(60_000))
    sent = run(p, 0.0, 70.0, oversleep=0.015, seed=42)
    msgs = [(t, i) for t, i in sent if isinstance(i, Chunk)]
    assert len(msgs) == 3000
    lateness = [t - max(0.0, c.due) for t, c in msgs]
    assert min(lateness) >= -EPS  # never sent before its due time
    assert max(lateness) <= 0.015 + EPS  # late by at most one wake-up jitter: nothing accumulates
    last_t, last = msgs[-1]
    assert last.due == pytest.approx(60.0 - 0.020 - 0.120, abs=1e-9)
    assert last_t - last.due <= 0.015 + EPS
    assert p.stats.messages_sent == 3000
    assert p.stats.bytes_sent == 480_000


def test_relative_timer_negative_control_drifts() -> None:
    """The seed's approach (sleep 20 ms after each send) drifts by the summed jitter: the
    same jitter that the absolute timeline absorbs adds up to many seconds here."""
    rng = random.Random(42)
    now = 0.0
    for _ in range(3000):
        now += 0.020 + rng.uniform(0, 0.015)
    drift = now - 60.0
    assert drift > 1.0


def test_catch_up_after_300ms_stall_returns_overdue_at_once_and_keeps_timeline() -> None:
    p = Pacer(lead_ms=120)
    p.push(audio(3000))
    sent = run(p, 0.0, 1.0)
    assert p.stats.catch_ups == 0
    last_due = chunks([i for _, i in sent])[-1].due
    # event loop stalls for 300 ms
    burst = chunks(p.due(1.3))
    assert len(burst) == 15
    assert burst[0].due == pytest.approx(last_due + 0.020)
    assert all(c.due <= 1.3 + EPS for c in burst)
    stats = p.stats
    assert stats.catch_ups == 1
    assert stats.late_messages == sum(1 for c in burst if 1.3 - c.due > 0.020 + EPS)
    assert stats.max_lateness_ms == pytest.approx(300.0 - 20.0, abs=1e-6)
    # afterwards the original absolute timeline continues: no shift by the stall
    nxt = p.next_deadline(1.3)
    assert nxt == pytest.approx(burst[-1].due + 0.020)
    assert nxt == pytest.approx(0.0 + (burst[-1].position + MSG) / 8000 - 0.120)
    # and a stall never restarts the spurt
    assert p.stats.spurts == 1


def test_marks_follow_their_audio_in_order_with_partial_message_before_mark() -> None:
    p = Pacer()
    p.push(bytes(90) + audio(20), mark="m1")  # 250 bytes: 160 + 90, then m1
    p.push(audio(40), mark="m2")
    p.push(b"", mark="m3")
    items = [i for _, i in run(p, 0.0, 5.0)]
    kinds = [(type(i).__name__, getattr(i, "name", None), i.position) for i in items]
    assert kinds == [
        ("Chunk", None, 0),
        ("Chunk", None, 160),
        ("MarkPoint", "m1", 250),
        ("Chunk", None, 250),
        ("Chunk", None, 410),
        ("MarkPoint", "m2", 570),
        ("MarkPoint", "m3", 570),
    ]
    sizes = [len(i.payload) for i in items if isinstance(i, Chunk)]
    assert sizes == [160, 90, 160, 160]
    # due times follow the byte timeline, not the message count
    due = [i.due for i in items if isinstance(i, Chunk)]
    assert due == pytest.approx([-0.12, -0.10, 250 / 8000 - 0.12, 410 / 8000 - 0.12])


def test_mark_alone_on_idle_pacer_is_due_now() -> None:
    p = Pacer()
    assert p.next_deadline(3.0) is None
    p.push(b"", mark="solo")
    assert p.next_deadline(3.0) == 3.0
    assert p.due(3.0) == [MarkPoint("solo", 0)]
    assert p.idle


def test_clear_drops_queue_returns_marks_and_restarts_timeline() -> None:
    p = Pacer(lead_ms=120)
    p.push(audio(500), mark="a")
    p.push(audio(500), mark="b")
    p.due(0.0)
    p.due(0.2)
    assert p.bytes_queued > 0
    queued = p.bytes_queued
    assert p.clear() == ["a", "b"]
    assert p.bytes_queued == 0
    assert p.idle
    assert p.due(0.25) == []
    assert p.next_deadline(0.25) is None
    assert p.stats.bytes_dropped == queued
    # the next push starts a fresh spurt right away (Twilio's buffer was cleared too)
    p.push(audio(100), mark="c")
    items = p.due(0.3)
    assert [type(i) for i in items] == [Chunk] * 5 + [MarkPoint]
    assert items[0].due == pytest.approx(0.3 - 0.12)  # type: ignore[union-attr]
    assert p.stats.spurts == 2


def test_clear_keeps_positions_monotonic() -> None:
    p = Pacer()
    p.push(audio(1000))
    p.due(0.0)
    sent = p.stats.bytes_sent
    p.clear()
    p.push(audio(20), mark="x")
    items = p.due(1.0)
    assert items[0].position == sent
    assert items[-1] == MarkPoint("x", sent + MSG)


def test_refill_while_still_playing_continues_the_same_timeline() -> None:
    p = Pacer(lead_ms=120)
    p.push(audio(100))
    run(p, 0.0, 0.05)  # all 100 ms sent by t=0 (within the lead); playout ends at 0.1
    assert p.bytes_queued == 0
    p.push(audio(100))
    items = chunks(p.due(0.05))
    # continues at byte 800 of the same spurt: due at 0.1 - 0.12
    assert items[0].due == pytest.approx(800 / 8000 - 0.12)
    assert p.stats.spurts == 1
    assert p.stats.underruns == 0


def test_push_after_playout_end_starts_new_spurt_and_counts_underrun_without_mark() -> None:
    p = Pacer(lead_ms=120)
    p.push(audio(100))
    run(p, 0.0, 0.05)
    p.push(audio(100))
    items = chunks(p.due(0.5))  # previous audio finished playing at 0.1
    assert items[0].due == pytest.approx(0.5 - 0.12)
    assert p.stats.spurts == 2
    assert p.stats.underruns == 1  # ran dry mid-utterance (no mark)


def test_new_spurt_after_a_marked_utterance_is_not_an_underrun() -> None:
    p = Pacer(lead_ms=120)
    p.push(audio(100), mark="end")
    run(p, 0.0, 0.05)
    p.push(audio(100), mark="end2")
    p.due(0.5)
    assert p.stats.spurts == 2
    assert p.stats.underruns == 0


def test_partial_message_sent_when_due_if_producer_is_slow() -> None:
    p = Pacer(lead_ms=0)
    p.push(audio(10))  # 80 bytes, no more coming yet
    first = p.due(0.0)
    assert [len(c.payload) for c in chunks(first)] == [80]
    p.push(audio(30))
    assert p.next_deadline(0.0) == pytest.approx(0.010)
    assert [len(c.payload) for c in chunks(p.due(0.010))] == [160]
    assert [len(c.payload) for c in chunks(p.due(0.030))] == [80]


def test_bounded_queue_raises_and_queues_nothing() -> None:
    p = Pacer(max_queue_ms=100)
    p.push(audio(60))
    assert p.free_bytes == 320
    with pytest.raises(PacerQueueFull, match="max_queue_ms=100"):
        p.push(audio(60), mark="lost")
    assert p.bytes_queued == 480
    p.push(audio(40), mark="fits")
    assert p.free_bytes == 0
    items = p.due(10.0)
    assert [i.name for i in items if isinstance(i, MarkPoint)] == ["fits"]


def test_configurable_message_size() -> None:
    p = Pacer(message_ms=100, lead_ms=0)
    p.push(audio(500))
    first = chunks(p.due(0.0))
    assert [len(c.payload) for c in first] == [800]
    assert p.next_deadline(0.0) == pytest.approx(0.1)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"message_ms": 30},
        {"message_ms": 0},
        {"frame_ms": 10},
        {"lead_ms": -1},
        {"max_queue_ms": 10},
        {"mark_every_ms": 50},
        {"periodic_mark_prefix": ""},
    ],
)
def test_rejects_bad_config(kwargs: dict[str, int | str]) -> None:
    with pytest.raises(ValueError):
        Pacer(**kwargs)  # type: ignore[arg-type]


def test_rejects_empty_mark_name() -> None:
    with pytest.raises(ValueError):
        Pacer().push(audio(20), mark="")


def test_periodic_marks() -> None:
    p = Pacer(mark_every_ms=100)
    p.push(audio(350), mark="end")
    items = [i for _, i in run(p, 0.0, 5.0)]
    marks = [i for i in items if isinstance(i, MarkPoint)]
    assert [(m.name, m.position, m.periodic) for m in marks] == [
        ("vc-tick-1", 800, True),
        ("vc-tick-2", 1600, True),
        ("vc-tick-3", 2400, True),
        ("end", 2800, False),
    ]
    # each periodic mark sits right after the message that completes its 100 ms
    idx = items.index(marks[0])
    assert isinstance(items[idx - 1], Chunk)
    assert items[idx - 1].position + 160 == 800  # type: ignore[union-attr]


@settings(max_examples=200, deadline=None)
@given(
    pushes=st.lists(
        st.tuples(st.integers(0, 700), st.booleans()),
        min_size=1,
        max_size=25,
    ),
    steps=st.lists(st.floats(0.0, 0.4), min_size=1, max_size=80),
    message_ms=st.sampled_from([20, 40, 100]),
)
def test_property_audio_and_marks_come_out_intact_and_in_order(
    pushes: list[tuple[int, bool]], steps: list[float], message_ms: int
) -> None:
    p = Pacer(message_ms=message_ms, lead_ms=60, max_queue_ms=100_000)
    expected_audio = bytearray()
    expected_marks: list[tuple[str, int]] = []
    out: list[Item] = []
    now = 0.0
    step_iter = iter(steps)
    for n, (size, with_mark) in enumerate(pushes):
        data = bytes((n + i) % 256 for i in range(size))
        name = f"m{n}" if with_mark else None
        p.push(data, mark=name)
        expected_audio += data
        if name:
            expected_marks.append((name, len(expected_audio)))
        now += next(step_iter, 0.01)
        for item in p.due(now):
            if isinstance(item, Chunk):
                assert item.due <= now + EPS  # never early
            out.append(item)
    # drain
    while (deadline := p.next_deadline(now)) is not None:
        now = max(now, deadline)
        out.extend(p.due(now))
    got_audio = b"".join(i.payload for i in out if isinstance(i, Chunk))
    assert got_audio == bytes(expected_audio)
    assert [(m.name, m.position) for m in out if isinstance(m, MarkPoint)] == expected_marks
    assert all(len(c.payload) <= message_ms * 8 for c in out if isinstance(c, Chunk))
    positions = [c.position for c in out if isinstance(c, Chunk)]
    assert positions == sorted(positions)
    assert p.bytes_queued == 0
