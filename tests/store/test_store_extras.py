"""The store contract for what is kept beside a call (migration 4), on every backend: a call's
request, its final result, the owner's questions and the report outbox."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import pytest

from voicecall.calls.extras import (
    CallResult,
    CallSpec,
    OwnerQuestion,
    QuestionStatus,
    ReportDelivery,
    ReportState,
)
from voicecall.calls.model import CallMode, CallState, EndReason, Speaker, TranscriptEntry
from voicecall.calls.store.base import EventRow, Store
from voicecall.errors import StoreError

from .test_store_contract import make_call

if TYPE_CHECKING:
    from conftest import Backend

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"booked": {"type": "boolean"}, "time": {"type": ["string", "null"]}},
    "required": ["booked", "time"],
    "additionalProperties": False,
}


def spec_for(call_id: str, **over: Any) -> CallSpec:
    base: dict[str, Any] = {
        "call_id": call_id,
        "task": "Book a table for two tonight at seven; 7:30 only if I agree. Name: Sam.",
        "context": "Sam, +1 415 555 0123, allergic to nuts — “quoted” ☎",
        "outcome_schema": SCHEMA,
        "report_url": "https://hooks.example.com/calls?token=abc",
        "created_at": 1_700_000_000.5,
    }
    base.update(over)
    return CallSpec(**base)


def outbox_for(call_id: str, **over: Any) -> ReportDelivery:
    base: dict[str, Any] = {
        "webhook_id": f"msg_{call_id}",
        "call_id": call_id,
        "url": "https://hooks.example.com/calls",
        "next_at": 100.0,
        "created_at": 100.0,
        "updated_at": 100.0,
    }
    base.update(over)
    return ReportDelivery(**base)


async def test_a_spec_is_committed_with_its_call_and_reads_back(store: Store) -> None:
    call = make_call(mode=CallMode.TASK)
    spec = spec_for(call.call_id)
    opening = TranscriptEntry(call.call_id, 0, Speaker.BOT, "Hello.", 1.0, turn=0)
    assert await store.commit(call, transcript=[opening], spec=spec)
    assert await store.call_spec(call.call_id) == spec
    assert (await store.get_call(call.call_id)) == call
    # the calls row is untouched by the task's text (its own table)
    assert (await store.get_call(call.call_id)).metadata == {}  # type: ignore[union-attr]
    # a later commit of the call with another spec keeps the first (ON CONFLICT DO NOTHING)
    assert await store.commit(call.copy(turn=1), spec=spec_for(call.call_id, task="other"))
    assert await store.call_spec(call.call_id) == spec
    # a plain call with only a report URL
    plain = make_call()
    bare = CallSpec(plain.call_id, report_url="http://127.0.0.1:9/x", created_at=2.0)
    assert await store.commit(plain, spec=bare)
    got = await store.call_spec(plain.call_id)
    assert got == bare and got is not None and not got.is_task
    assert await store.call_spec(make_call().call_id) is None
    assert await store.call_spec("a\x00b") is None


async def test_a_failed_commit_writes_neither_call_nor_spec(store: Store) -> None:
    call = make_call(mode=CallMode.TASK)
    line = TranscriptEntry(call.call_id, 0, Speaker.BOT, "first", 1.0)
    assert await store.commit(None, transcript=[line])
    with pytest.raises(StoreError):  # the line exists: the whole commit fails
        await store.commit(call, transcript=[line], spec=spec_for(call.call_id))
    assert await store.get_call(call.call_id) is None
    assert await store.call_spec(call.call_id) is None
    with pytest.raises(StoreError, match="NUL"):
        await store.commit(call, spec=spec_for(call.call_id, context="a\x00b"))
    assert await store.get_call(call.call_id) is None
    with pytest.raises(ValueError, match="with its call"):
        await store.commit(None, spec=spec_for(call.call_id))


async def test_the_outbox_row_is_written_with_the_end_and_only_once(store: Store) -> None:
    call = make_call(state=CallState.LISTENING, provider_call_id="CA1")
    assert await store.commit(call)
    ended = call.copy(state=CallState.COMPLETED, end_reason=EndReason.COMPLETED, ended_at=9.0)
    row = outbox_for(call.call_id)
    assert await store.commit(
        ended, event=EventRow("end-1", call.call_id, "ended", 9.0), outbox=row
    )
    assert await store.report(call.call_id) == row
    assert await store.pending_reports() == [row]
    # a duplicate end event writes nothing, not even a second outbox row
    again = outbox_for(call.call_id, webhook_id="msg_other", url="https://x.example/")
    assert not await store.commit(
        ended, event=EventRow("end-1", call.call_id, "ended", 9.0), outbox=again
    )
    # another end path (restart) writing its own row for the same call: the first one stays
    assert await store.commit(ended, outbox=again)
    assert await store.report(call.call_id) == row
    assert await store.pending_reports() == [row]


async def test_a_failed_end_commit_leaves_no_outbox_row(store: Store) -> None:
    call = make_call(state=CallState.LISTENING)
    line = TranscriptEntry(call.call_id, 0, Speaker.USER, "hi", 1.0)
    assert await store.commit(call, transcript=[line])
    ended = call.copy(state=CallState.COMPLETED, end_reason=EndReason.COMPLETED)
    with pytest.raises(StoreError):
        await store.commit(ended, transcript=[line], outbox=outbox_for(call.call_id))
    assert await store.report(call.call_id) is None
    assert (await store.get_call(call.call_id)).state is CallState.LISTENING  # type: ignore[union-attr]


async def test_delivery_attempts_update_the_row_and_freeze_the_body(store: Store) -> None:
    call = make_call()
    row = outbox_for(call.call_id)
    assert await store.commit(call, outbox=row)
    first = row.copy(
        attempts=1,
        next_at=105.0,
        body='{"type":"call.ended"}',
        last_status=500,
        last_error="HTTP 500",
        updated_at=101.0,
    )
    assert await store.put_report(first)
    assert await store.report(call.call_id) == first
    # a later attempt cannot change the body the receiver may already have seen
    second = first.copy(
        attempts=2,
        body='{"changed":true}',
        state=ReportState.DELIVERED,
        last_status=204,
        last_error=None,
        delivered_at=106.0,
        updated_at=106.0,
    )
    assert await store.put_report(second)
    got = await store.report(call.call_id)
    assert got == second.copy(body=first.body)
    assert await store.pending_reports() == []
    assert not await store.put_report(outbox_for("no-such-call"))


async def test_pending_reports_are_listed_soonest_first(store: Store) -> None:
    rows = []
    for i, at in enumerate((30.0, 10.0, 20.0)):
        call = make_call()
        row = outbox_for(call.call_id, next_at=at)
        if i == 2:
            row = row.copy(state=ReportState.FAILED)
        assert await store.commit(call, outbox=row)
        rows.append(row)
    assert [r.next_at for r in await store.pending_reports()] == [10.0, 30.0]


async def test_a_result_is_stored_once(store: Store) -> None:
    call = make_call(mode=CallMode.TASK)
    first = CallResult(
        call.call_id, "They booked 7:30.", {"booked": True, "time": "19:30"}, None, 5.0
    )
    assert await store.put_result(first)
    assert await store.call_result(call.call_id) == first
    assert not await store.put_result(CallResult(call.call_id, "other", {"x": 1}, None, 6.0))
    assert await store.call_result(call.call_id) == first
    # an outcome that is JSON null is not "no outcome"
    nulled = CallResult("c-null", "s", None, None, 1.0)
    assert await store.put_result(nulled)
    assert await store.call_result("c-null") == nulled
    failed = CallResult("c-failed", "plain", None, "the model request failed (HTTP 500)", 1.0)
    assert await store.put_result(failed)
    assert await store.call_result("c-failed") == failed
    with pytest.raises(ValueError):
        await store.put_result(CallResult("c-both", "s", {"a": 1}, "and an error", 1.0))
    with pytest.raises(StoreError):
        await store.put_result(CallResult("c-nul", "a\x00", None, None, 1.0))
    assert await store.call_result("c-nul") is None
    assert await store.call_result("nope") is None


async def test_unfinished_outcomes_are_ended_task_calls_without_a_result(store: Store) -> None:
    ended = {"state": CallState.COMPLETED, "end_reason": EndReason.COMPLETED}
    live_task = make_call(mode=CallMode.TASK, state=CallState.LISTENING)
    done_task = make_call(mode=CallMode.TASK, **ended, ended_at=2.0)
    open_task = make_call(mode=CallMode.TASK, **ended, ended_at=1.0)
    plain = make_call(**ended)
    for call in (live_task, done_task, open_task):
        assert await store.commit(call, spec=spec_for(call.call_id))
    assert await store.commit(plain, spec=CallSpec(plain.call_id, report_url="http://x/"))
    assert await store.put_result(CallResult(done_task.call_id, "s", {"booked": True}, None, 3.0))
    assert await store.unfinished_outcomes() == [open_task.call_id]


async def test_questions_are_asked_and_settled_only_once(store: Store) -> None:
    q0 = OwnerQuestion("c1", 0, "Is 7:30 fine?", 10.0)
    await store.put_question(q0)
    with pytest.raises(StoreError):
        await store.put_question(q0)  # the same seq twice
    assert await store.questions("c1") == [q0]
    assert await store.settle_question(
        "c1", 0, QuestionStatus.ANSWERED, answer="Yes, 7:30 is fine.", at=12.0
    )
    # the timeout firing after the answer changes nothing
    assert not await store.settle_question("c1", 0, QuestionStatus.TIMEOUT, at=70.0)
    q1 = OwnerQuestion("c1", 1, "Window table?", 20.0)
    await store.put_question(q1)
    assert await store.settle_question("c1", 1, QuestionStatus.TIMEOUT, at=80.0)
    got = await store.questions("c1")
    assert [(q.status, q.answer, q.settled_at) for q in got] == [
        (QuestionStatus.ANSWERED, "Yes, 7:30 is fine.", 12.0),
        (QuestionStatus.TIMEOUT, None, 80.0),
    ]
    with pytest.raises(ValueError):
        await store.settle_question("c1", 0, QuestionStatus.ANSWERED, at=1.0)  # no answer
    with pytest.raises(ValueError):
        await store.put_question(OwnerQuestion("c1", 2, "q", 1.0, QuestionStatus.ANSWERED))
    assert await store.questions("nope") == []


async def test_pending_questions_are_cancelled_per_call_or_all(store: Store) -> None:
    for call_id in ("a", "b", "c"):
        await store.put_question(OwnerQuestion(call_id, 0, "?", 1.0))
    assert await store.cancel_questions(at=5.0, call_id="a")
    assert not await store.cancel_questions(at=5.0, call_id="a")
    assert (await store.questions("a"))[0].status is QuestionStatus.CANCELLED
    assert await store.cancel_questions(at=6.0)
    statuses = [(await store.questions(c))[0].status for c in ("b", "c")]
    assert statuses == [QuestionStatus.CANCELLED] * 2
    assert not await store.cancel_questions(at=7.0)


async def test_everything_beside_a_call_survives_reopen(backend: Backend) -> None:
    store = await backend.open()
    call = make_call(mode=CallMode.TASK)
    spec = spec_for(call.call_id)
    row = outbox_for(call.call_id)
    result = CallResult(call.call_id, "Booked.", {"booked": True, "time": "19:30"}, None, 9.0)
    question = OwnerQuestion(call.call_id, 0, "7:30?", 3.0)
    try:
        assert await store.commit(call, spec=spec, outbox=row)
        assert await store.put_result(result)
        await store.put_question(question)
    finally:
        await store.close()
    again = await backend.open()
    try:
        assert await again.call_spec(call.call_id) == spec
        assert await again.report(call.call_id) == row
        assert await again.call_result(call.call_id) == result
        assert await again.questions(call.call_id) == [question]
    finally:
        await again.close()


async def test_concurrent_writes_beside_calls_are_all_kept(store: Store) -> None:
    calls = [make_call(mode=CallMode.TASK) for _ in range(20)]

    async def one(i: int) -> None:
        call = calls[i]
        assert await store.commit(
            call, spec=spec_for(call.call_id), outbox=outbox_for(call.call_id)
        )
        await store.put_question(OwnerQuestion(call.call_id, 0, f"q{i}", float(i)))
        assert await store.put_result(CallResult(call.call_id, f"s{i}", {"n": i}, None, 1.0))

    await asyncio.gather(*(one(i) for i in range(len(calls))))
    for i, call in enumerate(calls):
        result = await store.call_result(call.call_id)
        assert result is not None and result.outcome == {"n": i}
        assert len(await store.questions(call.call_id)) == 1
    assert len(await store.pending_reports()) == len(calls)
