"""The ``voicecall`` command line.

``serve`` runs the one runtime; every other command is a client of its control API (a CLI that
started its own server collided on the port in the field). Errors print one line each, no
traceback, and exit non-zero.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from voicecall.agent.client import CallInfo, Client
from voicecall.cli.common import (
    CallIdOpt,
    ConfigOpt,
    JsonOpt,
    LogFormatOpt,
    LogLevelOpt,
    UrlOpt,
    err,
    fail,
    out,
    settings_from,
)
from voicecall.cli.output import call_table, event_line, print_call, print_json, transcript_line
from voicecall.cli.preflight import serve_problems
from voicecall.cli.task_commands import (
    ContextOpt,
    ReportUrlOpt,
    SchemaOpt,
    TaskOpt,
    TransferToOpt,
)
from voicecall.cli.telephony_options import (
    HoldDetectOpt,
    MachineDetectionOpt,
    MaxHoldOpt,
    VoicemailMessageOpt,
    telephony_kwargs,
)
from voicecall.errors import VoicecallError

app = typer.Typer(
    name="voicecall",
    help="Let AI agents place and take real phone calls through Twilio.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _register_extra_commands() -> None:
    from voicecall.cli import (
        agent_commands,
        latency_commands,
        policy_commands,
        recording_commands,
        task_commands,
        telephony_commands,
    )
    from voicecall.cli.emulator_command import register as register_emulator

    agent_commands.register(app)  # `voicecall mcp`, `voicecall expose`
    register_emulator(app)  # `voicecall emulator` (and its `load`, `sink`)
    policy_commands.register(app)  # `voicecall block`, `unblock`, `blocked`, `audit`
    task_commands.register(app)  # `voicecall answer`
    recording_commands.register(app)  # `voicecall recording`
    telephony_commands.register(app)  # `voicecall dtmf`, `voicecall transfer`
    latency_commands.register(app)  # `voicecall latency`


T = TypeVar("T")


def _client(config: Path | None, url: str | None) -> Client:
    return Client.from_settings(settings_from(config), url, surface="cli")


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


def _check_mode(mode: str | None) -> None:
    if mode not in (None, "notify", "conversation", "task"):
        raise fail([f"--mode: {mode!r} is not notify, conversation or task"])


# ----------------------------------------------------------------------------- server


@app.command()
def serve(
    config: ConfigOpt = None,
    log_level: LogLevelOpt = "info",
    log_format: LogFormatOpt = "auto",
) -> None:
    """Run the voicecall server (webhooks, media streams, control API)."""
    import uvicorn

    from voicecall import logs
    from voicecall.cli.common import PortBusy, bind_listener, check_logging
    from voicecall.cli.preflight import preflight_problems, secrets_of
    from voicecall.server.app import VoicecallApp
    from voicecall.server.runner import settle_gc, uvicorn_options

    check_logging(log_level, log_format)
    settings = settings_from(config)
    problems = preflight_problems(settings)
    if problems:
        raise fail(problems)
    for secret in secrets_of(settings):
        logs.register_secret(secret)
    try:
        sock = bind_listener(
            settings.serve.bind,
            settings.serve.port,
            what="voicecall server (`voicecall serve` or `voicecall dev`)",
            key="serve.port",
        )
    except PortBusy as exc:
        raise fail([str(exc)], 1) from None
    logs.configure(log_level, log_format)
    app = VoicecallApp(settings, on_settled=lambda: settle_gc(collect=False))
    server = uvicorn.Server(uvicorn.Config(app, **uvicorn_options(settings)))
    settle_gc()
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()


@app.command()
def dev(
    config: ConfigOpt = None,
    log_level: LogLevelOpt = "info",
    log_format: LogFormatOpt = "auto",
) -> None:
    """Run the local Twilio emulator and the voicecall server together (Ctrl-C stops both).

    Uses ./voicecall.toml (or --config), else built-in local defaults (what
    `voicecall init --local` writes). Prints what to try next and shows calls as they happen.
    """
    import logging

    from voicecall import logs
    from voicecall.cli.common import PortBusy, bind_listener, check_logging
    from voicecall.cli.dev import dev_problems, run_dev
    from voicecall.cli.preflight import preflight_problems, secrets_of
    from voicecall.config import config_path
    from voicecall.errors import ConfigError

    check_logging(log_level, log_format)
    path = config_path(config)
    if path.exists() or config is not None:
        settings = settings_from(config)
        source = f"config {path}"
        shown: Path | None = path.resolve()
    else:
        from voicecall.cli.dev import builtin_settings

        try:
            settings = builtin_settings()
        except ConfigError as exc:
            raise fail(exc.problems) from None
        source = "built-in local defaults; `voicecall init --local` writes them to a file"
        shown = None
    problems = dev_problems(settings) or preflight_problems(settings)
    if problems:
        raise fail(problems)
    for secret in secrets_of(settings):
        logs.register_secret(secret)
    try:
        server_sock = bind_listener(
            settings.serve.bind,
            settings.serve.port,
            what="voicecall server (`voicecall serve` or `voicecall dev`)",
            key="serve.port",
        )
    except PortBusy as exc:
        raise fail([str(exc)], 1) from None
    from urllib.parse import urlsplit

    base = urlsplit(settings.twilio.api_base_url)
    try:
        emulator_sock = bind_listener(
            base.hostname or "127.0.0.1",
            base.port or 80,
            what="emulator (`voicecall emulator` or `voicecall dev`)",
            key="twilio.api_base_url",
        )
    except PortBusy as exc:
        server_sock.close()
        raise fail([str(exc)], 1) from None
    chosen = logs.configure(log_level, log_format)
    # two uvicorn servers in one process: their start/stop lines say nothing dev does not
    logging.getLogger("uvicorn.error").setLevel(logging.WARNING)
    if chosen == "human":
        # the call lines below say the same to a person; warnings and errors still show
        logging.getLogger("voicecall.calls").setLevel(logging.WARNING)
    default = config is None and (shown is None or shown == Path("voicecall.toml").resolve())
    try:
        asyncio.run(
            run_dev(
                settings,
                out,
                server_sock=server_sock,
                emulator_sock=emulator_sock,
                source=source,
                config=shown,
                default_config=default,
            )
        )
    except RuntimeError as exc:
        raise fail([str(exc)], 1) from None
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
    finally:
        server_sock.close()
        emulator_sock.close()


@app.command()
def init(
    path: Annotated[Path, typer.Argument(help="Where to write the configuration")] = Path(
        "voicecall.toml"
    ),
    local: Annotated[
        bool,
        typer.Option(
            "--local",
            help="Set up for the local emulator (`voicecall dev`): its credentials and URL, "
            "http public_url, the local speech stack when installed, a store in this directory",
        ),
    ] = False,
    port: Annotated[
        int, typer.Option(help="--local: the voicecall server's port", min=1, max=65535)
    ] = 3334,
    emulator_port: Annotated[
        int, typer.Option(help="--local: the emulator's port", min=1, max=65535)
    ] = 8765,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file")] = False,
) -> None:
    """Write a commented configuration file with every section (--local: ready to run)."""
    from voicecall.cli.template import CONFIG_TEMPLATE, local_speech, local_values, render_local

    if path.exists() and not force:
        raise fail([f"{path} exists (use --force to overwrite)"], 1)
    if local and port == emulator_port:
        raise fail([f"--port and --emulator-port are both {port}: give them different ports"])
    text = CONFIG_TEMPLATE
    if local:
        text = render_local(
            local_values(
                port=port,
                emulator_port=emulator_port,
                project_dir=path.resolve().parent,
                speech=local_speech(),
                responder=_existing_responder(path),
            )
        )
    path.write_text(text, encoding="utf-8")
    path.chmod(0o600)
    out.print(f"wrote {path}", highlight=False)
    if local:
        out.print("next: voicecall dev   (then, in another terminal: voicecall call …)")


def _existing_responder(path: Path) -> dict[str, Any] | None:
    """The ``[responder]`` table of the file about to be overwritten, if it configures one."""
    import tomllib

    from voicecall.config import ResponderSettings

    try:
        table = tomllib.loads(path.read_text(encoding="utf-8")).get("responder")
    except (OSError, ValueError):
        return None
    if not isinstance(table, dict) or table.get("kind", "none") == "none":
        return None
    known = ResponderSettings.model_fields
    return {k: v for k, v in table.items() if k in known}


# ----------------------------------------------------------------------------- calls


@app.command()
def call(
    message: Annotated[
        str | None, typer.Option("--message", "-m", help="What to say (optional with --task)")
    ] = None,
    to: Annotated[
        str | None, typer.Option("--to", help="E.164 number to call (default: to_number)")
    ] = None,
    mode: Annotated[
        str | None,
        typer.Option(
            help="notify (say, hang up), conversation, or task (default: outbound.default_mode; "
            "task when --task is given)"
        ),
    ] = None,
    task: TaskOpt = None,
    context: ContextOpt = None,
    outcome_schema: SchemaOpt = None,
    report_url: ReportUrlOpt = None,
    machine_detection: MachineDetectionOpt = None,
    voicemail_message: VoicemailMessageOpt = None,
    hold_detect: HoldDetectOpt = None,
    max_hold_seconds: MaxHoldOpt = None,
    record: Annotated[
        bool | None,
        typer.Option(
            "--record/--no-record",
            help="Record the call; the callee first hears recording.announcement (default: "
            "recording.enabled); save it with `voicecall recording ID -o out.wav`",
        ),
    ] = None,
    transfer_to: TransferToOpt = None,
    wait: Annotated[
        bool,
        typer.Option(
            "--wait",
            help="Show the live transcript until the call ends; in a conversation until the "
            "callee first answers (the answer is printed); in a task call, prompt the agent's "
            "questions and print the outcome JSON",
        ),
    ] = False,
    timeout: Annotated[
        float | None,
        typer.Option(help="--wait: give up after this many seconds (exit 1)", min=0.1),
    ] = None,
    json_out: JsonOpt = False,
    config: ConfigOpt = None,
    url: UrlOpt = None,
) -> None:
    """Place an outbound call (with --task: an agent makes the whole call and returns its
    outcome)."""
    from voicecall.cli.wait import CallWatcher, WaitResult

    _check_mode(mode)
    moves = telephony_kwargs(machine_detection, voicemail_message, hold_detect, max_hold_seconds)
    if task is not None or mode == "task":
        from voicecall.cli.task_commands import run_task_call

        run_task_call(
            to=to,
            message=message,
            task=task,
            context=context,
            outcome_schema=outcome_schema,
            report_url=report_url,
            record=record,
            wait=wait,
            config=config,
            url=url,
            telephony=moves,
            transfer_to=transfer_to,
        )
        return
    if transfer_to:
        raise fail(["--transfer-to: only for task calls (give --task)"])
    if message is None:
        raise fail(["--message: required (or give --task for a task call)"])
    if timeout is not None and not wait:
        raise fail(["--timeout: only with --wait (how long to wait for the call)"])
    live = err if json_out else out

    async def go(c: Client) -> tuple[CallInfo, WaitResult | None]:
        if not wait:
            handle = await c.call(
                to, message, mode, report_url=report_url, record=record, **moves
            )
            return await handle.status(), None

        def line(doc: dict[str, Any]) -> None:
            err.print("  " + transcript_line(doc), highlight=False, soft_wrap=True)

        def state(info: CallInfo) -> None:
            err.print(f"  [dim]· {info.state}[/dim]", highlight=False)

        async with CallWatcher(c, on_line=line, on_state=state) as watcher:
            handle = await c.call(
                to, message, mode, report_url=report_url, record=record, **moves
            )
            if not json_out:
                live.print(f"call [bold]{handle.call_id}[/bold] placed", highlight=False)
            result = await watcher.wait(handle.call_id, timeout=timeout)
        return result.info, result

    info, result = _run(go, config, url)
    if result is None:
        if json_out:
            print_json({**info.raw, "answer": None})
        else:
            out.print(f"call [bold]{info.call_id}[/bold] {info.state}", highlight=False)
        return
    if json_out:
        print_json({**info.raw, "answer": result.answer})
    elif result.answer is not None and info.mode == "conversation":
        out.print(result.answer, highlight=False, markup=False)
    else:
        ending = f" ({info.end_reason})" if info.end_reason not in (None, info.state) else ""
        out.print(f"call {info.call_id} {info.state}{ending}", highlight=False)
    if result.timed_out:
        raise fail([f"call {info.call_id} is still {info.state} after {timeout:g} s"], 1)
    if not result.reached:
        what = "answering" if info.mode == "conversation" else "being answered"
        detail = f": {info.raw['error']}" if info.raw.get("error") else ""
        raise fail([f"call {info.call_id} ended {info.state} before {what}{detail}"], 1)


@app.command("continue")
def continue_(
    call_id: CallIdOpt,
    message: Annotated[str, typer.Option("--message", "-m", help="What to say")],
    timeout: Annotated[
        float | None, typer.Option(help="Seconds to wait for the answer", min=0.1)
    ] = None,
    config: ConfigOpt = None,
    url: UrlOpt = None,
) -> None:
    """Say something and print the caller's answer."""
    text = _run(lambda c: c.continue_(call_id, message, timeout=timeout), config, url)
    out.print(text, highlight=False, markup=False)


