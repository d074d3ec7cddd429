"""Control API routes and fields of call recordings.

``GET /api/calls/{call_id}/recording``: the recording as ``audio/wav`` (the API token is
required like everywhere). A Media Streams call's stereo WAV is read from ``recording.dir``;
a ``<Gather>`` call's recording is Twilio's, fetched from the account's Recordings resource with
the account credentials and passed through (the client never needs Twilio credentials). A call
without a recording is a 404 problem naming it (``NoRecording``); nothing changes.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request, Response
from pydantic import BaseModel, Field

from voicecall.calls.manager import CallManager
from voicecall.server.api_docs import problems

WAV = "audio/wav"


class RecordingOut(BaseModel):
    source: str = Field(description="stream (our stereo WAV) or twilio (Twilio's recording)")
    status: str = Field(description="recording, completed, absent, failed or deleted")
    started_at: float
    duration_seconds: float | None
    channels: int | None
    recording_sid: str | None = Field(description="Twilio's RecordingSid (source twilio)")
    recording_url: str | None = Field(description="Twilio's RecordingUrl (source twilio)")


class RecordingDetail(BaseModel):
    """What ``GET /api/calls/{id}`` adds about recording."""

    record: bool = Field(False, description="the call records (record: true or recording.enabled)")
    recording: RecordingOut | None = Field(
        None, description="where its recording is; GET /api/calls/{id}/recording for the audio"
    )


class RecordField(BaseModel):
    """The field ``POST /api/calls`` takes for recording."""

    record: bool | None = Field(
        None,
        description="record the call (default: recording.enabled); the announcement "
        "(recording.announcement) is said before the first line",
    )


def _manager(request: Request) -> CallManager:
    manager: CallManager = request.app.state.get_manager()
    return manager


Manager = Annotated[CallManager, Depends(_manager)]


def add_recording_routes(router: FastAPI, call_id: Any) -> None:
    """Add the routes (``call_id``: the API's call-id dependency, which authorizes first)."""

    @router.get(
        "/api/calls/{call_id}/recording",
        response_class=Response,
        responses=problems(
            404,
            409,
            502,
            success={200: {"content": {WAV: {"schema": {"type": "string", "format": "binary"}}}}},
        ),
    )
    async def recording(m: Manager, cid: str = Depends(call_id)) -> Response:
        """The call's recording as a WAV file: stereo 16-bit 8 kHz for Media Streams calls
        (left: the caller, right: the bot); Twilio's for `<Gather>` calls. 404 when the call
        has none."""
        audio = await m.recordings.audio(cid)
        return Response(
            audio,
            media_type=WAV,
            headers={"content-disposition": f'attachment; filename="{cid}.wav"'},
        )
