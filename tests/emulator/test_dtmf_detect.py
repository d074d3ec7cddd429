"""The emulator's own DTMF detector and tone generators (pure; hypothesis for the inputs)."""

from __future__ import annotations

import itertools
import shutil
import subprocess

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from voicecall.audio.g711 import ulaw_encode
from voicecall.emulator.dtmf_detect import KEYS, DtmfDetector, detect_digits
from voicecall.emulator.tones import (
    DTMF_FREQUENCIES,
    beep,
    dtmf_pcm,
    hold_music,
    silence,
    to_ulaw,
    tone,
)


def test_every_key_is_detected_once_in_order():
    assert detect_digits(to_ulaw(dtmf_pcm("1234567890*#ABCD"))) == "1234567890*#ABCD"


def test_repeated_key_needs_a_gap_and_is_seen_twice():
    assert detect_digits(to_ulaw(dtmf_pcm("11", tone_ms=80, gap_ms=50))) == "11"


def test_a_long_press_is_one_key():
    assert detect_digits(to_ulaw(dtmf_pcm("5", tone_ms=2000))) == "5"


def test_too_short_a_tone_is_not_a_key():
    assert detect_digits(to_ulaw(dtmf_pcm("5", tone_ms=20))) == ""


def test_pauses_in_digit_strings():
    pcm = dtmf_pcm("1w2W3")
    assert len(pcm) == 3 * (800 + 480) + 8 * 1500
    assert detect_digits(to_ulaw(pcm)) == "123"


@pytest.mark.parametrize(
    "audio",
    [
        silence(3000),
        tone(1000, 1500),  # a voicemail beep
        tone(440, 1000),
        hold_music(30, "chords"),
        hold_music(30, "melody"),
        tone(697, 500),  # one half of a key is not a key
        tone(1209, 500),
    ],
)
def test_no_keys_in_non_dtmf_sounds(audio):
    assert detect_digits(to_ulaw(audio)) == ""


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed")
def test_no_keys_in_speech():
    out = subprocess.run(
        [
            "espeak-ng",
            "--stdout",
            "-v",
            "en-us",
            "Thanks for calling. For bookings press one, for opening hours press two. "
            "Your call is important to us, please stay on the line.",
        ],
        capture_output=True,
        check=True,
    ).stdout
    import io
    import wave

    import soxr

    with wave.open(io.BytesIO(out)) as w:
        rate = w.getframerate()
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    pcm8 = np.clip(soxr.resample(pcm.astype(np.float32), rate, 8000), -32768, 32767)
    assert detect_digits(ulaw_encode(pcm8.astype(np.int16))) == ""


def test_beep_is_a_tone_of_the_given_length():
    b = beep(1000, 400)
    assert len(b) == 3200


def test_unknown_digit_in_generator_is_refused():
    with pytest.raises(ValueError):
        dtmf_pcm("x")


def test_hold_music_styles():
    assert len(hold_music(2.5, "melody")) == 20000
    with pytest.raises(ValueError):
        hold_music(1, "jazz")


# ------------------------------------------------------------------ hypothesis


@settings(max_examples=300, deadline=None)
@given(
    data=st.binary(max_size=6000),
    cuts=st.lists(st.integers(min_value=0, max_value=6000), max_size=8),
)
def test_any_audio_any_chunking_never_raises_and_does_not_depend_on_chunks(data, cuts):
    whole = DtmfDetector().feed_ulaw(data)
    assert all(p.digit in KEYS for p in whole)
    det = DtmfDetector()
    pieces = []
    bounds = sorted({0, len(data), *(c for c in cuts if c <= len(data))})
    for a, b in itertools.pairwise(bounds):
        pieces += det.feed_ulaw(data[a:b])
    assert pieces == whole


@settings(max_examples=120, deadline=None)
@given(
    digits=st.text(alphabet=sorted(DTMF_FREQUENCIES), min_size=1, max_size=8),
    tone_ms=st.integers(min_value=70, max_value=250),
    gap_ms=st.integers(min_value=50, max_value=250),
    level=st.floats(min_value=-28.0, max_value=-4.0),
    twist=st.floats(min_value=-4.0, max_value=4.0),
    noise_db=st.floats(min_value=-60.0, max_value=-40.0),
    lead_ms=st.integers(min_value=0, max_value=400),
    seed=st.integers(min_value=0, max_value=2**16),
)
def test_conforming_keys_are_all_heard_exactly(
    digits, tone_ms, gap_ms, level, twist, noise_db, lead_ms, seed
):
    """Q.24-conforming keys (>= 70 ms tone, >= 50 ms gap, twist within 4 dB) with background
    noise, at any offset: every key is heard once, in order, and nothing else."""
    pcm = np.concatenate(
        [
            silence(lead_ms),
            dtmf_pcm(digits, tone_ms=tone_ms, gap_ms=gap_ms, level_dbfs=level, twist_db=twist),
            silence(100),
        ]
    ).astype(np.float64)
    rng = np.random.default_rng(seed)
    pcm += rng.normal(0.0, 32767.0 * 10 ** (noise_db / 20.0), size=len(pcm))
    audio = ulaw_encode(np.clip(np.rint(pcm), -32768, 32767).astype(np.int16))
    assert detect_digits(audio) == digits.upper()


@settings(max_examples=400, deadline=None)
@given(
    st.one_of(
        st.binary(max_size=200),
        st.binary(max_size=120).map(lambda b: b"RIFF\x00\x00\x00\x00WAVEfmt " + b),
    )
)
def test_downloaded_play_audio_decodes_or_is_refused_with_one_line(data):
    """``<Play>`` bodies are untrusted: a WAV decodes, anything else is a VoiceError."""
    from voicecall.emulator.voices import VoiceError, decode_wav

    try:
        audio = decode_wav("https://x/a.wav", data)
    except VoiceError as exc:
        assert "\n" not in str(exc)
    else:
        assert isinstance(audio.ulaw, bytes)
