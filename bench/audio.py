"""Audio path micro-benchmarks: μ-law codec, soxr resampler, pacer, VAD, Media Streams parsing.

Run:  .venv/bin/python bench/audio.py [--seconds 60] [--repeat 5]

Pinned to one CPU core (when the OS allows). Figures are best-of-``repeat``; "× real time" is
audio seconds processed per wall-clock second. Per-frame costs are for one 20 ms frame, which is
what each live stream pays 50 times a second.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import platform
import sys
import time
from collections.abc import Callable

import numpy as np

from voicecall.audio.g711 import FRAME_BYTES, SAMPLE_RATE, ulaw_decode, ulaw_encode
from voicecall.audio.pacer import Pacer
from voicecall.audio.resample import StreamResampler
from voicecall.audio.vad import WebRtcVad
from voicecall.twilio.media import MediaSession


def best(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def speechlike(seconds: float, rate: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    x = 0.3 * np.sin(2 * np.pi * 220 * t) + 0.2 * np.sin(2 * np.pi * 1700 * t)
    x += 0.05 * rng.standard_normal(t.size)
    return np.rint(x * 32767).astype(np.int16)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seconds", type=float, default=60.0, help="audio length per measurement")
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    seconds, repeat = args.seconds, args.repeat
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})

    print(f"$ {' '.join([os.path.relpath(sys.executable), *sys.argv])}")
    print(
        f"python {platform.python_version()}, numpy {np.__version__}, {platform.machine()}, "
        f"{seconds:g} s of audio, best of {repeat}, one core"
    )
    print()

    # -- μ-law ------------------------------------------------------------------------------
    pcm = speechlike(seconds, SAMPLE_RATE)
    ulaw = ulaw_encode(pcm)
    n_frames = pcm.size // FRAME_BYTES
    t = best(lambda: ulaw_encode(pcm), repeat)
    print(f"ulaw_encode, whole buffer      {seconds / t:12,.0f} x real time")
    t = best(lambda: ulaw_decode(ulaw), repeat)
    print(f"ulaw_decode, whole buffer      {seconds / t:12,.0f} x real time")
    frames_pcm = [pcm[i * FRAME_BYTES : (i + 1) * FRAME_BYTES] for i in range(n_frames)]
    frames_ulaw = [ulaw[i * FRAME_BYTES : (i + 1) * FRAME_BYTES] for i in range(n_frames)]
    t = best(lambda: [ulaw_encode(f) for f in frames_pcm], repeat)
    print(
        f"ulaw_encode, per 20 ms frame   {t / n_frames * 1e6:12.2f} µs  ({seconds / t:,.0f} x rt)"
    )
    t = best(lambda: [ulaw_decode(f) for f in frames_ulaw], repeat)
    print(
        f"ulaw_decode, per 20 ms frame   {t / n_frames * 1e6:12.2f} µs  ({seconds / t:,.0f} x rt)"
    )
    print()

    # -- resampler --------------------------------------------------------------------------
    for in_rate, chunk_ms in ((24_000, 20), (24_000, 100), (16_000, 20), (22_050, 20)):
        src = speechlike(seconds, in_rate)
        step = in_rate * chunk_ms // 1000

        def resample(src: np.ndarray = src, step: int = step, in_rate: int = in_rate) -> None:
            r = StreamResampler(in_rate, SAMPLE_RATE, "HQ")
            for i in range(0, src.size, step):
                r.process(src[i : i + step])
            r.flush()

        t = best(resample, repeat)
        label = f"resample HQ {in_rate:>5} -> 8000, {chunk_ms:3d} ms chunks"
        print(f"{label} {seconds / t:10,.0f} x real time")
    # streaming latency: output held back by the filter while the stream runs
    for in_rate in (24_000, 16_000):
        r = StreamResampler(in_rate, SAMPLE_RATE, "HQ")
        fed = out = 0
        for _ in range(50):
            out += r.process(np.zeros(in_rate // 50, np.int16)).size
            fed += in_rate // 50
        held_ms = (fed * SAMPLE_RATE / in_rate - out) / SAMPLE_RATE * 1000
        print(
            f"resample HQ {in_rate:>5} -> 8000 output held back in steady state: {held_ms:.1f} ms"
        )
    print()

    # -- pacer ------------------------------------------------------------------------------
    def pace() -> None:
        p = Pacer(max_queue_ms=int(seconds * 1000) + 1000)
        p.push(ulaw)
        now = 0.0
        while (deadline := p.next_deadline(now)) is not None:
            now = max(now, deadline)
            p.due(now)

    t = best(pace, repeat)
    print(f"pacer push+next_deadline+due, per 20 ms message  {t / n_frames * 1e6:8.2f} µs")

    def pace_streaming() -> None:
        p = Pacer()
        now = 0.0
        for f in frames_ulaw:  # TTS delivering 20 ms at a time
            p.push(f)
            p.due(now)
            p.next_deadline(now)
            now += 0.020

    t = best(pace_streaming, repeat)
    print(f"pacer, one push per message (streaming TTS)      {t / n_frames * 1e6:8.2f} µs")
    print()

    # -- VAD --------------------------------------------------------------------------------
    vad_frames = frames_pcm[: min(n_frames, 1500)]

    def vad() -> None:
        v = WebRtcVad()
        for f in vad_frames:
            v.feed(f)

    t = best(vad, repeat)
    print(f"WebRtcVad.feed, per 20 ms frame                  {t / len(vad_frames) * 1e6:8.2f} µs")

    # -- Media Streams parsing + sending ------------------------------------------------------
    sid = "MZ" + "2" * 32
    start = json.dumps(
        {
            "event": "start",
            "sequenceNumber": "1",
            "streamSid": sid,
            "start": {
                "accountSid": "AC" + "0" * 32,
                "streamSid": sid,
                "callSid": "CA" + "1" * 32,
                "tracks": ["inbound"],
                "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
                "customParameters": {},
            },
        }
    )
    texts = [
        json.dumps(
            {
                "event": "media",
                "sequenceNumber": str(k + 2),
                "streamSid": sid,
                "media": {
                    "track": "inbound",
                    "chunk": str(k + 1),
                    "timestamp": str(k * 20),
                    "payload": base64.b64encode(f).decode(),
                },
            }
        )
        for k, f in enumerate(frames_ulaw[:1500])
    ]

    def parse() -> None:
        s = MediaSession()
        s.receive_text(start)
        for text in texts:
            s.receive_text(text)

    t = best(parse, repeat)
    print(f"MediaSession.receive_text(media), per frame      {t / len(texts) * 1e6:8.2f} µs")

    def send() -> None:
        s = MediaSession()
        s.receive_text(start)
        for f in frames_ulaw[:1500]:
            s.send_media(f)
        s.data_to_send()

    t = best(send, repeat)
    print(f"MediaSession.send_media, per frame               {t / 1500 * 1e6:8.2f} µs")


if __name__ == "__main__":
    main()
