"""``voicecall dev``: the local Twilio emulator and the voicecall server, together, in one process.

Both run from the same settings (``voicecall.toml`` as ``voicecall init --local`` writes it, or
the same values built in when there is no file): the emulator listens where
``twilio.api_base_url`` points and accepts ``twilio.account_sid``/``auth_token``; the server
listens on ``serve.bind``/``serve.port`` and is reached by the emulator at ``public_url``. So
every client command (``call``, ``status``, ``calls``, ``tail``, ``mcp`` …) run from the same
directory talks to it unchanged.

Whoever is dialled answers as :data:`DEV_PERSON`, a person who picks up and talks (spoken with
espeak-ng or Piper on Media Streams). Both sockets are bound before either server starts (a
taken port is one line, exit 1); calls are shown as they happen, one line per call event and
transcript line; Ctrl-C or SIGTERM stops both servers cleanly.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shlex
import shutil
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

import uvicorn
from rich.console import Console

from voicecall.cli.output import event_line
from voicecall.cli.template import LOCAL_CALLEE
from voicecall.config import Settings, load_config
from voicecall.netaddr import is_loopback

__all__ = [
    "DEV_PERSON",
    "DevError",
    "builtin_settings",
    "dev_problems",
    "mcp_command",
    "next_steps",
    "person_script",
    "run_dev",
]

DEV_PERSON: Final[dict[str, Any]] = {
    "answer_after_ms": 1500,
    "reply_delay_ms": 500,
    "replies": [
        "Hello, this is Sam speaking. Who is calling?",
        "Sure, Thursday evening works for me.",
        "No, that's all. Thanks, goodbye!",
    ],
    "hangup_after_ms": 120_000,
}
"""What the person at any dialled number does: answers after 1.5 s, says one line per turn,
hangs up after two minutes if the call is still going."""


class DevError(Exception):
    """``voicecall dev`` cannot run with these settings; ``lines`` say why and what to do."""

    def __init__(self, lines: list[str], code: int = 2) -> None:
        super().__init__("; ".join(lines))
        self.lines = lines
        self.code = code


def dev_problems(settings: Settings) -> list[str]:
    """Why these settings are not a local setup ``dev`` can run (empty: they are)."""
    if settings.provider != "twilio":
        return [
            f"provider: {settings.provider!r}: `voicecall dev` plays Twilio with the emulator; "
            'set provider = "twilio" (`voicecall init --local` writes a local config)'
        ]
    base = urlsplit(settings.twilio.api_base_url)
    problems = []
    if base.scheme != "http" or not is_loopback(base.hostname or "") or base.port is None:
        problems.append(
            f"twilio.api_base_url: {settings.twilio.api_base_url} is not a local emulator "
            "address such as http://127.0.0.1:8765 (`voicecall dev` runs the emulator there; "
            "for real Twilio use `voicecall serve`)"
        )
    if not settings.twilio.account_sid or settings.twilio.auth_token is None:
        problems.append(
            "twilio.account_sid and twilio.auth_token: required (the emulator's credentials; "
            "`voicecall init --local` writes them)"
        )
    public = urlsplit(settings.public_url or "")
    expected = f"http://127.0.0.1:{settings.serve.port}"
    if (
        public.scheme != "http"
        or not is_loopback(public.hostname or "")
        or public.port != settings.serve.port
    ):
        problems.append(
            f"public_url: {settings.public_url or 'not set'}: the emulator must reach this "
            f'server there; set public_url = "{expected}"'
        )
    if base.port is not None and base.port == settings.serve.port:
        problems.append(
            f"serve.port: {settings.serve.port} is also the emulator's port "
            "(twilio.api_base_url); give them different ports"
        )
    return problems


def person_script() -> dict[str, Any]:
    """:data:`DEV_PERSON` with the voice this machine has (espeak-ng, else Piper)."""
    from voicecall.cli.demo import _person_voice

    script = dict(DEV_PERSON)
    voice = _person_voice()
    if voice is not None:
        script["voice"] = voice
    return script


def builtin_settings(env: Mapping[str, str] | None = None) -> Settings:
    """The settings ``dev`` runs on without a config file: exactly what ``voicecall init
    --local`` would write in this directory (the environment still overrides them)."""
    from voicecall.cli.template import local_speech, local_values

    values = local_values(speech=local_speech(), env=env)
    overrides = _plain(values.pop(""))
    overrides.update(_plain(values))
    return load_config(None, env=None if env is None else dict(env), overrides=overrides)


def _plain(values: Mapping[str, Any]) -> dict[str, Any]:
    """Template values (some with their comment) as plain settings overrides."""
    from voicecall.cli.template import Note

    plain: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, Mapping):
            plain[key] = _plain(value)
        else:
            plain[key] = value.value if isinstance(value, Note) else value
    return plain


# ----------------------------------------------------------------------------- what to try


def mcp_command() -> list[str]:
    """How an MCP client should start ``voicecall`` (absolute: clients have their own PATH)."""
    script = Path(sys.executable).parent / "voicecall"
    if script.exists():
        return [str(script)]
    found = shutil.which("voicecall")
    if found:
        return [str(Path(found).resolve())]
    return [sys.executable, "-m", "voicecall.cli"]


def next_steps(settings: Settings, config: Path | None, *, default_config: bool) -> list[str]:
    """The lines that tell a person what to do next (plain text, ready to copy)."""
    config_args: list[str] = []
    if config is not None and not default_config:
        config_args = ["--config", str(config)]
    callee = settings.to_number or LOCAL_CALLEE
    call = [
        "voicecall",
        "call",
        "--to",
        callee,
        "--message",
        "Hi! This is a test call from voicecall.",
        "--mode",
        "conversation",
        "--wait",
        *config_args,
    ]
    command = mcp_command()
    mcp_args = ["mcp", *(["--config", str(config)] if config is not None else [])]
    entry = {"mcpServers": {"voicecall": {"command": command[0], "args": command[1:] + mcp_args}}}
    where = "from this directory" if not config_args else "from any directory"
    claude = ["claude", "mcp", "add", "voicecall", "--", *command, *mcp_args]
    return [
        f"Try it, in another terminal {where}:",
        "  " + shlex.join(call),
        "  "
        + shlex.join(["voicecall", "calls", *config_args])
        + "   ·   "
        + shlex.join(["voicecall", "tail", *config_args]),
        "Connect an MCP client (its mcpServers entry; tools talk to this server):",
        "  " + json.dumps(entry),
        "  or, for Claude Code: " + shlex.join(claude),
        "Ctrl-C stops both.",
    ]


# ----------------------------------------------------------------------------- running


class _Server(uvicorn.Server):
    """A uvicorn server that leaves signal handling to ``dev`` (it stops both servers)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@dataclass