@app.command()
def speak(
    call_id: CallIdOpt,
    message: Annotated[str, typer.Option("--message", "-m", help="What to say")],
    config: ConfigOpt = None,
    url: UrlOpt = None,
) -> None:
    """Say something on a live call without waiting for an answer."""
    info = _run(lambda c: c.speak(call_id, message), config, url)
    out.print(f"call {info.call_id} {info.state}", highlight=False)


@app.command()
def end(
    call_id: CallIdOpt,
    message: Annotated[
        str | None, typer.Option("--message", "-m", help="A goodbye said before hanging up")
    ] = None,
    config: ConfigOpt = None,
    url: UrlOpt = None,
) -> None:
    """Hang up a call (idempotent). With a goodbye, waits until it was said and the call is
    over; nothing more can be said on the call once this is asked."""

    async def end_and_wait(client: Client) -> CallInfo:
        info = await client.end(call_id, message)
        if info.ended:
            return info
        wait = 30.0 + len((message or "").split()) / 2.0
        return await client.wait(info.call_id, lambda i: i.ended, timeout=wait)

    info = _run(end_and_wait, config, url)
    out.print(f"call {info.call_id} {info.state}", highlight=False)


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
    call_id: Annotated[
        str | None,
        typer.Option(
            "--call-id",
            help="The call (id or unique prefix of 6+ characters); default: the active calls",
        ),
    ] = None,
    json_out: JsonOpt = False,
    config: ConfigOpt = None,
    url: UrlOpt = None,
) -> None:
    """Show one call with its transcript, or the active calls."""
    if call_id:
        info = _run(lambda c: c.status(call_id), config, url)
        if json_out:
            print_json(info.raw)
        else:
            print_call(out, info)
        return
    calls_, _ = _run(lambda c: c.calls(active=True, limit=100), config, url)
    if json_out:
        print_json({"calls": [i.raw for i in calls_]})
    elif not calls_:
        out.print("no active calls")
    else:
        out.print(call_table(calls_))


