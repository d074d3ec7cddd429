"""``voicecall recording CALL_ID -o out.wav``: save a call's recording (a client of the control
API, like every command but ``serve``). Registered on the main app by :func:`register`."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Annotated

import typer

from voicecall.agent.client import Client
from voicecall.cli.common import ConfigOpt, JsonOpt, UrlOpt, fail, out, settings_from
from voicecall.cli.output import print_json
from voicecall.errors import VoicecallError


def recording(
    call_id: Annotated[str, typer.Argument(help="The call (id or unique prefix of 6+ characters)")],
    output: Annotated[
        Path,
        typer.Option(
            "--output", "-o", help="Where to write the WAV (refused if it exists, unless --force)"
        ),
    ],
    force: Annotated[bool, typer.Option("--force", help="Overwrite --output if it exists")] = False,
    json_out: JsonOpt = False,
    config: ConfigOpt = None,
    url: UrlOpt = None,
) -> None:
    """Save a call's recording as a WAV file (stereo for Media Streams calls: left the caller,
    right the bot)."""
    if output.exists() and not force:
        raise fail([f"--output: {output} exists (use --force to overwrite)"])

    async def main() -> tuple[bytes, dict[str, object] | None]:
        async with Client.from_settings(settings_from(config), url, surface="cli") as client:
            audio = await client.recording(call_id)
            info = await client.status(call_id)
            return audio, info.recording

    try:
        audio, about = asyncio.run(main())
    except VoicecallError as exc:
        raise fail([str(exc)], 1) from None
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
    tmp = output.with_name(f".{output.name}.part")
    try:
        tmp.write_bytes(audio)
        os.replace(tmp, output)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise fail([f"--output: cannot write {output} ({exc.strerror or exc})"], 1) from None
    doc = {"call_id": call_id, "path": str(output), "bytes": len(audio), **(about or {})}
    if json_out:
        print_json(doc)
        return
    seconds = (about or {}).get("duration_seconds")
    length = f", {seconds:g} s" if isinstance(seconds, int | float) else ""
    out.print(f"saved {output} ({len(audio)} bytes{length})", highlight=False)


def register(app: typer.Typer) -> None:
    app.command()(recording)
