"""The scripted responder: a small rule-based bot for the demo (no LLM)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

from voicecall.agent.reply import (
    FALLBACK_LINE,
    ConversationContext,
    EndCall,
    ResponderOutput,
    Sentence,
)
from voicecall.agent.sentences import split_sentences, squash_spaces

_STOPWORDS = frozenset(
    re.findall(
        r"\S+",
        """a about above after again against all also am an and any are aren as at be because been
    before being below between both but by can could did do does doing don down during each few
    for from further get got had has have having he her here hers herself him himself his how i
    if in into is it its itself just know let like me more most my myself need no nor not now of
    off ok okay on once only or other our ours ourselves out over own please really right same
    say she should so some such than thank thanks that the their theirs them themselves then
    there these they this those through to too under until up very want was we well were what
    when where which while who whom why will with would yeah yes you your yours yourself
    yourselves hello hi hey um uh oh""",
    )
)


class ScriptedResponder:
    """A tiny rule-based bot for demos without an LLM.

    With no caller words yet it greets; after each caller utterance it acknowledges by echoing
    its key words; it asks ``follow_ups`` follow-up questions, then thanks, says goodbye and
    ends the call. Deterministic: the stage is derived from the transcript alone.
    """

    def __init__(
        self,
        *,
        name: str = "the voicecall demo assistant",
        follow_ups: int = 1,
        greeting: str | None = None,
    ) -> None:
        self.name = name
        self.follow_ups = follow_ups
        self.greeting = greeting

    async def reply(self, ctx: ConversationContext) -> AsyncIterator[ResponderOutput]:
        for item in self.plan(ctx):
            yield item

    def plan(self, ctx: ConversationContext) -> list[ResponderOutput]:
        heard = [t for s, t in ctx.transcript if s == "user"]
        if not heard:
            hello = self.greeting or f"Hello, this is {self.name}."
            out: list[ResponderOutput] = [Sentence(s) for s in split_sentences(hello)]
            if ctx.memory:
                out.append(Sentence("Nice to hear from you again."))
            out.append(Sentence("What can I do for you today?"))
            return out
        last = heard[-1].strip()
        if not last:
            return [Sentence(FALLBACK_LINE)]
        words = key_words(last)
        ack = f"I heard you mention {_join(words)}." if words else f"You said: {_clip(last)}."
        if len(heard) <= self.follow_ups:
            return [Sentence(ack), Sentence("Could you tell me a little more about that?")]
        return [
            Sentence(ack),
            Sentence("Thank you, I have noted everything."),
            EndCall("Goodbye, and have a nice day!"),
        ]


def key_words(text: str, limit: int = 3) -> list[str]:
    """The first ``limit`` distinct content words of ``text`` (no stopwords or short words)."""
    out: list[str] = []
    for raw in re.findall(r"[A-Za-z][A-Za-z'\-]*|\d[\d:.,]*", text):
        word = raw.strip("'-.,")
        low = word.lower()
        if low in _STOPWORDS or (len(word) < 3 and not word[:1].isdigit()):
            continue
        if low not in (w.lower() for w in out):
            out.append(word)
        if len(out) == limit:
            break
    return out


def _join(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def _clip(text: str, limit: int = 80) -> str:
    text = squash_spaces(text).rstrip(".!?")
    return text if len(text) <= limit else text[:limit].rsplit(" ", 1)[0]
