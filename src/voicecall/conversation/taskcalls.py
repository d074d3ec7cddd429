"""Task calls and what follows every call's end, beside the call lifecycle.

:class:`TaskCalls` is the one object the call manager talks to for them, through small seams:

* placement: :meth:`plan` validates a call's request (task, context, outcome schema, report URL)
  before anything is stored or dialled, and gives the opening line; :meth:`placed` remembers it;
* the conversation: :meth:`responder_for` (a task call is answered by its
  :class:`~voicecall.conversation.agent.TaskAgent`), :meth:`context` (the brief and the call's
  tool box for a reply), :meth:`holding` (no automatic reply while a tool's result — the owner's
  answer — is pending), :meth:`after_webhook` (the agent opens a call that has no opening line);
* the end: :meth:`outbox` (the report outbox row, committed with the end) and :meth:`ended`
  (the outcome is decided, pending questions cancelled, the report delivered);
* the API: :meth:`extras`, :meth:`answer`, :meth:`wait`.

Tools beyond ``end_call`` and ``ask_owner`` are registered with :meth:`provide_tool` (the telephony
code does so for ``send_dtmf`` and ``transfer_call``): a tool without a handler is never offered.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from voicecall.agent.responder import Responder
from voicecall.calls.extras import CallSpec, OwnerQuestion, QuestionStatus, ReportDelivery
from voicecall.calls.live import LiveCall
from voicecall.calls.model import CallMode, CallRecord, Direction
from voicecall.conversation.agent import TaskAgent
from voicecall.conversation.chat import ChatModel
from voicecall.conversation.outcome import decide
from voicecall.conversation.owner import OwnerDesk
from voicecall.conversation.task import (
    CallRequest,
    TaskBrief,
    TaskSpec,
    check_task_request,
    opening_line,
    system_prompt,
)
from voicecall.conversation.text import check_message
from voicecall.conversation.tools import (
    ASK_OWNER,
    END_CALL,
    ToolBox,
    ToolHandler,
    ToolSpec,
    end_call_handler,
)
from voicecall.errors import InvalidRequest, StoreError
from voicecall.providers.base import ParsedWebhook, WebhookKind
from voicecall.reports import urls
from voicecall.reports.delivery import ReportDeliverer, new_outbox_row
from voicecall.telephony.transfer_plan import TARGETS_KEY, check_targets

if TYPE_CHECKING:
    from voicecall.calls.manager import CallManager

log = logging.getLogger("voicecall.tasks")

#: a tool's handler for one call: ``make(call_id) -> handler`` (``None``: not on this call)
ToolFactory = Callable[[str], ToolHandler | None]

#: events that may settle a wait on a call
_WAKING = ("call.ended", "call.outcome", "question", "call.created", "call.updated")

NO_MODEL = (
    "mode: task calls need a chat model; set responder.base_url and responder.model (and "
    "responder.api_key for api.openai.com)"
)


@dataclass(frozen=True, slots=True)
class CallPlan:
    """A validated request: what is said first and what is stored beside the call."""

    opening: str | None
    task: TaskSpec | None = None
    report_url: str | None = None
    #: kept in the call record's metadata (``transfer_to``: the numbers a task may transfer to)
    metadata: tuple[tuple[str, Any], ...] = ()

    def spec(self, call_id: str, now: float) -> CallSpec | None:
        if self.task is None and self.report_url is None:
            return None
        return CallSpec(
            call_id=call_id,
            task=self.task.task if self.task else None,
            context=self.task.context if self.task else None,
            outcome_schema=self.task.outcome_schema if self.task else None,
            report_url=self.report_url,
            created_at=now,
        )


@dataclass(slots=True)
class _Session:
    spec: CallSpec | None
    #: ``spec`` is what the store holds (placed here, or read back); else not read yet
    known: bool = True
    box: ToolBox | None = None
    opened: bool = False

    @property
    def task(self) -> TaskSpec | None:
        return (
            TaskSpec.from_spec(self.spec) if self.spec is not None and self.spec.is_task else None
        )


class TaskCalls:
    def __init__(self, core: CallManager) -> None:
        self.core = core
        self.settings = core.settings.task
        self.model: ChatModel | None = None
        self.agent: TaskAgent | None = None
        #: delivers end-of-call reports (set by the server; ``None``: rows wait in the outbox)
        self.reports: ReportDeliverer | None = None
        self.owner = OwnerDesk(core, self.settings, self._continue)
        self._sessions: dict[str, _Session] = {}
        self._tools: dict[str, tuple[ToolSpec, ToolFactory]] = {}
        self._watchers: dict[str, set[asyncio.Event]] = {}
        self._finishing: set[str] = set()
        core.bus.add_listener(self._on_event)

    # ------------------------------------------------------------------ configuration

    def use_model(self, model: ChatModel | None) -> None:
        """The model task calls talk and decide outcomes with (``None``: task calls refused)."""
        self.model = model
        self.agent = (
            TaskAgent(model, max_rounds=self.settings.max_tool_rounds)
            if model is not None
            else None
        )

    def provide_tool(self, spec: ToolSpec, make: ToolFactory) -> None:
        """Offer ``spec`` to task calls placed from now on, run by ``make(call_id)``."""
        if spec.name in (END_CALL.name, ASK_OWNER.name):
            raise ValueError(f"{spec.name} is built in")
        self._tools[spec.name] = (spec, make)

    # ------------------------------------------------------------------ placement

    async def plan(
        self, mode: CallMode, message: str | None, request: CallRequest | None
    ) -> CallPlan:
        """Check a new outbound call's request (422 naming the field; nothing is stored)."""
        request = request or CallRequest()
        task = check_task_request(mode, request)
        report_url = None
        if request.report_url is not None:
            await urls.resolve(
                request.report_url,
                allow_private=self.core.settings.reports.allow_private_urls,
            )
            report_url = request.report_url.strip()
        if task is None:
            return CallPlan(check_message(message), None, report_url)
        if self.agent is None:
            raise InvalidRequest(NO_MODEL)
        opening = opening_line(
            message,
            disclosure=self.settings.disclosure,
            disclosure_text=self.settings.disclosure_text,
        )
        targets = check_targets(request.transfer_to)
        metadata = ((TARGETS_KEY, list(targets)),) if targets else ()
        return CallPlan(opening, task, report_url, metadata)

    def placed(self, call_id: str, spec: CallSpec | None) -> None:
        """A call was stored with ``spec`` (its session needs no store read later)."""
        self._sessions[call_id] = _Session(spec)

    async def start(self) -> None:
        """After a (re)start: questions of an earlier process wait for nobody any more, and
        ended task calls whose outcome was never stored get one now."""
        try:
            await self.core.store.cancel_questions(at=self.core.now())
            unfinished = await self.core.store.unfinished_outcomes()
        except StoreError as exc:
            log.error("task calls: start-up checks failed: %s", exc)
            return
        for call_id in unfinished:
            log.info("call %s: its outcome was never stored; deciding it now", call_id)
            self.core.spawn(self._finish(call_id))

    # ------------------------------------------------------------------ the conversation

    def responder_for(self, record: CallRecord, default: Responder | None) -> Responder | None:
        if record.mode is CallMode.TASK:
            return self.agent
        return default

    def holding(self, live: LiveCall) -> bool:
        """Whether a tool result is pending (the owner's answer): no automatic reply then."""
        session = self._sessions.get(live.call_id)
        return session is not None and session.box is not None and session.box.waiting()

    async def context(self, live: LiveCall) -> dict[str, Any]:
        """The task brief and tool box of a task call's reply (``{}`` for other calls)."""
        if live.record.mode is not CallMode.TASK:
            return {}
        session = await self._session(live.call_id)
        task = session.task
        if task is None:
            log.error("call %s: a task call without its task", live.call_id)
            return {}
        box = self._box(session, live.call_id)
        now = datetime.fromtimestamp(self.core.now()).astimezone()
        prompt = system_prompt(task, now=now, opening=live.record.message, tools=box.names())
        return {"task": TaskBrief(task, prompt), "tools": box}

    def after_webhook(self, live: LiveCall, hook: ParsedWebhook) -> None:
        """A task call answered without an opening line: the agent opens it."""
        rec = live.record
        if (
            rec.mode is not CallMode.TASK
            or rec.message is not None
            or hook.kind is not WebhookKind.VOICE
            or rec.answered_at is None
        ):
            return
        session = self._sessions.setdefault(live.call_id, _Session(None, known=False))
        if session.opened:
            return
        session.opened = True
        self.core.autoreply.maybe(live)

    def _box(self, session: _Session, call_id: str) -> ToolBox:
        if session.box is None:
            box = ToolBox(call_id)
            box.register(END_CALL, end_call_handler)

            async def ask(call: Any) -> Any:
                return await self.owner.ask(box, call)

            box.register(ASK_OWNER, ask)
            for spec, make in self._tools.values():
                handler = make(call_id)
                if handler is not None:
                    box.register(spec, handler)
            session.box = box
        return session.box

    async def _session(self, call_id: str) -> _Session:
        session = self._sessions.setdefault(call_id, _Session(None, known=False))
        if not session.known:
            session.spec = await self.core.store.call_spec(call_id)
            session.known = True
        return session

    def resolve_tool(self, call_id: str, tool_call_id: str, result: dict[str, Any]) -> bool:
        """A tool whose result came later (a warm transfer's) has it now: the agent goes on.
        ``False`` when no such call waits on this call."""
        session = self._sessions.get(call_id)
        if session is None or session.box is None:
            return False
        if not session.box.resolve(tool_call_id, result):
            return False
        self._continue(call_id)
        return True

    def _continue(self, call_id: str) -> None:
        """A pending tool result arrived (the owner answered, or did not): the agent goes on."""
        live = self.core.live(call_id)
        if live is None or live.waiters or live.record.is_terminal:
            return
        self.core.autoreply.maybe(live)

    # ------------------------------------------------------------------ the end

    async def outbox(self, record: CallRecord) -> ReportDelivery | None:
        """The report outbox row for a call that is ending now (``None``: no report URL)."""
        spec: CallSpec | None = None
        session = self._sessions.get(record.call_id)
        if session is not None and session.known:
            spec = session.spec
        elif record.direction is Direction.OUTBOUND:
            try:
                spec = await self.core.store.call_spec(record.call_id)
            except StoreError as exc:
                log.error("call %s: its report URL is unreadable: %s", record.call_id, exc)
        url = (spec.report_url if spec is not None else None) or self.core.settings.reports.url
        if not url:
            return None
        return new_outbox_row(record.call_id, url, self.core.now())

    def ended(self, record: CallRecord) -> None:
        """The call's end is stored: cancel its questions, decide its outcome, send its report."""
        call_id = record.call_id
        self._sessions.pop(call_id, None)
        if record.mode is CallMode.TASK:
            self.core.spawn(self.owner.cancel(call_id))
            self.core.spawn(self._finish(call_id))
        if self.reports is not None:
            self.reports.kick(call_id)

    async def _finish(self, call_id: str) -> None:
        if call_id in self._finishing:
            return
        self._finishing.add(call_id)
        store = self.core.store
        try:
            spec = await store.call_spec(call_id)
            record = await store.get_call(call_id)
            if spec is None or not spec.is_task or record is None or not record.is_terminal:
                return
            if await store.call_result(call_id) is not None:
                return
            lines = await store.transcript(call_id)
            questions = await store.questions(call_id)
            result = await decide(
                self.model,
                record=record,
                spec=TaskSpec.from_spec(spec),
                lines=lines,
                questions=questions,
                now=self.core.now(),
                timeout_s=self.settings.outcome_timeout_seconds,
            )
            await store.put_result(result)
            final = await store.call_result(call_id) or result
            self.core.bus.publish(
                {
                    "type": "call.outcome",
                    "at": self.core.now(),
                    "call_id": call_id,
                    **final.to_json(),
                }
            )
            if self.reports is not None:
                self.reports.outcome_ready(call_id)
        except StoreError as exc:  # the next start-up decides it (unfinished_outcomes)
            log.error("call %s: its outcome could not be stored: %s", call_id, exc)
        finally:
            self._finishing.discard(call_id)

    # ------------------------------------------------------------------ the API

    async def extras(self, record: CallRecord) -> dict[str, Any]:
        """What ``GET /api/calls/{id}`` shows beside the call's row."""
        store = self.core.store
        call_id = record.call_id
        spec = await store.call_spec(call_id)
        is_task = spec is not None and spec.is_task
        result = await store.call_result(call_id) if is_task else None
        questions = await store.questions(call_id) if record.mode is CallMode.TASK else []
        report = await store.report(call_id)
        pending = None
        if not record.is_terminal:
            waiting = self.owner.waiting(call_id)
            if waiting is None:
                waiting = next(
                    (q for q in reversed(questions) if q.status is QuestionStatus.PENDING), None
                )
            if waiting is not None:
                pending = {
                    "seq": waiting.seq,
                    "question": waiting.question,
                    "asked_at": waiting.asked_at,
                }
        return {
            "task": spec.task if spec is not None else None,
            "context": spec.context if spec is not None else None,
            "outcome_schema": spec.outcome_schema if is_task and spec is not None else None,
            "outcome": result.outcome if result is not None else None,
            "summary": result.summary if result is not None else None,
            "outcome_error": result.outcome_error if result is not None else None,
            "outcome_final": record.is_terminal and (not is_task or result is not None),
            "pending_question": pending,
            "questions": [q.to_json() for q in questions],
            "report": report.to_json() if report is not None else None,
        }

    async def answer(self, call_id: str, text: str) -> OwnerQuestion:
        return await self.owner.answer(call_id, text)

    async def wait(self, call_id: str, seconds: float, *, questions: bool = True) -> None:
        """Return when the call has ended and its outcome is final, when (``questions``) a
        question waits for the owner's answer, or after ``seconds``."""
        await self.core.get_call(call_id)  # 404 for an unknown call
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        woken = asyncio.Event()
        self._watchers.setdefault(call_id, set()).add(woken)
        try:
            while True:
                woken.clear()
                if await self._settled(call_id, questions=questions):
                    return
                left = deadline - loop.time()
                if left <= 0:
                    return
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(woken.wait(), min(left, 5.0))
        finally:
            watchers = self._watchers.get(call_id)
            if watchers is not None:
                watchers.discard(woken)
                if not watchers:
                    del self._watchers[call_id]

    async def _settled(self, call_id: str, *, questions: bool) -> bool:
        record = await self.core.get_call(call_id)
        if record.is_terminal:
            spec = await self.core.store.call_spec(call_id)
            if spec is None or not spec.is_task:
                return True
            return await self.core.store.call_result(call_id) is not None
        return questions and self.owner.waiting(call_id) is not None

    def _on_event(self, event: dict[str, Any]) -> None:
        if not self._watchers or event.get("type") not in _WAKING:
            return
        call_id = event.get("call_id") or (event.get("call") or {}).get("call_id")
        for woken in self._watchers.get(str(call_id), ()):
            woken.set()
