"""``voicecall call --task … --wait`` and ``voicecall answer`` as a person runs them: subprocesses
against a real server (mock provider) whose model is the fake OpenAI-compatible server."""

from __future__ import annotations

import asyncio
import json
import os
import pty
import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fakes"))

from chat_server import Plan
from task_rig import Rig, rig, until
from voicecall_server import CALLEE, TOKEN

SCHEMA = {
    "type": "object",
    "properties": {"booked": {"type": "boolean"}, "time": {"type": ["string", "null"]}},
    "required": ["booked", "time"],
    "additionalProperties": False,
}


def env() -> dict[str, str]:
    return {**os.environ, "NO_COLOR": "1", "COLUMNS": "200", "VOICECALL_API__TOKEN": TOKEN}


async def cli(r: Rig, *args: str, stdin: Any = None) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "voicecall.cli",
        *args,
        "--url",
        r.url,
        stdin=stdin if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env(),
    )


async def newest_call(r: Rig) -> str:
    found: list[str] = []

    async def placed() -> bool:
        calls, _ = await r.client.calls(limit=1)
        if calls and calls[0].raw.get("provider_call_id"):
            found.append(calls[0].call_id)
            return True
        return False

    await until(placed, "the CLI's call")
    return found[-1]


async def drive_to_question(r: Rig, call_id: str) -> None:
    await r.phone.answer(call_id)
    r.chat.plan(Plan(text="Let me check.", tool_call=("ask_owner", {"question": "Is 7:30 fine?"})))
    await r.phone.says(call_id, "Only seven thirty is free tonight.")

    async def asked() -> bool:
        return (await r.client.status(call_id)).pending_question is not None

    await until(asked, "the question")


BOOKED = {"booked": True, "time": "19:30"}


async def finish(r: Rig, call_id: str, outcome: dict[str, Any] = BOOKED) -> None:
    r.chat.plan(Plan(text="", tool_call=("end_call", {"goodbye": "Thanks, bye!"})))
    r.chat.plan_json(json.dumps({"summary": "Booked 7:30.", "outcome": outcome}))
    await r.wait_replies(call_id, 2)
    await r.phone.hangs_up(call_id)


async def test_call_task_wait_prompts_on_a_terminal_and_prints_the_outcome(
    tmp_path: Path,
) -> None:
    schema = tmp_path / "schema.json"
    schema.write_text(json.dumps(SCHEMA))
    async with rig(tmp_path) as r:
        master, slave = pty.openpty()
        proc = await cli(
            r,
            "call",
            "--to",
            CALLEE,
            "--task",
            "Book a table for two tonight at 7; 7:30 only if I agree.",
            "--context",
            "Name: Sam",
            "--outcome-schema",
            str(schema),
            "--wait",
            stdin=slave,
        )
        os.close(slave)
        try:
            call_id = await newest_call(r)
            await drive_to_question(r, call_id)
            await asyncio.sleep(0.5)  # the CLI shows the question and prompts
            os.write(master, b"Yes, 7:30 is fine\n")

            async def answered() -> bool:
                info = await r.client.status(call_id)
                return [q["status"] for q in info.raw["questions"]] == ["answered"]

            await until(answered, "the typed answer")
            await finish(r, call_id)
            out, err = await asyncio.wait_for(proc.communicate(), 60)
        finally:
            os.close(master)
            if proc.returncode is None:
                proc.kill()
        text = err.decode()
        assert proc.returncode == 0, text
        assert json.loads(out.decode()) == {"booked": True, "time": "19:30"}  # stdout: JSON only
        assert "the agent asks you: Is 7:30 fine?" in text
        assert "them  Only seven thirty is free tonight." in text
        assert "summary Booked 7:30." in text
        info = await r.client.status(call_id)
        assert info.raw["questions"][0]["answer"] == "Yes, 7:30 is fine"


async def test_without_a_terminal_the_question_is_answered_with_voicecall_answer(
    tmp_path: Path,
) -> None:
    async with rig(tmp_path) as r:
        proc = await cli(r, "call", "--to", CALLEE, "--task", "Book a table.", "--wait")
        try:
            call_id = await newest_call(r)
            nothing = await cli(r, "answer", call_id, "too early")
            _, err = await nothing.communicate()
            assert nothing.returncode == 1 and "no question waiting" in err.decode()
            await drive_to_question(r, call_id)
            answering = await cli(r, "answer", call_id, "Yes, book it.")
            said, err = await answering.communicate()
            assert answering.returncode == 0, err.decode()
            assert "Is 7:30 fine? → Yes, book it." in said.decode()
            await finish(r, call_id, {"done": True, "details": "Booked for 7:30."})
            out, err = await asyncio.wait_for(proc.communicate(), 60)
        finally:
            if proc.returncode is None:
                proc.kill()
        assert proc.returncode == 0, err.decode()
        assert f'answer with: voicecall answer {call_id} "…"' in err.decode()
        assert json.loads(out.decode()) == {"done": True, "details": "Booked for 7:30."}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "is not valid JSON"),
        ("[1, 2]", "must hold a JSON object"),
        ('{"type": "objekt"}', "outcome_schema: $.type"),
    ],
)
async def test_a_bad_schema_file_is_one_line_and_places_nothing(
    tmp_path: Path, content: str, message: str
) -> None:
    schema = tmp_path / "schema.json"
    schema.write_text(content)
    async with rig(tmp_path) as r:
        proc = await cli(r, "call", "--task", "x", "--outcome-schema", str(schema))
        _, err = await proc.communicate()
        assert proc.returncode in (1, 2)
        lines = [ln for ln in err.decode().splitlines() if ln.strip()]
        assert len(lines) == 1 and message in lines[0], lines
        assert "Traceback" not in err.decode()
        assert r.provider.calls == {}
