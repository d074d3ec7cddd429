"""What recording a Media Streams call costs: CPU per caller frame and per call-second.

Run:  .venv/bin/python bench/recording.py [--calls 200] [--seconds 60]

In-process, no sockets: ``--calls`` recorders (:class:`~voicecall.telephony.wavtap.WavTap`, each
writing its stereo WAV to a temporary directory) are fed what a talking call gives them, frame
by frame and interleaved: a 20 ms caller frame every 20 ms of stream time, and a 100 ms bot chunk
every 100 ms for half the time (the bot talks in 2 s spurts), with a ``clear`` every 10 s. CPU is
this process's own time (``time.process_time``), so other load on the machine barely moves it.
The figure to compare with a call's whole budget is ``cpu_ms_per_call_s``: CPU milliseconds per
second of recorded call (the server's per-stream cost is in ``bench/realtime.py capacity``, which
also runs with every stream recorded: ``--settings '{"recording":{"enabled":true,"dir":…}}'``).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from voicecall.audio.g711 import ulaw_encode
from voicecall.telephony.wavtap import WavTap


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--calls", type=int, default=200)
    ap.add_argument("--seconds", type=float, default=60.0)
    args = ap.parse_args()
    print(f"$ {' '.join([os.path.relpath(sys.executable), *sys.argv])}")
    print(
        f"python {platform.python_version()}, {platform.machine()}, {os.cpu_count()} CPUs, "
        f"{time.strftime('%Y-%m-%d')}; load average before: {os.getloadavg()[0]:.2f}"
    )
    rng = np.random.default_rng(1)
    caller = [ulaw_encode((rng.standard_normal(160) * 2000).astype(np.int16)) for _ in range(50)]
    bot = [ulaw_encode((rng.standard_normal(800) * 3000).astype(np.int16)) for _ in range(10)]
    frames = int(args.seconds * 50)
    with tempfile.TemporaryDirectory() as tmp:
        taps = [WavTap(Path(tmp) / f"c{i}.wav") for i in range(args.calls)]
        for tap in taps:
            tap.stream_started(0.0)
        pacer = [0] * args.calls
        t0 = time.process_time()
        for f in range(frames):
            now = (f + 1) * 0.02
            talking = (f // 100) % 2 == 1  # the bot talks every other 2 s
            for i, tap in enumerate(taps):
                tap.inbound(20 * f, caller[f % 50], now)
                if talking and f % 5 == 0:
                    tap.outbound(pacer[i], bot[f % 10], now)
                    pacer[i] += 800
                if f % 500 == 499:
                    tap.cleared(now)
        fed = time.process_time() - t0
        t1 = time.process_time()
        for tap in taps:
            tap.stream_ended(args.seconds)
            tap.close()
        closed = time.process_time() - t1
        size = sum(p.stat().st_size for p in Path(tmp).iterdir())
    call_seconds = args.calls * args.seconds
    print(
        f"recording: calls={args.calls}, seconds={args.seconds:g}, "
        f"us_per_caller_frame={fed / (args.calls * frames) * 1e6:.1f} (bot chunks, clears and "
        f"the per-second file appends included), "
        f"cpu_ms_per_call_s={fed / call_seconds * 1000:.3f}, "
        f"close_ms_per_call={closed / args.calls * 1000:.2f}, "
        f"bytes_per_call_s={size / call_seconds:.0f}"
    )


if __name__ == "__main__":
    main()
