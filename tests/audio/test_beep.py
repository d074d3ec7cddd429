"""Beep detector on synthetic greetings: espeak-ng and Piper speech through μ-law, beeps of
440-1900 Hz and 150-1000 ms, noise, recorded-style degradations, and what must not fire."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from audio_material import (
    ANNOUNCEMENTS,
    GREETINGS,
    HAVE_ESPEAK,
    HAVE_PIPER,
    HAVE_SOX,
    HUMAN,
    I16,
    RATE,
    dtmf,
    frames,
    greeting_with_beep,
    hold_music,
    line_noise,
    pad_to_frames,
    recorded_style,
    ringback,
    silence,
    sox_synth_music,
    speech,
    tone,
    ulaw_roundtrip,
    white_noise,
    wow,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from voicecall.audio.beep import BeepConfig, BeepDetector, BeepEvent, GreetingEnd
from voicecall.audio.g711 import ulaw_encode
from voicecall.audio.spectral import FrameAnalyzer

needs_espeak = pytest.mark.skipif(not HAVE_ESPEAK, reason="espeak-ng is not installed")
needs_piper = pytest.mark.skipif(not HAVE_PIPER, reason="pip install 'voicecall[piper]'")
needs_sox = pytest.mark.skipif(not HAVE_SOX, reason="sox is not installed")
BEEP, SILENCE = GreetingEnd.BEEP, GreetingEnd.SILENCE
MS = RATE // 1000


def run(x: I16, config: BeepConfig | None = None) -> list[BeepEvent]:
    d = BeepDetector(config)
    return [e for f in frames(x) if (e := d.feed(f)) is not None]


def one(x: I16, config: BeepConfig | None = None) -> BeepEvent | None:
    events = run(x, config)
    assert len(events) <= 1
    return events[0] if events else None


def scene_audio(*parts: np.ndarray) -> I16:
    return ulaw_roundtrip(pad_to_frames(np.concatenate(parts)))


def last_loud(x: I16) -> int:
    """One past the last sample above -40 dBFS."""
    return int(np.flatnonzero(np.abs(x.astype(np.int32)) > 328)[-1]) + 1


def assert_beep(event: BeepEvent | None, beep_end: int, hz: float, ms: float) -> None:
    assert event is not None and event.kind is BEEP, event
    assert abs(event.sample - beep_end) <= 10 * MS  # located within 10 ms
    assert event.frequency_hz is not None and abs(event.frequency_hz - hz) <= max(10, 0.01 * hz)
    assert event.duration_ms is not None and abs(event.duration_ms - ms) <= 20
    assert event.reported_at - beep_end <= 200 * MS  # the message can start well within 1 s
    assert event.kind.answered_by == "machine_end_beep"


@pytest.fixture(scope="module")
def espeak_greetings() -> list[I16]:
    if not HAVE_ESPEAK:
        pytest.skip("espeak-ng is not installed")
    return [speech(g) for g in GREETINGS]


@pytest.fixture(scope="module")
def piper_greetings() -> list[I16]:
    if not HAVE_PIPER:
        pytest.skip("pip install 'voicecall[piper]'")
    return [speech(g, "piper") for g in GREETINGS[:2]]


# -- values and validation ---------------------------------------------------------------------


def test_greeting_end_maps_to_twilio_words() -> None:
    assert BEEP.answered_by == "machine_end_beep"
    assert SILENCE.answered_by == "machine_end_silence"
    assert GreetingEnd.TIMEOUT.answered_by == "machine_end_other"


def test_event_validation_and_delay() -> None:
    e = BeepEvent(BEEP, sample=8000, reported_at=8800, frequency_hz=1000.0)
    assert e.delay_ms == 100.0
    with pytest.raises(ValueError):
        BeepEvent(BEEP, sample=10, reported_at=5)
    with pytest.raises(ValueError):
        BeepEvent(SILENCE, sample=-1, reported_at=5)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"min_hz": 50.0},
        {"min_hz": 2000.0, "max_hz": 1000.0},
        {"min_tone_ms": 20},
        {"min_tone_ms": 500, "max_tone_ms": 400},
        {"min_purity": 0.0},
        {"min_envelope_flatness": 1.5},
        {"freq_tolerance_hz": -1.0},
        {"max_level_drop_db": 0.0},
        {"min_end_drop_db": -1.0},
        {"min_dual_purity": 0.0},
        {"end_confirm_ms": 2000},
        {"min_greeting_ms": -1},
        {"silence_ms": 0},
        {"floor_rise_db_per_s": -1.0},
        {"timeout_ms": 0},
    ],
)
def test_config_rejects_nonsense(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        BeepConfig(**kwargs)  # type: ignore[arg-type]


def test_frames_must_be_20_ms_of_int16() -> None:
    d = BeepDetector()
    with pytest.raises(ValueError):
        d.feed(np.zeros(159, np.int16))
    with pytest.raises(TypeError):
        d.feed(np.zeros(160, np.float32))  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        d.feed_ulaw(b"\xff" * 80)


def test_frame_analyzer_measures_a_tone() -> None:
    a = FrameAnalyzer()
    x = pad_to_frames(tone(1234.0, 100, -12.0))
    m = [a.analyze(f) for f in frames(x.astype(np.int16))][2]
    assert abs(m.frequency_hz - 1234.0) < 2.0
    assert m.purity > 0.99 and m.flatness > 0.9
    assert abs(m.peak_dbfs - (-12.0)) < 0.5
    dual = FrameAnalyzer()
    d = [dual.analyze(f) for f in frames(pad_to_frames(dtmf("5")).astype(np.int16))][2]
    assert d.purity < 0.7 and d.dual_purity > 0.95


# -- beeps after greetings ---------------------------------------------------------------------


@needs_espeak
@pytest.mark.parametrize("hz", [440, 800, 1000, 1400, 1900])
@pytest.mark.parametrize("ms", [150, 300, 1000])
def test_beep_after_espeak_greeting(espeak_greetings: list[I16], hz: int, ms: int) -> None:
    sc = greeting_with_beep(espeak_greetings[hz % 4], beep_hz=hz, beep_ms=ms)
    event = one(sc.audio)
    # the tone's ramps are 5 ms: its half-amplitude duration is 5 ms shorter than generated
    assert_beep(event, sc.beep_end - 20, hz, ms - 5)


@needs_piper
@pytest.mark.parametrize("hz", [440, 1000, 1900])
@pytest.mark.parametrize("ms", [150, 500])
def test_beep_after_piper_greeting(piper_greetings: list[I16], hz: int, ms: int) -> None:
    sc = greeting_with_beep(piper_greetings[hz % 2], beep_hz=hz, beep_ms=ms)
    assert_beep(one(sc.audio), sc.beep_end - 20, hz, ms - 5)


CONDITIONS: dict[str, dict[str, Any]] = {
    "line noise -40 dBFS throughout": {"noise_db": -40.0},
    "quiet beep -30 dBFS": {"beep_db": -30.0},
    "quiet beep in noise": {"beep_db": -30.0, "noise_db": -50.0},
    "loud beep -3 dBFS": {"beep_db": -3.0},
    "beep then line noise": {"after": "noise"},
    "no gap before the beep": {"gap_ms": 0.0},
    "recorded-style greeting": {"recorded": True},
    "recorded greeting, noisy line": {"recorded": True, "noise_db": -35.0, "after": "noise"},
    "beep gliding +15 Hz": {"drift_hz": 15.0},
    "square-ish beep (odd harmonics)": {"harmonics": (0.0, 0.33, 0.0, 0.2)},
    "slow 25 ms fades": {"beep_ramp_ms": 25.0},
}


@needs_espeak
@needs_sox
@pytest.mark.parametrize("name", list(CONDITIONS))
@pytest.mark.parametrize("hz", [440, 1000, 1900])
def test_beep_conditions(espeak_greetings: list[I16], name: str, hz: int) -> None:
    cond = CONDITIONS[name]
    sc = greeting_with_beep(espeak_greetings[1], beep_hz=hz, beep_ms=250, **cond)
    half_ramp = int(cond.get("beep_ramp_ms", 5.0) * MS) // 2
    ms = 250 - 2 * half_ramp / MS
    assert_beep(one(sc.audio), sc.beep_end - half_ramp, hz + cond.get("drift_hz", 0.0) / 2, ms)


@needs_piper
@needs_sox
def test_beep_after_recorded_style_piper_with_wow_on_everything(
    piper_greetings: list[I16],
) -> None:
    """The whole recording (greeting and beep) band-limited, compressed, with tape wow and
    line noise: the beep's frequency wobbles by ±0.4 %."""
    sc = greeting_with_beep(piper_greetings[0], beep_hz=1000, beep_ms=400, lead_ms=300)
    x = recorded_style(sc.audio, seed=5, noise_db=-45.0)
    event = one(ulaw_roundtrip(pad_to_frames(x)))
    assert_beep(event, sc.beep_end - 20, 1000, 395)


