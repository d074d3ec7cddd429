"""The emulator driving 100 / 300 / 500 concurrent streamed calls on one core.

For each size, twice (other processes may share the machine): a sink app
(``python -m voicecall.emulator sink``: answers the voice webhook with ``<Connect><Stream>``,
counts frames, sends a 1 s utterance + mark every 2 s) runs pinned to core 1, and the load
generator (``python -m voicecall.emulator load``: the whole emulator, REST server, call
simulator, webhooks and Media Streams in one process) runs pinned to core 0. Reported: the
emulator's own send lateness (how late each 20 ms frame left against its absolute schedule)
over the whole run and over the steady state (every call streaming), frames each way,
underruns, marks, the emulator's CPU share of its core, and how busy core 0 was in total
(from /proc/stat: anything above the emulator's share is other processes).

    .venv/bin/python bench/emulator_load.py [--sizes 100 300 500] [--hold 20] [--repeat 2]

Loopback only, bounded: each run lasts ramp + hold (+ at most 30 s of grace).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pinned(cmd: list[str], core: int) -> list[str]:
    return ["taskset", "-c", str(core), *cmd] if shutil.which("taskset") else cmd


def cpu0_busy() -> tuple[int, int]:
    """(busy, total) jiffies of core 0."""
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith("cpu0 "):
            v = [int(x) for x in line.split()[1:]]
            idle = v[3] + v[4]
            return sum(v) - idle, sum(v)
    return 0, 0


def wait_up(port: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("the sink exited during start-up")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("the sink did not start")


def sink_stats(port: int) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/stats", timeout=5) as r:
        data: dict[str, Any] = json.loads(r.read())
        return data


def run_one(streams: int, hold: float, ramp: float) -> dict[str, Any]:
    port = free_port()
    sink_cmd = pinned([PY, "-m", "voicecall.emulator", "sink", "--port", str(port)], 1)
    log = tempfile.NamedTemporaryFile(prefix="sink-", suffix=".log", delete=False)  # noqa: SIM115
    sink = subprocess.Popen(sink_cmd, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    try:
        wait_up(port, sink)
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "report.json"
            load_cmd = pinned(
                [
                    PY, "-m", "voicecall.emulator", "load",
                    "--app", f"http://127.0.0.1:{port}/voice",
                    "--streams", str(streams), "--ramp", str(ramp), "--hold", str(hold),
                    "--quiet", "--json", str(out),
                ],
                0,
            )  # fmt: skip
            busy0, total0 = cpu0_busy()
            load_avg0 = os.getloadavg()[0]
            proc = subprocess.run(
                load_cmd,
                cwd=ROOT,
                capture_output=True,
                text=True,
                timeout=ramp + hold + 60,
            )
            busy1, total1 = cpu0_busy()
            if proc.returncode != 0 and not out.exists():
                raise RuntimeError(f"load run failed:\n{proc.stdout}\n{proc.stderr}")
            report: dict[str, Any] = json.loads(out.read_text())
        report["sink"] = sink_stats(port)
        report["core0_busy"] = (busy1 - busy0) / max(1, total1 - total0)
        report["load_avg_before"] = load_avg0
        report["command"] = " ".join(load_cmd)
        report["sink_log"] = log.name
        return report
    finally:
        sink.terminate()
        try:
            sink.wait(timeout=5)
        except subprocess.TimeoutExpired:
            sink.kill()


def ms(v: float | None) -> str:
    return "-" if v is None else f"{v:.1f}"


def row(streams: int, run: int, r: dict[str, Any]) -> str:
    t = r["totals"]
    lat, steady = t["lateness_ms"], t["steady_lateness_ms"]
    share = t["steady_cpu_share"]
    return (
        f"| {streams} | {run} | {t['streams_connected']}/{t['streams']} "
        f"| {ms(steady['p50'])} / {ms(steady['p99'])} / {ms(steady['max'])} "
        f"| {ms(lat['p50'])} / {ms(lat['p99'])} / {ms(lat['max'])} "
        f"| {t['late_frames']} | {t['frames_sent']} / {t['media_received']} "
        f"| {t['underruns']} | {t['marks_echoed']}/{t['marks_received']} "
        f"| {'-' if share is None else f'{share:.0%}'} | {t['cpu_share']:.0%} "
        f"| {r['core0_busy']:.0%} | {r['load_avg_before']:.2f} |"
    )


HEADER = (
    "| streams | run | connected | steady lateness p50 / p99 / max ms "
    "| whole-run lateness p50 / p99 / max ms | frames > 20 ms late | frames out / in "
    "| underruns | marks echoed | emulator CPU, steady | emulator CPU, run | core 0 busy, run "
    "| load avg before |\n"
    "| ---: | ---: | ---: | --- | --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |"
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 300, 500])
    parser.add_argument("--hold", type=float, default=20.0)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--ramp-rate", type=float, default=50.0, help="calls per second")
    parser.add_argument("--json", type=Path, default=None, help="write all reports here")
    args = parser.parse_args()
    if not shutil.which("taskset"):
        print("warning: taskset not found; processes are not pinned", file=sys.stderr)
    rows: list[str] = []
    reports: list[dict[str, Any]] = []
    for streams in args.sizes:
        for run in range(1, args.repeat + 1):
            ramp = streams / args.ramp_rate
            t0 = time.monotonic()
            r = run_one(streams, args.hold, ramp)
            reports.append({"streams": streams, "run": run, **r})
            rows.append(row(streams, run, r))
            t = r["totals"]
            sink = r["sink"]
            print(
                f"{streams} streams, run {run} ({time.monotonic() - t0:.0f} s): steady "
                f"p99 {ms(t['steady_lateness_ms']['p99'])} ms, max "
                f"{ms(t['steady_lateness_ms']['max'])} ms over {t['steady_seconds']} s; "
                f"whole run p99 {ms(t['lateness_ms']['p99'])} ms; "
                f"CPU steady {t['steady_cpu_share']}, core0 busy {r['core0_busy']:.0%}; "
                f"sink got {sink['media_in']} frames (emulator sent {t['frames_sent']})",
                flush=True,
            )
    print()
    print(HEADER)
    for line in rows:
        print(line)
    print()
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}; emulator pinned to core 0, sink to core 1"
    )
    print("reproduce: .venv/bin/python bench/emulator_load.py " + " ".join(sys.argv[1:]))
    by_hand = reports[-1]["command"].split(" --quiet")[0]
    print("one run by hand (sink first): .venv/bin/python -m voicecall.emulator sink --port PORT")
    print("  then: " + by_hand + "   # live progress; --json FILE, --per-stream")
    if args.json is not None:
        args.json.write_text(json.dumps(reports, indent=2))


if __name__ == "__main__":
    main()
