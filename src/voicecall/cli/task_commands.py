"""CLI for task calls: ``voicecall call --task …`` (with ``--wait``) and ``voicecall answer``.

``call`` (in ``cli/main.py``) hands task calls to :func:`run_task_call`; :func:`register` adds
``answer`` to the app. With ``--wait`` the live transcript and the agent's questions go to
stderr (questions are prompted for on an interactive terminal) and the outcome JSON alone goes to
stdout, so ``voicecall call --task … --wait > outcome.json`` works.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import threading
from pathlib import Path
from typing import Annotated, Any

import typer

from voicecall.agent.client import Client, ClientError
from voicecall.cli.common import ConfigOpt, UrlOpt, err, fail, out, settings_from
from voicecall.errors import VoicecallError

TaskOpt = Annotated[
    str | None,
    typer.Option(
        "--task", help="Task call: what the call should get done, with its limits (mode task)"
    ),
]
ContextOpt = Annotated[
    str | None, typer.Option("--context", help="Task call: facts the agent may share")
]
SchemaOpt = Annotated[
    Path | None,
    typer.Option(
        "--outcome-schema", help="Task call: JSON Schema file of the result (Draft 2020-12)"
    ),
]
ReportUrlOpt = Annotated[
    str | None, typer.Option("--report-url", help="Where the signed end-of-call report goes")
]
TransferToOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--transfer-to",
        help="Task call: a number (E.164) the agent may transfer the call to; repeat for more",
    ),
]
WaitOpt = Annotated[
    bool,
    typer.Option(
        "--wait",
        help="Task call: follow it live, prompt the agent's questions, print the outcome JSON",
    ),
]

FOLLOW_POLL_SECONDS = 60.0


def read_schema(path: Path | None) -> dict[str, Any] | None:
    """The JSON object in ``path``; a one-line error (exit 2) if it is missing or not JSON."""
    if path is None:
        return None
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise fail([f"--outcome-schema: cannot read {path} ({exc.strerror or exc})"]) from None
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise fail([f"--outcome-schema: {path} is not valid JSON ({exc})"]) from None
    if not isinstance(doc, dict):
        raise fail([f"--outcome-schema: {path} must hold a JSON object (a JSON Schema)"])
    return doc


def run_task_call(
    *,
    to: str | None,
    message: str | None,
    task: str | None,
    context: str | None,
    outcome_schema: Path | None,
    report_url: str | None,
    wait: bool,
    config: Path | None,
    record: bool | None = None,
    url: str | None,
    transfer_to: list[str] | None = None,
) -> None:
    """Place a task call; with ``wait`` follow it to its outcome (exit 1 without one)."""
    if not (task or "").strip():
        raise fail(["--task: required for a task call (what the call should get done)"])
    schema = read_schema(outcome_schema)
    settings = settings_from(config)
    interactive = sys.stdin.isatty()

    async def main() -> int:
        async with Client.from_settings(settings, url) as client:
            call = await client.call(
                to,
                message,
                "task",
                task=task,
                context=context,
                outcome_schema=schema,
                report_url=report_url,
                record=record,
                transfer_to=transfer_to or None,
            )
            err.print(f"task call [bold]{call.call_id}[/bold] placed", highlight=False)
            if not wait:
                err.print(
                    f"follow it with `voicecall status --call-id {call.call_id}`; answer the "
                    f'agent\'s questions with `voicecall answer {call.call_id} "…"`',
                    highlight=False,
                )
                return 0
            return await follow(client, call.call_id, interactive=interactive)

    try:
        code = asyncio.run(main())
    except VoicecallError as exc:
        raise fail([str(exc)], 1) from None
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
    raise typer.Exit(code)


async def follow(client: Client, call_id: str, *, interactive: bool) -> int:
    """Show the call live until its outcome is final; print the outcome JSON on stdout."""
    watcher = asyncio.create_task(_watch(client, call_id, interactive=interactive))
    try:
        while True:
            info = await client.status(call_id, wait=FOLLOW_POLL_SECONDS, questions=False)
            if info.outcome_final:
                break
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
    err.print(
        f"call {call_id} {info.state} ({info.end_reason or '-'})",
        highlight=False,
    )
    if info.summary:
        err.print(f"[bold]summary[/bold] {info.summary}", highlight=False)
    if info.mode == "task" and info.outcome_error:
        err.print(f"[red]no outcome:[/red] {info.outcome_error}", highlight=False)
    sys.stdout.write(json.dumps(info.outcome, indent=2, ensure_ascii=False) + "\n")
    sys.stdout.flush()
    return 0 if info.outcome is not None or info.mode != "task" else 1


async def _watch(client: Client, call_id: str, *, interactive: bool) -> None:
    prompts: set[asyncio.Future[None]] = set()
    with contextlib.suppress(VoicecallError):
        async for event in client.events():
            doc = event.get("call") or {}
            if call_id not in (event.get("call_id"), doc.get("call_id")):
                continue
            kind = event.get("type")
            if kind == "transcript":
                who = (
                    "[cyan]agent[/cyan]"
                    if event.get("speaker") == "bot"
                    else "[green]them [/green]"
                )
                err.print(f"  {who} {event.get('text', '')}", highlight=False)
            elif kind == "call.updated" or kind == "call.ended":
                err.print(f"  [dim]· {doc.get('state')}[/dim]", highlight=False)
            elif kind == "question":
                question = str(event.get("question", ""))
                err.print(f"[bold yellow]the agent asks you:[/bold yellow] {question}")
                if interactive:
                    prompts.add(asyncio.ensure_future(_prompt(client, call_id)))
                else:
                    err.print(f'answer with: voicecall answer {call_id} "…"', highlight=False)
            elif kind in ("question.timeout", "question.cancelled"):
                err.print("  [dim]· the question was not answered in time[/dim]")


async def _prompt(client: Client, call_id: str) -> None:
    """Read one answer from the terminal (a daemon thread: exiting never waits for it)."""
    loop = asyncio.get_running_loop()
    got: asyncio.Future[str] = loop.create_future()

    def read() -> None:
        try:  # the prompt goes to stderr: stdout carries only the outcome JSON
            sys.stderr.write("your answer> ")
            sys.stderr.flush()
            line = sys.stdin.readline()
        except (OSError, ValueError):
            line = ""

        def deliver() -> None:
            if not got.done():
                got.set_result(line)

        loop.call_soon_threadsafe(deliver)

    threading.Thread(target=read, daemon=True, name="voicecall-answer").start()
    text = (await got).strip()
    if not text:
        return
    try:
        await client.answer(call_id, text)
        err.print("  [dim]· answer sent[/dim]")
    except ClientError as exc:
        err.print(f"  [red]answer not taken:[/red] {exc.detail or exc.title}", highlight=False)


def answer(
    call_id: Annotated[str, typer.Argument(help="The task call")],
    text: Annotated[str, typer.Argument(help="Your answer to the agent's question")],
    config: ConfigOpt = None,
    url: UrlOpt = None,
) -> None:
    """Answer the question a task call's agent is asking you."""
    settings = settings_from(config)

    async def main() -> dict[str, Any]:
        async with Client.from_settings(settings, url) as client:
            return await client.answer(call_id, text)

    try:
        done = asyncio.run(main())
    except VoicecallError as exc:
        raise fail([str(exc)], 1) from None
    out.print(f"answered: {done.get('question')} → {done.get('answer')}", highlight=False)


def register(app: typer.Typer) -> None:
    """Add ``answer`` to the ``voicecall`` app."""
    app.command("answer")(answer)