@needs_espeak
def test_feed_ulaw_equals_feed(espeak_greetings: list[I16]) -> None:
    sc = greeting_with_beep(espeak_greetings[0], beep_hz=800, beep_ms=300)
    ulaw = ulaw_encode(sc.audio)
    a, b = BeepDetector(), BeepDetector()
    got = [a.feed_ulaw(ulaw[i : i + 160]) for i in range(0, len(ulaw), 160)]
    want = [b.feed(f) for f in frames(sc.audio)]
    assert got == want and any(got)


@needs_espeak
def test_reports_once_then_nothing_until_reset(espeak_greetings: list[I16]) -> None:
    sc = greeting_with_beep(espeak_greetings[0], beep_hz=1000, beep_ms=300, after_ms=4000)
    d = BeepDetector()
    events = [e for f in frames(sc.audio) if (e := d.feed(f)) is not None]
    assert [e.kind for e in events] == [BEEP]  # no SILENCE after the beep
    assert d.done and d.position == len(frames(sc.audio)) * 160
    d.reset()
    assert not d.done and d.position == 0
    assert [e.kind for e in (d.feed(f) for f in frames(sc.audio)) if e] == [BEEP]


@needs_espeak
def test_two_beeps_the_first_is_reported(espeak_greetings: list[I16]) -> None:
    g = espeak_greetings[2]
    x = scene_audio(g, silence(300), tone(1000, 200), silence(300), tone(1000, 200), silence(2000))
    event = one(x)
    assert event is not None and event.kind is BEEP
    assert abs(event.sample - (g.size + 300 * MS + 200 * MS - 20)) <= 80


