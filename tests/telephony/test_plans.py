"""The pure telephony decisions: keypad paths, the transfer state and what a dial result means."""

from __future__ import annotations

import string
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from voicecall.audio.dtmf import InvalidDigits
from voicecall.errors import InvalidPhoneNumber, InvalidRequest
from voicecall.telephony.keypad import PLAY_DIGITS, KeyPath, plan_keys, pressed
from voicecall.telephony.transfer_plan import (
    TransferMode,
    TransferStatus,
    allowed_targets,
    back_line,
    check_summary,
    check_targets,
    dial_result,
    new_transfer,
    transfer_of,
    transfer_under_way,
)


def test_keys_heard_read_as_pressed() -> None:
    assert pressed("2") == "[pressed 2]"
    assert pressed("123#") == "[pressed 123#]"


def test_keys_go_in_band_on_streams_and_by_play_on_gather_calls() -> None:
    plan = plan_keys("1w2a#", streams=True)
    assert (plan.digits, plan.path) == ("1w2A#", KeyPath.STREAM)
    assert plan.seconds == pytest.approx(4 * 0.18 + 0.5)
    assert plan_keys("1W23#", streams=False).path is KeyPath.PLAY
    assert plan_keys("1W23#", streams=False).digits == "1w23#"


@pytest.mark.parametrize("digits", ["", "12x", "w", "1 2", "+1", "A" * 300])
def test_bad_digits_are_refused_naming_digits(digits: str) -> None:
    with pytest.raises(InvalidDigits) as err:
        plan_keys(digits, streams=True)
    assert "digits" in str(err.value) and err.value.http_status == 422


def test_a_to_d_only_in_band() -> None:
    assert plan_keys("A", streams=True).digits == "A"
    with pytest.raises(InvalidDigits, match="only be sent in-band"):
        plan_keys("1D", streams=False)


@given(st.text(alphabet=string.printable + "ABCDabcdwW", max_size=40), st.booleans())
def test_any_input_is_a_plan_or_a_422(text: str, streams: bool) -> None:
    try:
        plan = plan_keys(text, streams=streams)
    except InvalidDigits as exc:
        assert str(exc).startswith("digits")
        return
    assert plan.digits and set(plan.digits) <= set("0123456789*#ABCDw")
    if plan.path is KeyPath.PLAY:
        assert set(plan.digits) <= PLAY_DIGITS


def test_dial_results() -> None:
    assert dial_result("completed") is TransferStatus.COMPLETED
    assert dial_result("answered") is TransferStatus.COMPLETED
    for word in ("busy", "no-answer", "failed", "canceled"):
        status = dial_result(word)
        assert status.value == word and status.came_back and not status.under_way
        assert "still here" in back_line(status)
    assert dial_result(None) is TransferStatus.FAILED
    assert dial_result("dialing") is TransferStatus.FAILED  # not a result: failed, never hang


def test_a_transfer_round_trips_through_the_metadata() -> None:
    first = new_transfer(
        None, to="+14155550177", mode=TransferMode.WARM, summary="Hi.", token="t1", now=5.0
    )
    assert (first.seq, first.status) == (1, TransferStatus.DIALING)
    md: dict[str, Any] = {"transfer": first.to_metadata()}
    assert transfer_of(md) == first and transfer_under_way(md)
    assert first.matches(1, "t1") and not first.matches(1, "t2") and not first.matches(2, "t1")
    assert not first.matches(1, None)
    done = first.moved(TransferStatus.BUSY, now=9.0, dial_call_sid="CA" + "0" * 32)
    assert done.ended_at == 9.0 and not transfer_under_way({"transfer": done.to_metadata()})
    second = new_transfer(
        done, to="+14155550178", mode=TransferMode.COLD, summary=None, token="t2", now=10.0
    )
    assert (second.seq, second.status) == (2, TransferStatus.HANDED_OVER)


@given(st.dictionaries(st.text(max_size=12), st.one_of(st.none(), st.integers(), st.text())))
def test_unreadable_transfer_metadata_is_none(raw: dict[str, Any]) -> None:
    got = transfer_of({"transfer": raw})
    assert got is None or got.to_metadata()["seq"] == int(raw["seq"])


def test_summaries() -> None:
    assert check_summary(TransferMode.COLD, None) is None
    assert check_summary(TransferMode.WARM, "  Sam  wants\n a table ") == "Sam wants a table"
    with pytest.raises(InvalidRequest, match="summary"):
        check_summary(TransferMode.WARM, "   ")
    with pytest.raises(InvalidRequest, match="summary"):
        check_summary(TransferMode.WARM, "x" * 1001)


def test_transfer_targets() -> None:
    assert check_targets(None) == ()
    assert check_targets(["+14155550177", "+14155550177"]) == ("+14155550177",)
    with pytest.raises(InvalidPhoneNumber, match=r"transfer_to\[1\]"):
        check_targets(["+14155550177", "0177"])
    with pytest.raises(InvalidRequest, match="at most 10"):
        check_targets([f"+1415555{n:04d}" for n in range(11)])
    assert allowed_targets({"transfer_to": ["+14155550177", 3]}) == ("+14155550177",)
    assert allowed_targets({}) == ()


def test_keys_on_a_gather_become_a_pressed_line_that_answers_the_turn() -> None:
    from voicecall.calls.fold import fold
    from voicecall.calls.model import CallMode, CallRecord, CallState, Direction
    from voicecall.events import CallEvent, EventKind
    from voicecall.providers.base import ParsedWebhook, WebhookKind

    record = CallRecord(
        "c1",
        Direction.OUTBOUND,
        CallMode.CONVERSATION,
        "+14155550199",
        "+14155550100",
        state=CallState.LISTENING,
        provider_call_id="CA1",
        turn=3,
        metadata={"turn_token": "tok"},
    )
    event = CallEvent(
        kind=EventKind.DTMF, dedupe_key="k", provider_call_id="CA1", digits="12#", turn=3
    )
    hook = ParsedWebhook(
        WebhookKind.GATHER, "CA1", "c1", (event,), False, None, None, turn=3, token="tok"
    )
    folded = fold(record, event, hook, seq=7, now=1.0)
    assert folded.line is not None and folded.line.text == "[pressed 12#]"
    assert folded.line.seq == 7 and folded.wake == (3, "[pressed 12#]")
