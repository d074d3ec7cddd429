"""Bot lines said by call updates go one after another (calls/lineorder.py)."""

from __future__ import annotations

import asyncio

from voicecall.calls.lineorder import LineOrder


async def _send(order: LineOrder, name: str, sent: list[str], *, seq: int | None = None) -> None:
    async with order.turn():
        sent.append(name)
        if seq is not None:
            order.saying(seq, 60.0)


async def test_the_next_update_waits_until_the_line_is_reported_heard() -> None:
    order, sent = LineOrder(), []
    await _send(order, "speak", sent, seq=3)
    follow = asyncio.create_task(_send(order, "continue", sent))
    await asyncio.sleep(0.05)
    assert sent == ["speak"]  # the line is still being said
    assert order.heard(2) is False  # another line's report changes nothing
    await asyncio.sleep(0)
    assert sent == ["speak"]
    assert order.heard(3) is True  # someone waits: keep the call open for them
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
        assert order.heard(seq) is True
        for _ in range(5):
            await asyncio.sleep(0)
        assert sent == expected
    await asyncio.gather(*tasks)


async def test_a_line_never_reported_lets_the_next_go_at_its_expected_end() -> None:
    order, sent = LineOrder(), []
    async with order.turn():
        order.saying(1, 0.05)
    started = asyncio.get_running_loop().time()
    await _send(order, "next", sent)
    assert asyncio.get_running_loop().time() - started >= 0.04
    assert sent == ["next"]


async def test_a_line_heard_before_its_update_returned_is_not_waited_for() -> None:
    order, sent = LineOrder(), []
    assert order.heard(4) is False  # nobody waits: the call's usual hold answer
    async with order.turn():
        order.saying(4, 60.0)  # the REST call returned after the short line was over
    await asyncio.wait_for(_send(order, "next", sent), 1)
    assert sent == ["next"]


async def test_the_call_ending_releases_whoever_waits() -> None:
    order, sent = LineOrder(), []
    await _send(order, "speak", sent, seq=1)
    follow = asyncio.create_task(_send(order, "end", sent))
    await asyncio.sleep(0.01)
    order.release()
    await asyncio.wait_for(follow, 1)
    assert sent == ["speak", "end"]


async def test_a_cancelled_waiter_is_no_longer_counted() -> None:
    order = LineOrder()
    await _send(order, "speak", [], seq=1)
    follow = asyncio.create_task(_send(order, "gone", []))
    await asyncio.sleep(0.01)
    follow.cancel()
    await asyncio.gather(follow, return_exceptions=True)
    assert order.heard(1) is False  # nobody waits any more: the usual hold answer
