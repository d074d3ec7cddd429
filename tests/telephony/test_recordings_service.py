"""The recordings service against a real SQLite store and the mock provider: the retention
sweeper (injected clock), recovery after a crash, and the 404 of a call without a recording."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest

from voicecall.audio.stereo_wav import WavFile, wav_header
from voicecall.calls.extras import RecordingRef, RecordingSource, RecordingStatus
from voicecall.calls.manager import CallManager
from voicecall.calls.model import CallMode, CallRecord, CallState, Direction, EndReason
from voicecall.calls.store.sqlite import SQLiteStore
from voicecall.config import load_config
from voicecall.errors import NoRecording, UnknownCall
from voicecall.providers.mock import MockProvider

DAY = 86_400.0
NOW = 1_000 * DAY


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[tuple[CallManager, MockProvider, Clock]]:
    store = SQLiteStore(str(tmp_path / "calls.db"))
    await store.open()
    settings = load_config(
        env={},
        overrides={
            "provider": "mock",
            "from_number": "+14155550199",
            "max_concurrent_calls": 5,
            "recording": {"dir": str(tmp_path / "rec"), "retention_days": 30},
        },
    )
    provider = MockProvider()
    clock = Clock(NOW)
    manager = CallManager(settings, store, provider, reaper_interval_seconds=0, clock=clock)
    manager.recordings.sweep_interval = 3600
    await manager.start()
    yield manager, provider, clock
    await manager.recordings.stop()
    await manager.stop()
    await store.close()


async def _ended_call(manager: CallManager, call_id: str, at: float) -> None:
    await manager.store.commit(
        CallRecord(
            call_id=call_id,
            direction=Direction.OUTBOUND,
            mode=CallMode.CONVERSATION,
            from_number="+14155550199",
            to_number="+14155550100",
            state=CallState.COMPLETED,
            end_reason=EndReason.COMPLETED,
            created_at=at,
            updated_at=at,
            ended_at=at,
            metadata={"record": True},
        )
    )


def _wav(path: Path, seconds: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with WavFile(path) as w:
        w.append(np.zeros((int(seconds * 8000), 2), dtype="<i2").tobytes())


async def test_the_sweeper_deletes_what_is_older_than_retention(
    env: tuple[CallManager, MockProvider, Clock], tmp_path: Path
) -> None:
    manager, provider, clock = env
    store = manager.store
    old_file, young_file = tmp_path / "rec" / "old.wav", tmp_path / "rec" / "young.wav"
    _wav(old_file, 0.5)
    _wav(young_file, 0.5)
    for call_id, age, path in (("old", 31, old_file), ("young", 29, young_file)):
        await _ended_call(manager, call_id, NOW - age * DAY)
        await store.put_recording(
            RecordingRef(
                call_id,
                RecordingSource.STREAM,
                RecordingStatus.COMPLETED,
                NOW - age * DAY,
                NOW - age * DAY,
                path=str(path),
                channels=2,
            )
        )
    sid = "RE" + "a" * 32
    provider.recordings[sid] = b"RIFF...."
    await _ended_call(manager, "tw", NOW - 40 * DAY)
    await store.put_recording(
        RecordingRef(
            "tw",
            RecordingSource.TWILIO,
            RecordingStatus.COMPLETED,
            NOW - 40 * DAY,
            NOW - 40 * DAY,
            sid=sid,
            url="https://api.twilio.com/x",
        )
    )
    assert await manager.recordings.sweep_once() == 2
    assert not old_file.exists() and young_file.exists()
    assert sid not in provider.recordings  # deleted at the provider too
    for gone in ("old", "tw"):
        ref = await store.recording(gone)
        assert ref is not None and ref.status is RecordingStatus.DELETED
        assert ref.path is None and ref.url is None
        with pytest.raises(NoRecording, match="deleted"):
            await manager.recordings.audio(gone)
    assert (await manager.recordings.audio("young"))[:4] == b"RIFF"
    assert await manager.recordings.sweep_once() == 0  # nothing more today
    clock.t += 2 * DAY  # two days on, the young one is 31 days old
    assert await manager.recordings.sweep_once() == 1
    assert not young_file.exists()


async def test_a_provider_that_cannot_delete_keeps_the_reference_for_the_next_sweep(
    env: tuple[CallManager, MockProvider, Clock],
) -> None:
    manager, provider, _ = env
    store = manager.store
    await _ended_call(manager, "tw", NOW - 40 * DAY)
    ref = RecordingRef(
        "tw",
        RecordingSource.TWILIO,
        RecordingStatus.COMPLETED,
        NOW - 40 * DAY,
        NOW - 40 * DAY,
        sid="RE" + "b" * 32,
    )
    await store.put_recording(ref)

    async def refuse(sid: str) -> bool:
        from voicecall.errors import ProviderUnavailable

        raise ProviderUnavailable("Twilio is down")

    provider.delete_recording = refuse  # type: ignore[method-assign]
    assert await manager.recordings.sweep_once() == 0
    assert await store.recording("tw") == ref


async def test_a_crash_left_recording_is_repaired_and_completed_at_start(
    tmp_path: Path, env: tuple[CallManager, MockProvider, Clock]
) -> None:
    manager, _, _ = env
    store = manager.store
    path = tmp_path / "rec" / "crashed.wav"
    path.parent.mkdir(parents=True, exist_ok=True)
    # the server died after appending one second, before the header said so
    path.write_bytes(wav_header(0) + b"\x01\x00" * 2 * 8000)
    await _ended_call(manager, "crashed", NOW - 60)
    await store.put_recording(
        RecordingRef(
            "crashed",
            RecordingSource.STREAM,
            RecordingStatus.RECORDING,
            NOW - 90,
            NOW - 90,
            path=str(path),
            channels=2,
        )
    )
    await manager.recordings.start()
    ref = await store.recording("crashed")
    assert ref is not None and ref.status is RecordingStatus.COMPLETED
    assert ref.duration_seconds == 1.0
    audio = await manager.recordings.audio("crashed")
    assert len(audio) == 44 + 4 * 8000
    assert audio[40:44] == (4 * 8000).to_bytes(4, "little")  # the header was repaired


async def test_no_recording_is_a_404_naming_the_call(
    env: tuple[CallManager, MockProvider, Clock],
) -> None:
    manager, _, _ = env
    await _ended_call(manager, "plain", NOW)
    with pytest.raises(NoRecording, match="plain") as err:
        await manager.recordings.audio("plain")
    assert err.value.http_status == 404
    with pytest.raises(UnknownCall):
        await manager.recordings.audio("nobody")


async def test_placing_a_recorded_call_asks_the_provider_and_announces(
    env: tuple[CallManager, MockProvider, Clock],
) -> None:
    from voicecall.conversation.task import CallRequest

    manager, provider, _ = env
    rec = await manager.place_call(
        to="+14155550100",
        message="Your table is ready.",
        mode="notify",
        request=CallRequest(record=True),
    )
    assert rec.message == "This call is recorded. Your table is ready."
    assert rec.metadata["record"] is True
    (dialled,) = provider.calls.values()
    assert dialled.request.record  # a <Say>/<Gather> call: the provider records it
    plain = await manager.place_call(to="+14155550101", message="Hi.", mode="notify")
    assert plain.message == "Hi." and "record" not in plain.metadata
    assert not provider.calls[plain.provider_call_id or ""].request.record


async def test_inbound_calls_on_streams_record_and_hear_the_announcement_first(
    tmp_path: Path,
) -> None:
    from voicecall.events import CallEvent, EventKind
    from voicecall.providers.base import ParsedWebhook, WebhookKind

    store = SQLiteStore(str(tmp_path / "calls.db"))
    await store.open()

    def inbound(sid: str) -> ParsedWebhook:
        return ParsedWebhook(
            kind=WebhookKind.VOICE,
            provider_call_id=sid,
            call_id=None,
            events=(
                CallEvent(
                    kind=EventKind.RINGING,
                    dedupe_key=f"t:{sid}:voice:ringing",
                    provider_call_id=sid,
                    direction=Direction.INBOUND,
                ),
            ),
            inbound=True,
            from_number="+14155550100",
            to_number="+14155550199",
        )

    for streaming, records in ((True, True), (False, False)):
        settings = load_config(
            env={},
            overrides={
                "provider": "mock",
                "from_number": "+14155550199",
                "inbound_policy": "open",
                "max_concurrent_calls": 5,
                "recording": {"enabled": True, "dir": str(tmp_path / "rec")},
            },
        )
        manager = CallManager(settings, store, MockProvider(), reaper_interval_seconds=0)
        manager.streaming = streaming
        sid = f"CA{int(streaming):032x}"
        reply = await manager.handle_webhook(inbound(sid))
        rec = await store.get_call_by_provider_id(sid)
        assert rec is not None
        lines = await store.transcript(rec.call_id)
        greeting = settings.inbound_greeting
        if records:  # recorded by us on its stream: announced first
            assert rec.metadata["record"] is True
            assert lines[0].text == f"This call is recorded. {greeting}"
            assert manager.replies.opening(rec) == lines[0].text
        else:  # <Gather>: Twilio's Record=true exists only on calls we create; not announced
            assert "record" not in rec.metadata
            assert lines[0].text == greeting and reply.say == greeting
        await manager.stop()
    await store.close()