@app.command()
def calls(
    limit: Annotated[int, typer.Option(help="How many calls to show", min=1, max=500)] = 20,
    active: Annotated[
        bool | None,
        typer.Option("--active/--ended", help="Only live calls, or only finished ones"),
    ] = None,
    json_out: JsonOpt = False,
    config: ConfigOpt = None,
    url: UrlOpt = None,
) -> None:
    """Call history, newest first."""
    items, cursor = _run(lambda c: c.calls(limit=limit, active=active), config, url)
    if json_out:
        print_json({"calls": [i.raw for i in items], "next_cursor": cursor})
    else:
        out.print(call_table(items))


@app.command()
def tail(
    json_out: Annotated[
        bool, typer.Option("--json", help="One JSON object per event (JSON lines) on stdout")
    ] = False,
    config: ConfigOpt = None,
    url: UrlOpt = None,
) -> None:
    """Follow live call events and transcript lines."""

    async def go(c: Client) -> None:
        async for event in c.events():
            if json_out:
                print_json(event)
                continue
            line = event_line(event)
            if line is not None:
                out.print(line, highlight=False, soft_wrap=True)

    _run(go, config, url)


# ----------------------------------------------------------------------------- tools


@app.command()
def doctor(config: ConfigOpt = None) -> None:
    """Check the configuration, credentials, speech, responder and numbers (exit 1 on problems)."""
    from voicecall.cli.doctor import run_doctor
    from voicecall.config import config_path

    settings = settings_from(config)
    path = config_path(config)
    source = str(path) if path.exists() else None
    ok = asyncio.run(run_doctor(settings, out, source=source))
    raise typer.Exit(0 if ok else 1)


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


_register_extra_commands()

__all__ = ["app", "main", "serve_problems"]


def main() -> None:  # pragma: no cover - console entry
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
