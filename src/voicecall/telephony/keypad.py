"""Keypad decisions, pure: how keys pressed by the other party read in a conversation, and how
keys the bot presses reach a call.

Keys the other party presses (``Digits`` on a ``<Gather>``, ``dtmf`` events on a Media Stream)
become a caller line ``[pressed 2]``, so the model reads them like words. Keys the bot presses
(``send_dtmf``) go out in one of two ways, chosen by :func:`plan_keys`:

* ``stream``: on a Media Stream, as in-band Q.23 tones (μ-law) queued behind any speech;
* ``play``: on a ``<Gather>`` call, by updating the call with ``<Play digits>`` and listening
  again. Twilio's ``<Play digits>`` knows ``0-9 * # w`` only, so ``A``–``D`` are refused there.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from voicecall.audio.dtmf import InvalidDigits, validate_digits

__all__ = ["PLAY_DIGITS", "KeyPath", "KeyPlan", "plan_keys", "pressed"]

#: what ``<Play digits>`` accepts (Twilio)
PLAY_DIGITS = frozenset("0123456789*#w")


def pressed(digits: str) -> str:
    """The conversation line for keys the other party pressed: ``[pressed 2]``."""
    return f"[pressed {digits}]"


class KeyPath(StrEnum):
    STREAM = "stream"  # in-band tones on the Media Stream
    PLAY = "play"  # <Play digits> on a <Gather> call


@dataclass(frozen=True, slots=True)
class KeyPlan:
    digits: str  # normalized (A-D upper case, w lower case)
    path: KeyPath

    @property
    def seconds(self) -> float:
        """How long the keys take to send (100 ms tone + 80 ms gap per key, 0.5 s per w)."""
        keys = sum(1 for ch in self.digits if ch != "w")
        return keys * 0.18 + self.digits.count("w") * 0.5


def plan_keys(digits: str, *, streams: bool) -> KeyPlan:
    """Check ``digits`` (raises :class:`InvalidDigits`, a 422 naming ``digits``) and choose the
    path for a call that ``streams`` (Media Stream) or not (``<Gather>``)."""
    normalized = validate_digits(digits)
    if streams:
        return KeyPlan(normalized, KeyPath.STREAM)
    bad = sorted(set(normalized) - PLAY_DIGITS)
    if bad:
        raise InvalidDigits(
            f"digits: {', '.join(bad)} can only be sent in-band on a media stream "
            "(this call uses <Gather>; <Play digits> knows 0-9, *, # and w)"
        )
    return KeyPlan(normalized, KeyPath.PLAY)