# -- silence after the greeting ----------------------------------------------------------------


@needs_espeak
@pytest.mark.parametrize("silence_ms", [1500, 2000, 2500])
@pytest.mark.parametrize("noise_db", [None, -45.0])
def test_long_silence_after_greeting(
    espeak_greetings: list[I16], silence_ms: int, noise_db: float | None
) -> None:
    g = espeak_greetings[0]
    x = np.concatenate([silence(500), g, silence(4000)])
    if noise_db is not None:
        x = x + line_noise(x.size, noise_db, seed=3)
    event = one(scene_audio(x), BeepConfig(silence_ms=silence_ms))
    assert event is not None and event.kind is SILENCE, event
    assert event.kind.answered_by == "machine_end_silence"
    speech_end = 500 * MS + last_loud(g)
    assert abs(event.sample - speech_end) <= 150 * MS  # where the silence began
    assert event.reported_at - event.sample == silence_ms * MS
    assert event.duration_ms == silence_ms


@needs_espeak
def test_pauses_inside_a_greeting_are_not_its_end(espeak_greetings: list[I16]) -> None:
    """Sentences separated by 1.2 s pauses, then a beep: the beep, not the pauses."""
    parts: list[np.ndarray] = []
    for g in espeak_greetings[:3]:
        parts += [g, silence(1200)]
    x = scene_audio(*parts[:-1], silence(400), tone(1000, 300), silence(3000))
    event = one(x)
    assert event is not None and event.kind is BEEP


