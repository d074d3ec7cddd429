"""DTMF generator, checked by an independent decoder written here (moving RMS + Goertzel + FFT)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from voicecall.audio.dtmf import (
    DTMF_FREQUENCIES,
    MAX_DIGITS,
    DtmfSpec,
    InvalidDigits,
    dbm0_to_amplitude,
    dtmf_pcm,
    dtmf_samples,
    dtmf_ulaw,
    validate_digits,
)
from voicecall.audio.g711 import ulaw_decode
from voicecall.errors import InvalidRequest

RATE = 8000
KEYS = "123A456B789C*0#D"
# Q.23, written out again here rather than derived from the module under test
TABLE = {
    "1": (697, 1209), "2": (697, 1336), "3": (697, 1477), "A": (697, 1633),
    "4": (770, 1209), "5": (770, 1336), "6": (770, 1477), "B": (770, 1633),
    "7": (852, 1209), "8": (852, 1336), "9": (852, 1477), "C": (852, 1633),
    "*": (941, 1209), "0": (941, 1336), "#": (941, 1477), "D": (941, 1633),
}  # fmt: skip
LOWS = (697, 770, 852, 941)
HIGHS = (1209, 1336, 1477, 1633)


# -- an independent decoder -----------------------------------------------------------------


@dataclass
class Tone:
    start: int  # first sample at or above half the tone's steady RMS
    end: int  # one past the last such sample
    key: str
    low_hz: float
    high_hz: float
    low_db: float
    high_db: float
    worst_other_db: float  # strongest of the six other DTMF frequencies, relative to the weaker


def moving_rms(x: npt.NDArray[np.float64], width: int) -> npt.NDArray[np.float64]:
    c = np.concatenate([[0.0], np.cumsum(x * x)])
    half = width // 2
    idx = np.arange(x.size)
    lo = np.clip(idx - half, 0, x.size)
    hi = np.clip(idx + half, 0, x.size)
    return np.sqrt((c[hi] - c[lo]) / (2 * half))  # zero-padded at both ends


def goertzel_db(x: npt.NDArray[np.float64], freq: float) -> float:
    w = 2 * np.pi * freq / RATE
    s1 = s2 = 0.0
    for v in x:
        s0 = v + 2 * np.cos(w) * s1 - s2
        s2, s1 = s1, s0
    power = s1 * s1 + s2 * s2 - 2 * np.cos(w) * s1 * s2
    return 10 * np.log10(power + 1e-12)


def peak_hz(
    spectrum: npt.NDArray[np.float64], freqs: npt.NDArray[np.float64], near: float
) -> float:
    band = (freqs > near - 60) & (freqs < near + 60)
    i = int(np.flatnonzero(band)[np.argmax(spectrum[band])])
    a, b, c = np.log(spectrum[i - 1 : i + 2] + 1e-12)
    return float(freqs[i] + (a - c) / (2 * (a - 2 * b + c)) * (freqs[1] - freqs[0]))


def decode(pcm: npt.NDArray[np.int16]) -> list[Tone]:
    x = pcm.astype(np.float64)
    env = moving_rms(x, 40)  # 5 ms
    on = env >= 0.5 * np.max(env) if env.size and np.max(env) > 0 else np.zeros(x.size, bool)
    edges = np.flatnonzero(np.diff(np.concatenate([[0], on.astype(np.int8), [0]])))
    tones = []
    for start, end in zip(edges[0::2], edges[1::2], strict=True):
        core = x[start + 80 : end - 80]  # steady part (skip 10 ms each side)
        levels = {f: goertzel_db(core, f) for f in (*LOWS, *HIGHS)}
        low = max(LOWS, key=levels.__getitem__)
        high = max(HIGHS, key=levels.__getitem__)
        key = next(k for k, pair in TABLE.items() if pair == (low, high))
        weaker = min(levels[low], levels[high])
        others = max(v for f, v in levels.items() if f not in (low, high)) - weaker
        win = core * np.hanning(core.size)
        spec = np.abs(np.fft.rfft(win, 1 << 16))
        freqs = np.fft.rfftfreq(1 << 16, 1 / RATE)
        lo_hz, hi_hz = peak_hz(spec, freqs, low), peak_hz(spec, freqs, high)
        lo_db, hi_db = (20 * np.log10(spec[np.argmin(np.abs(freqs - f))]) for f in (lo_hz, hi_hz))
        tones.append(Tone(int(start), int(end), key, lo_hz, hi_hz, lo_db, hi_db, others))
    return tones


def as_digits(tones: list[Tone], spec: DtmfSpec) -> str:
    """The key sequence, with one ``w`` per pause found between (or before) tones."""
    out, prev_end = [], 0
    first_half = round(spec.ramp_ms * 8) // 2
    for i, t in enumerate(tones):
        silent = t.start - (first_half if i == 0 else prev_end + spec.gap_ms * 8)
        out.append("w" * round(silent / (spec.pause_ms * 8)))
        out.append(t.key)
        prev_end = t.end
    return "".join(out)


# -- tests -----------------------------------------------------------------------------------


def test_frequency_table_is_q23() -> None:
    assert DTMF_FREQUENCIES == TABLE


@pytest.mark.parametrize("key", list(KEYS))
def test_every_key_frequencies_levels_and_duration(key: str) -> None:
    pcm = ulaw_decode(dtmf_ulaw(key))
    assert pcm.size == (100 + 80) * 8
    [tone] = decode(pcm)
    assert tone.key == key
    low, high = TABLE[key]
    assert abs(tone.low_hz - low) <= 1.0 and abs(tone.high_hz - high) <= 1.0  # Q.24: ±1.5%
    twist = tone.high_db - tone.low_db
    assert 1.0 <= twist <= 3.0  # default +2 dB, well within the ±4 dB allowed
    assert tone.worst_other_db < -25.0  # the other six DTMF frequencies are absent
    assert abs((tone.end - tone.start) - 800) <= 16  # 100 ms ± 2 ms
    assert tone.end - tone.start >= 70 * 8


def test_levels_do_not_clip_and_match_dbm0() -> None:
    pcm = dtmf_pcm("D")  # highest frequencies, highest sum
    peak = int(np.max(np.abs(pcm.astype(np.int32))))
    assert peak <= dbm0_to_amplitude(-7) + dbm0_to_amplitude(-5) + 1
    assert peak < 0.75 * 32767
    decoded = ulaw_decode(dtmf_ulaw("D"))
    assert int(np.max(np.abs(decoded.astype(np.int32)))) < 32124  # below μ-law's largest code
    # a 0 dBm0 sine peaks ~3.17 dB below full scale
    assert dbm0_to_amplitude(3.17) == pytest.approx(32768)


def test_gaps_and_tone_lengths_in_a_sequence() -> None:
    spec = DtmfSpec()
    tones = decode(ulaw_decode(dtmf_ulaw("123456789")))
    assert "".join(t.key for t in tones) == "123456789"
    for a, b in itertools.pairwise(tones):
        assert abs((b.start - a.end) - 80 * 8) <= 16  # gap 80 ms ± 2 ms
        assert b.start - a.end >= 50 * 8
        assert abs((b.start - a.start) - (spec.tone_ms + spec.gap_ms) * 8) <= 8  # cadence ±1 ms


def test_pause_is_half_a_second() -> None:
    tones = decode(dtmf_pcm("1w2ww3"))
    assert [t.key for t in tones] == ["1", "2", "3"]
    assert abs(tones[1].start - tones[0].start - (180 + 500) * 8) <= 8
    assert abs(tones[2].start - tones[1].start - (180 + 1000) * 8) <= 8
    assert dtmf_samples("1w2ww3") == 3 * 180 * 8 + 3 * 500 * 8
    assert as_digits(tones, DtmfSpec()) == "1w2ww3"


def test_leading_pause_and_trailing_silence() -> None:
    pcm = dtmf_pcm("w5")
    assert not pcm[: 500 * 8].any()
    tones = decode(pcm)
    assert [t.key for t in tones] == ["5"]
    assert pcm[-1] == 0 and pcm[0] == 0
    tail = pcm.size - tones[0].end
    assert tail >= (80 - 5) * 8  # the trailing gap minus the half ramp the next tone brings


def test_starts_and_ends_at_zero_without_clicks() -> None:
    """Raised-cosine ramps: no step at either end, little energy far from the two tones."""
    pcm = dtmf_pcm("1").astype(np.float64)
    assert abs(pcm[0]) < 50 and abs(pcm[-1]) < 1
    step = np.max(np.abs(np.diff(pcm)))
    # the steepest a 697+1209 Hz sum can move between samples at these amplitudes
    bound = 2 * np.pi * (697 * dbm0_to_amplitude(-7) + 1209 * dbm0_to_amplitude(-5)) / RATE
    assert step <= bound
    spec = np.abs(np.fft.rfft(pcm, 1 << 15)) ** 2
    freqs = np.fft.rfftfreq(1 << 15, 1 / RATE)
    near = (np.abs(freqs - 697) < 250) | (np.abs(freqs - 1209) < 250)
    assert spec[~near].sum() / spec.sum() < 1e-4  # -40 dB outside ±250 Hz of the tones


def test_hard_onset_negative_control() -> None:
    """The click check above can fail: a tone cut on without ramps splatters far more."""
    pcm = dtmf_pcm("1").astype(np.float64)
    hard = np.zeros(pcm.size + 400)
    n = np.arange(800)
    hard[200:1000] = 10150 * np.sin(2 * np.pi * 697 * n / RATE + 1.0) + 12780 * np.sin(
        2 * np.pi * 1209 * n / RATE + 1.0
    )
    spec = np.abs(np.fft.rfft(hard, 1 << 15)) ** 2
    freqs = np.fft.rfftfreq(1 << 15, 1 / RATE)
    near = (np.abs(freqs - 697) < 250) | (np.abs(freqs - 1209) < 250)
    assert spec[~near].sum() / spec.sum() > 1e-4


def test_continuous_phase_within_a_tone() -> None:
    """The steady part of each tone is one sinusoid pair: a fit leaves only rounding noise."""
    spec = DtmfSpec(tone_ms=200)
    pcm = dtmf_pcm("9", spec).astype(np.float64)
    n = np.arange(pcm.size)
    core = slice(80, 80 + 1400)
    cols = []
    for f in TABLE["9"]:
        cols += [np.sin(2 * np.pi * f * n / RATE), np.cos(2 * np.pi * f * n / RATE)]
    basis = np.stack(cols, axis=1)[core]
    coef, *_ = np.linalg.lstsq(basis, pcm[core], rcond=None)
    residual = pcm[core] - basis @ coef
    assert np.max(np.abs(residual)) <= 1.0  # int16 rounding only


@pytest.mark.parametrize(
    ("tone_ms", "gap_ms", "twist"), [(70, 50, 0.0), (100, 80, -4.0), (250, 120, 4.0)]
)
def test_custom_spec_timing_and_twist(tone_ms: int, gap_ms: int, twist: float) -> None:
    spec = DtmfSpec(tone_ms=tone_ms, gap_ms=gap_ms, twist_db=twist)
    tones = decode(ulaw_decode(dtmf_ulaw("*0#", spec)))
    assert [t.key for t in tones] == ["*", "0", "#"]
    for t in tones:
        assert abs((t.end - t.start) - tone_ms * 8) <= 16
        assert abs((t.high_db - t.low_db) - twist) <= 1.0
    for a, b in itertools.pairwise(tones):
        assert abs((b.start - a.end) - gap_ms * 8) <= 16


@pytest.mark.parametrize(
    "kwargs",
    [
        {"tone_ms": 69},
        {"gap_ms": 49},
        {"twist_db": 4.5},
        {"twist_db": -4.1},
        {"pause_ms": -1},
        {"ramp_ms": 0.0},
        {"ramp_ms": 45.0},
        {"low_dbm0": 0.0},  # the pair would clip
    ],
)
def test_spec_rejects_out_of_range(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        DtmfSpec(**kwargs)  # type: ignore[arg-type]


def test_validate_normalizes_case() -> None:
    assert validate_digits("abcdW*#09") == "ABCDw*#09"


@pytest.mark.parametrize(
    ("digits", "fragment"),
    [
        ("12x4", "'x' at position 2"),
        ("1 2", "' ' at position 1"),
        ("٣", "'٣' at position 0"),  # an Arabic-Indic three is not a key
        ("E", "'E' at position 0"),
        ("1,2", "',' at position 1"),
        ("", "empty"),
        ("www", "only pauses"),
        ("1" * (MAX_DIGITS + 1), f"at most {MAX_DIGITS}"),
    ],
)
def test_validate_names_the_problem(digits: str, fragment: str) -> None:
    with pytest.raises(InvalidDigits) as err:
        validate_digits(digits)
    assert fragment in str(err.value)
    assert isinstance(err.value, ValueError) and isinstance(err.value, InvalidRequest)
    assert err.value.http_status == 422
    with pytest.raises(InvalidDigits):
        dtmf_ulaw(digits)


def test_validate_rejects_non_strings() -> None:
    with pytest.raises(InvalidDigits):
        validate_digits(123)  # type: ignore[arg-type]


@settings(max_examples=40, deadline=None)
@given(st.text(alphabet=KEYS + "w", min_size=1, max_size=12).filter(lambda s: s.strip("w")))
def test_any_digit_string_decodes_back(digits: str) -> None:
    spec = DtmfSpec()
    ulaw = dtmf_ulaw(digits, spec)
    assert len(ulaw) == dtmf_samples(digits, spec)
    tones = decode(ulaw_decode(ulaw))
    assert as_digits(tones, spec) == digits.rstrip("w")  # trailing pauses: in the length
    assert [t.key for t in tones] == [c for c in digits if c != "w"]
    assert all(abs((t.end - t.start) - 800) <= 16 for t in tones)


@given(st.text(max_size=20))
def test_validation_accepts_exactly_the_alphabet(text: str) -> None:
    allowed = set(KEYS + "abcdwW")
    try:
        norm = validate_digits(text)
    except InvalidDigits as err:
        bad = [c for c in text if c not in allowed]
        assert not text or bad or set(text) <= set("wW")
        if bad:
            assert repr(bad[0]) in str(err)
    else:
        assert set(text) <= allowed and len(norm) == len(text)
