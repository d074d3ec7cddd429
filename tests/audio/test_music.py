"""Music / speech / silence / ring-back discriminator on synthetic telephone audio: espeak-ng and
Piper speech (plain, recorded-style, over music), generated hold music, ring-back, tones, noise."""

from __future__ import annotations

import itertools
from collections import Counter

import numpy as np
import pytest
from audio_material import (
    ANNOUNCEMENTS,
    HAVE_ESPEAK,
    HAVE_PIPER,
    HAVE_SOX,
    HUMAN,
    I16,
    RATE,
    frames,
    hold_music,
    line_noise,
    music_clips,
    pad_to_frames,
    recorded_style,
    ringback,
    silence,
    sox_synth_music,
    speech,
    tone,
    ulaw_roundtrip,
    white_noise,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from voicecall.audio.g711 import ulaw_encode
from voicecall.audio.music import (
    Label,
    LabelChange,
    MusicConfig,
    MusicDiscriminator,
    WindowFeatures,
    gate,
)

needs_espeak = pytest.mark.skipif(not HAVE_ESPEAK, reason="espeak-ng is not installed")
needs_piper = pytest.mark.skipif(not HAVE_PIPER, reason="pip install 'voicecall[piper]'")
needs_sox = pytest.mark.skipif(not HAVE_SOX, reason="sox is not installed")
SPEECH, MUSIC, SILENCE = Label.SPEECH, Label.MUSIC, Label.SILENCE
RINGBACK, TONE = Label.RINGBACK, Label.TONE
MS = RATE // 1000


def audio(*parts: np.ndarray) -> I16:
    return ulaw_roundtrip(pad_to_frames(np.concatenate(parts)))


def labels(x: I16, config: MusicConfig | None = None) -> tuple[list[Label], list[LabelChange]]:
    """The label after each frame, and the changes reported."""
    d = MusicDiscriminator(config)
    out, changes = [], []
    for f in frames(x):
        change = d.feed(f)
        if change is not None:
            changes.append(change)
        out.append(d.label)
    return out, changes


def shares(seq: list[Label]) -> Counter[Label]:
    c = Counter(seq)
    return Counter({k: v / len(seq) for k, v in c.items()})


def check_changes(changes: list[LabelChange]) -> None:
    previous = SILENCE
    for c in changes:
        assert c.previous is previous and c.label is not previous
        assert c.sample <= c.reported_at
        previous = c.label


# -- values and validation ---------------------------------------------------------------------


def test_label_change_validation() -> None:
    with pytest.raises(ValueError):
        LabelChange(SPEECH, SPEECH, 0, 10)
    with pytest.raises(ValueError):
        LabelChange(SPEECH, MUSIC, 20, 10)
    assert SPEECH.is_person and not MUSIC.is_person and not RINGBACK.is_person


@pytest.mark.parametrize(
    "kwargs",
    [
        {"window_ms": 100},
        {"window_ms": 1010},
        {"min_active": 0.0},
        {"tone_share": 1.5},
        {"speech_hold_ms": 0},
        {"music_hold_ms": 30},
        {"ringback_gap_ms": -1},
    ],
)
def test_config_rejects_nonsense(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        MusicConfig(**kwargs)  # type: ignore[arg-type]


def test_frames_must_be_20_ms() -> None:
    d = MusicDiscriminator()
    with pytest.raises(ValueError):
        d.feed(np.zeros(320, np.int16))
    with pytest.raises(TypeError):
        d.feed(np.zeros((2, 80), np.int16))
    with pytest.raises(ValueError):
        d.feed_ulaw(b"\xff" * 161)


def test_gate_rules() -> None:
    cfg = MusicConfig()

    def f(**kw: float) -> WindowFeatures:
        base = dict(active=1.0, frames=50, low=0.3, glide=0.2, steady=0.3, depth=6.0,
                    similarity=0.9, flatness=0.05, tone=0.0, ring=0.0, score=0.0)  # fmt: skip
        base.update(kw)
        return WindowFeatures(**base)  # type: ignore[arg-type]

    assert gate(f(active=0.1), cfg) is SILENCE
    assert gate(f(tone=0.9, ring=0.9), cfg) is RINGBACK
    assert gate(f(tone=0.9, ring=0.0), cfg) is TONE
    assert gate(f(depth=1.0, flatness=0.5, low=0.0), cfg) is SILENCE  # stationary noise
    assert gate(f(), cfg) is None


# -- classes -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def announcement() -> I16:
    """The recorded-style announcement of the issue, Piper if available (else espeak-ng)."""
    text = "Your call is important to us, please stay on the line."
    engine = "piper" if HAVE_PIPER else "espeak"
    if not HAVE_PIPER and not HAVE_ESPEAK:
        pytest.skip("no TTS engine")
    x = speech(text, engine).astype(np.float64)
    return recorded_style(x, seed=2, noise_db=-50.0) if HAVE_SOX else x


@needs_espeak
@pytest.mark.parametrize(
    ("engine", "voice"),
    [("espeak", "en-us"), ("espeak", "en-gb"), ("espeak", "en-us+f3"), ("piper", "")],
)
def test_speech_is_speech(engine: str, voice: str) -> None:
    if engine == "piper" and not HAVE_PIPER:
        pytest.skip("pip install 'voicecall[piper]'")
    kw = {"voice": voice} if engine == "espeak" else {}
    parts = []
    for text in ANNOUNCEMENTS + HUMAN[:1]:
        parts += [speech(text, engine, **kw).astype(np.float64), silence(250)]
    seq, changes = labels(audio(*parts))
    check_changes(changes)
    s = shares(seq[50:])
    assert s[SPEECH] >= 0.95, s
    assert s[MUSIC] <= 0.03, s
    assert changes[0].label is SPEECH and changes[0].reported_at <= 900 * MS


@pytest.mark.parametrize("style", ["pop", "jazz", "ballad"])
@pytest.mark.parametrize("seed", [30, 31])
def test_hold_music_is_music(style: str, seed: int) -> None:
    seq, changes = labels(audio(hold_music(20, seed, style)))
    check_changes(changes)
    s = shares(seq[100:])
    assert s[MUSIC] >= 0.85, s
    assert s[SPEECH] <= 0.12, s


@needs_sox
def test_sox_and_recorded_style_music_is_music() -> None:
    for x in (sox_synth_music(15, 9), recorded_style(hold_music(15, 32, "pop"), seed=1)):
        seq, _ = labels(audio(x))
        assert shares(seq[100:])[MUSIC] >= 0.9


@needs_espeak
def test_announcement_between_hold_music_then_a_person(announcement: I16) -> None:
    """Hold music, the recorded announcement, more music, then a person picks up."""
    music1 = hold_music(8, 40, "ballad")
    music2 = hold_music(6, 41, "pop")
    human = speech(HUMAN[1]).astype(np.float64)
    parts = [music1, silence(300), announcement, silence(300), music2, silence(500), human]
    x = audio(*parts)
    _seq, changes = labels(x)
    check_changes(changes)
    order = [c.label for c in changes if c.label in (SPEECH, MUSIC)]
    assert order[:4] == [MUSIC, SPEECH, MUSIC, SPEECH], changes
    starts = np.cumsum([0] + [p.size for p in parts])
    ann_on, human_on = starts[2], starts[6]
    speech_changes = [c for c in changes if c.label is SPEECH]
    # each voice is recognised within a second of its start
    assert any(0 <= c.reported_at - ann_on <= RATE for c in speech_changes), changes
    assert any(0 <= c.reported_at - human_on <= RATE for c in speech_changes), changes
    # and the music is music again within two seconds
    music_again = [c for c in changes if c.label is MUSIC and c.reported_at > starts[4]]
    assert music_again and music_again[0].reported_at - starts[4] <= 2 * RATE


@needs_espeak
@pytest.mark.parametrize("music_db", [-15.0, -20.0])
def test_speech_over_music_is_speech(music_db: float) -> None:
    """The documented choice: a voice over hold music is speech (it must reach the model)."""
    sp = np.concatenate([np.concatenate([speech(t), silence(250)]) for t in ANNOUNCEMENTS])
    music = hold_music(sp.size / RATE + 1, 42, "ballad")[: sp.size]
    act = sp[np.abs(sp) > 300].astype(np.float64)
    gain = 10 ** (music_db / 20) * np.sqrt(np.mean(act**2)) / np.sqrt(np.mean(music**2))
    seq, _ = labels(audio(sp + gain * music))
    s = shares(seq[50:])
    assert s[SPEECH] >= 0.9, s


@pytest.mark.parametrize("country", ["us", "uk"])
def test_ringback_through_its_cadence_then_an_answer(country: str) -> None:
    ring = ringback(country, 13)
    human = speech(HUMAN[0]).astype(np.float64) if HAVE_ESPEAK else tone(300.0, 2000)
    seq, changes = labels(audio(ring, human))
    check_changes(changes)
    onset = ring.size // 160
    assert shares(seq[25:onset])[RINGBACK] >= 0.97  # the off-times included
    assert changes[0].label is RINGBACK and changes[0].reported_at <= 700 * MS
    if HAVE_ESPEAK:
        assert SPEECH in seq[onset:]


@pytest.mark.parametrize(
    ("name", "signal"),
    [
        ("dial tone", lambda: tone((350.0, 440.0), 5000, -20.0)),
        ("busy tone", lambda: np.concatenate([tone((480.0, 620.0), 500, -20.0), silence(500)] * 5)),
        ("1 kHz test tone", lambda: tone(1004.0, 5000, -15.0)),
    ],
)
def test_call_progress_tones_are_tones(name: str, signal: object) -> None:
    seq, _ = labels(audio(signal()))  # type: ignore[operator]
    assert shares(seq[40:])[TONE] >= 0.95, name


@pytest.mark.parametrize(
    ("name", "signal"),
    [
        ("digital silence", lambda: silence(8000)),
        ("line noise -40 dBFS", lambda: line_noise(8 * RATE, -40.0, 1)),
        ("white noise -25 dBFS", lambda: white_noise(8 * RATE, -25.0, 2)),
        ("hiss -50 dBFS", lambda: white_noise(8 * RATE, -50.0, 3)),
    ],
)
def test_silence_and_noise_are_silence(name: str, signal: object) -> None:
    seq, changes = labels(audio(signal()))  # type: ignore[operator]
    assert all(lab is SILENCE for lab in seq), (name, changes)


@needs_espeak
def test_silence_after_speech_and_hysteresis() -> None:
    sp = speech(HUMAN[2]).astype(np.float64)
    _seq, changes = labels(audio(sp, silence(3000)))
    assert [c.label for c in changes] == [SPEECH, SILENCE]
    end = changes[1]
    assert end.reported_at - sp.size <= 2 * RATE
    # a 200 ms burst of music inside speech does not flip the label
    blip = hold_music(0.2, 43, "pop")
    _seq2, changes2 = labels(audio(sp[: sp.size // 2], blip, sp[sp.size // 2 :]))
    assert MUSIC not in [c.label for c in changes2]


@needs_espeak
def test_feed_ulaw_equals_feed() -> None:
    x = audio(speech(HUMAN[0]), hold_music(3, 44, "pop"))
    ulaw = ulaw_encode(x)
    a, b = MusicDiscriminator(), MusicDiscriminator()
    got = [a.feed_ulaw(ulaw[i : i + 160]) for i in range(0, len(ulaw), 160)]
    want = [b.feed(f) for f in frames(x)]
    assert got == want and any(got)


@needs_espeak
def test_reset_starts_over() -> None:
    x = audio(speech(HUMAN[0]))
    d = MusicDiscriminator()
    first = [c for f in frames(x) if (c := d.feed(f))]
    d.reset()
    assert d.label is SILENCE and d.position == 0 and d.features is None
    again = [c for f in frames(x) if (c := d.feed(f))]
    assert again == first


@needs_espeak
def test_speech_bias_leans_towards_speech() -> None:
    sp = np.concatenate([speech(t) for t in ANNOUNCEMENTS[:2]])
    music = hold_music(sp.size / RATE + 1, 45, "pop")[: sp.size]
    x = audio(sp + 1.5 * music)  # music nearly as loud as the voice
    plain = shares(labels(x)[0][50:])[SPEECH]
    biased = shares(labels(x, MusicConfig(speech_bias=3.0))[0][50:])[SPEECH]
    assert biased > plain


@pytest.mark.slow
@needs_espeak
def test_heldout_material_accuracy() -> None:
    """The held-out split (never used to fit the weights): per-class frame accuracy."""
    confusion: dict[str, Counter[str]] = {}
    for clip in music_clips("heldout"):
        seq, changes = labels(clip.audio)
        check_changes(changes)
        confusion.setdefault(clip.kind, Counter()).update(lab.value for lab in seq[50:])
    rate = {k: {lab: n / sum(c.values()) for lab, n in c.items()} for k, c in confusion.items()}
    assert rate["speech"].get("speech", 0) + rate["speech"].get("silence", 0) >= 0.97, rate
    assert rate["speech"].get("music", 0) <= 0.03, rate
    assert rate["music"].get("music", 0) >= 0.93, rate
    assert rate["silence"].get("silence", 0) >= 0.99, rate
    assert rate["ringback"].get("ringback", 0) >= 0.99, rate
    assert rate["tone"].get("tone", 0) >= 0.97, rate


# -- robustness ---------------------------------------------------------------------------------


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(hnp.arrays(np.int16, st.integers(1, 120).map(lambda n: n * 160)))
def test_arbitrary_samples_never_crash(x: I16) -> None:
    d = MusicDiscriminator()
    changes = []
    for f in frames(x):
        c = d.feed(f)
        if c is not None:
            assert c.reported_at == d.position and c.reported_at >= 200 * MS
            changes.append(c)
        assert d.features is not None and np.isfinite(d.features.score)
    check_changes(changes)


segment = st.one_of(
    st.tuples(st.just("tone"), st.floats(50, 3900), st.integers(20, 2000), st.floats(-70, 0)),
    st.tuples(st.just("noise"), st.floats(-90, 0), st.integers(20, 2000), st.just(0.0)),
    st.tuples(st.just("silence"), st.just(0.0), st.integers(20, 3000), st.just(0.0)),
    st.tuples(st.just("music"), st.floats(0, 100), st.integers(200, 3000), st.floats(-40, -6)),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(segment, min_size=1, max_size=6), st.integers(0, 2**16))
def test_arbitrary_scenes_keep_the_invariants(
    parts: list[tuple[str, float, int, float]], seed: int
) -> None:
    out = []
    for kind, a, ms, db in parts:
        if kind == "tone":
            out.append(tone(a, ms, db))
        elif kind == "noise":
            out.append(white_noise(ms * MS, a, seed))
        elif kind == "music":
            out.append(hold_music(ms / 1000, int(a), "pop", db=db))
        else:
            out.append(silence(ms))
    x = audio(*out)
    _seq, changes = labels(x)
    check_changes(changes)
    positions = [c.reported_at for c in changes]
    assert positions == sorted(positions)
    # a change is only reported once its label held: never two within 200 ms
    assert all(b - a >= 200 * MS for a, b in itertools.pairwise(positions))
    if all(kind == "silence" for kind, *_ in parts):
        assert changes == []
