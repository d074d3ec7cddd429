"""Call recordings in the store (migration 5), on SQLite and PostgreSQL."""

from __future__ import annotations

from voicecall.calls.extras import RecordingRef, RecordingSource, RecordingStatus
from voicecall.calls.store.base import Store


def _ref(call_id: str = "c1", **kw: object) -> RecordingRef:
    base: dict[str, object] = {
        "call_id": call_id,
        "source": RecordingSource.STREAM,
        "status": RecordingStatus.RECORDING,
        "started_at": 100.0,
        "updated_at": 100.0,
        "path": "/rec/c1.wav",
        "channels": 2,
    }
    base.update(kw)
    return RecordingRef(**base)  # type: ignore[arg-type]


async def test_put_update_read(store: Store) -> None:
    assert await store.recording("c1") is None
    assert await store.put_recording(_ref())
    got = await store.recording("c1")
    assert got == _ref()
    # an update keeps what it does not know (None) and takes the rest
    done = _ref(
        status=RecordingStatus.COMPLETED, path=None, duration_seconds=12.5, updated_at=140.0
    )
    assert await store.put_recording(done)
    got = await store.recording("c1")
    assert got is not None
    assert got.status is RecordingStatus.COMPLETED
    assert got.path == "/rec/c1.wav"
    assert got.duration_seconds == 12.5
    assert got.updated_at == 140.0


async def test_twilio_reference(store: Store) -> None:
    ref = _ref(
        "c2",
        source=RecordingSource.TWILIO,
        path=None,
        sid="RE" + "a" * 32,
        url="https://api.twilio.com/2010-04-01/Accounts/AC1/Recordings/RE" + "a" * 32,
        status=RecordingStatus.COMPLETED,
        duration_seconds=3.0,
    )
    await store.put_recording(ref)
    assert await store.recording("c2") == ref


async def test_open_and_before_and_delete(store: Store) -> None:
    await store.put_recording(_ref("old", started_at=10.0))
    await store.put_recording(_ref("new", started_at=1000.0, status=RecordingStatus.COMPLETED))
    assert [r.call_id for r in await store.open_recordings()] == ["old"]
    assert [r.call_id for r in await store.recordings_before(500.0)] == ["old"]
    assert [r.call_id for r in await store.recordings_before(5000.0)] == ["old", "new"]
    assert await store.delete_recording("old", at=2000.0)
    assert not await store.delete_recording("old", at=2001.0)  # already deleted
    assert not await store.delete_recording("nope", at=2001.0)
    gone = await store.recording("old")
    assert gone is not None
    assert gone.status is RecordingStatus.DELETED
    assert gone.path is None and gone.url is None
    assert [r.call_id for r in await store.recordings_before(5000.0)] == ["new"]
    # a deleted recording stays deleted (a late provider callback cannot bring it back)
    assert not await store.put_recording(_ref("old", status=RecordingStatus.COMPLETED))
    again = await store.recording("old")
    assert again is not None and again.status is RecordingStatus.DELETED
