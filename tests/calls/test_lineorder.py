"""Bot lines said by call updates go one after another (calls/lineorder.py)."""

from __future__ import annotations

import asyncio

from voicecall.calls.lineorder import LineOrder


async def _send(order: LineOrder, name: str, sent: list[str], *, seq: int | None = None) -> None:
    async with order.turn():
        sent.append(name)
        if seq is not None:
            order.saying(seq, 60.0)


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_the_next_update_waits_until_the_line_is_reported_heard() -> None:
    order, sent = LineOrder(), []
    await _send(order, "speak", sent, seq=3)
    follow = asyncio.create_task(_send(order, "continue", sent))
    await asyncio.sleep(0.05)
    assert sent == ["speak"]  # the line is still being said
    order.heard(2)  # another line's report changes nothing
    await _settle()
    assert sent == ["speak"]
    order.heard(3)
    await asyncio.wait_for(follow, 1)
    assert sent == ["speak", "continue"]


async def test_updates_go_in_the_order_asked_each_after_the_line_before() -> None:
    order, sent = LineOrder(), []
    await _send(order, "a", sent, seq=1)
    tasks = [asyncio.create_task(_send(order, n, sent, seq=s)) for n, s in (("b", 2), ("c", 3))]
    tasks.append(asyncio.create_task(_send(order, "end", sent)))
    await asyncio.sleep(0.02)
    assert sent == ["a"]
    for seq, expected in ((1, ["a", "b"]), (2, ["a", "b", "c"]), (3, ["a", "b", "c", "end"])):
        order.heard(seq)
        await _settle()
        assert sent == expected
    await asyncio.gather(*tasks)


async def test_a_line_never_reported_lets_the_next_go_at_its_expected_end() -> None:
    order, sent = LineOrder(), []
    async with order.turn():
        order.saying(1, 0.2)
    follow = asyncio.create_task(_send(order, "next", sent))
    await _settle()
    assert sent == []  # not at once: the line is still expected to be playing
    await asyncio.wait_for(follow, 5)  # no report ever comes, and it goes anyway
    assert sent == ["next"]


async def test_a_line_heard_before_its_update_returned_is_not_waited_for() -> None:
    order, sent = LineOrder(), []
    order.heard(4)  # the short line was over before its REST call returned
    async with order.turn():
        order.saying(4, 60.0)
    await asyncio.wait_for(_send(order, "next", sent), 1)
    assert sent == ["next"]


async def test_a_line_heard_with_nobody_waiting_does_not_hold_up_the_next() -> None:
    order, sent = LineOrder(), []
    await _send(order, "speak", sent, seq=1)
    order.heard(1)
    await asyncio.wait_for(_send(order, "later", sent), 1)
    assert sent == ["speak", "later"]


async def test_the_call_ending_releases_whoever_waits() -> None:
    order, sent = LineOrder(), []
    await _send(order, "speak", sent, seq=1)
    follow = asyncio.create_task(_send(order, "end", sent))
    await asyncio.sleep(0.01)
    order.release()
    await asyncio.wait_for(follow, 1)
    assert sent == ["speak", "end"]


async def test_a_cancelled_waiter_does_not_hold_up_the_ones_behind_it() -> None:
    order, sent = LineOrder(), []
    await _send(order, "speak", sent, seq=1)
    gone = asyncio.create_task(_send(order, "gone", sent))
    behind = asyncio.create_task(_send(order, "behind", sent))
    await asyncio.sleep(0.01)
    gone.cancel()
    await asyncio.gather(gone, return_exceptions=True)
    order.heard(1)
    await asyncio.wait_for(behind, 1)
    assert sent == ["speak", "behind"]
