"""``voicecall emulator``: the local Twilio emulator, with the same help style as every command.

The server options are typer options here; they are handed to :mod:`voicecall.emulator`'s own
entry point (``python -m voicecall.emulator`` runs the same code), which resolves credentials
(option, then ``EMULATOR_ACCOUNT_SID`` / ``EMULATOR_AUTH_TOKEN``, then the well-known local
defaults), refuses the default token off loopback and answers a taken port with one line.
``load`` and ``sink`` keep their own options (``voicecall emulator load --help``).
"""

from __future__ import annotations

from typing import Annotated

import typer

__all__ = ["register"]

emulator_app = typer.Typer(
    name="emulator",
    help="Run the local Twilio emulator (REST, signed webhooks, TwiML, Media Streams).",
    invoke_without_command=True,
    no_args_is_help=False,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@emulator_app.callback(invoke_without_command=True)
def emulator(
    ctx: typer.Context,
    host: Annotated[
        str, typer.Option(help="Address to bind (the default credentials only on loopback)")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on", min=1, max=65535)] = 8765,
    account_sid: Annotated[
        str | None,
        typer.Option(help="Account SID to accept (else EMULATOR_ACCOUNT_SID, else AC000…0)"),
    ] = None,
    auth_token: Annotated[
        str | None,
        typer.Option(
            help="Auth token to accept and sign webhooks with (better: EMULATOR_AUTH_TOKEN, "
            "which keeps it out of the process list; default: the well-known "
            "'emulator-token', loopback only)"
        ),
    ] = None,
) -> None:
    """Run the local Twilio emulator (REST, signed webhooks, TwiML, Media Streams).

    Point the service at it with twilio.api_base_url = http://127.0.0.1:8765 and its
    credentials (`voicecall init --local` writes them; `voicecall dev` runs both).
    """
    if ctx.invoked_subcommand is not None:
        return
    from voicecall.emulator.__main__ import server_main

    argv = ["--host", host, "--port", str(port)]
    if account_sid:
        argv += ["--account-sid", account_sid]
    if auth_token:
        argv += ["--auth-token", auth_token]
    raise typer.Exit(server_main(argv, prog="voicecall emulator"))


_PASS_THROUGH = {"allow_extra_args": True, "ignore_unknown_options": True}


@emulator_app.command(context_settings=_PASS_THROUGH, add_help_option=False)
def load(ctx: typer.Context) -> None:
    """Load generator: N concurrent calls with Media Streams (see `load --help`)."""
    from voicecall.emulator.__main__ import load_main

    raise typer.Exit(load_main(list(ctx.args), prog="voicecall emulator load"))


@emulator_app.command(context_settings=_PASS_THROUGH, add_help_option=False)
def sink(ctx: typer.Context) -> None:
    """A minimal Media Streams app to load (see `sink --help`)."""
    from voicecall.emulator.__main__ import sink_main

    raise typer.Exit(sink_main(list(ctx.args), prog="voicecall emulator sink"))


def register(app: typer.Typer) -> None:
    """Add ``emulator`` (with ``load`` and ``sink``) to the ``voicecall`` app."""
    app.add_typer(emulator_app)
