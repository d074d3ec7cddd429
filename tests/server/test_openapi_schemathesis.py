"""The OpenAPI contract, checked by schemathesis against the real app (mock provider, SQLite).

The server runs in this process (uvicorn on a loopback socket, in a thread with its own event
loop, started once); schemathesis generates requests for every operation from the published
document, valid ones and invalid ones, and checks every answer: documented status code,
documented content type (problem+json for errors), body conforming to the schema, no 5xx,
schema-violating input refused. ``GET /api/events`` is left out (a server-sent
event stream never ends; its 401 is covered in test_api_contract.py).

Bounded: ``VOICECALL_SCHEMATHESIS_EXAMPLES`` examples per operation and mode (default 100: 200
per operation in all; about 50 s on the 2-core dev VM).
"""

from __future__ import annotations

import asyncio
import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
import uvicorn
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode

from voicecall.config import load_config
from voicecall.server.app import VoicecallApp

TOKEN = "schemathesis-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
EXAMPLES = int(os.environ.get("VOICECALL_SCHEMATHESIS_EXAMPLES", "100"))
SKIPPED = {("GET", "/api/events")}
# "valid per the schema, so it must be accepted" cannot hold here: whether +99912 is a phone
# number (phonenumbers' metadata), whether a cursor is one we issued, or whether the outbound
# policy allows a number are not expressible in JSON Schema; such requests get a 422/403 that
# names the field. Every other check runs, including "invalid per the schema is refused".
NOT_EXPRESSIBLE = [schemathesis.checks.positive_data_acceptance]


class _Server:
    def __init__(self, app: VoicecallApp) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.sock.setblocking(False)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        config = uvicorn.Config(app, log_config=None, lifespan="on", access_log=False)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self._run, name="schemathesis-server", daemon=True)

    def _run(self) -> None:
        asyncio.run(self.server.serve(sockets=[self.sock]))

    def __enter__(self) -> _Server:
        self.thread.start()
        for _ in range(1000):
            if self.server.started:
                return self
            if not self.thread.is_alive():
                break
            threading.Event().wait(0.01)
        raise RuntimeError("the server did not start")

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(15)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[_Server]:
    tmp: Path = tmp_path_factory.mktemp("schemathesis")
    settings_ = load_config(
        env={},
        overrides={
            "provider": "mock",
            "from_number": "+14155550199",
            "to_number": "+14155550100",
            "max_concurrent_calls": 3,
            "api": {"token": TOKEN},
            "store": {"url": f"sqlite:///{tmp / 'v.db'}"},
            "outbound": {"notify_hangup_delay_seconds": 0},
        },
    )
    with _Server(VoicecallApp(settings_, reaper_interval_seconds=0)) as running:
        yield running


def _operations(server: _Server) -> list[Any]:
    spec = httpx.get(server.url + "/api/openapi.json", timeout=10).json()
    schema = schemathesis.openapi.from_dict(spec)
    schema.config.update(base_url=server.url)
    ops = []
    for result in schema.get_all_operations():
        op = result.ok()
        if (op.method.upper(), op.path) not in SKIPPED:
            ops.append(op)
    return ops


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_every_answer_conforms_to_the_contract(server: _Server, mode: GenerationMode) -> None:
    operations = _operations(server)
    assert len(operations) >= 11
    for operation in operations:

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def check(case: Any) -> None:
            case.call_and_validate(headers=AUTH, timeout=30, excluded_checks=NOT_EXPRESSIBLE)

        check()
