"""Voicemail latency: the end of the answering machine's beep → the first frame of our message.

Run:  .venv/bin/python bench/telephony.py voicemail [--calls 20] [--concurrency 4]
      .venv/bin/python bench/telephony.py holdcost

``holdcost``: the CPU the hold watcher adds per stream, in process (no server): microseconds per
20 ms frame of the music discriminator on every frame (what an earlier attempt ran on every
stream) and of ``HoldWatch`` on a conversation, a quiet
line and hold music, and how long music that starts mid-call takes to be found.

``voicemail``:

The real server (in-process, loopback, SQLite, Media Streams with espeak-ng TTS and the local
faster-whisper STT loaded) places ``--calls`` voicemail calls (``machine_detection: voicemail``,
notify mode) to the emulator's scripted answering machine (a spoken greeting, then a 1 kHz beep
of 400 ms). The emulator runs AMD (``DetectMessageEnd``, async, posted to the service's signed
``kind=amd`` webhook) and records what the bot sends after the beep; the service also runs its
own beep detector on the stream. Latency per call: the first non-silent 20 ms of what the machine
recorded, minus the beep's end (both on the emulator's clock). Prints the median, p95 and max.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from e2e.harness import loopback_socket, serve_app, service_settings
from voicecall.emulator.runtime import Emulator
from voicecall.server.app import VoicecallApp

BEEP_MS = 400
ACCOUNT = "AC" + "0" * 32
TOKEN = "bench-telephony-token-0123456789"


def machine(i: int) -> dict[str, Any]:
    return {
        "answer_after_ms": 200,
        "voicemail": {
            "greeting": "Hi, this is Sam. Leave a message after the tone.",
            "greeting_delay_ms": 300 + 37 * (i % 7),
            "beep": {"frequency_hz": 900 + 50 * (i % 5), "duration_ms": BEEP_MS},
            "max_silence_ms": 3000,
        },
    }


def first_sound(ulaw: bytes) -> float:
    for i in range(0, len(ulaw) - 159, 160):
        if min(b & 0x7F for b in ulaw[i : i + 160]) < 0x70:
            return i / 8000
    raise ValueError("silent")


async def one_call(http: httpx.AsyncClient, emu: Emulator, number: str) -> float:
    r = await http.post(
        "/api/calls",
        json={
            "to": number,
            "message": "Your parcel is ready.",
            "mode": "notify",
            "machine_detection": "voicemail",
            "voicemail_message": "Hello Sam, your parcel is ready for pickup. Goodbye.",
        },
    )
    r.raise_for_status()
    call_id = r.json()["call_id"]
    for _ in range(900):
        doc = (await http.get(f"/api/calls/{call_id}")).json()
        if doc["ended_at"] is not None:
            break
        await asyncio.sleep(0.1)
    else:
        raise RuntimeError(f"call {call_id} did not end")
    if doc["end_reason"] != "voicemail":
        raise RuntimeError(f"call {call_id} ended {doc['end_reason']}")
    sim = await emu.wait_for_call_end(doc["provider_call_id"], timeout=20)
    beep = next(e for e in sim.timeline if e.get("sound") == "beep")
    message = sim.callee.message
    return float(message.start + first_sound(bytes(message.audio)) - (beep["at"] + BEEP_MS / 1000))


async def run(calls: int, concurrency: int) -> list[float]:
    async with Emulator(account_sid=ACCOUNT, auth_token=TOKEN, host="127.0.0.1", port=0) as emu:
        with tempfile.TemporaryDirectory() as tmp:
            sock = loopback_socket()
            settings = service_settings(
                Path(tmp),
                api_base_url=emu.base_url,
                account_sid=ACCOUNT,
                auth_token=TOKEN,
                port=sock.getsockname()[1],
                streaming={"enabled": True},
                tts={"provider": "espeak"},
                stt={"provider": "whisper"},
                max_concurrent_calls=max(10, concurrency * 2),
                outbound={
                    "notify_hangup_delay_seconds": 0,
                    "max_calls_per_number_per_day": False,
                    "max_calls_per_hour": False,
                    "max_minutes_per_day": False,
                },
            )
            async with serve_app(VoicecallApp(settings), sock) as server:
                numbers = [f"+1415555{1000 + i:04d}" for i in range(concurrency)]
                latencies: list[float] = []
                queue: asyncio.Queue[int] = asyncio.Queue()
                for i in range(calls):
                    queue.put_nowait(i)

                async def worker(number: str) -> None:
                    while not queue.empty():
                        i = queue.get_nowait()
                        emu.set_script(number, machine(i))
                        latencies.append(await one_call(server.http, emu, number))

                await asyncio.gather(*(worker(n) for n in numbers))
                return latencies


def hold_cost() -> None:
    sys.path.insert(0, str(ROOT / "tests" / "audio"))
    from audio_material import hold_music, set_rms, silence, speech, to_i16

    from voicecall.audio.g711 import ulaw_encode
    from voicecall.audio.music import MusicDiscriminator
    from voicecall.telephony.holdwatch import HoldChange, HoldWatch

    def frames(x: Any) -> list[bytes]:
        data = ulaw_encode(to_i16(x))
        return [data[i : i + 160] for i in range(0, len(data) - 159, 160)]

    words = (
        "Thank you for calling. How can I help you today? I can check that for you now. "
        "Sure, one moment please, let me look that up."
    )
    talk = np.concatenate([set_rms(speech(words).astype(np.float64), -20.0)] * 5)
    material = {
        "conversation": frames(talk),
        "quiet line": frames(silence(30_000.0) + np.random.default_rng(1).normal(0, 3, 240_000)),
        "hold music": frames(hold_music(30.0, seed=1)),
    }
    makers: dict[str, Any] = {
        "discriminator on every frame": lambda: MusicDiscriminator().feed_ulaw,
        "HoldWatch (the service's)": lambda: HoldWatch().feed,
    }
    for what, fs in material.items():
        for name, make in makers.items():
            best = float("inf")
            for _ in range(3):
                feed = make()
                t = time.perf_counter()
                for f in fs:
                    feed(f)
                best = min(best, (time.perf_counter() - t) / len(fs))
            print(
                f"{what:13s} {name:32s} {best * 1e6:6.1f} µs/frame = "
                f"{best * 50 * 1000:5.2f} ms CPU per stream-second"
            )
    found = []
    for seed in range(6):
        watch = HoldWatch()
        fs = frames(np.concatenate([talk[: 8000 * 10], hold_music(15.0, seed=seed)]))
        at = next((i for i, f in enumerate(fs) if watch.feed(f) is HoldChange.HOLD), None)
        found.append(float("nan") if at is None else (at - 500) / 50)
    print("music starting mid-call found after (s): " + ", ".join(f"{x:.1f}" for x in found))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("what", choices=["voicemail", "holdcost"])
    ap.add_argument("--calls", type=int, default=20)
    ap.add_argument("--concurrency", type=int, default=4)
    args = ap.parse_args()
    print(f"$ {' '.join([os.path.relpath(sys.executable), *sys.argv])}")
    print(
        f"python {platform.python_version()}, {os.cpu_count()} CPUs, {time.strftime('%Y-%m-%d')}, "
        f"load average before: {os.getloadavg()[0]:.2f}"
    )
    if args.what == "holdcost":
        hold_cost()
        return
    values = np.asarray(asyncio.run(run(args.calls, args.concurrency))) * 1000
    print(
        f"beep end → first message frame over {len(values)} voicemail calls: "
        f"median {np.median(values):.0f} ms, p95 {np.percentile(values, 95):.0f} ms, "
        f"max {values.max():.0f} ms, min {values.min():.0f} ms"
    )


if __name__ == "__main__":
    main()
