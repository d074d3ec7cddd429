"""The webhook hot path's shortcuts give exactly the answers of the plain path."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

from voicecall.calls.manager import _differs
from voicecall.calls.model import CallMode, CallRecord, CallState, Direction, EndReason
from voicecall.providers.base import ProviderResponse, Reply

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fakes"))

from twilio_provider import provider


def test_empty_reply_rendered_once_is_what_twiml_for_renders() -> None:
    p = provider()
    plain = ProviderResponse(200, p.twiml_for(Reply()).encode())
    assert p.render(Reply.empty()) == plain
    assert p.render(Reply()) is p.render(Reply.empty())  # cached
    assert p.render(Reply(hangup=True)) == ProviderResponse(
        200, p.twiml_for(Reply(hangup=True)).encode()
    )


def _reference_differs(new: CallRecord, old: CallRecord) -> bool:
    return new.copy(last_sequence=old.last_sequence, updated_at=old.updated_at) != old


def test_differs_ignores_only_bookkeeping_fields() -> None:
    old = CallRecord(
        "c1",
        Direction.INBOUND,
        CallMode.CONVERSATION,
        "+14155550100",
        "+14155550199",
        state=CallState.LISTENING,
        provider_call_id="CA" + "0" * 32,
        created_at=1.0,
        updated_at=2.0,
        metadata={"turn_token": "abc"},
    )
    changes: list[dict[str, object]] = [
        {},
        {"last_sequence": 7},
        {"updated_at": 9.0},
        {"last_sequence": 7, "updated_at": 9.0},
        {"state": CallState.COMPLETED},
        {"end_reason": EndReason.COMPLETED},
        {"metadata": {"turn_token": "abd"}},
        {"metadata": {"turn_token": "abc"}},  # equal, not identical
        {"turn": 2},
        {"answered_at": 3.0},
        {"error": "x"},
    ]
    for change in changes:
        new = dataclasses.replace(old, **change)
        assert _differs(new, old) == _reference_differs(new, old), change
    # every compared field but the two bookkeeping ones counts
    for f in dataclasses.fields(CallRecord):
        if f.name in ("last_sequence", "updated_at", "call_id"):
            continue
        value = getattr(old, f.name)
        other = {"x": 1} if isinstance(value, dict) else ("zz" if isinstance(value, str) else 99)
        new = dataclasses.replace(old, **{f.name: other})
        assert _differs(new, old) and _reference_differs(new, old), f.name


def test_record_copy_is_dataclasses_replace() -> None:
    old = CallRecord(
        "c1",
        Direction.OUTBOUND,
        CallMode.NOTIFY,
        "+14155550100",
        "+14155550199",
        metadata={"turn_token": "abc"},
    )
    for change in ({}, {"last_sequence": 7}, {"state": CallState.RINGING, "turn": 2}):
        new = old.copy(**change)
        assert new == dataclasses.replace(old, **change) and new is not old
    assert old.copy().metadata is old.metadata  # shallow, as replace()
    import pytest

    with pytest.raises(TypeError, match="no field 'nope'"):
        old.copy(nope=1)


def test_settle_gc_freezes_and_raises_the_young_threshold() -> None:
    import gc

    from voicecall.server.runner import GC_GEN0_THRESHOLD, settle_gc

    before = gc.get_threshold()
    try:
        settle_gc()
        assert gc.get_threshold() == (GC_GEN0_THRESHOLD, before[1], before[2])
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
