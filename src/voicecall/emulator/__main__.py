"""The emulator from the command line (``voicecall emulator …`` runs exactly this).

    python -m voicecall.emulator --port 8765 --account-sid AC… --auth-token …   # the server
    python -m voicecall.emulator load --app http://127.0.0.1:8780/voice --streams 500 --hold 20
    python -m voicecall.emulator sink --port 8780      # a minimal Media Streams app to load

Credentials: ``--account-sid`` / ``--auth-token``, else ``EMULATOR_ACCOUNT_SID`` /
``EMULATOR_AUTH_TOKEN``, else the well-known local defaults (printed at start; refused on a
non-loopback address). ``load`` and ``sink`` are loopback-only tools; see docs/emulator.md.
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import gc
import json
import os
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

from voicecall.netaddr import is_loopback

T = TypeVar("T")

DEFAULT_PORT = 8765
DEFAULT_ACCOUNT_SID = "AC" + "0" * 32
DEFAULT_AUTH_TOKEN = "emulator-token"  # noqa: S105 - the well-known local default, printed
ENV_ACCOUNT_SID = "EMULATOR_ACCOUNT_SID"
ENV_AUTH_TOKEN = "EMULATOR_AUTH_TOKEN"  # noqa: S105 - a variable name


def main(argv: list[str] | None = None, prog: str = "python -m voicecall.emulator") -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "load":
        return load_main(argv[1:], prog=f"{prog} load")
    if argv and argv[0] == "sink":
        return sink_main(argv[1:], prog=f"{prog} sink")
    return server_main(argv, prog=prog)


def resolve_credentials(
    account_sid: str | None, auth_token: str | None, environ: dict[str, str] | None = None
) -> tuple[str, str, str]:
    """(account_sid, auth_token, one line saying which credentials are in use and from where)."""
    env = dict(os.environ) if environ is None else environ
    if account_sid:
        sid, sid_from = account_sid, "--account-sid"
    elif env.get(ENV_ACCOUNT_SID):
        sid, sid_from = env[ENV_ACCOUNT_SID], ENV_ACCOUNT_SID
    else:
        sid, sid_from = DEFAULT_ACCOUNT_SID, "default"
    if auth_token:
        token, token_note = auth_token, "auth token from --auth-token"
    elif env.get(ENV_AUTH_TOKEN):
        token, token_note = env[ENV_AUTH_TOKEN], f"auth token from {ENV_AUTH_TOKEN}"
    else:
        token = DEFAULT_AUTH_TOKEN
        token_note = (
            f"the WELL-KNOWN default auth token {DEFAULT_AUTH_TOKEN!r} "
            f"(set {ENV_AUTH_TOKEN} or --auth-token for your own)"
        )
    if token == DEFAULT_AUTH_TOKEN and token_note.startswith("auth token from"):
        token_note += f" (it is the well-known default {DEFAULT_AUTH_TOKEN!r})"
    return sid, token, f"credentials: account {sid} ({sid_from}), {token_note}"


def server_main(argv: list[str], prog: str = "python -m voicecall.emulator") -> int:
    from voicecall.emulator.runtime import serve

    parser = argparse.ArgumentParser(
        prog=prog,
        description="The local Twilio emulator (REST, signed webhooks, TwiML, Media Streams). "
        f"Subcommands: '{prog} load --help' (load generator), '{prog} sink --help' "
        "(a minimal Media Streams app).",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default loopback)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument(
        "--account-sid", default=None, help=f"or set {ENV_ACCOUNT_SID} (default AC000…0)"
    )
    parser.add_argument(
        "--auth-token",
        default=None,
        help=f"or set {ENV_AUTH_TOKEN} (keeps the token out of the process list); default: "
        f"the well-known {DEFAULT_AUTH_TOKEN!r}, loopback only",
    )
    args = parser.parse_args(argv)
    sid, token, note = resolve_credentials(args.account_sid, args.auth_token)
    if token == DEFAULT_AUTH_TOKEN and not is_loopback(args.host):
        parser.error(
            f"refusing the well-known auth token on non-loopback --host {args.host}: "
            f"set {ENV_AUTH_TOKEN} or --auth-token"
        )
    print(note, file=sys.stderr, flush=True)
    try:
        serve(args.port, sid, token, host=args.host)
    except OSError as exc:  # the bind, before anything starts: one line, no traceback
        where = f"[{args.host}]:{args.port}" if ":" in args.host else f"{args.host}:{args.port}"
        if exc.errno == errno.EADDRINUSE:
            why = "is already in use (is another emulator running? stop it or use --port)"
        else:
            why = f"cannot be listened on ({exc.strerror or exc})"
        print(f"error: --port: {where} {why}", file=sys.stderr, flush=True)
        return 1
    return 0


def _run(coro: Coroutine[Any, Any, T], loop: str) -> T:
    if loop in {"auto", "uvloop"}:
        try:
            import uvloop
        except ImportError:
            if loop == "uvloop":
                raise
        else:
            with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
                return runner.run(coro)
    return asyncio.run(coro)


def load_main(argv: list[str], prog: str = "python -m voicecall.emulator load") -> int:
    from voicecall.emulator.load import LoadConfig, LoadError, run_load

    parser = argparse.ArgumentParser(
        prog=prog,
        description="N concurrent inbound calls with Media Streams against a loopback app; "
        "reports the emulator's own send lateness, frames, underruns, marks and CPU time.",
    )
    parser.add_argument("--app", required=True, help="the app's voice webhook (loopback)")
    parser.add_argument("--streams", type=int, default=10)
    parser.add_argument("--ramp", type=float, default=None, help="seconds (default streams/100)")
    parser.add_argument("--hold", type=float, default=10.0, help="seconds per call after answer")
    parser.add_argument("--max-seconds", type=float, default=None, help="hard bound on the run")
    parser.add_argument("--method", default="POST", choices=["GET", "POST"])
    parser.add_argument("--speech", default=None, help="the caller says this 1 s in")
    parser.add_argument("--loop", default="auto", choices=["auto", "uvloop", "asyncio"])
    parser.add_argument("--json", type=Path, default=None, help="write the full report here")
    parser.add_argument("--per-stream", action="store_true", help="print a row per stream")
    parser.add_argument("--quiet", action="store_true", help="no live progress display")
    args = parser.parse_args(argv)
    ramp = args.ramp if args.ramp is not None else args.streams / 100.0
    max_seconds = args.max_seconds or ramp + args.hold + 30.0
    try:
        config = LoadConfig(
            app_url=args.app,
            streams=args.streams,
            ramp_seconds=ramp,
            hold_seconds=args.hold,
            max_seconds=max_seconds,
            voice_method=args.method,
            speech=args.speech,
        )
    except LoadError as exc:
        parser.error(str(exc))

    from rich.console import Console
    from rich.live import Live

    # A full collection over everything imported and set up so far takes ~80 ms here: one of
    # those mid-run is a frame sent 80 ms late on every stream. Freeze the start-up heap and
    # make full collections rare for this bounded run (young objects are still collected).
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 50, 1000)
    console = Console(stderr=True)
    if args.quiet:
        report = _run(run_load(config), args.loop)
    else:
        with Live(console=console, auto_refresh=False, transient=False) as live:

            def show(p: Any) -> None:
                live.update(_progress_table(p), refresh=True)

            report = _run(run_load(config, on_progress=show), args.loop)
    out = Console()
    out.print(_report_table(report))
    if args.per_stream:
        out.print(_streams_table(report))
    if args.json is not None:
        args.json.write_text(json.dumps(report.to_dict(), indent=2))
    return 1 if report.aborted or not report.connected else 0


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{v:.0%}"


def _ms(v: float | None) -> str:
    return "-" if v is None else f"{v:.1f}"


def _progress_table(p: Any) -> Any:
    from rich.table import Table

    t = Table(title="emulator load", show_header=True)
    for col in ("elapsed", "dialed", "streaming", "ended", "frames out", "frames in"):
        t.add_column(col, justify="right")
    for col in ("p99 late ms", "max late ms", "underruns", "cpu s", "cpu/wall"):
        t.add_column(col, justify="right")
    share = p.cpu_seconds / p.elapsed if p.elapsed > 0 else 0.0
    t.add_row(
        f"{p.elapsed:.1f}s",
        f"{p.dialed}/{p.target}",
        str(p.streaming),
        str(p.ended),
        str(p.frames_sent),
        str(p.frames_received),
        _ms(p.lateness_p99_ms),
        _ms(p.lateness_max_ms),
        str(p.underruns),
        f"{p.cpu_seconds:.1f}",
        f"{share:.0%}",
    )
    return t


def _report_table(report: Any) -> Any:
    from rich.table import Table

    tot = report.totals()
    lat = tot["lateness_ms"]
    steady = tot["steady_lateness_ms"]
    t = Table(title="emulator load: totals", show_header=False)
    t.add_column("what")
    t.add_column("value", justify="right")
    rows = [
        ("calls (statuses)", f"{tot['calls']} {tot['statuses']}"),
        ("streams connected", f"{tot['streams_connected']}/{tot['streams']}"),
        ("frames sent (emulator -> app)", str(tot["frames_sent"])),
        ("media received (app -> emulator)", str(tot["media_received"])),
        ("frames played", str(tot["frames_played"])),
        (
            "send lateness p50 / p99 / max ms",
            f"{_ms(lat['p50'])} / {_ms(lat['p99'])} / {_ms(lat['max'])}",
        ),
        (
            "  steady state (all streaming) p50 / p99 / max ms",
            f"{_ms(steady['p50'])} / {_ms(steady['p99'])} / {_ms(steady['max'])}"
            f" over {steady['frames']} frames / {tot['steady_seconds']} s",
        ),
        ("  steady state cpu share", _pct(tot["steady_cpu_share"])),
        ("frames > 20 ms late", str(tot["late_frames"])),
        ("underruns", str(tot["underruns"])),
        ("marks received / echoed", f"{tot['marks_received']} / {tot['marks_echoed']}"),
        (
            "wall s / cpu s / cpu share",
            f"{tot['wall_seconds']} / {tot['cpu_seconds']} / {tot['cpu_share']:.0%}",
        ),
        ("event loop", tot["loop"]),
    ]
    if tot["timed_out"]:
        rows.append(("timed out", "yes: calls still up at --max-seconds were hung up"))
    if tot["aborted"]:
        rows.append(("aborted", tot["aborted"]))
    for error in report.errors[:3]:
        rows.append(("error", error))
    for row in rows:
        t.add_row(*row)
    return t


def _streams_table(report: Any) -> Any:
    from rich.table import Table

    t = Table(title="per stream")
    for col in ("stream", "reason", "open s", "out", "in", "played", "underruns", "marks"):
        t.add_column(col)
    for col in ("p50 ms", "p99 ms", "max ms"):
        t.add_column(col, justify="right")
    for s in report.streams:
        t.add_row(
            s.stream_sid[:10],
            s.reason,
            f"{s.open_seconds:.2f}",
            str(s.frames_sent),
            str(s.media_received),
            str(s.frames_played),
            str(s.underruns),
            f"{s.marks_echoed}/{s.marks_received}",
            _ms(s.lateness_p50_ms),
            _ms(s.lateness_p99_ms),
            _ms(s.lateness_max_ms),
        )
    return t


def sink_main(argv: list[str], prog: str = "python -m voicecall.emulator sink") -> int:
    from voicecall.emulator.sink import run_sink

    parser = argparse.ArgumentParser(
        prog=prog,
        description="A minimal Media Streams app for load runs: answers /voice with "
        "<Connect><Stream>, counts frames, sends utterances + marks, GET /stats.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8780)
    parser.add_argument("--utterance-ms", type=int, default=1000)
    parser.add_argument("--every-ms", type=int, default=2000)
    parser.add_argument("--loop", default="uvloop", choices=["uvloop", "asyncio"])
    args = parser.parse_args(argv)
    if args.host not in {"127.0.0.1", "::1", "localhost"}:
        parser.error("the sink listens on loopback only")
    run_sink(
        args.host,
        args.port,
        utterance_ms=args.utterance_ms,
        every_ms=args.every_ms,
        use_uvloop=args.loop == "uvloop",
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
