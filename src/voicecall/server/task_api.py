"""The control API's task-call parts: the request fields of ``POST /api/calls``, the call detail of
``GET /api/calls/{id}`` (task, outcome, summary, pending question, report delivery; ``?wait=S``),
and the bodies of ``POST /api/calls/{id}/answer`` (its route is in ``server/api.py``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from pydantic import AfterValidator, BaseModel, Field, WithJsonSchema

from voicecall.conversation.owner import MAX_ANSWER_CHARS
from voicecall.conversation.task import MAX_CONTEXT_CHARS, MAX_TASK_CHARS, CallRequest
from voicecall.phone import E164_PATTERN
from voicecall.reports.urls import MAX_URL_CHARS
from voicecall.textrules import check_client_text, text_schema

if TYPE_CHECKING:
    from voicecall.calls.manager import CallManager
    from voicecall.calls.model import CallRecord, TranscriptEntry

MAX_WAIT_SECONDS = 600.0

# free text from clients follows the one rule (voicecall.textrules): no control characters
TaskText = Annotated[
    str,
    Field(min_length=1, max_length=MAX_TASK_CHARS),
    AfterValidator(check_client_text),
    WithJsonSchema(text_schema(MAX_TASK_CHARS)),
]
ContextText = Annotated[
    str,
    Field(min_length=1, max_length=MAX_CONTEXT_CHARS),
    AfterValidator(check_client_text),
    WithJsonSchema(text_schema(MAX_CONTEXT_CHARS)),
]
AnswerText = Annotated[
    str,
    Field(min_length=1, max_length=MAX_ANSWER_CHARS),
    AfterValidator(check_client_text),
    WithJsonSchema(text_schema(MAX_ANSWER_CHARS)),
]


class TaskFields(BaseModel):
    """The fields ``POST /api/calls`` takes for task calls and end-of-call reports."""

    task: TaskText | None = Field(
        None,
        description="mode task: what the call should get done, with its limits, in plain words",
    )
    context: ContextText | None = Field(
        None,
        description="mode task: facts the agent may share (names, numbers, times)",
    )
    outcome_schema: dict[str, Any] | None = Field(
        None,
        description="mode task: JSON Schema (Draft 2020-12) of the result; default "
        "{done: boolean, details: string}",
    )
    report_url: str | None = Field(
        None,
        max_length=MAX_URL_CHARS,
        description="any mode: where the signed end-of-call report is POSTed (else reports.url)",
    )

    transfer_to: (
        list[Annotated[str, Field(max_length=16, json_schema_extra={"pattern": E164_PATTERN})]]
        | None
    ) = Field(
        None,
        max_length=10,
        description="mode task: numbers (E.164) the agent may transfer the call to with its "
        "transfer_call tool (the outbound policy applies too)",
    )

    def call_request(self, *, record: bool | None = None) -> CallRequest | None:
        targets = tuple(self.transfer_to) if self.transfer_to is not None else None
        request = CallRequest(
            self.task,
            self.context,
            self.outcome_schema,
            self.report_url,
            record=record,
            transfer_to=targets,
        )
        return None if request.empty else request


class PendingQuestion(BaseModel):
    seq: int
    question: str
    asked_at: float


class QuestionOut(BaseModel):
    seq: int
    question: str
    asked_at: float
    status: str
    answer: str | None
    settled_at: float | None


class ReportOut(BaseModel):
    webhook_id: str
    url: str
    state: str = Field(description="pending, delivered or failed")
    attempts: int
    next_attempt_at: float | None
    last_status: int | None
    last_error: str | None
    delivered_at: float | None


class TaskDetail(BaseModel):
    """What ``GET /api/calls/{id}`` adds to the call's fields."""

    task: str | None = None
    context: str | None = None
    outcome_schema: dict[str, Any] | None = None
    outcome: Any = None
    summary: str | None = None
    outcome_error: str | None = None
    outcome_final: bool = Field(
        False, description="the call has ended and its outcome (task calls) is stored"
    )
    pending_question: PendingQuestion | None = None
    questions: list[QuestionOut] = Field(default_factory=list)
    report: ReportOut | None = None


class Answer(BaseModel):
    answer: AnswerText


class Answered(BaseModel):
    call_id: str
    seq: int
    question: str
    answer: str


async def call_detail(
    manager: CallManager, record: CallRecord, transcript: list[TranscriptEntry]
) -> dict[str, Any]:
    """The call's JSON document with its transcript and everything kept beside it."""
    return {
        **record.to_json(),
        "transcript": [t.to_json() for t in transcript],
        **await manager.tasks.extras(record),
        **await manager.recordings.extras(record),
    }