@needs_espeak
def test_short_tone_is_not_a_beep_then_silence(espeak_greetings: list[I16]) -> None:
    g = espeak_greetings[0]
    x = scene_audio(g, silence(300), tone(1000, 100), silence(3000))
    event = one(x)
    assert event is not None and event.kind is SILENCE  # the 100 ms blip is no beep


@needs_espeak
def test_endless_tone_is_not_a_beep(espeak_greetings: list[I16]) -> None:
    x = scene_audio(espeak_greetings[0], silence(300), tone(1000, 5000), silence(3000))
    event = one(x)
    assert event is not None and event.kind is SILENCE


@needs_espeak
def test_tone_running_into_speech_is_not_a_beep(espeak_greetings: list[I16]) -> None:
    g = espeak_greetings[0]
    x = scene_audio(g, silence(300), tone(1000, 300, ramp_ms=1), espeak_greetings[1])
    assert all(e.kind is not BEEP for e in run(x))


@needs_espeak
def test_out_of_band_tones_are_not_beeps(espeak_greetings: list[I16]) -> None:
    g = espeak_greetings[0]
    for hz in (300.0, 2100.0, 2400.0):  # below the band; fax CED; above
        x = scene_audio(g, silence(300), tone(hz, 400), silence(3000))
        event = one(x)
        assert event is not None and event.kind is SILENCE, hz


def test_timeout_when_configured() -> None:
    x = scene_audio(silence(3000))
    event = one(x, BeepConfig(timeout_ms=2000))
    assert event is not None and event.kind is GreetingEnd.TIMEOUT
    assert event.reported_at == 2000 * MS and event.kind.answered_by == "machine_end_other"
    assert one(x) is None


# -- what must not fire --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "signal",
    ["silence", "line noise", "white noise", "ringback us", "ringback uk", "dtmf", "beep only"],
)
def test_nothing_heard_before_means_nothing_reported(signal: str) -> None:
    n = 12 * RATE
    x = {
        "silence": lambda: silence(12000),
        "line noise": lambda: line_noise(n, -35.0, 1),
        "white noise": lambda: white_noise(n, -30.0, 2),
        "ringback us": lambda: ringback("us", 12),
        "ringback uk": lambda: ringback("uk", 12),
        "dtmf": lambda: np.concatenate([dtmf("123"), silence(5000)]),
        "beep only": lambda: np.concatenate([silence(500), tone(1000, 400), silence(5000)]),
    }[signal]()
    assert run(scene_audio(x)) == []


@pytest.mark.slow
@pytest.mark.parametrize(
    "engine", [pytest.param("espeak", marks=needs_espeak), pytest.param("piper", marks=needs_piper)]
)
def test_speech_never_fires(engine: str) -> None:
    """Every phrase of the material, back to back with 0.5 s pauses: no event at all."""
    parts: list[np.ndarray] = []
    for text in GREETINGS + ANNOUNCEMENTS + HUMAN:
        parts += [speech(text, engine), silence(500)]
    assert run(scene_audio(*parts)) == []


