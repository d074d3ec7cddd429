"""Latency records on transcript lines (migration 5), on every backend."""

from __future__ import annotations

import pytest

from voicecall.calls.model import Speaker, TranscriptEntry
from voicecall.calls.store.base import Store
from voicecall.errors import StoreError

from .test_store_contract import make_call

RECORD = {
    "speech_end_stream_ms": 5320,
    "end_of_turn_ms": 410.0,
    "stt_ms": 520.5,
    "responder_ms": 3.0,
    "tts_ms": 160.0,
    "overhead_ms": 12.5,
    "voice_to_voice_ms": 1106.0,
    "marks": {"speech_end": 0.0, "first_frame_sent": 1106.0},
}


def lines(call_id: str) -> list[TranscriptEntry]:
    return [
        TranscriptEntry(call_id, 0, Speaker.BOT, "Hello!", 1.0),
        TranscriptEntry(call_id, 1, Speaker.USER, "A table for two.", 2.0, turn=1),
        TranscriptEntry(call_id, 2, Speaker.BOT, "Done.", 3.0, turn=1),
    ]


async def test_a_line_keeps_its_latency_record_and_others_have_none(store: Store) -> None:
    call = make_call()
    await store.commit(call, transcript=lines(call.call_id))
    assert await store.set_latency(call.call_id, 2, RECORD)
    got = await store.transcript(call.call_id)
    assert [ln.latency for ln in got] == [None, None, RECORD]
    assert got[2].to_json()["latency"] == RECORD
    # amending the text (a cut-off reply) keeps the record
    await store.amend_lines([TranscriptEntry(call.call_id, 2, Speaker.BOT, "Do [cut off]", 3.0)])
    assert (await store.transcript(call.call_id))[2].latency == RECORD


async def test_setting_the_latency_of_a_missing_line_changes_nothing(store: Store) -> None:
    call = make_call()
    await store.commit(call, transcript=lines(call.call_id))
    assert not await store.set_latency(call.call_id, 9, RECORD)
    assert not await store.set_latency("nope", 2, RECORD)
    assert all(ln.latency is None for ln in await store.transcript(call.call_id))


async def test_a_record_that_is_not_json_is_refused(store: Store) -> None:
    call = make_call()
    await store.commit(call, transcript=lines(call.call_id))
    with pytest.raises(ValueError):
        await store.set_latency(call.call_id, 2, {**RECORD, "stt_ms": float("nan")})
    assert (await store.transcript(call.call_id))[2].latency is None


async def test_recent_latency_is_newest_first_overall_and_per_call(store: Store) -> None:
    a, b = make_call(), make_call()
    await store.commit(a, transcript=lines(a.call_id))
    await store.commit(
        b,
        transcript=[
            TranscriptEntry(b.call_id, 0, Speaker.BOT, "Hi.", 10.0),
            TranscriptEntry(b.call_id, 1, Speaker.BOT, "Yes.", 11.0),
        ],
    )
    await store.set_latency(a.call_id, 2, RECORD)
    await store.set_latency(b.call_id, 0, {**RECORD, "stt_ms": 1.0})
    await store.set_latency(b.call_id, 1, {**RECORD, "stt_ms": 2.0})
    every = await store.recent_latency(limit=10)
    assert [(c, s) for c, s, _, _ in every] == [(b.call_id, 1), (b.call_id, 0), (a.call_id, 2)]
    assert every[0][3]["stt_ms"] == 2.0 and every[0][2] == 11.0
    assert [(c, s) for c, s, _, _ in await store.recent_latency(limit=1)] == [(b.call_id, 1)]
    only_a = await store.recent_latency(limit=10, call_id=a.call_id)
    assert [(c, s, r) for c, s, _, r in only_a] == [(a.call_id, 2, RECORD)]
    assert await store.recent_latency(limit=10, call_id="x\x00") == []
    with pytest.raises(ValueError):
        await store.recent_latency(limit=0)


async def test_a_line_can_still_not_be_written_twice(store: Store) -> None:
    call = make_call()
    await store.commit(call, transcript=lines(call.call_id))
    with pytest.raises(StoreError):
        await store.commit(call, transcript=[lines(call.call_id)[2]])
