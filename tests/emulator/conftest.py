"""Fixtures for the emulator's own tests: a running emulator and a signature-checking receiver.

The receiver is a tiny starlette app on loopback that validates every request with the official
``twilio`` package's ``RequestValidator`` (the oracle) and answers with configurable TwiML.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest_asyncio
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from twilio.request_validator import RequestValidator

from voicecall.emulator.pytest_plugin import (  # noqa: F401 - fixtures
    EmulatorCredentials,
    emulator,
    emulator_credentials,
)

ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
AUTH_TOKEN = "emulator-test-token"


@dataclass
class Received:
    method: str
    url: str
    path: str
    params: list[tuple[str, str]]
    headers: dict[str, str]
    signature_valid: bool

    @property
    def form(self) -> dict[str, str]:
        return dict(self.params)


Answer = (
    str
    | bytes
    | tuple[int, str]
    | tuple[int, bytes, str]
    | Callable[["Received"], "str | tuple[int, str]"]
)


@dataclass
class Receiver:
    validator: RequestValidator
    base_url: str = ""
    requests: list[Received] = field(default_factory=list)
    answers: dict[str, Answer] = field(default_factory=dict)
    delays: dict[str, float] = field(default_factory=dict)
    _tick: asyncio.Event = field(default_factory=asyncio.Event)

    def url(self, path: str) -> str:
        return self.base_url + path

    def on(self, path: str, answer: Answer) -> None:
        self.answers[path] = answer

    def at(self, path: str) -> list[Received]:
        return [r for r in self.requests if r.path == path]

    async def handle(self, request: Request) -> Response:
        body = await request.body()
        form = await request.form() if request.method == "POST" else None
        params = list(form.multi_items()) if form is not None else []
        params_s = [(k, v) for k, v in params if isinstance(v, str)]
        url = str(request.url)
        signature = request.headers.get("x-twilio-signature", "")
        valid = self.validator.validate(url, form if form is not None else {}, signature)
        del body
        rec = Received(
            request.method, url, request.url.path, params_s, dict(request.headers), valid
        )
        self.requests.append(rec)
        tick, self._tick = self._tick, asyncio.Event()
        tick.set()
        delay = self.delays.get(request.url.path)
        if delay:
            await asyncio.sleep(delay)
        answer = self.answers.get(request.url.path, "<Response/>")
        if callable(answer):
            answer = answer(rec)
        if isinstance(answer, bytes):
            return Response(answer, 200, media_type="audio/wav")
        if isinstance(answer, tuple) and len(answer) == 3:
            return Response(answer[1], answer[0], media_type=answer[2])
        status, text = (200, answer) if isinstance(answer, str) else answer
        return Response(text, status, media_type="application/xml")

    async def wait_for(
        self, predicate: Callable[[list[Received]], bool], timeout: float = 10.0
    ) -> list[Received]:
        async with asyncio.timeout(timeout):
            while not predicate(self.requests):
                tick = self._tick
                await tick.wait()
        return self.requests


@contextlib.asynccontextmanager
async def run_receiver(auth_token: str) -> AsyncIterator[Receiver]:
    receiver = Receiver(RequestValidator(auth_token))
    app = Starlette(routes=[Route("/{path:path}", receiver.handle, methods=["GET", "POST"])])
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    sock.setblocking(False)
    receiver.base_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    server = uvicorn.Server(
        uvicorn.Config(app, lifespan="off", log_level="warning", access_log=False, ws="none")
    )
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        await asyncio.sleep(0.005)
    try:
        yield receiver
    finally:
        server.should_exit = True
        await task


@pytest_asyncio.fixture
async def receiver(
    emulator_credentials: EmulatorCredentials,  # noqa: F811
) -> AsyncIterator[Receiver]:
    async with run_receiver(emulator_credentials.auth_token) as r:
        yield r


def basic_auth(creds: EmulatorCredentials) -> tuple[str, str]:
    return (creds.account_sid, creds.auth_token)


def noop(*_: Any) -> None:
    return None


def fast_config() -> Any:
    from voicecall.emulator.sim import SimConfig

    return SimConfig(
        words_per_minute=6000.0,
        min_say_seconds=0.02,
        initiate_delay=0.01,
        ring_delay=0.01,
        speech_auto_endpoint=0.03,
        dtmf_digit_seconds=0.01,
    )


@pytest_asyncio.fixture
async def fast(
    emulator_credentials: EmulatorCredentials,  # noqa: F811
) -> AsyncIterator[Any]:
    """An emulator whose clock-driven steps take milliseconds, not seconds."""
    from voicecall.emulator.runtime import Emulator

    async with Emulator(
        account_sid=emulator_credentials.account_sid,
        auth_token=emulator_credentials.auth_token,
        config=fast_config(),
        seed=7,
        default_script={"answer_after_ms": 30, "reply_delay_ms": 10},
    ) as emu:
        yield emu
