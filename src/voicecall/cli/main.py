"""The ``voicecall`` command line.

``serve`` runs the one runtime; every other command is a client of its control API (a CLI that
started its own server collided on the port in the field). Errors print one line each, no
traceback, and exit non-zero.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.table import Table

from voicecall.agent.client import CallInfo, Client
from voicecall.cli.common import ConfigOpt, UrlOpt, fail, out, settings_from
from voicecall.cli.task_commands import ContextOpt, ReportUrlOpt, SchemaOpt, TaskOpt, WaitOpt
from voicecall.config import Settings
from voicecall.errors import ConfigError, VoicecallError
from voicecall.netaddr import is_loopback

app = typer.Typer(
    name="voicecall",
    help="Let AI agents place and take real phone calls through Twilio.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _register_extra_commands() -> None:
    from voicecall.cli import task_commands
    from voicecall.cli.agent_commands import register

    register(app)  # `voicecall mcp`, `voicecall expose`
    task_commands.register(app)  # `voicecall answer`


_register_extra_commands()

T = TypeVar("T")


def _client(config: Path | None, url: str | None) -> Client:
    return Client.from_settings(settings_from(config), url)


def _run(make: Callable[[Client], Awaitable[T]], config: Path | None, url: str | None) -> T:
    async def main() -> T:
        async with _client(config, url) as client:
            return await make(client)

    try:
        return asyncio.run(main())
    except VoicecallError as exc:
        raise fail([str(exc)], 1) from None
    except KeyboardInterrupt:
        raise typer.Exit(130) from None


def _when(ts: float | None) -> str:
    return datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S") if ts else "-"


def _print_call(info: CallInfo) -> None:
    table = Table(show_header=False, box=None)
    for key in (
        "call_id",
        "state",
        "end_reason",
        "direction",
        "mode",
        "to",
        "from",
        "provider_call_id",
        "error",
    ):
        value = info.raw.get(key)
        if value is not None:
            table.add_row(f"[bold]{key}[/bold]", str(value))
    table.add_row("[bold]created[/bold]", _when(info.raw.get("created_at")))
    table.add_row("[bold]ended[/bold]", _when(info.raw.get("ended_at")))
    out.print(table)
    if info.transcript:
        out.print("[bold]transcript[/bold]")
        for line in info.transcript:
            who = "[cyan]bot [/cyan]" if line["speaker"] == "bot" else "[green]user[/green]"
            out.print(f"  {who} {line['text']}", highlight=False)


# ----------------------------------------------------------------------------- server


@app.command()
def serve(
    config: ConfigOpt = None,
    log_level: Annotated[str, typer.Option(help="debug, info, warning, error")] = "info",
) -> None:
    """Run the voicecall server (webhooks, media streams, control API)."""
    import uvicorn

    from voicecall import logs
    from voicecall.server.app import VoicecallApp
    from voicecall.server.runner import uvicorn_options

    settings = settings_from(config)
    problems = serve_problems(settings)
    if problems:
        raise fail(problems)
    logs.configure(log_level)
    for secret in (settings.twilio.auth_token, settings.api.token, settings.reports.secret):
        logs.register_secret(secret.get_secret_value() if secret else None)
    application = VoicecallApp(settings)
    try:
        uvicorn.run(
            application,
            host=settings.serve.bind,
            port=settings.serve.port,
            **uvicorn_options(settings),
        )
    except ConfigError as exc:
        raise fail(exc.problems) from None


def serve_problems(settings: Settings) -> list[str]:
    """Reasons the server must not start with these settings."""
    problems = []
    if not is_loopback(settings.serve.bind) and settings.api.token is None:
        problems.append(
            f"serve.bind: {settings.serve.bind} is reachable from other machines; "
            "set api.token (VOICECALL_API__TOKEN) first"
        )
    if settings.provider == "twilio":
        if not settings.twilio.account_sid:
            problems.append("twilio.account_sid: required (or set TWILIO_ACCOUNT_SID)")
        if settings.twilio.auth_token is None:
            problems.append("twilio.auth_token: required (or set TWILIO_AUTH_TOKEN)")
        if not settings.public_url:
            problems.append("public_url: required (the https origin Twilio can reach)")
    return problems


@app.command()
def init(
    path: Annotated[Path, typer.Argument(help="Where to write the template")] = Path(
        "voicecall.toml"
    ),
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file")] = False,
) -> None:
    """Write a commented configuration template."""
    from voicecall.cli.template import CONFIG_TEMPLATE

    if path.exists() and not force:
        raise fail([f"{path} exists (use --force to overwrite)"])
    path.write_text(CONFIG_TEMPLATE, encoding="utf-8")
    path.chmod(0o600)
    out.print(f"wrote {path}")


# ----------------------------------------------------------------------------- calls


@app.command()
def call(
    message: Annotated[
        str | None, typer.Option("--message", "-m", help="What to say (optional with --task)")
    ] = None,
    to: Annotated[
        str | None, typer.Option("--to", help="E.164 number (default: to_number)")
    ] = None,
    mode: Annotated[str | None, typer.Option(help="notify, conversation or task")] = None,
    task: TaskOpt = None,
    context: ContextOpt = None,
    outcome_schema: SchemaOpt = None,
    report_url: ReportUrlOpt = None,
    wait: WaitOpt = False,
    config: ConfigOpt = None,
    url: UrlOpt = None,
) -> None:
    """Place an outbound call (with --task: an agent makes the whole call and returns its
    outcome)."""
    if mode not in (None, "notify", "conversation", "task"):
        raise fail([f"--mode: {mode!r} is not notify, conversation or task"])
    if task is not None or mode == "task":
        from voicecall.cli.task_commands import run_task_call

        run_task_call(
            to=to,
            message=message,
            task=task,
            context=context,
            outcome_schema=outcome_schema,
            report_url=report_url,
            wait=wait,
            config=config,
            url=url,
        )
        return
    if message is None:
        raise fail(["--message: required (or give --task for a task call)"])

    async def go(c: Client) -> Any:
        handle = await c.call(to, message, mode, report_url=report_url)
        return await handle.status()

    info = _run(go, config, url)
    out.print(f"call [bold]{info.call_id}[/bold] {info.state}")


@app.command("continue")
def continue_(
    call_id: Annotated[str, typer.Option("--call-id", help="The call")],
    message: Annotated[str, typer.Option("--message", "-m", help="What to say")],
    timeout: Annotated[float | None, typer.Option(help="Seconds to wait for the answer")] = None,
    config: ConfigOpt = None,
    url: UrlOpt = None,
) -> None:
    """Say something and print the caller's answer."""
    text = _run(lambda c: c.continue_(call_id, message, timeout=timeout), config, url)
    out.print(text, highlight=False)


