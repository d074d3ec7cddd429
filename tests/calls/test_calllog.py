"""The call log: one line per call event that matters, from the bus, with the call id."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from voicecall.calls.bus import EventBus
from voicecall.calls.calllog import CallLog
from voicecall.calls.model import CallMode, CallRecord, CallState, Direction, EndReason


def _call(**changes: Any) -> dict[str, Any]:
    record = CallRecord(
        call_id="c0ffee" + "0" * 26,
        direction=Direction.OUTBOUND,
        mode=CallMode.CONVERSATION,
        from_number="+14155550100",
        to_number="+14155550123",
        created_at=100.0,
        updated_at=100.0,
    )
    return record.copy(**changes).to_json()


def _event(kind: str, **changes: Any) -> dict[str, Any]:
    return {"type": kind, "at": 0.0, "call": _call(**changes)}


@pytest.fixture
def bus() -> EventBus:
    bus = EventBus()
    bus.add_listener(CallLog())
    return bus


def _lines(caplog: pytest.LogCaptureFixture) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (r.levelname, r.getMessage(), {k: getattr(r, k, None) for k in ("call_id", "event")})
        for r in caplog.records
        if r.name == "voicecall.calls"
    ]


def test_a_call_from_placed_to_ended(bus: EventBus, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="voicecall.calls")
    cid = _call()["call_id"]
    bus.publish(_event("call.created"))
    bus.publish(_event("call.updated", state=CallState.RINGING))
    bus.publish(_event("call.updated", state=CallState.ANSWERED, answered_at=102.5))
    bus.publish(_event("call.updated", state=CallState.LISTENING, answered_at=102.5))
    bus.publish({"type": "transcript", "call_id": cid, "speaker": "user", "text": "hi", "seq": 1})
    bus.publish(
        _event(
            "call.ended",
            state=CallState.HANGUP_BOT,
            end_reason=EndReason.HANGUP_BOT,
            answered_at=102.5,
            ended_at=114.0,
        )
    )
    assert _lines(caplog) == [
        (
            "INFO",
            f"call {cid} placed to +14155550123 (conversation)",
            {"call_id": cid, "event": "placed"},
        ),
        ("INFO", f"call {cid} answered after 2.5 s", {"call_id": cid, "event": "answered"}),
        (
            "INFO",
            f"call {cid} ended: hangup-bot, after 11.5 s talking",
            {"call_id": cid, "event": "ended"},
        ),
    ]
    ended = next(r for r in caplog.records if getattr(r, "event", None) == "ended")
    assert ended.duration_s == 11.5 and ended.end_reason == "hangup-bot"  # type: ignore[attr-defined]


def test_failures_are_warnings_with_the_error(
    bus: EventBus, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="voicecall.calls")
    cid = _call()["call_id"]
    bus.publish(_event("call.created"))
    bus.publish(_event("call.updated", error="create answer lost; outcome unknown"))
    bus.publish(_event("call.updated", error="create answer lost; outcome unknown"))  # once
    bus.publish(
        _event(
            "call.ended",
            state=CallState.FAILED,
            end_reason=EndReason.FAILED,
            ended_at=101.0,
            error="Twilio refused: 21211",
        )
    )
    lines = _lines(caplog)
    assert [level for level, _, _ in lines] == ["INFO", "WARNING", "WARNING"]
    assert lines[1][1] == f"call {cid} (initiated): create answer lost; outcome unknown"
    assert lines[2][1] == (
        f"call {cid} ended: failed, never answered, after 1.0 s; error: Twilio refused: 21211"
    )


def test_inbound_and_rejected(bus: EventBus, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="voicecall.calls")
    inbound = {"direction": Direction.INBOUND, "from_number": "+14155238886"}
    bus.publish(_event("call.created", **inbound))
    bus.publish(_event("call.rejected", direction=Direction.INBOUND, from_number=None))
    messages = [m for _, m, _ in _lines(caplog)]
    assert messages[0].endswith("from +14155238886 answered (inbound, conversation)")
    assert messages[1].endswith("from anonymous rejected by inbound_policy")


def test_transcripts_and_state_changes_only_at_debug(
    bus: EventBus, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="voicecall.calls")
    cid = _call()["call_id"]
    bus.publish(_event("call.updated", state=CallState.RINGING))
    bus.publish({"type": "transcript", "call_id": cid, "speaker": "user", "text": "hi", "seq": 1})
    assert [(lvl, m) for lvl, m, _ in _lines(caplog)] == [
        ("DEBUG", f"call {cid} ringing"),
        ("DEBUG", f"call {cid} user: hi"),
    ]


def test_garbage_events_are_ignored(bus: EventBus, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="voicecall.calls")
    for event in ({}, {"type": "call.created"}, {"type": "call.ended", "call": {"x": 1}}):
        bus.publish(event)
    assert _lines(caplog) == []
