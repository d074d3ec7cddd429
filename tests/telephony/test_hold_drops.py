"""What the hold logic drops: hold audio, never the person who picked up."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from voicecall.telephony.hold import MD_ON_HOLD, Hold
from voicecall.telephony.holdwatch import HoldWatch


def _hold() -> Hold:
    core: Any = SimpleNamespace(bus=SimpleNamespace(add_listener=lambda listener: None))
    return Hold(core)


def test_words_after_hold_are_kept_before_the_stored_record_catches_up() -> None:
    hold = _hold()
    live: Any = SimpleNamespace(call_id="c1", record=SimpleNamespace(metadata={MD_ON_HOLD: 1.0}))
    assert hold.drops(live)  # no watcher (no stream): the stored record decides
    watch = HoldWatch()
    hold.watches["c1"] = watch
    watch.on_hold = True
    assert hold.drops(live)  # music: dropped
    # the watcher heard the person; the commit taking the call off hold has not landed yet
    watch.on_hold = False
    assert not hold.drops(live)
    live.record.metadata = {}
    assert not hold.drops(live)


def test_the_watcher_alone_never_drops() -> None:
    # a hold the manager did not apply (a voicemail greeting's tone, a message being left) is
    # not in the record: nothing is dropped, whatever the watcher thinks
    hold = _hold()
    live: Any = SimpleNamespace(call_id="c1", record=SimpleNamespace(metadata={}))
    watch = HoldWatch()
    watch.on_hold = True
    hold.watches["c1"] = watch
    assert not hold.drops(live)