@app.command()
def speak(
    call_id: Annotated[str, typer.Option("--call-id")],
    message: Annotated[str, typer.Option("--message", "-m")],
    config: ConfigOpt = None,
    url: UrlOpt = None,
) -> None:
    """Say something on a live call without waiting for an answer."""
    info = _run(lambda c: c.speak(call_id, message), config, url)
    out.print(f"call {info.call_id} {info.state}")


@app.command()
def end(
    call_id: Annotated[str, typer.Option("--call-id")],
    message: Annotated[str | None, typer.Option("--message", "-m", help="Goodbye first")] = None,
    config: ConfigOpt = None,
    url: UrlOpt = None,
) -> None:
    """Hang up a call (idempotent)."""
    info = _run(lambda c: c.end(call_id, message), config, url)
    out.print(f"call {info.call_id} {info.state}")


@app.command()
def forget(
    caller: Annotated[str, typer.Option("--caller", help="E.164 number, e.g. +14155550123")],
    config: ConfigOpt = None,
    url: UrlOpt = None,
) -> None:
    """Erase what the responder remembers about a caller."""
    known = _run(lambda c: c.forget_caller(caller), config, url)
    out.print(f"forgot {caller}" if known else f"nothing was remembered about {caller}")


@app.command()
def status(
    call_id: Annotated[str | None, typer.Option("--call-id")] = None,
    config: ConfigOpt = None,
    url: UrlOpt = None,
) -> None:
    """Show one call with its transcript, or the active calls."""
    if call_id:
        _print_call(_run(lambda c: c.status(call_id), config, url))
        return
    calls_, _ = _run(lambda c: c.calls(active=True, limit=100), config, url)
    if not calls_:
        out.print("no active calls")
        return
    _table(calls_)


