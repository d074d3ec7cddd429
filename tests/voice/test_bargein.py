"""Pure turn-taking arithmetic: barge-in decisions, what was heard, the listener's reframing."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from voicecall.audio.g711 import ulaw_encode
from voicecall.audio.vad import Segmenter, VadEvent, VadEventKind, WebRtcVad
from voicecall.voice.bargein import (
    BargeInDetector,
    estimate_total_ms,
    frame_rms,
    heard_bytes,
    heard_text,
)
from voicecall.voice.listener import Listener

START = VadEventKind.SPEECH_START
END = VadEventKind.SPEECH_END


def test_speech_is_a_barge_in_only_while_the_bot_speaks_and_past_the_guard() -> None:
    d = BargeInDetector(echo_guard_ms=300)
    assert d.update(VadEvent(START, 8000)) is None  # bot silent
    d.bot_started(inbound_sample=8000)
    assert d.bot_speaking
    assert d.update(VadEvent(START, 8000 + 300 * 8 - 1)) is None  # inside the guard
    assert d.update(VadEvent(START, 8000 + 300 * 8)) == 8000 + 2400
    assert d.update(VadEvent(END, 20000)) is None
    assert d.update(None) is None
    d.bot_stopped()
    assert d.update(VadEvent(START, 30000)) is None


def test_bot_started_twice_keeps_the_first_guard() -> None:
    d = BargeInDetector(echo_guard_ms=100)
    d.bot_started(0)
    d.bot_started(50_000)
    assert d.update(VadEvent(START, 800)) == 800


def test_energy_ratio_rejects_echo_quieter_than_the_bot() -> None:
    d = BargeInDetector(echo_guard_ms=0, energy_ratio=2.0)
    d.bot_started(0)
    assert d.update(VadEvent(START, 10), caller_rms=500, bot_rms=1000) is None
    assert d.update(VadEvent(START, 20), caller_rms=2000, bot_rms=1000) == 20


def test_detector_rejects_bad_settings() -> None:
    with pytest.raises(ValueError):
        BargeInDetector(echo_guard_ms=-1)
    with pytest.raises(ValueError):
        BargeInDetector(energy_ratio=0)


def test_heard_bytes_from_the_last_echo_plus_bounded_playout() -> None:
    # utterance starts at byte 1000; 4000 bytes sent; last echo at 1800, 50 ms ago
    kw = {"start_pos": 1000, "sent_pos": 5000}
    assert heard_bytes(**kw, played_pos=None, since_played_ms=999, max_extrapolate_ms=100) == 0
    assert heard_bytes(**kw, played_pos=1800, since_played_ms=50, max_extrapolate_ms=100) == 1200
    # beyond the mark interval a missing echo means it had not played
    assert heard_bytes(**kw, played_pos=1800, since_played_ms=900, max_extrapolate_ms=100) == 1600
    # never more than was sent
    assert heard_bytes(**kw, played_pos=4900, since_played_ms=100, max_extrapolate_ms=1e9) == 4000
    # an echo from before this utterance counts from its start
    assert heard_bytes(**kw, played_pos=10, since_played_ms=10, max_extrapolate_ms=100) == 80


@given(
    start=st.integers(0, 10**6),
    sent=st.integers(0, 10**6),
    played=st.none() | st.integers(0, 2 * 10**6),
    since=st.floats(-1e3, 1e6),
    cap=st.floats(0, 1e6),
)
def test_heard_bytes_is_within_what_was_sent(
    start: int, sent: int, played: int | None, since: float, cap: float
) -> None:
    sent_pos = start + sent
    got = heard_bytes(
        start_pos=start,
        sent_pos=sent_pos,
        played_pos=played,
        since_played_ms=since,
        max_extrapolate_ms=cap,
    )
    assert 0 <= got <= sent


def test_heard_text_is_a_proportional_prefix() -> None:
    text = "one two three four five six seven eight nine ten"
    assert heard_text(text, 0, 1000) == ""
    assert heard_text(text, 500, 1000) == "one two three four five"
    assert heard_text(text, 990, 1000) == "one two three four five six seven eight nine"
    assert heard_text(text, 1000, 1000) == text
    assert heard_text(text, 10, 0) == ""


def test_total_is_exact_once_synthesis_finished_else_estimated_from_text() -> None:
    assert estimate_total_ms("a" * 140, 2500, True) == 2500
    assert estimate_total_ms("a" * 140, 2500, False) == 10_000
    assert estimate_total_ms("a" * 14, 2500, False) == 2500


def test_frame_rms() -> None:
    assert frame_rms(np.zeros(0, np.int16)) == 0.0
    assert frame_rms(np.full(160, -1000, np.int16)) == pytest.approx(1000.0)


class LoudVad:
    """Per-frame decision: loud frames are speech (exact arithmetic for the listener)."""

    def __init__(self) -> None:
        self._seg = Segmenter(60 * 8, 100 * 8)
        self._offset = 0
        self.frames = 0

    @property
    def speaking(self) -> bool:
        return self._seg.speaking

    def feed(self, frame: np.ndarray) -> VadEvent | None:
        self.frames += 1
        start = self._offset
        self._offset += frame.size
        return self._seg.update(frame_rms(frame) > 1000, start, frame.size)

    def reset(self) -> None:
        self._seg.reset()


def test_listener_reframes_any_payload_size_and_reports_the_onset() -> None:
    vad = LoudVad()
    detector = BargeInDetector(echo_guard_ms=0)
    detector.bot_started(0)
    listener = Listener(vad, detector)
    quiet, loud = b"\xff" * 800, b"\x80" * 800  # 0x80: full-scale negative
    audio = quiet + loud
    onsets = [listener.feed(audio[i : i + 37]) for i in range(0, len(audio), 37)]
    assert [o for o in onsets if o is not None] == [800]
    assert listener.samples == 1600 and vad.frames == 10
    assert listener.speech_starts == 1


def test_listener_without_vad_only_counts() -> None:
    listener = Listener(None, BargeInDetector())
    assert listener.feed(b"\x80" * 1600) is None
    assert listener.samples == 1600


class ArrayOnlyVad:
    """A WebRtcVad seen only through the array ``feed`` (no μ-law shortcut)."""

    def __init__(self) -> None:
        self._vad = WebRtcVad(min_speech_ms=60)

    @property
    def speaking(self) -> bool:
        return self._vad.speaking

    def feed(self, frame: np.ndarray) -> VadEvent | None:
        return self._vad.feed(frame)

    def reset(self) -> None:
        self._vad.reset()


@pytest.mark.parametrize("size", [160, 37, 480])
def test_listener_ulaw_shortcut_decides_like_the_array_path(size: int) -> None:
    rng = np.random.default_rng(5)
    t = np.arange(8000 * 3) / 8000
    burst = (t > 1.0) & (t < 2.0)
    x = np.where(
        burst, 8000 * np.sin(2 * np.pi * 220 * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t)), 0
    )
    x = x + rng.normal(0, 30, t.size)
    audio = ulaw_encode(np.clip(x, -32768, 32767).astype(np.int16))
    results = []
    for vad in (WebRtcVad(min_speech_ms=60), ArrayOnlyVad()):
        detector = BargeInDetector(echo_guard_ms=0)
        detector.bot_started(0)
        listener = Listener(vad, detector)
        onsets = [listener.feed(audio[i : i + size]) for i in range(0, len(audio), size)]
        results.append((onsets, listener.speech_starts, listener.samples))
    assert results[0] == results[1]
    assert any(o is not None for o in results[0][0])
