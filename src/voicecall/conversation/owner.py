"""Asking the owner mid-call: the ``ask_owner`` tool, the hold lines, answers and timeouts.

One question per call at a time. Asking stores the question (``pending``), publishes a
``question`` event (``/api/events``) and keeps the other person company: a hold line at once
(unless the agent already said something like "let me check" in the same reply) and another every
``task.hold_interval_seconds`` — never dead air. The owner answers through the API (CLI, Python,
MCP); the answer becomes the tool's result and the agent goes on at once. Without an answer in
``task.owner_timeout_seconds`` the result says so, and the agent goes on as the task says.

Every settlement (answered, timeout, cancelled when the call ends) is one conditional store
write from ``pending``, so an answer racing the timeout settles the question exactly once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from voicecall.calls.extras import OwnerQuestion, QuestionStatus
from voicecall.conversation.tools import ToolBox, ToolCall, ToolOutcome
from voicecall.errors import CallError, InvalidRequest, StoreError, VoicecallError

if TYPE_CHECKING:
    from voicecall.calls.manager import CallManager
    from voicecall.config import TaskSettings

log = logging.getLogger("voicecall.owner")

MAX_ANSWER_CHARS = 4000


class NoPendingQuestion(CallError):
    """The call has no question waiting for the owner's answer (409)."""

    http_status = 409


_TIMER = "owner-timeout"


@dataclass(slots=True)
class _Waiting:
    question: OwnerQuestion
    tool_call_id: str
    box: ToolBox
    hold: asyncio.Future[None] | None = None

    def stop(self) -> None:
        if self.hold is not None and self.hold is not asyncio.current_task():
            self.hold.cancel()


class OwnerDesk:
    """The owner's questions of every live call of one manager."""

    def __init__(
        self,
        core: CallManager,
        settings: TaskSettings,
        on_settled: Callable[[str], None],
    ) -> None:
        self.core = core
        self.settings = settings
        self._on_settled = on_settled
        self._waiting: dict[str, _Waiting] = {}

    def waiting(self, call_id: str) -> OwnerQuestion | None:
        """The question this process waits on for ``call_id``, if any."""
        w = self._waiting.get(call_id)
        return w.question if w is not None else None

    # ------------------------------------------------------------------ ask (the tool)

    async def ask(self, box: ToolBox, call: ToolCall) -> ToolOutcome:
        core = self.core
        call_id = call.call_id
        question = " ".join(str(call.arguments.get("question", "")).split())
        if call_id in self._waiting:
            return ToolOutcome(
                {"error": "a question to the owner is already waiting for an answer; wait for it"}
            )
        live = core.live(call_id)
        if live is None:
            return ToolOutcome({"error": "the call has ended"})
        try:
            seq = len(await core.store.questions(call_id))
            asked = OwnerQuestion(call_id, seq, question, core.now())
            await core.store.put_question(asked)
        except StoreError as exc:
            log.error("call %s: the question to the owner could not be stored: %s", call_id, exc)
            return ToolOutcome(
                {"error": "the owner cannot be reached right now; go on without their answer"}
            )
        waiting = _Waiting(asked, call.id, box)
        self._waiting[call_id] = waiting
        core.bus.publish(
            {
                "type": "question",
                "at": asked.asked_at,
                "call_id": call_id,
                "seq": seq,
                "question": question,
            }
        )
        core.arm(
            live,
            _TIMER,
            self.settings.owner_timeout_seconds,
            lambda cid: self._timeout(cid, seq),
        )
        waiting.hold = core.spawn(self._hold(call_id, seq, at_once=not call.said.strip()))
        log.info("call %s: asked the owner (question %d)", call_id, seq)
        return ToolOutcome(
            {"status": "asked the owner; their answer will be this tool's result"}, pending=True
        )

    async def _hold(self, call_id: str, seq: int, *, at_once: bool) -> None:
        """Keep the other person company until the question is settled."""
        lines = self.settings.hold_lines
        said = 0
        if at_once:
            await self._say(call_id, lines[0])
            said = 1
        while True:
            await asyncio.sleep(self.settings.hold_interval_seconds)
            w = self._waiting.get(call_id)
            if w is None or w.question.seq != seq:
                return
            await self._say(call_id, lines[said % len(lines)])
            said += 1

    async def _say(self, call_id: str, line: str) -> None:
        try:
            await self.core.speak(call_id, line)
        except VoicecallError as exc:  # the call is ending: nothing more to say
            log.info("call %s: hold line not said (%s)", call_id, exc)

    # ------------------------------------------------------------------ settle

    async def answer(self, call_id: str, text: str) -> OwnerQuestion:
        """The owner's answer: the waiting question's tool result; :class:`NoPendingQuestion`
        if nothing waits (never asked, already answered, timed out, or the call ended)."""
        answer = " ".join(text.split())
        if not answer:
            raise InvalidRequest("answer: must not be empty")
        if len(answer) > MAX_ANSWER_CHARS:
            raise InvalidRequest(f"answer: longer than {MAX_ANSWER_CHARS} characters")
        settled = await self._settle(call_id, None, QuestionStatus.ANSWERED, answer)
        if settled is None:
            await self.core.get_call(call_id)  # 404 for an unknown call
            raise NoPendingQuestion(f"call {call_id} has no question waiting for an answer")
        return settled

    async def _timeout(self, call_id: str, seq: int) -> None:
        with contextlib.suppress(StoreError):
            await self._settle(call_id, seq, QuestionStatus.TIMEOUT, None)

    async def cancel(self, call_id: str) -> None:
        """The call ended: nobody will use an answer any more."""
        w = self._waiting.pop(call_id, None)
        if w is not None:
            w.stop()
        try:
            if await self.core.store.cancel_questions(at=self.core.now(), call_id=call_id):
                self.core.bus.publish(
                    {"type": "question.cancelled", "at": self.core.now(), "call_id": call_id}
                )
        except StoreError as exc:
            log.warning("call %s: pending questions not cancelled: %s", call_id, exc)

    async def _settle(
        self, call_id: str, seq: int | None, status: QuestionStatus, answer: str | None
    ) -> OwnerQuestion | None:
        w = self._waiting.get(call_id)
        if w is None or (seq is not None and w.question.seq != seq):
            return None
        del self._waiting[call_id]  # claimed: a racing answer/timeout finds nothing
        now = self.core.now()
        try:
            ok = await self.core.store.settle_question(
                call_id, w.question.seq, status, answer=answer, at=now
            )
        except StoreError:
            self._waiting.setdefault(call_id, w)  # still waiting: the owner may try again
            raise
        w.stop()
        live = self.core.live(call_id)
        if live is not None:
            self.core.disarm(live, _TIMER)
        if not ok:
            return None
        q = w.question
        settled = OwnerQuestion(q.call_id, q.seq, q.question, q.asked_at, status, answer, now)
        if status is QuestionStatus.ANSWERED:
            result: dict[str, object] = {"answer": answer}
        else:
            result = {
                "answer": None,
                "note": (
                    f"The owner did not answer within {self.settings.owner_timeout_seconds:.0f} "
                    "seconds. Go on as the task says: for example take a message, or say you "
                    "will call back."
                ),
            }
        w.box.resolve(w.tool_call_id, result)
        self.core.bus.publish(
            {
                "type": f"question.{status.value}",
                "at": now,
                "call_id": call_id,
                "seq": q.seq,
                "question": q.question,
                "answer": answer,
            }
        )
        log.info("call %s: question %d %s", call_id, q.seq, status.value)
        self._on_settled(call_id)
        return settled