@app.command()
def calls(
    limit: Annotated[int, typer.Option(min=1, max=500)] = 20,
    config: ConfigOpt = None,
    url: UrlOpt = None,
) -> None:
    """Call history, newest first."""
    items, _ = _run(lambda c: c.calls(limit=limit), config, url)
    _table(items)


def _table(items: list[CallInfo]) -> None:
    table = Table("call id", "created", "dir", "mode", "to / from", "state", "end reason")
    for info in items:
        who = info.to if info.direction == "outbound" else info.from_
        table.add_row(
            info.call_id,
            _when(info.raw.get("created_at")),
            info.direction,
            info.mode,
            who or "anonymous",
            info.state,
            info.end_reason or "",
        )
    out.print(table)


@app.command()
def tail(config: ConfigOpt = None, url: UrlOpt = None) -> None:
    """Follow live call events and transcript lines."""

    async def go(c: Client) -> None:
        async for event in c.events():
            kind = event.get("type", "?")
            if kind == "transcript":
                who = "[cyan]bot [/cyan]" if event["speaker"] == "bot" else "[green]user[/green]"
                out.print(f"{event['call_id'][:8]} {who} {event['text']}", highlight=False)
            else:
                call_doc = event.get("call", {})
                out.print(
                    f"{call_doc.get('call_id', '')[:8]} [bold]{kind}[/bold] "
                    f"{call_doc.get('state', '')} {call_doc.get('end_reason') or ''}"
                )

    _run(go, config, url)


# ----------------------------------------------------------------------------- tools


@app.command()
def doctor(config: ConfigOpt = None) -> None:
    """Check the configuration, the credentials and what would make webhooks fail."""
    from voicecall.cli.doctor import run_doctor

    settings = settings_from(config)
    ok = asyncio.run(run_doctor(settings, out))
    raise typer.Exit(0 if ok else 1)


@app.command(
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    add_help_option=False,
)
def emulator(ctx: typer.Context) -> None:
    """Run the local Twilio emulator (REST, signed webhooks, TwiML, Media Streams).

    Same as `python -m voicecall.emulator` (same options, EMULATOR_* variables and defaults;
    subcommands `load` and `sink`): see `voicecall emulator --help`.
    """
    from voicecall.emulator.__main__ import main as emulator_main

    raise typer.Exit(emulator_main(list(ctx.args), prog="voicecall emulator"))


@app.command()
def demo(
    workdir: Annotated[
        Path | None,
        typer.Option(help="Where to keep the demo's database and recording (default: a temp dir)"),
    ] = None,
    mode: Annotated[
        str, typer.Option(help="voice (Media Streams, local TTS/STT), gather, or auto")
    ] = "auto",
    llm: Annotated[
        str | None,
        typer.Option(
            help="An OpenAI-compatible endpoint for the agent (e.g. http://127.0.0.1:11434/v1); "
            "default: the scripted demo agent. Key: OPENAI_API_KEY"
        ),
    ] = None,
    model: Annotated[str | None, typer.Option(help="The model name at --llm")] = None,
) -> None:
    """Run a whole simulated task call offline: our agent phones a restaurant to book a table
    (emulator + server + the owner's answer + the outcome + the signed report)."""
    from voicecall.cli.demo import run_demo

    if mode not in ("auto", "voice", "gather"):
        raise fail([f"--mode: {mode!r} is not auto, voice or gather"])
    if llm is not None and not llm.startswith(("http://", "https://")):
        raise fail([f"--llm: {llm!r} is not an http(s) URL such as http://127.0.0.1:11434/v1"])
    try:
        result = asyncio.run(run_demo(out, workdir, mode=mode, llm=llm, model=model))
    except (VoicecallError, RuntimeError) as exc:
        raise fail([str(exc)], 1) from None
    raise typer.Exit(0 if result.ok else 1)


def main() -> None:  # pragma: no cover - console entry
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
