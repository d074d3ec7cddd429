"""Voices for the TwiML ``<Say>`` fallback: the Polly voice closest to an OpenAI voice.

When streaming is off (or TTS fails), Twilio speaks with ``<Say voice="Polly.…">``. The mapping
keeps the caller hearing roughly the same kind of voice either way.
"""

from __future__ import annotations

import re
from types import MappingProxyType
from typing import Final

__all__ = ["DEFAULT_POLLY_VOICE", "OPENAI_TO_POLLY", "polly_voice_for"]

DEFAULT_POLLY_VOICE: Final = "Polly.Joanna"

OPENAI_TO_POLLY: Final = MappingProxyType(
    {
        "alloy": "Polly.Joanna",  # neutral, US
        "ash": "Polly.Justin",  # young male, US
        "ballad": "Polly.Brian",  # male, British
        "coral": "Polly.Kendra",  # warm female, US
        "echo": "Polly.Matthew",  # male, US
        "fable": "Polly.Amy",  # British, storyteller
        "nova": "Polly.Salli",  # bright female, US
        "onyx": "Polly.Joey",  # deep male, US
        "sage": "Polly.Kimberly",  # calm female, US
        "shimmer": "Polly.Ivy",  # light female, US
        "verse": "Polly.Matthew",  # expressive male, US
    }
)

_POLLY_NAME = re.compile(r"^Polly\.[A-Z][A-Za-z]{1,20}(-Neural|-Generative)?$")


def polly_voice_for(openai_voice: str | None) -> str:
    """The ``<Say voice>`` value for an OpenAI voice name.

    A value that already is a Polly voice (``Polly.Amy``, ``Polly.Joanna-Neural``) is kept;
    ``None``, unknown names and anything else fall back to :data:`DEFAULT_POLLY_VOICE`.
    """
    if openai_voice is None:
        return DEFAULT_POLLY_VOICE
    name = openai_voice.strip()
    if _POLLY_NAME.match(name):
        return name
    return OPENAI_TO_POLLY.get(name.lower(), DEFAULT_POLLY_VOICE)
