"""What every CLI command shares: the consoles, one-line errors, settings loading, options."""

from __future__ import annotations

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