class _Running:
    server: _Server
    task: asyncio.Task[None]


async def _start(app: Any, sock: socket.socket, what: str, **options: Any) -> _Running:
    server = _Server(uvicorn.Config(app, **options))

    async def serve() -> None:
        try:
            await server.serve(sockets=[sock])
        except SystemExit:  # uvicorn exits when the app's start-up fails
            raise RuntimeError(f"the {what} did not start (see the log above)") from None

    task = asyncio.create_task(serve(), name=f"voicecall-dev-{what}")
    while not server.started:
        if task.done():
            task.result()
            raise RuntimeError(f"the {what} stopped during start-up")
        await asyncio.sleep(0.02)
    return _Running(server, task)


async def _stop(running: _Running | None) -> None:
    if running is None:
        return
    running.server.should_exit = True
    with contextlib.suppress(asyncio.CancelledError, RuntimeError):
        await asyncio.wait_for(running.task, 15)


@contextlib.contextmanager
def _stop_on_signals(stop: asyncio.Event, servers: list[_Running]) -> Iterator[None]:
    loop = asyncio.get_running_loop()

    def handle() -> None:
        if stop.is_set():  # a second Ctrl-C: do not wait for open connections
            for running in servers:
                running.server.force_exit = True
        stop.set()

    installed = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, handle)
            installed.append(sig)
        except (NotImplementedError, RuntimeError):  # not the main thread
            pass
    try:
        yield
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)


async def _show_calls(app: Any, console: Console, ready: asyncio.Event) -> None:
    async with app.bus.subscribe() as queue:
        ready.set()
        while True:
            event = await queue.get()
            line = event_line(event)
            if line is not None:
                stamp = time.strftime("%H:%M:%S")
                console.print(f"[dim]{stamp}[/dim] {line}", highlight=False, soft_wrap=True)


@contextlib.asynccontextmanager
async def _emulator(settings: Settings, sock: socket.socket) -> AsyncIterator[Any]:
    from voicecall.emulator.runtime import Emulator

    base = urlsplit(settings.twilio.api_base_url)
    assert settings.twilio.account_sid and settings.twilio.auth_token
    emulator = Emulator(
        account_sid=settings.twilio.account_sid,
        auth_token=settings.twilio.auth_token.get_secret_value(),
        host=base.hostname or "127.0.0.1",
        port=sock.getsockname()[1],
        default_script=person_script(),
    )
    await emulator.start_background()
    running: _Running | None = None
    try:
        running = await _start(
            emulator.app,
            sock,
            "emulator",
            lifespan="off",
            log_config=None,
            access_log=False,
            ws="none",
            timeout_graceful_shutdown=1,
        )
        yield emulator, running
    finally:
        await emulator.aclose()  # hangs up its calls' I/O first
        await _stop(running)


async def run_dev(
    settings: Settings,
    console: Console,
    *,
    server_sock: socket.socket,
    emulator_sock: socket.socket,
    source: str,
    config: Path | None,
    default_config: bool,
    stop: asyncio.Event | None = None,
) -> None:
    """Run both servers on the given (bound) sockets until ``stop`` is set or a signal comes."""
    from voicecall.server.app import VoicecallApp
    from voicecall.server.runner import uvicorn_options

    stop = stop or asyncio.Event()
    app = VoicecallApp(settings)
    watcher: asyncio.Task[None] | None = None
    voicecall: _Running | None = None
    try:
        async with _emulator(settings, emulator_sock) as (emulator, emulator_running):
            voicecall = await _start(
                app,
                server_sock,
                "voicecall server",
                **uvicorn_options(settings, timeout_graceful_shutdown=2),
            )
            with _stop_on_signals(stop, [voicecall, emulator_running]):
                port = server_sock.getsockname()[1]
                console.print(
                    f"[bold]voicecall dev[/bold]: the Twilio emulator on {emulator.base_url} "
                    f"and voicecall on http://127.0.0.1:{port} ({source})",
                    highlight=False,
                    soft_wrap=True,
                )
                for line in next_steps(settings, config, default_config=default_config):
                    console.print(line, highlight=False, soft_wrap=True, markup=False)
                ready = asyncio.Event()
                watcher = asyncio.create_task(_show_calls(app, console, ready))
                await ready.wait()
                await stop.wait()
                console.print("stopping the server and the emulator…", highlight=False)
                await _stop(voicecall)
    finally:
        if watcher is not None:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
        await _stop(voicecall)
