"""HoldWatch on synthetic audio: hold music, ring-back, speech; and what it costs."""

from __future__ import annotations

import numpy as np
import pytest
from audio_material import hold_music, ringback, set_rms, silence, speech, to_i16
from hypothesis import given, settings
from hypothesis import strategies as st

from voicecall.audio.g711 import ulaw_encode
from voicecall.telephony.holdwatch import HoldChange, HoldConfig, HoldWatch


def ulaw_frames(x: np.ndarray) -> list[bytes]:
    data = ulaw_encode(to_i16(x))
    return [data[i : i + 160] for i in range(0, len(data) - 159, 160)]


def run(watch: HoldWatch, x: np.ndarray) -> list[tuple[int, HoldChange]]:
    out = []
    for frame in ulaw_frames(x):
        change = watch.feed(frame)
        if change is not None:
            out.append((watch.frames, change))
    return out


def talk(seconds: float) -> np.ndarray:
    words = "Thank you for calling. How can I help you today? I can check that for you now."
    one = set_rms(speech(words).astype(np.float64), -20.0)
    reps = int(np.ceil(seconds * 8000 / len(one)))
    return np.concatenate([one] * reps)[: int(seconds * 8000)]


@pytest.mark.parametrize("style", ["pop", "jazz"])
def test_hold_music_then_a_person(style: str) -> None:
    try:
        music = hold_music(12.0, seed=3, style=style)
    except (ValueError, KeyError):
        pytest.skip(f"no {style} hold music in the material")
    watch = HoldWatch()
    changes = run(watch, np.concatenate([music, talk(6.0)]))
    kinds = [c for _, c in changes]
    assert kinds[:2] == [HoldChange.HOLD, HoldChange.PERSON], changes
    assert changes[0][0] < 3 * 50  # music is heard as hold within 3 s
    assert changes[1][0] > 12 * 50  # the person only once they talk


def test_ringback_is_hold() -> None:
    watch = HoldWatch()
    kinds = [c for _, c in run(watch, ringback("us", 8.0))]
    assert kinds and kinds[0] is HoldChange.HOLD


def test_a_conversation_is_never_hold_and_is_mostly_not_analysed() -> None:
    watch = HoldWatch(HoldConfig(warmup_frames=100))
    changes = run(watch, talk(40.0))
    assert changes == []
    assert not watch.on_hold
    # after the warm-up the discriminator sees 60 frames of every 200: the saving
    assert watch.analysed < 0.45 * watch.frames, (watch.analysed, watch.frames)


def test_music_after_the_warmup_is_found_by_a_probe() -> None:
    watch = HoldWatch(HoldConfig(warmup_frames=50))
    changes = run(watch, np.concatenate([talk(10.0), hold_music(12.0, seed=5)]))
    holds = [n for n, c in changes if c is HoldChange.HOLD]
    assert holds, changes
    assert holds[0] - 10 * 50 < 7 * 50  # within a probe period plus a decision


def test_silence_is_never_analysed_after_the_warmup() -> None:
    watch = HoldWatch(HoldConfig(warmup_frames=10))
    assert run(watch, silence(20_000.0)) == []
    assert watch.analysed <= 10


def test_config_is_checked() -> None:
    with pytest.raises(ValueError):
        HoldConfig(probe_frames=0)
    with pytest.raises(ValueError):
        HoldConfig(probe_frames=300, probe_every_frames=200)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.binary(min_size=0, max_size=400), max_size=30))
def test_any_payloads_never_raise(payloads: list[bytes]) -> None:
    watch = HoldWatch(HoldConfig(warmup_frames=5, probe_every_frames=7, probe_frames=3))
    for p in payloads:
        watch.feed(p)
    assert watch.frames == sum(len(p) for p in payloads) // 160
