"""Call recordings beside the call lifecycle: :class:`Recordings` is the one object the call
manager, the stream endpoint, the webhook endpoint and the API talk to about them.

* placement (:meth:`Recordings.wants`, :meth:`Recordings.opening`): whether a call records and
  its opening line with the announcement; the decision is kept in the call's row
  (``metadata["record"]``), so a restarted server knows it;
* Media Streams (:meth:`Recordings.tap_for`): a :class:`~voicecall.telephony.wavtap.WavTap`
  per recorded call, shared by its reconnected streams, reopened (repaired) after a restart;
  its reference (``call_recordings``, status ``recording``) is stored when it starts;
* ``<Gather>`` calls: Twilio records (``Record=true`` on create); its signed
  ``RecordingStatusCallback`` (:meth:`Recordings.handle_webhook`) is deduplicated by its
  event key and stores the recording's sid, URL and duration;
* the end (``call.ended`` on the bus): the WAV is written out, fsynced and marked completed;
* the API (:meth:`Recordings.audio`): the WAV bytes; Twilio's recording is fetched from the
  account's Recordings resource with the account credentials (never from a URL a request named);
* start-up (:meth:`Recordings.start`): recordings a crash left open are repaired; the retention
  sweeper (:meth:`Recordings.sweep_once`) runs hourly when ``recording.retention_days`` is set.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from voicecall.audio.stereo_wav import FRAME_BYTES, HEADER_BYTES, WavFormatError, repair
from voicecall.calls.extras import RecordingRef, RecordingSource, RecordingStatus
from voicecall.calls.model import CallRecord
from voicecall.calls.store.base import EventRow
from voicecall.errors import NoRecording, ProviderError, StoreError
from voicecall.providers.base import ParsedWebhook, Reply
from voicecall.telephony.recording import (
    METADATA_KEY,
    announce,
    expired,
    seconds_of,
    wants_recording,
)
from voicecall.telephony.wavtap import WavTap

if TYPE_CHECKING:
    from voicecall.calls.manager import CallManager

__all__ = ["SWEEP_INTERVAL_SECONDS", "Recordings", "records"]

log = logging.getLogger("voicecall.recording")

SWEEP_INTERVAL_SECONDS = 3600.0
_SWEEP_BATCH = 500


def records(record: CallRecord) -> bool:
    """Whether this call records (decided when it was created)."""
    return bool(record.metadata.get(METADATA_KEY))


class Recordings:
    def __init__(self, core: CallManager, *, clock: Callable[[], float] | None = None) -> None:
        self.core = core
        self.settings = core.settings.recording
        self._clock = clock or core.now
        self._taps: dict[str, WavTap] = {}
        self._closing: dict[str, asyncio.Future[Any]] = {}
        self._sweeper: asyncio.Task[None] | None = None
        self.sweep_interval = SWEEP_INTERVAL_SECONDS
        core.bus.add_listener(self._on_event)

    @property
    def directory(self) -> Path:
        return Path(self.settings.dir).expanduser()

    # ------------------------------------------------------------------ placement

    def wants(self, requested: bool | None) -> bool:
        return wants_recording(requested, enabled=self.settings.enabled)

    def opening(self, message: str | None, record: bool) -> str | None:
        """The call's first line: the announcement goes before it when the call records."""
        return announce(message, self.settings.announcement) if record else message

    @staticmethod
    def metadata(record: bool) -> dict[str, Any]:
        return {METADATA_KEY: True} if record else {}

    # ------------------------------------------------------------------ Media Streams

    def tap_for(self, call_id: str) -> WavTap | None:
        """The recorder of a call whose stream was just claimed (``None``: it does not record).

        One file per call (``<dir>/<call_id>.wav``), shared by reconnected streams; a file a
        previous run left is repaired and appended to."""
        live = self.core.live(call_id)
        if live is None or not records(live.record):
            return None
        tap = self._taps.get(call_id)
        if tap is not None and not tap.closed:
            return tap
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = self.directory / f"{call_id}.wav"
        tap = WavTap(path)
        self._taps[call_id] = tap
        now = self._clock()
        ref = RecordingRef(
            call_id=call_id,
            source=RecordingSource.STREAM,
            status=RecordingStatus.RECORDING,
            started_at=now,
            updated_at=now,
            path=str(path),
            channels=2,
        )
        self.core.spawn(self._put(ref))
        return tap

    async def _put(self, ref: RecordingRef) -> None:
        try:
            await self.core.store.put_recording(ref)
        except StoreError as exc:
            log.error("call %s: its recording reference was not stored: %s", ref.call_id, exc)

    def _on_event(self, event: dict[str, Any]) -> None:
        if event.get("type") != "call.ended":
            return
        call_id = str((event.get("call") or {}).get("call_id"))
        tap = self._taps.pop(call_id, None)
        if tap is not None:
            self._closing[call_id] = self.core.spawn(self._finish(call_id, tap))

    async def _finish(self, call_id: str, tap: WavTap) -> None:
        try:
            seconds = await asyncio.wrap_future(tap.finish())
            now = self._clock()
            status = RecordingStatus.FAILED if tap.failed else RecordingStatus.COMPLETED
            await self._put(
                RecordingRef(
                    call_id=call_id,
                    source=RecordingSource.STREAM,
                    status=status,
                    started_at=now,  # kept: the stored row has its own start
                    updated_at=now,
                    path=str(tap.path),
                    channels=2,
                    duration_seconds=round(seconds, 3),
                )
            )
            self.core.bus.publish(
                {
                    "type": "recording.completed",
                    "at": now,
                    "call_id": call_id,
                    "status": status.value,
                    "duration_seconds": round(seconds, 3),
                }
            )
        finally:
            self._closing.pop(call_id, None)

    async def settled(self, call_id: str) -> None:
        """Wait until an ended call's recording is written out (for tests and the API)."""
        pending = self._closing.get(call_id)
        if pending is not None:
            with contextlib.suppress(Exception):
                await asyncio.shield(pending)

    # ------------------------------------------------------------------ Twilio's recordings

    async def handle_webhook(self, hook: ParsedWebhook) -> Reply:
        """A signed ``RecordingStatusCallback``: deduplicated by its event key, then the
        recording's sid, URL and duration are stored on the call (empty answer: Twilio ignores
        the body). Unknown calls are acknowledged and ignored."""
        info = hook.recording
        call_id = hook.call_id
        if info is None or call_id is None:
            return Reply.empty()
        store = self.core.store
        record = await store.get_call(call_id)
        if record is None or record.provider_call_id not in (None, hook.provider_call_id):
            log.info("recording callback for unknown call %s ignored", hook.provider_call_id)
            return Reply.empty()
        if await store.has_event(info.dedupe_key):
            return Reply.empty()
        now = self._clock()
        status = {
            "completed": RecordingStatus.COMPLETED,
            "absent": RecordingStatus.ABSENT,
            "failed": RecordingStatus.FAILED,
        }.get(info.status, RecordingStatus.RECORDING)
        ref = RecordingRef(
            call_id=call_id,
            source=RecordingSource.TWILIO,
            status=status,
            started_at=now,
            updated_at=now,
            sid=info.sid,
            url=info.url,
            channels=info.channels,
            duration_seconds=info.duration_seconds,
        )
        existing = await store.recording(call_id)
        if existing is not None:
            ref = ref.copy(started_at=existing.started_at)
        await store.put_recording(ref)  # idempotent: a redelivery writes the same values
        await store.commit(
            None,
            event=EventRow(
                dedupe_key=info.dedupe_key,
                call_id=call_id,
                kind="recording",
                at=now,
                detail=f"recording {info.status}",
            ),
        )
        self.core.bus.publish(
            {
                "type": "recording.completed"
                if status is not RecordingStatus.RECORDING
                else "recording.started",
                "at": now,
                "call_id": call_id,
                "status": status.value,
                "recording_sid": info.sid,
                "duration_seconds": info.duration_seconds,
            }
        )
        return Reply.empty()

    # ------------------------------------------------------------------ the API

    async def reference(self, call_id: str) -> RecordingRef | None:
        return await self.core.store.recording(call_id)

    async def audio(self, call_id: str) -> bytes:
        """The call's recording as WAV bytes; :class:`NoRecording` (404) naming the call when
        it has none (it did not record, nothing was recorded, or it was deleted)."""
        await self.core.get_call(call_id)  # 404 UnknownCall first
        await self.settled(call_id)
        ref = await self.core.store.recording(call_id)
        if ref is None:
            raise NoRecording(f"call {call_id} has no recording (it was not recorded)")
        if ref.status is RecordingStatus.DELETED:
            raise NoRecording(f"call {call_id} has no recording (deleted after retention_days)")
        if ref.source is RecordingSource.STREAM and ref.path:
            try:
                return await asyncio.to_thread(Path(ref.path).read_bytes)
            except FileNotFoundError:
                raise NoRecording(f"call {call_id}: its recording file is gone") from None
        if ref.source is RecordingSource.TWILIO:
            if ref.status is RecordingStatus.ABSENT:
                raise NoRecording(f"call {call_id} has no recording (Twilio recorded nothing)")
            if ref.sid is None or ref.status is not RecordingStatus.COMPLETED:
                raise NoRecording(
                    f"call {call_id}: Twilio's recording is not ready yet (status {ref.status})"
                )
            return await self.core.provider.recording_audio(ref.sid)
        raise NoRecording(f"call {call_id} has no recording")

    async def extras(self, record: CallRecord) -> dict[str, Any]:
        """What ``GET /api/calls/{id}`` shows about the call's recording."""
        ref = await self.core.store.recording(record.call_id)
        return {
            "record": records(record),
            "recording": ref.to_json() if ref is not None else None,
        }

    # ------------------------------------------------------------------ start-up, retention

    async def start(self) -> None:
        """Repair what a crash left open (calls that ended meanwhile are completed), then run
        the sweeper when a retention is set."""
        try:
            left = await self.core.store.open_recordings()
        except StoreError as exc:
            log.error("recordings: start-up check failed: %s", exc)
            left = []
        for ref in left:
            await self._recover(ref)
        if self.settings.retention_days is not None and self._sweeper is None:
            self._sweeper = asyncio.create_task(self._sweep_forever(), name="voicecall-sweeper")

    async def _recover(self, ref: RecordingRef) -> None:
        if ref.source is not RecordingSource.STREAM or not ref.path:
            return
        try:
            seconds = await asyncio.to_thread(_repair_file, Path(ref.path))
        except (OSError, WavFormatError) as exc:
            log.error("recording %s could not be repaired: %s", ref.path, exc)
            return
        record = await self.core.store.get_call(ref.call_id)
        if record is not None and record.is_terminal:
            now = self._clock()
            await self._put(
                ref.copy(
                    status=RecordingStatus.COMPLETED,
                    updated_at=now,
                    duration_seconds=None if seconds is None else round(seconds, 3),
                )
            )

    async def stop(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
            self._sweeper = None
        for call_id, tap in list(self._taps.items()):
            with contextlib.suppress(Exception):
                await asyncio.wrap_future(tap.finish())
            self._taps.pop(call_id, None)

    async def _sweep_forever(self) -> None:
        while True:
            try:
                await self.sweep_once()
            except Exception:  # the sweeper must outlive any one failure
                log.exception("recording sweep failed")
            await asyncio.sleep(self.sweep_interval)

    async def sweep_once(self, now: float | None = None) -> int:
        """Delete recordings older than ``recording.retention_days``: the file (or Twilio's
        recording), then the reference (a tombstone stays). Returns how many were deleted."""
        at = self._clock() if now is None else now
        days = self.settings.retention_days
        if days is None:
            return 0
        store = self.core.store
        candidates = await store.recordings_before(at - days * 86_400.0, limit=_SWEEP_BATCH)
        deleted = 0
        for ref in expired(candidates, now=at, retention_days=days):
            try:
                if ref.source is RecordingSource.STREAM and ref.path:
                    with contextlib.suppress(FileNotFoundError):
                        await asyncio.to_thread(os.remove, ref.path)
                elif ref.source is RecordingSource.TWILIO and ref.sid:
                    await self.core.provider.delete_recording(ref.sid)
            except (OSError, ProviderError) as exc:
                log.warning("recording of %s not deleted yet: %s", ref.call_id, exc)
                continue
            if await store.delete_recording(ref.call_id, at=at):
                deleted += 1
                log.info("recording of call %s deleted (retention)", ref.call_id)
        return deleted


def _repair_file(path: Path) -> float | None:
    """Repair a recording a crash left open; its length in seconds (``None``: no file)."""
    if not path.exists():
        return None
    plan = repair(path)
    if plan is not None:
        log.warning("recording %s repaired after a crash (%d frames)", path, plan.frames)
    return seconds_of((path.stat().st_size - HEADER_BYTES) // FRAME_BYTES)
