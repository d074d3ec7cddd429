"""The demo's offline agent: a scripted stand-in for a model, for the table booking only.

No instruction-tuned LLM worth hearing ships its weights on PyPI, so ``voicecall demo`` drives a
task call with this :class:`~voicecall.conversation.chat.ChatModel` unless ``--llm`` names a real
endpoint. It is labelled as scripted everywhere it is shown. It goes through exactly the same
machinery as a model would — the in-call agent's tool loop (``ask_owner``, ``end_call``), the
owner consult with its hold lines, the structured outcome validated against the call's schema,
the signed report — but its words come from a short script that follows the state of the
conversation (what it already said, what the owner answered), with a few keywords for what it
hears (so transcripts of synthetic speech with small errors still work).
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncGenerator
from typing import Any

from voicecall.conversation.chat import ModelEvent, TextDelta, ToolRequest

LABEL = "scripted demo agent (no LLM; it only knows this booking)"

_OFFER = re.compile(
    r"seven[ -]?thirty|7[:.]?30|half past|thirty|\b30\b|full|booked up|instead|offer|later",
    re.IGNORECASE,
)
_YES = re.compile(r"\b(yes|yeah|yep|sure|fine|ok|okay|go ahead|works|agree|book it)\b", re.I)
# the host's confirmation, as whisper tiny.en may hear it at 8 kHz ("…it's worked… seeing you")
_BOOKED = re.compile(
    r"\bbook(ed)?\b|reserv|confirm|see(ing)? you|look(ing)? forward|wonderful|goodbye|bye",
    re.IGNORECASE,
)

# the host asks for the booking's name when it did not catch it with the acceptance
_NAME_ASKED = re.compile(r"\bname\b", re.IGNORECASE)


class ScriptedBookingAgent:
    """Books a table for ``party`` at ``time`` for ``name``; a later time only if the owner
    agrees (asked with ``ask_owner``)."""

    def __init__(
        self,
        *,
        name: str = "Sam",
        party: str = "two",
        wanted: str = "seven",
        wanted_hhmm: str = "19:00",
        offered_hhmm: str = "19:30",
        delay_s: float = 0.0,
    ) -> None:
        self.name = name
        self.party = party
        self.wanted = wanted
        self.wanted_hhmm = wanted_hhmm
        self.offered_hhmm = offered_hhmm
        self.delay_s = delay_s
        self.label = LABEL
        self._ids = 0

    def __repr__(self) -> str:
        return "ScriptedBookingAgent()"

    # ------------------------------------------------------------------ the call

    def plan(self, messages: list[dict[str, Any]]) -> tuple[str, list[tuple[str, dict[str, Any]]]]:
        """What to say and which tools to call next, from the conversation so far."""
        said = " ".join(
            m["content"] for m in messages if m["role"] == "assistant" and m.get("content")
        ).lower()
        asked = any(
            call["function"]["name"] == "ask_owner"
            for m in messages
            for call in m.get("tool_calls") or []
        )
        answer: str | None = None
        answered = False
        for m in messages:
            if m["role"] == "tool":
                doc = json.loads(m["content"])
                if "answer" in doc:
                    answered = True
                    answer = doc["answer"]
        heard = [m["content"] for m in messages if m["role"] == "user"]
        last = heard[-1] if heard else ""
        if "table for" not in said:
            return f"I'd like a table for {self.party} tonight at {self.wanted}, please.", []
        if not asked:
            if _OFFER.search(last):
                question = (
                    f"The restaurant has no table at {self.wanted_hhmm} but offers "
                    f"{self.offered_hhmm} tonight. Is {self.offered_hhmm} fine?"
                )
                text = f"Let me quickly check that with {self.name}, one moment."
                return text, [("ask_owner", {"question": question})]
            return f"Sorry, is there a table for {self.party} tonight at {self.wanted}?", []
        if not answered:
            return "", []  # the owner is thinking: the hold lines keep the line alive
        agreed = bool(answer) and bool(_YES.search(answer or ""))
        accepted = f"under the name {self.name.lower()}"
        if accepted not in said:
            if agreed:
                return f"Seven thirty is fine, under the name {self.name}, please.", []
            return "", [
                ("end_call", {"goodbye": "That doesn't suit us, thank you anyway. Goodbye!"})
            ]
        if _NAME_ASKED.search(last):  # "Wonderful, 7:30 it is. May I have a name…?"
            return f"The name is {self.name}.", []
        if _BOOKED.search(last) or "thank you" in said.rsplit(accepted, 1)[-1]:
            return "", [("end_call", {"goodbye": "Thank you very much, goodbye!"})]
        # not confirmed yet (the host's reply came late, or in pieces): wait for it politely
        return "Thank you.", []

    async def stream(
        self, messages: list[dict[str, Any]], tools: list[dict[str, Any]]
    ) -> AsyncGenerator[ModelEvent, None]:
        text, calls = self.plan(messages)
        offered = {t["function"]["name"] for t in tools}
        for word in text.split(" ") if text else []:
            await asyncio.sleep(self.delay_s)  # streamed word by word, like a model
            yield TextDelta(word + " ")
        for name, args in calls:
            if name in offered:
                self._ids += 1
                yield ToolRequest(f"call_scripted_{self._ids}", name, json.dumps(args))

    # ------------------------------------------------------------------ the outcome

    async def complete_json(
        self, messages: list[dict[str, Any]], *, name: str, schema: dict[str, Any], strict: bool
    ) -> str:
        """A summary and outcome ``{booked, time, name}`` read off the review request's text."""
        text = "\n".join(str(m.get("content") or "") for m in messages if m["role"] == "user")
        transcript = text.split("Transcript:", 1)[-1]
        agreed = "owner answered:" in text and bool(
            _YES.search(text.split("owner answered:", 1)[1].splitlines()[0])
        )
        accepted = f"under the name {self.name}".lower() in transcript.lower()
        # the host's words after our acceptance (whisper may split them at a pause)
        after = transcript.lower().rsplit(f"under the name {self.name}".lower(), 1)[-1]
        replies = [ln.split(":", 1)[1] for ln in after.splitlines() if ln.startswith("other")]
        confirmed = accepted and any(_BOOKED.search(h) for h in replies)
        booked = agreed and accepted and confirmed
        if booked:
            summary = (
                f"The restaurant had no table at {self.wanted_hhmm}. The owner agreed to "
                f"{self.offered_hhmm}, and the table for {self.party} was booked under the "
                f"name {self.name}."
            )
        elif not agreed and "owner" in text:
            summary = "The restaurant only offered another time and the owner did not agree."
        else:
            summary = "No table was booked."
        outcome = {
            "booked": booked,
            "time": self.offered_hhmm if booked else None,
            "name": self.name if booked else None,
        }
        return json.dumps({"summary": summary, "outcome": outcome})
