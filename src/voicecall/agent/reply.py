"""What a responder is: the context it is asked with, the outputs it yields, the protocol.

A :class:`Responder` turns the conversation so far (:class:`ConversationContext`) into outputs:
sentences to speak (:class:`Sentence`, yielded one by one as soon as each is complete, so speech
starts while the rest is still being generated) and at most one :class:`EndCall`. Failures never
mean silence: implementations yield :data:`FALLBACK_LINE` instead.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, TypeAlias, runtime_checkable

if TYPE_CHECKING:
    from voicecall.conversation.task import TaskBrief
    from voicecall.conversation.tools import Tools

FALLBACK_LINE = "Sorry, I didn't catch that — could you say it again?"


@dataclass(frozen=True, slots=True)
class ConversationContext:
    """What a responder knows when it is asked for the next reply.

    ``transcript`` holds ``(speaker, text)`` pairs in order, speaker ``"bot"`` or ``"user"``;
    ``memory`` holds summaries of this caller's earlier calls (oldest first). Task calls also
    carry ``task`` (the brief: what the call is for, the system prompt) and ``tools`` (what this
    reply may use: the call's tool box, or a speculative run's held view of it).
    """

    call_id: str
    direction: str
    caller: str | None
    transcript: list[tuple[str, str]]
    memory: list[str] = field(default_factory=list)
    task: TaskBrief | None = None
    tools: Tools | None = None
    #: an empty answer is silence, not the fallback line (the call has been on hold: the model
    #: may choose to say nothing to a recorded announcement)
    allow_silence: bool = False


@dataclass(frozen=True, slots=True)
class Sentence:
    """One sentence to speak now."""

    text: str


@dataclass(frozen=True, slots=True)
class EndCall:
    """End the call after the sentences so far, saying ``goodbye`` first if given."""

    goodbye: str | None = None


ResponderOutput: TypeAlias = Sentence | EndCall


@runtime_checkable
class Responder(Protocol):
    """Produces the bot's next reply. ``reply`` is an async generator: consume it with
    ``async for`` and close it (``aclose``) to stop early, e.g. when the caller barges in."""

    def reply(self, ctx: ConversationContext) -> AsyncIterator[ResponderOutput]: ...
