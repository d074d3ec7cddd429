"""Control API: latency records of bot replies (``GET /api/latency``) and their schema.

Each bot line of ``GET /api/calls/{id}`` carries its record under ``latency``
(:class:`TurnLatencyOut`); ``GET /api/latency?call_id=&last=`` lists the newest records (of one
call, or of all) with p50/p95 per stage. Figures are described in voice/latency.py and
docs/realtime.md ("Measuring turns").
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, FastAPI, Query, Request
from pydantic import BaseModel, Field

from voicecall.calls.call_ids import resolve_call_id
from voicecall.calls.manager import CallManager
from voicecall.server.api_docs import problems
from voicecall.voice.latency import summarize


class TurnLatencyOut(BaseModel):
    """How long one bot reply took (ms). Marks are ms after the caller's speech end."""

    speech_end_stream_ms: int = Field(
        description="The caller's speech end on the media stream's clock (ms since it started)"
    )
    end_of_turn_ms: float = Field(description="Speech end → end of turn decided")
    stt_ms: float = Field(description="End of turn decided → final transcript")
    responder_ms: float = Field(description="Final transcript → the responder's first output")
    tts_ms: float = Field(description="Text handed to TTS → its first audio")
    overhead_ms: float = Field(description="Voice-to-voice minus the stages: the service's own")
    voice_to_voice_ms: float = Field(description="Caller's speech end → first bot frame sent")
    marks: dict[str, float] = Field(
        default_factory=dict,
        description="speech_end, turn_decided, transcript_final, responder_first, "
        "tts_requested, tts_first_audio, first_frame_sent: ms after the speech end",
    )


class LatencyTurn(BaseModel):
    call_id: str
    seq: int = Field(description="The bot line's transcript seq")
    at: float = Field(description="When the line was written (unix seconds)")
    latency: TurnLatencyOut


class StageSummary(BaseModel):
    count: int
    p50: float
    p95: float
    max: float


class LatencyReport(BaseModel):
    turns: list[LatencyTurn] = Field(description="Newest first")
    stages: dict[str, StageSummary] = Field(
        description="Per stage (end_of_turn, stt, responder, tts, overhead, voice_to_voice)"
    )


def _manager(request: Request) -> CallManager:
    manager: CallManager = request.app.state.get_manager()
    return manager


Manager = Annotated[CallManager, Depends(_manager)]


def add_latency_routes(router: FastAPI, auth: Any) -> None:
    """Add the route behind the API's auth dependency (a plain route, like the others)."""

    @router.get(
        "/api/latency",
        response_model=LatencyReport,
        responses=problems(404, 409, 422),
        dependencies=[Depends(auth)],
    )
    async def latency(
        m: Manager,
        call_id: Annotated[
            str | None,
            Query(
                min_length=1,
                max_length=64,
                description="Only this call (an id or a unique prefix of 6+ characters)",
            ),
        ] = None,
        last: Annotated[int, Query(ge=1, le=1000, description="How many replies")] = 50,
    ) -> LatencyReport:
        """The newest bot replies' latency records, with p50/p95 per stage."""
        cid = None if call_id is None else await resolve_call_id(m.store, call_id)
        rows = await m.store.recent_latency(limit=last, call_id=cid)
        turns = [
            LatencyTurn(call_id=c, seq=seq, at=at, latency=TurnLatencyOut.model_validate(rec))
            for c, seq, at, rec in rows
            if rec
        ]
        summary = summarize([t.latency.model_dump() for t in turns])
        return LatencyReport(
            turns=turns, stages={k: StageSummary.model_validate(v) for k, v in summary.items()}
        )
