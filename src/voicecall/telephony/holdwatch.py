"""Is the far end on hold? Pure: μ-law payloads in, ``HOLD`` / ``PERSON`` changes out.

:class:`HoldWatch` runs a :class:`~voicecall.audio.music.MusicDiscriminator` on the callee's audio
of one streamed call, but not on every frame of every call (an earlier attempt did, and cut the
streams one core carries from ~500 to ~130-150). It runs the discriminator only while hold is
plausible, and samples the rest of the time:

* **continuous** for ``warmup_frames`` after the stream starts (IVRs and hold queues play their
  music right after the answer or a key press), while the line is on hold, and for
  ``linger_frames`` after anything that was not speech (music, ring-back, a tone);
* **probing** otherwise: every ``probe_every_frames`` it runs a fresh discriminator on
  ``probe_frames`` frames (a 1.2 s look every 4 s: 30 % of the frames); a probe that ends on
  music, ring-back or a tone turns continuous mode on and reports ``HOLD``;
* quiet frames (peak under ``quiet_peak``) never start a probe (a silent line is nobody's
  music; the discriminator is not needed to hear that).

Labels mean: music, ring-back and tones are hold (``HOLD`` once); speech after hold is a person
or a recorded announcement (``PERSON``); silence changes nothing. Time is the frame count.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Final

from voicecall.audio.g711 import FRAME_BYTES
from voicecall.audio.music import Label, MusicDiscriminator

__all__ = ["HoldChange", "HoldConfig", "HoldWatch"]

_HOLD_LABELS: Final = frozenset({Label.MUSIC, Label.RINGBACK, Label.TONE})
# μ-law low 7 bits at or above this: a magnitude under about -40 dBFS (0x7F is zero)
_QUIET_MIN: Final = 0x68


class HoldChange(enum.Enum):
    HOLD = "hold"  # music, ring-back or a tone: nobody is there to talk to
    PERSON = "person"  # speech after hold: a person (or an announcement) is back


@dataclass(frozen=True, slots=True)
class HoldConfig:
    warmup_frames: int = 500  # 10 s
    linger_frames: int = 500  # 10 s after the last non-speech label
    probe_every_frames: int = 200  # 4 s
    probe_frames: int = 60  # 1.2 s

    def __post_init__(self) -> None:
        if min(self.warmup_frames, self.linger_frames) < 0:
            raise ValueError("warmup_frames and linger_frames must be >= 0")
        if not 0 < self.probe_frames <= self.probe_every_frames:
            raise ValueError("need 0 < probe_frames <= probe_every_frames")


class HoldWatch:
    """One call's hold watcher; feed every inbound payload (any length) in order."""

    def __init__(self, config: HoldConfig | None = None) -> None:
        self.config = config or HoldConfig()
        self.disc = MusicDiscriminator()
        self.frames = 0
        self.analysed = 0  # frames the discriminator saw (the cost)
        self.on_hold = False
        #: the frame where the speech that ended the last hold began
        self.person_from = 0
        self._continuous_until = self.config.warmup_frames
        self._probe_left = 0
        self._next_probe = self.config.warmup_frames
        self._partial = b""

    def feed(self, ulaw: bytes) -> HoldChange | None:
        """Account for one payload; a change of hold state it completed, if any."""
        if len(ulaw) == FRAME_BYTES and not self._partial:
            return self._frame(ulaw)
        data = self._partial + ulaw
        whole = len(data) - len(data) % FRAME_BYTES
        self._partial = data[whole:]
        change = None
        for offset in range(0, whole, FRAME_BYTES):
            got = self._frame(data[offset : offset + FRAME_BYTES])
            change = got or change
        return change

    def _frame(self, frame: bytes) -> HoldChange | None:
        self.frames += 1
        n = self.frames
        if n <= self._continuous_until or self.on_hold:
            return self._analyse(frame)
        if self._probe_left > 0:
            self._probe_left -= 1
            change = self._analyse(frame)
            if self._probe_left == 0 and not self.on_hold:
                self._next_probe = n + self.config.probe_every_frames - self.config.probe_frames
            return change
        if n >= self._next_probe and not _quiet(frame):
            self.disc.reset()  # a fresh look: nothing from the last probe carries over
            self._probe_left = self.config.probe_frames - 1
            return self._analyse(frame)
        return None

    def _analyse(self, frame: bytes) -> HoldChange | None:
        self.analysed += 1
        change = self.disc.feed_ulaw(frame)
        if change is None:
            return None
        label = change.label
        if label in _HOLD_LABELS:
            self._continuous_until = self.frames + self.config.linger_frames
            if not self.on_hold:
                self.on_hold = True
                return HoldChange.HOLD
            return None
        if label is Label.SPEECH and self.on_hold:
            self.on_hold = False
            self.person_from = min(self.frames, change.sample // FRAME_BYTES)
            self._continuous_until = self.frames + self.config.linger_frames
            self._next_probe = self._continuous_until
            return HoldChange.PERSON
        return None


def _quiet(frame: bytes) -> bool:
    """Whether a μ-law frame is quiet (every 4th sample about -40 dBFS or less; μ-law keeps the
    magnitude inverted in the low 7 bits: larger is quieter)."""
    return min(b & 0x7F for b in frame[::4]) >= _QUIET_MIN
