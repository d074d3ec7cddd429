"""kill -9 with an end-of-call report pending, and with a task call's outcome being written:
after a restart the report goes out (same webhook-id, same body) and the outcome is decided —
on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import pytest
import standardwebhooks

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fakes"))

from chat_server import FakeChat, JsonPlan
from fake_serve import serve
from report_receiver import ReportReceiver

from voicecall.emulator.pytest_plugin import EmulatorCredentials
from voicecall.emulator.runtime import Emulator
from voicecall.reports.signing import new_secret

from .harness import CALLEE
from .test_restart import ServerProcess, api, free_port, write_config

pytestmark = pytest.mark.slow

KEY = "sk-restart"
SECRET = new_secret(b"restart-report-secret-32-bytes!!")
OUTCOME = {"done": True, "details": "They said hello and hung up."}


def task_config(
    tmp_path: Path,
    emulator: Emulator,
    creds: EmulatorCredentials,
    port: int,
    store_url: str,
    chat_at: str,
    hook_at: str,
) -> Path:
    path = write_config(tmp_path, emulator, creds, port, store_url)
    path.write_text(
        path.read_text()
        + f"""
[responder]
base_url = "http://{chat_at}/v1"
model = "m"
api_key = "{KEY}"
[reports]
url = "http://{hook_at}/calls"
secret = "{SECRET}"
allow_private_urls = true
"""
    )
    return path


async def place_task_call(url: str) -> str:
    r = await api(
        url,
        "POST",
        "/api/calls",
        json={"to": CALLEE, "mode": "task", "task": "Say hello, then hang up."},
    )
    assert r.status_code == 201, r.text
    return str(r.json()["call_id"])


async def until(predicate: Any, what: str, timeout: float = 30.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while loop.time() < end:
        if predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


async def test_kill9_with_a_report_pending_then_restart_delivers_it(
    tmp_path: Path, emulator: Emulator, emulator_credentials: EmulatorCredentials, store_url: str
) -> None:
    chat = FakeChat(api_key=KEY)
    receiver = ReportReceiver(statuses=[500])  # the first attempt fails: a retry in 5 s
    emulator.set_script(CALLEE, {"answer_after_ms": 100, "replies": [None], "hangup_after_ms": 800})
    async with serve(chat.app()) as chat_at, serve(receiver.app()) as hook_at:
        port = free_port()
        config = task_config(
            tmp_path, emulator, emulator_credentials, port, store_url, chat_at, hook_at
        )
        chat.plan_json(json.dumps({"summary": "They said hello.", "outcome": OUTCOME}))
        first = ServerProcess(config, port)
        try:
            await first.ready()
            call_id = await place_task_call(first.url)
            await receiver.wait_for(1, timeout=30)
            for _ in range(200):  # the failed attempt is recorded: the next one is 5 s away
                doc = (await api(first.url, "GET", f"/api/calls/{call_id}")).json()
                if doc["report"] and doc["report"]["attempts"] == 1:
                    break
                await asyncio.sleep(0.05)
            assert doc["report"]["state"] == "pending" and doc["report"]["last_status"] == 500
            first.kill9()  # the report is pending in the outbox
        finally:
            first.stop()
        second = ServerProcess(config, port)
        try:
            await second.ready()
            got = await receiver.wait_for(2, timeout=30)
            doc = (await api(second.url, "GET", f"/api/calls/{call_id}")).json()
        finally:
            second.stop()
    one, two = got
    assert one.headers["webhook-id"] == two.headers["webhook-id"] == f"msg_{call_id}"
    assert one.body == two.body
    for each in got:
        standardwebhooks.Webhook(SECRET).verify(each.body, each.headers)
    assert json.loads(two.body)["data"]["outcome"] == OUTCOME
    assert doc["report"]["state"] == "delivered" and doc["report"]["attempts"] == 2
    assert doc["outcome"] == OUTCOME
    assert len(chat.structured) == 1  # the outcome was not decided twice
    assert len(emulator.calls) == 1


async def test_kill9_while_the_outcome_is_written_then_restart_decides_it(
    tmp_path: Path, emulator: Emulator, emulator_credentials: EmulatorCredentials, store_url: str
) -> None:
    chat = FakeChat(api_key=KEY)
    receiver = ReportReceiver()
    emulator.set_script(CALLEE, {"answer_after_ms": 100, "replies": [None], "hangup_after_ms": 800})
    async with serve(chat.app()) as chat_at, serve(receiver.app()) as hook_at:
        port = free_port()
        config = task_config(
            tmp_path, emulator, emulator_credentials, port, store_url, chat_at, hook_at
        )
        held = chat.plan_json(JsonPlan("{}", release=asyncio.Event()))  # never answered
        first = ServerProcess(config, port)
        try:
            await first.ready()
            call_id = await place_task_call(first.url)
            await until(lambda: len(chat.structured) == 1, "the outcome request")
            first.kill9()  # mid-request: the call ended, its outcome is not stored
        finally:
            first.stop()
        assert held.release is not None
        chat.plan_json(json.dumps({"summary": "They said hello.", "outcome": OUTCOME}))
        second = ServerProcess(config, port)
        try:
            await second.ready()
            (got,) = await receiver.wait_for(1, timeout=30)
            doc = (await api(second.url, "GET", f"/api/calls/{call_id}")).json()
        finally:
            second.stop()
            held.release.set()
    assert doc["outcome"] == OUTCOME and doc["outcome_final"]
    assert doc["state"] == "hangup-user"  # the callee hung up
    report = standardwebhooks.Webhook(SECRET).verify(got.body, got.headers)
    assert report["data"]["outcome"] == OUTCOME and report["data"]["summary"] == "They said hello."
    assert len(chat.structured) == 2
