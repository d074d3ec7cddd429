"""Player and PlayoutTicker: one shared clock for every stream; drive(): sends without awaiting."""

from __future__ import annotations

import asyncio

import pytest

from voicecall.audio.pacer import Chunk, Item, MarkPoint, Pacer
from voicecall.voice.player import Player, PlayoutTicker, drive


class Sink:
    """Records what a player emits, with the loop time it was found due."""

    def __init__(self, fail: bool = False) -> None:
        self.items: list[tuple[float, Item]] = []
        self.fail = fail

    def __call__(self, items: list[Item], now: float) -> None:
        if self.fail:
            raise RuntimeError("boom")
        self.items.extend((now, item) for item in items)

    @property
    def audio(self) -> bytes:
        return b"".join(i.payload for _, i in self.items if isinstance(i, Chunk))

    @property
    def marks(self) -> list[str]:
        return [i.name for _, i in self.items if isinstance(i, MarkPoint)]


def audio(n: int, seed: int) -> bytes:
    return bytes((seed * 31 + i) % 256 for i in range(n))


async def drained(*players: Player) -> None:
    while any(not p.pacer.idle for p in players):
        await asyncio.sleep(0.01)


async def test_many_players_share_one_ticker_and_send_everything_in_order() -> None:
    loop = asyncio.get_running_loop()
    ticker = PlayoutTicker(loop)
    sinks = [Sink() for _ in range(40)]
    players = [Player(Pacer(lead_ms=40), sink, ticker=ticker) for sink in sinks]
    sent = []
    for k, p in enumerate(players):
        p.start()
        data = audio(8 * 300 + 8 * k, k)  # 300 ms and a bit, each different
        p.push(data[:1000])
        p.push(data[1000:], mark=f"end{k}")
        sent.append(data)
    await drained(*players)
    for k, sink in enumerate(sinks):
        assert sink.audio == sent[k]
        assert sink.marks == [f"end{k}"]
        assert isinstance(sink.items[-1][1], MarkPoint)  # the mark after all its audio
        # absolute schedule: nothing goes out more than two slots before it is due
        assert all(now >= i.due - 2 * ticker.slot for now, i in sink.items if isinstance(i, Chunk))
    messages = sum(1 for s in sinks for _, i in s.items if isinstance(i, Chunk))
    # one wake-up per busy slot serves every stream due in it (a timer per stream would need
    # at least one wake-up per message)
    assert ticker.wakeups < messages / 4
    assert len(ticker) == 0  # idle players wait in no slot


async def test_a_wake_up_sets_the_next_timer_once() -> None:
    """The players a slot serves reschedule themselves into later slots: the ticker sets its
    timer once, for the earliest of them, not once per earlier-than-armed player."""
    loop = asyncio.get_running_loop()
    ticker = PlayoutTicker(loop)
    players = [Player(Pacer(lead_ms=0, message_ms=20), Sink(), ticker=ticker) for _ in range(30)]
    for k, p in enumerate(players):
        p.start()
        p.push(audio(8 * 400, k), mark=f"end{k}")
        # the players' timelines start at different moments, so a wake-up serves players whose
        # next deadlines fall in different later slots (the old ticker set its timer again for
        # each one earlier than the last, and once more at the end)
        await asyncio.sleep(0.004 * (30 - k) / 30)
    await asyncio.sleep(0.02)
    arms, wakeups = ticker.arms, ticker.wakeups
    await drained(*players)
    assert ticker.wakeups - wakeups > 20
    assert ticker.arms - arms <= ticker.wakeups - wakeups


async def test_first_push_is_sent_on_the_next_loop_turn() -> None:
    sink = Sink()
    p = Player(Pacer(lead_ms=120), sink)
    p.start()
    p.push(audio(800, 1))  # 100 ms: inside the lead, due at once
    assert sink.items == []
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert sink.audio == audio(800, 1)


async def test_push_before_start_waits_for_start() -> None:
    sink = Sink()
    p = Player(Pacer(), sink)
    p.push(audio(160, 2), mark="m")
    await asyncio.sleep(0.03)
    assert sink.items == []
    p.start()
    await drained(p)
    assert sink.marks == ["m"] and sink.audio == audio(160, 2)


async def test_one_failing_stream_does_not_stop_the_others() -> None:
    ticker = PlayoutTicker(asyncio.get_running_loop())
    bad, good = Sink(fail=True), Sink()
    players = [Player(Pacer(lead_ms=0), s, ticker=ticker) for s in (bad, good)]
    for p in players:
        p.start()
        p.push(audio(1600, 3), mark="end")
    await drained(*players)
    assert good.audio == audio(1600, 3) and good.marks == ["end"]


async def test_clear_and_close_stop_sending() -> None:
    ticker = PlayoutTicker(asyncio.get_running_loop())
    sink = Sink()
    p = Player(Pacer(lead_ms=0), sink, ticker=ticker)
    p.start()
    p.push(audio(8000, 4), mark="end")
    await asyncio.sleep(0.1)
    assert p.clear() == ["end"]
    assert not p.scheduled
    count = len(sink.items)
    await asyncio.sleep(0.06)
    assert len(sink.items) == count
    p.push(audio(8000, 5))
    await p.aclose()
    await asyncio.sleep(0.06)
    assert len(sink.items) == count
    assert not p.scheduled


def test_ticker_slot_must_be_positive() -> None:
    with pytest.raises(ValueError):
        PlayoutTicker(asyncio.new_event_loop(), slot=0)


# -- drive -----------------------------------------------------------------------------------


async def test_drive_runs_a_coroutine_that_does_not_suspend_synchronously() -> None:
    out: list[int] = []

    async def quick() -> None:
        out.append(1)

    assert drive(quick()) is None
    assert out == [1]


async def test_drive_hands_a_suspended_coroutine_to_a_task() -> None:
    gate = asyncio.Event()
    out: list[str] = []

    async def slow() -> None:
        out.append("before")
        await gate.wait()
        await asyncio.sleep(0)
        out.append("after")

    task = drive(slow())
    assert task is not None and out == ["before"]
    await asyncio.sleep(0.01)
    assert not task.done()
    gate.set()
    await task
    assert out == ["before", "after"]


async def test_drive_propagates_errors_before_and_after_the_suspension() -> None:
    async def fails_now() -> None:
        raise ConnectionError("gone")

    with pytest.raises(ConnectionError):
        drive(fails_now())

    fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def fails_later() -> None:
        await fut

    task = drive(fails_later())
    assert task is not None
    fut.set_exception(ConnectionError("later"))
    with pytest.raises(ConnectionError):
        await task


async def test_cancelling_a_driven_task_closes_the_coroutine() -> None:
    closed: list[bool] = []

    async def waits() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            closed.append(True)

    task = drive(waits())
    assert task is not None
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert closed == [True]
