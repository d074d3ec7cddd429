"""What the person on a call hears, as audio, for a fork's ``outbound_track`` (I/O edge).

The outbound track of a ``<Start><Stream track="outbound_track|both_tracks">`` carries the
call's side: while a ``<Connect><Stream>`` is up, the audio its app is playing; otherwise the
sounds of the TwiML verbs the person is hearing: ``<Say>`` spoken by espeak-ng (synthesised on
first use, silence until it is ready), ``<Play>`` audio as downloaded, ``<Play digits>`` as
keypad tones, the ``<Record>`` beep.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import TYPE_CHECKING

from voicecall.emulator.media import FRAME_BYTES, SILENCE
from voicecall.emulator.simtypes import HeardItem
from voicecall.emulator.speech_audio import Utterance, peek_speech, utterance_ulaw
from voicecall.emulator.tones import beep, dtmf_pcm, to_ulaw

if TYPE_CHECKING:
    from voicecall.emulator.sim import CallSim
    from voicecall.emulator.stream_hub import StreamHub

__all__ = ["OutboundAudio"]

SAMPLE_RATE = 8000
SAY_WPM = 160.0


class OutboundAudio:
    def __init__(self, sim: CallSim, hub: StreamHub, audio_cache: Mapping[str, bytes]) -> None:
        self.sim = sim
        self.hub = hub
        self.audio_cache = audio_cache
        self._tasks: dict[str, asyncio.Task[bytes]] = {}

    def frame(self, now: float) -> bytes:
        """160 bytes of μ-law: what the person hears at ``now`` (emulator clock)."""
        session = self.hub.connect_session(self.sim.sid)
        if session is not None and session.started_at is not None:
            i = round((now - session.started_at) * SAMPLE_RATE)
            chunk = bytes(session.heard[max(0, i) : max(0, i) + FRAME_BYTES])
            return chunk + SILENCE[len(chunk) :]
        item = self._item_at(now)
        if item is None:
            return SILENCE
        audio = self._audio(item)
        if not audio:
            return SILENCE
        i = round((now - item.start) * SAMPLE_RATE)
        chunk = audio[max(0, i) : max(0, i) + FRAME_BYTES]
        return chunk + SILENCE[len(chunk) :]

    def _item_at(self, now: float) -> HeardItem | None:
        for item in reversed(self.sim.heard):
            if item.start <= now < item.end:
                return item
            if item.end <= now:
                return None
        return None

    def _audio(self, item: HeardItem) -> bytes | None:
        if item.kind == "play":
            return self.audio_cache.get(str(item.extra.get("url", item.text)))
        if item.kind == "digits":
            digits = "".join(d for d in item.text if d in "0123456789*#ABCDwW")
            return to_ulaw(dtmf_pcm(digits, tone_ms=150, gap_ms=100)) if digits else None
        if item.kind == "beep":
            return beep(1000.0, (item.end - item.start) * 1000.0)
        if item.kind in {"say", "app-error"}:
            u = Utterance(item.text)
            audio = peek_speech(u, SAY_WPM)
            if audio is None and item.text not in self._tasks:
                self._tasks[item.text] = asyncio.get_running_loop().create_task(
                    utterance_ulaw(u, SAY_WPM)
                )
            return audio
        return None
