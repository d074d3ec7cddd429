"""Is the far end on hold? Pure: μ-law payloads in, ``HOLD`` / ``PERSON`` changes out.

:class:`HoldWatch` runs a :class:`~voicecall.audio.music.MusicDiscriminator` on the callee's audio
of one streamed call, but not on every frame of every call (an earlier attempt did, and cut the
streams one core carries from ~500 to ~130-150). It runs the discriminator only while hold is
plausible, and samples the rest of the time:

* **continuous** while the line is on hold, for ``linger_frames`` after anything that was not
  speech (music, ring-back, a tone; hold often comes back after an announcement), and for
  ``warmup_frames`` after the stream starts (default 0: the probe below finds music that plays
  from the answer 1.5 s in, as fast as a warm-up would, at a fraction of the cost);
* **probing** otherwise: a fresh discriminator looks at ``probe_frames`` frames (1.2 s) when
  the line has carried sound without a pause for ``probe_after_frames`` (1.5 s: music and
  ringing do, a person rarely talks that long without a 200 ms breath or pause), at most once
  every ``probe_every_frames`` (4 s) after the last one ended (a probe that has not heard
  speech or a steady noise by its end looks up to twice more: some music takes longer to
  tell); a probe that ends on music, ring-back or a tone turns continuous mode on and reports
  ``HOLD``. A pause is ``pause_frames`` quiet frames in a row (every sample under about
  -40 dBFS: a table lookup, no FFT); a quiet line costs nothing.

Labels mean: music, ring-back and tones are hold (``HOLD`` once); speech after hold is a person
or a recorded announcement (``PERSON``); silence changes nothing. Time is the frame count.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Final

from voicecall.audio.g711 import FRAME_BYTES
from voicecall.audio.music import Label, MusicDiscriminator, gate

__all__ = ["HoldChange", "HoldConfig", "HoldWatch"]

_HOLD_LABELS: Final = frozenset({Label.MUSIC, Label.RINGBACK, Label.TONE})
# μ-law low 7 bits at or above this: a magnitude under about -40 dBFS (0x7F is zero)
_QUIET_MIN: Final = 0x68
_MAX_EXTENSIONS: Final = 2  # a probe that has not heard speech looks up to 3× as long
#: μ-law byte → 1 when its magnitude is above that (a frame with any 1 has sound)
_LOUD: Final = bytes(1 if (b & 0x7F) < _QUIET_MIN else 0 for b in range(256))


class HoldChange(enum.Enum):
    HOLD = "hold"  # music, ring-back or a tone: nobody is there to talk to
    PERSON = "person"  # speech after hold: a person (or an announcement) is back


@dataclass(frozen=True, slots=True)
class HoldConfig:
    warmup_frames: int = 0
    linger_frames: int = 500  # 10 s after the last non-speech label
    probe_every_frames: int = 200  # 4 s
    probe_frames: int = 60  # 1.2 s
    probe_after_frames: int = 75  # 1.5 s of sound without a pause
    pause_frames: int = 10  # 200 ms of quiet

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
        self._extensions = 0
        self._sound_run = 0  # frames of sound since the last pause
        self._quiet_run = 0

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
                if self._undecided() and self._extensions < _MAX_EXTENSIONS:
                    # not decided yet (some music needs longer): look a little longer
                    self._extensions += 1
                    self._probe_left = self.config.probe_frames
                else:
                    self._next_probe = n + self.config.probe_every_frames
            return change
        if 1 in frame.translate(_LOUD):
            self._quiet_run = 0
            self._sound_run += 1
        else:
            self._quiet_run += 1
            if self._quiet_run >= self.config.pause_frames:
                self._sound_run = 0
        if n >= self._next_probe and self._sound_run >= self.config.probe_after_frames:
            self.disc.reset()  # a fresh look: nothing from the last probe carries over
            self._probe_left = self.config.probe_frames - 1
            self._extensions = 0
            return self._analyse(frame)
        return None

    def _undecided(self) -> bool:
        """A probe's end: neither speech nor a steady noise (which the discriminator calls
        silence) was heard, so music may still be on its way to a decision."""
        if self.disc.label is Label.SPEECH:
            return False
        f = self.disc.features
        return f is None or gate(f, self.disc.config) is not Label.SILENCE

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
