"""What every CLI command shares: the consoles, one-line errors, settings loading, options,
and binding a listening socket with a one-line answer when the port is taken."""

from __future__ import annotations

import errno
import socket
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from voicecall.config import Settings, load_config
from voicecall.errors import ConfigError

out = Console()
err = Console(stderr=True)

ConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config", "-c", help="TOML config (default: $VOICECALL_CONFIG or ./voicecall.toml)"
    ),
]
UrlOpt = Annotated[
    str | None,
    typer.Option("--url", envvar="VOICECALL_URL", help="Server URL (default from serve.bind/port)"),
]
JsonOpt = Annotated[
    bool,
    typer.Option("--json", help="Print one JSON document on stdout (stable keys) and nothing else"),
]
LogLevelOpt = Annotated[str, typer.Option(help="debug, info, warning or error")]
LogFormatOpt = Annotated[
    str,
    typer.Option(
        help="auto (human on a terminal, JSON lines otherwise), human or json; logs go to stderr"
    ),
]
CallIdOpt = Annotated[
    str, typer.Option("--call-id", help="The call id, or a unique prefix of at least 6 characters")
]


def fail(lines: list[str], code: int = 2) -> typer.Exit:
    """Print one line per problem on stderr (no traceback) and return the exit to raise."""
    for line in lines:
        err.print(f"[red]error:[/red] {escape(line)}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def settings_from(config: Path | None) -> Settings:
    try:
        return load_config(config)
    except ConfigError as exc:
        raise fail(exc.problems) from None


def check_logging(level: str, fmt: str) -> None:
    """Refuse an unknown ``--log-level`` or ``--log-format`` (exit 2, one line each)."""
    problems = []
    if level.lower() not in ("debug", "info", "warning", "error"):
        problems.append(f"--log-level: {level!r} is not debug, info, warning or error")
    if fmt not in ("auto", "human", "json"):
        problems.append(f"--log-format: {fmt!r} is not auto, human or json")
    if problems:
        raise fail(problems)


class PortBusy(OSError):
    """The address is taken (or not ours to bind); ``str()`` is the one line to show."""


def bind_listener(host: str, port: int, *, what: str, key: str) -> socket.socket:
    """A listening, non-blocking TCP socket on ``host:port``; :class:`PortBusy` says why not.

    Bound before any server starts (and before the app's lifespan runs), so a taken port is
    one clear line, never a traceback or a start-up that then fails. ``what`` names the
    server and ``key`` the setting or option that chooses the port.
    """
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise PortBusy(f"{key}: cannot resolve {host!r} ({exc.strerror})") from None
    family, _, _, _, address = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(1024)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        shown = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        if exc.errno == errno.EADDRINUSE:
            raise PortBusy(
                f"{key}: {shown} is already in use (is another {what} running? "
                f"stop it or choose another port)"
            ) from None
        raise PortBusy(f"{key}: cannot listen on {shown} ({exc.strerror})") from None
    return sock
