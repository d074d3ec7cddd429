"""The SQL of call recordings (migration 5), both backends (``%s`` placeholders, see
:mod:`~voicecall.calls.store.extras_sql`), and the row ↔ :class:`RecordingRef` codec."""

from __future__ import annotations

from typing import Any, Final

from voicecall.calls.extras import RecordingRef, RecordingSource, RecordingStatus

COLUMNS: Final = (
    "call_id",
    "source",
    "status",
    "path",
    "sid",
    "url",
    "channels",
    "duration_seconds",
    "started_at",
    "updated_at",
)
_COLS = ", ".join(COLUMNS)
_MARKS = ", ".join(["%s"] * len(COLUMNS))

WRITES: Final[dict[str, str]] = {
    # a deleted recording stays deleted (a late provider callback cannot bring it back);
    # what a write does not know (None) keeps what is stored
    "put_recording": f"INSERT INTO call_recordings ({_COLS}) VALUES ({_MARKS})"  # noqa: S608
    " ON CONFLICT (call_id) DO UPDATE SET status = excluded.status,"
    " path = COALESCE(excluded.path, call_recordings.path),"
    " sid = COALESCE(excluded.sid, call_recordings.sid),"
    " url = COALESCE(excluded.url, call_recordings.url),"
    " channels = COALESCE(excluded.channels, call_recordings.channels),"
    " duration_seconds = COALESCE(excluded.duration_seconds, call_recordings.duration_seconds),"
    " updated_at = excluded.updated_at"
    " WHERE call_recordings.status <> 'deleted'",
    "delete_recording": "UPDATE call_recordings SET status = 'deleted', path = NULL, url = NULL,"
    " updated_at = %s WHERE call_id = %s AND status <> 'deleted'",
}

READS: Final[dict[str, str]] = {
    "recording": f"SELECT {_COLS} FROM call_recordings WHERE call_id = %s",  # noqa: S608
    "recordings_before": f"SELECT {_COLS} FROM call_recordings"  # noqa: S608
    " WHERE started_at < %s AND status <> 'deleted' ORDER BY started_at, call_id LIMIT %s",
    "recordings_open": f"SELECT {_COLS} FROM call_recordings"  # noqa: S608
    " WHERE status = 'recording' ORDER BY started_at, call_id",
}


def to_row(ref: RecordingRef) -> tuple[Any, ...]:
    return (
        ref.call_id,
        ref.source.value,
        ref.status.value,
        ref.path,
        ref.sid,
        ref.url,
        ref.channels,
        None if ref.duration_seconds is None else float(ref.duration_seconds),
        float(ref.started_at),
        float(ref.updated_at),
    )


def from_row(row: tuple[object, ...]) -> RecordingRef:
    call_id, source, status, path, sid, url, channels, duration, started, updated = row
    return RecordingRef(
        call_id=str(call_id),
        source=RecordingSource(str(source)),
        status=RecordingStatus(str(status)),
        path=None if path is None else str(path),
        sid=None if sid is None else str(sid),
        url=None if url is None else str(url),
        channels=None if channels is None else int(str(channels)),
        duration_seconds=None if duration is None else float(str(duration)),
        started_at=float(str(started)),
        updated_at=float(str(updated)),
    )
