"""Detector figures: beep detection delay and accuracy, music/speech accuracy, cost per frame.

Run:  .venv/bin/python bench/detectors.py all        (a few minutes: synthesizes its material)
      .venv/bin/python bench/detectors.py beep       detection rate and delay after the beep
      .venv/bin/python bench/detectors.py music      label shares per held-out clip, latencies
      .venv/bin/python bench/detectors.py cost       µs per 20 ms frame, one core
      .venv/bin/python bench/detectors.py fit        refit the music score's weights (train
                                                     split) and print them with held-out accuracy

Material: tests/audio/audio_material.py (espeak-ng, Piper, sox and numpy synthesis, μ-law
round trip). Everything is deterministic except Piper's own sampling noise.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "audio"))

import audio_material as am

from voicecall.audio.beep import BeepDetector, GreetingEnd
from voicecall.audio.music import FEATURES, SPEECH_SCORE, Label, MusicDiscriminator, gate


def header(title: str) -> None:
    print(f"\n== {title} " + "=" * max(0, 70 - len(title)))


# -- beep -----------------------------------------------------------------------------------


def bench_beep() -> None:
    header("beep detector: detection and delay after the beep's end")
    greetings = [("espeak", t, am.speech(t)) for t in am.GREETINGS]
    if am.HAVE_PIPER:
        greetings += [("piper", t, am.speech(t, "piper")) for t in am.GREETINGS[:2]]
    conditions: dict[str, dict[str, object]] = {
        "clean": {},
        "line noise -40": {"noise_db": -40.0},
        "quiet beep -30": {"beep_db": -30.0},
        "loud beep -3": {"beep_db": -3.0},
        "then line noise": {"after": "noise"},
        "recorded-style": {"recorded": True},
        "recorded, noisy": {"recorded": True, "noise_db": -35.0, "after": "noise"},
        "drift +15 Hz": {"drift_hz": 15.0},
    }
    delays: list[float] = []
    errors: list[float] = []
    found = total = 0
    per_condition: Counter[str] = Counter()
    for name, kw in conditions.items():
        for _engine, _text, g in greetings:
            for hz in (440, 800, 1000, 1400, 1900):
                for ms in (150, 250, 500, 1000):
                    sc = am.greeting_with_beep(g, beep_hz=hz, beep_ms=ms, **kw)  # type: ignore[arg-type]
                    d = BeepDetector()
                    event = next((e for f in am.frames(sc.audio) if (e := d.feed(f))), None)
                    total += 1
                    end = (sc.beep_end or 0) - 20  # half-amplitude end of the 5 ms ramp
                    if event is not None and event.kind is GreetingEnd.BEEP:
                        found += 1
                        per_condition[name] += 1
                        delays.append((event.reported_at - end) / 8)
                        errors.append(abs(event.sample - end) / 8)
    n_each = total // len(conditions)
    print(
        f"greetings: {len(greetings)} (espeak-ng{', Piper' if am.HAVE_PIPER else ''}), beeps "
        "440/800/1000/1400/1900 Hz x 150/250/500/1000 ms"
    )
    for name in conditions:
        print(f"  {name:<18} {per_condition[name]:4d}/{n_each} found")
    print(f"found {found}/{total} ({100 * found / total:.1f} %)")
    d = np.array(delays)
    print(
        f"delay after the beep's end: median {np.median(d):.0f} ms, p95 "
        f"{np.percentile(d, 95):.0f} ms, max {d.max():.0f} ms (budget: 1000 ms)"
    )
    e = np.array(errors)
    print(f"end position error: median {np.median(e):.1f} ms, max {e.max():.1f} ms")

    header("beep detector: false alarms on what is not a beep")
    negatives: list[tuple[str, np.ndarray]] = []
    for engine in ("espeak", "piper") if am.HAVE_PIPER else ("espeak",):
        sp = np.concatenate(
            [
                np.concatenate([am.speech(t, engine), am.silence(500)])
                for t in am.GREETINGS + am.ANNOUNCEMENTS + am.HUMAN
            ]
        )
        negatives.append((f"{engine}: all phrases, 0.5 s pauses", sp))
    g = greetings[0][2]
    for style in ("pop", "jazz", "ballad"):
        for seed in range(10):
            negatives.append(
                (
                    f"greeting + music {style} #{seed}",
                    np.concatenate([g, am.hold_music(30, seed, style)]),
                )
            )
    if am.HAVE_SOX:
        for seed in range(4):
            negatives.append(
                (f"greeting + sox music #{seed}", np.concatenate([g, am.sox_synth_music(30, seed)]))
            )
    negatives.append(("greeting + DTMF", np.concatenate([g, am.dtmf("0123456789*#ABCD")])))
    negatives.append(("greeting + ring-back US", np.concatenate([g, am.ringback("us", 12)])))
    negatives.append(("greeting + ring-back UK", np.concatenate([g, am.ringback("uk", 12)])))
    seconds = 0.0
    alarms = []
    for name, x in negatives:
        audio = am.ulaw_roundtrip(am.pad_to_frames(x))
        seconds += audio.size / 8000
        d = BeepDetector()
        event = next((e for f in am.frames(audio) if (e := d.feed(f))), None)
        if event is not None and event.kind is GreetingEnd.BEEP:
            alarms.append(name)
    print(
        f"{len(negatives)} clips, {seconds / 60:.1f} min of audio: "
        f"{len(alarms)} false beep(s) {alarms if alarms else ''}"
    )


# -- music ----------------------------------------------------------------------------------


def label_run(audio: np.ndarray) -> list[Label]:
    disc = MusicDiscriminator()
    labels = []
    for f in am.frames(audio):
        disc.feed(f)
        labels.append(disc.label)
    return labels


def bench_music() -> None:
    header("music discriminator: held-out clips (label share after the first second)")
    confusion: dict[str, Counter[str]] = {}
    rows = []
    for clip in am.music_clips("heldout"):
        labels = label_run(clip.audio)[50:]
        counts = Counter(lab.value for lab in labels)
        share = {k: v / len(labels) for k, v in counts.items()}
        ok = share.get(clip.kind, 0.0)
        if clip.kind == "speech":  # pauses between sentences are silence, and that is right
            ok += share.get("silence", 0.0)
        rows.append((clip.name, clip.kind, ok, share))
        confusion.setdefault(clip.kind, Counter()).update(lab.value for lab in labels)
    for name, kind, ok, share in rows:
        detail = ", ".join(f"{k} {v:.0%}" for k, v in sorted(share.items(), key=lambda i: -i[1]))
        print(f"  {name:<34} {kind:<8} correct {ok:6.1%}   ({detail})")
    print("confusion (rows: truth; frames):")
    names = [lab.value for lab in Label]
    print("  " + " " * 10 + "".join(f"{n:>10}" for n in names))
    for kind, c in confusion.items():
        total = sum(c.values())
        print(f"  {kind:<10}" + "".join(f"{c[n] / total:>10.1%}" for n in names))
    sp, mu = confusion["speech"], confusion["music"]
    print(f"speech frames labelled music: {sp['music'] / sum(sp.values()):.2%}")
    print(f"music frames labelled speech: {mu['speech'] / sum(mu.values()):.2%}")

    header("music discriminator: how fast the label follows a change")
    g = am.speech(am.HUMAN[0])
    for style in ("pop", "jazz", "ballad"):
        music = am.hold_music(12, 20, style)
        x = am.ulaw_roundtrip(am.pad_to_frames(np.concatenate([music, g])))
        labels = label_run(x)
        onset = music.size // 160
        to_music = next((i for i, lab in enumerate(labels) if lab is Label.MUSIC), None)
        to_speech = next((i for i in range(onset, len(labels)) if labels[i] is Label.SPEECH), None)
        first = "never" if to_music is None else f"{to_music * 20} ms"
        person = "never" if to_speech is None else f"{(to_speech - onset) * 20} ms"
        print(
            f"  {style:<7} MUSIC {first} after the music starts; SPEECH {person} after a person "
            "starts talking after it"
        )


def fit() -> None:
    header("music score: logistic regression on the train split")

    def dataset(split: str) -> tuple[np.ndarray, np.ndarray]:
        xs, ys = [], []
        for clip in am.music_clips(split):
            if clip.kind not in ("speech", "music"):
                continue
            disc = MusicDiscriminator()
            for i, f in enumerate(am.frames(clip.audio)):
                disc.feed(f)
                feat = disc.features
                decided = i % 5 == 0  # the discriminator decides every 5th frame
                if decided and i >= 50 and feat is not None and gate(feat, disc.config) is None:
                    xs.append(feat.vector())
                    ys.append(1.0 if clip.kind == "speech" else 0.0)
        return np.array(xs), np.array(ys)

    x, y = dataset("train")
    centre = np.round((np.median(x[y == 1], 0) + np.median(x[y == 0], 0)) / 2, 2)
    scale = np.round(np.maximum(np.std(x, 0), 1e-3), 2)
    z = np.clip((x - centre) / scale, -3, 3)
    w, b = np.zeros(z.shape[1]), 0.0
    sample_weight = np.where(y == 1, 0.5 / y.mean(), 0.5 / (1 - y.mean()))  # balanced classes
    for _ in range(4000):
        p = 1 / (1 + np.exp(-(z @ w + b)))
        g = sample_weight * (p - y)
        w -= 0.3 * (z.T @ g / len(y) + 1e-3 * w)
        b -= 0.3 * float(np.mean(g))
    w = np.round(w, 1)
    b = round(b, 1)
    print(f"features: {FEATURES}")
    print(
        f"SpeechScore(centre={tuple(centre.tolist())}, scale={tuple(scale.tolist())}, "
        f"weights={tuple(w.tolist())}, bias={b})"
    )

    def accuracy(
        xx: np.ndarray, yy: np.ndarray, c: np.ndarray, s: np.ndarray, ww: np.ndarray, bb: float
    ) -> str:
        score = np.clip((xx - c) / s, -3, 3) @ ww + bb
        return (
            f"speech windows {np.mean(score[yy == 1] > 0):.2%}, "
            f"music windows {np.mean(score[yy == 0] <= 0):.2%}"
        )

    xh, yh = dataset("heldout")
    print(f"train ({len(y)} windows):    {accuracy(x, y, centre, scale, w, b)}")
    print(f"held-out ({len(yh)} windows): {accuracy(xh, yh, centre, scale, w, b)}")
    m = SPEECH_SCORE
    c, s, ww = (np.array(v) for v in (m.centre, m.scale, m.weights))
    print(f"the module's SPEECH_SCORE on held-out: {accuracy(xh, yh, c, s, ww, m.bias)}")


# -- cost -----------------------------------------------------------------------------------


def per_frame_us(
    fn: Callable[[np.ndarray], object], frames: list[np.ndarray], repeat: int
) -> float:
    """Best CPU time (this process's, so other load on the machine does not count) per call."""
    best = float("inf")
    for _ in range(repeat):
        t = time.process_time()
        for f in frames:
            fn(f)
        best = min(best, time.process_time() - t)
    return best / len(frames) * 1e6


def bench_cost(repeat: int) -> None:
    header(f"cost per 20 ms frame (CPU time, best of {repeat}, one core)")
    g = (
        am.speech(am.GREETINGS[0])
        if am.HAVE_ESPEAK
        else am.white_noise(40000, -20, 1).astype(np.int16)
    )
    x = am.ulaw_roundtrip(am.pad_to_frames(np.concatenate([g, am.hold_music(20, 1, "pop")])))
    frames = am.frames(x)
    ulaw = [am.ulaw_encode(f) for f in frames]

    d = BeepDetector()
    us = per_frame_us(lambda f: d.feed(f), frames, repeat)
    print(f"BeepDetector.feed         {us:8.1f} µs/frame  ({20_000 / us:,.0f} streams per core)")
    m = MusicDiscriminator()
    us = per_frame_us(lambda f: m.feed(f), frames, repeat)
    print(f"MusicDiscriminator.feed   {us:8.1f} µs/frame  ({20_000 / us:,.0f} streams per core)")
    m2 = MusicDiscriminator()
    it = iter(ulaw * repeat)
    us = per_frame_us(lambda _f: m2.feed_ulaw(next(it)), frames, repeat)
    print(f"MusicDiscriminator.feed_ulaw {us:5.1f} µs/frame")
    try:
        from voicecall.audio.stereo_wav import StereoRecorder
    except ImportError:
        return
    rec = StereoRecorder()
    pos = [0]

    def record(f: np.ndarray) -> None:
        rec.caller(pos[0], f)
        if pos[0] % 1600 == 0:
            rec.bot(pos[0], f)
        pos[0] += 160
        rec.drain()

    us = per_frame_us(record, frames, repeat)
    print(f"StereoRecorder caller+drain {us:6.1f} µs/frame")
    from voicecall.audio.dtmf import dtmf_ulaw

    t = time.perf_counter()
    for _ in range(100):
        dtmf_ulaw("0123456789*#")
    print(
        f"dtmf_ulaw('0123456789*#')  {(time.perf_counter() - t) * 10:8.2f} ms per call "
        "(2.2 s of audio)"
    )


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "what", choices=["all", "beep", "music", "cost", "fit"], nargs="?", default="all"
    )
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    print(f"$ {' '.join([os.path.relpath(sys.executable), *sys.argv])}")
    print(
        f"python {platform.python_version()}, numpy {np.__version__}, {platform.machine()}, "
        f"espeak-ng {'yes' if am.HAVE_ESPEAK else 'no'}, Piper {'yes' if am.HAVE_PIPER else 'no'}, "
        f"sox {'yes' if am.HAVE_SOX else 'no'}"
    )
    if args.what == "fit":
        fit()
        return
    if hasattr(os, "sched_setaffinity") and args.what == "cost":
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    if args.what in ("all", "beep"):
        bench_beep()
    if args.what in ("all", "music"):
        bench_music()
    if args.what in ("all", "cost"):
        bench_cost(args.repeat)


if __name__ == "__main__":
    main()
