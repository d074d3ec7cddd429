"""An ending call's answers (calls/replies.py): hang up, unless a line just ended before the
goodbye the end waited for."""

from __future__ import annotations

from voicecall.calls.model import CallMode, CallRecord, CallState, Direction
from voicecall.calls.replies import ReplyPolicy
from voicecall.providers.base import ParsedWebhook, WebhookKind

POLICY = ReplyPolicy(
    streaming=False, inbound_greeting="Hi.", notify_pause_seconds=1.0, stream_key=b"k" * 32
)


def _ending() -> CallRecord:
    record = CallRecord(
        "c1", Direction.OUTBOUND, CallMode.CONVERSATION, "+14155550199", "+14155550100"
    )
    return record.copy(state=CallState.ENDING, provider_call_id="CA1")


def _hold(seq: int | None) -> ParsedWebhook:
    return ParsedWebhook(
        kind=WebhookKind.HOLD,
        provider_call_id="CA1",
        call_id="c1",
        events=(),
        inbound=False,
        from_number=None,
        to_number=None,
        line_seq=seq,
    )


def test_an_ending_call_hangs_up_when_it_asks_for_more() -> None:
    assert POLICY.reply(_ending(), _hold(None)).hangup


def test_the_hold_after_a_line_keeps_an_ending_call_open_for_its_goodbye() -> None:
    reply = POLICY.reply(_ending(), _hold(4))
    assert not reply.hangup and reply.hold_call_id == "c1" and reply.say is None