@needs_espeak
@pytest.mark.parametrize("style", ["pop", "jazz", "ballad", "sox"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_music_after_greeting_is_no_beep(
    espeak_greetings: list[I16], style: str, seed: int
) -> None:
    if style == "sox" and not HAVE_SOX:
        pytest.skip("sox is not installed")
    music = sox_synth_music(20, seed) if style == "sox" else hold_music(20, seed, style)
    assert all(e.kind is not BEEP for e in run(scene_audio(espeak_greetings[3], music)))


@needs_espeak
@pytest.mark.parametrize("country", ["us", "uk"])
def test_ringback_and_dtmf_after_greeting_are_no_beep(
    espeak_greetings: list[I16], country: str
) -> None:
    g = espeak_greetings[0]
    assert all(e.kind is not BEEP for e in run(scene_audio(g, ringback(country, 10))))
    keys = dtmf("0123456789*#ABCD")
    long_keys = np.concatenate([tone((697.0, 1209.0), 600, -15), silence(100)] * 3)
    x = scene_audio(g, silence(300), keys, long_keys, silence(3000))
    event = one(x)
    assert event is not None and event.kind is SILENCE


@needs_espeak
def test_tone_before_the_greeting_is_not_its_end(espeak_greetings: list[I16]) -> None:
    x = scene_audio(tone(1000, 400), silence(300), espeak_greetings[0], silence(3000))
    event = one(x)
    assert event is not None and event.kind is SILENCE


@needs_espeak
def test_documented_limit_pure_note_after_speech(espeak_greetings: list[I16]) -> None:
    """A whistled note (pure, steady, then silence) after speech is reported as a beep: by
    these measures it is one. Kept as a test so that the limit stays known."""
    whistle = wow(tone(1500, 400, -15, ramp_ms=30), depth=0.002, rate_hz=5.0)
    event = one(scene_audio(espeak_greetings[0], silence(200), whistle, silence(3000)))
    assert event is not None and event.kind is BEEP


# -- robustness ---------------------------------------------------------------------------------

FIRST_POSSIBLE = (500 + 130) * MS  # min_greeting_ms + min_tone_ms (defaults)

segments = st.lists(
    st.one_of(
        st.tuples(st.just("tone"), st.floats(100, 3900), st.integers(10, 1500), st.floats(-60, 0)),
        st.tuples(st.just("noise"), st.floats(-80, 0), st.integers(10, 1500), st.just(0.0)),
        st.tuples(st.just("silence"), st.just(0.0), st.integers(10, 3000), st.just(0.0)),
        st.tuples(st.just("dual"), st.floats(300, 2000), st.integers(10, 1500), st.floats(-40, -3)),
    ),
    min_size=1,
    max_size=8,
)


def build(parts: list[tuple[str, float, int, float]], seed: int) -> I16:
    out: list[np.ndarray] = []
    for kind, a, ms, db in parts:
        if kind == "tone":
            out.append(tone(a, ms, db))
        elif kind == "noise":
            out.append(white_noise(ms * MS, a, seed))
        elif kind == "dual":
            out.append(tone((a, a * 1.25), ms, db))
        else:
            out.append(silence(ms))
    return scene_audio(*out)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(segments, st.integers(0, 2**16))
def test_arbitrary_scenes_never_crash_and_never_fire_early(
    parts: list[tuple[str, float, int, float]], seed: int
) -> None:
    x = build(parts, seed)
    d = BeepDetector()
    events = []
    for f in frames(x):
        e = d.feed(f)
        if e is not None:
            assert e.reported_at == d.position
            assert 0 <= e.sample <= e.reported_at
            assert e.reported_at >= FIRST_POSSIBLE
            events.append(e)
    assert len(events) <= 1


@settings(max_examples=60, deadline=None)
@given(hnp.arrays(np.int16, st.integers(1, 80).map(lambda n: n * 160)))
def test_arbitrary_samples_never_crash(x: I16) -> None:
    d = BeepDetector()
    for i, f in enumerate(frames(x)):
        e = d.feed(f)
        assert e is None or (e.reported_at >= FIRST_POSSIBLE and i * 160 >= FIRST_POSSIBLE - 160)


@needs_espeak
@settings(max_examples=25, deadline=None)
@given(
    hz=st.floats(400, 2000),
    ms=st.integers(150, 1000),
    db=st.floats(-30, -3),
    gap=st.integers(0, 1500),
    noise_db=st.one_of(st.none(), st.floats(-60, -42)),
    which=st.integers(0, 3),
)
def test_any_beep_in_spec_is_found(
    hz: float, ms: int, db: float, gap: int, noise_db: float | None, which: int
) -> None:
    g = speech(GREETINGS[which])
    sc = greeting_with_beep(g, beep_hz=hz, beep_ms=ms, beep_db=db, gap_ms=gap, noise_db=noise_db)
    assert_beep(one(sc.audio), sc.beep_end - 20, hz, ms - 5)
