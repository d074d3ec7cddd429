"""``voicecall serve`` freezes the start-up heap once the instance is active (runner.settle_gc)."""

from __future__ import annotations

import asyncio
import gc
import sys
from pathlib import Path

from voicecall.server.app import VoicecallApp
from voicecall.server.runner import settle_gc

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fakes"))

from voicecall_server import mock_settings


async def test_on_settled_runs_once_the_instance_is_active(tmp_path: Path) -> None:
    settings = mock_settings(tmp_path, store={"standby_poll_seconds": 0.1})
    settled: list[bool] = []
    first = VoicecallApp(settings, on_settled=lambda: settled.append(first.active))
    second = VoicecallApp(settings, on_settled=lambda: settled.append(second.active))
    try:
        await first.startup()
        await second.startup()  # a standby: the same store's lease is held
        async with asyncio.timeout(10):
            while not settled:
                await asyncio.sleep(0.01)
        assert settled == [True]  # the active one, once
        await first.shutdown()
        async with asyncio.timeout(15):
            while len(settled) < 2:
                await asyncio.sleep(0.05)
        assert settled == [True, True]  # the standby when it took over, not before
    finally:
        await first.shutdown()
        await second.shutdown()


def test_settle_gc_moves_the_heap_out_of_the_collectors_sight() -> None:
    before = gc.get_freeze_count()
    kept = [{"n": i} for i in range(1000)]  # tracked objects alive now
    try:
        settle_gc(collect=False)
        assert gc.get_freeze_count() >= before + len(kept)
    finally:
        gc.unfreeze()
