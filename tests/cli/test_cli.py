"""The CLI as a person uses it: a subprocess against a real server on loopback (mock provider)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import uvicorn

from voicecall.config import load_config
from voicecall.server.app import VoicecallApp


async def run_cli(
    *args: str, config: Path | None = None, url: str | None = None
) -> tuple[int, str, str]:
    cmd = [sys.executable, "-m", "voicecall.cli", *args]
    if config is not None:
        cmd += ["--config", str(config)]
    if url is not None:
        cmd += ["--url", url]
    proc = await asyncio.create_subprocess_exec(
        *cmd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "NO_COLOR": "1", "COLUMNS": "200"},
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode or 0, out.decode(), err.decode()


@contextlib.asynccontextmanager
async def server(
    tmp_path: Path, token: str | None = None
) -> AsyncIterator[tuple[VoicecallApp, str, Path]]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    sock.setblocking(False)
    port = sock.getsockname()[1]
    config = tmp_path / "voicecall.toml"
    lines = [
        'provider = "mock"',
        'from_number = "+14155550199"',
        "max_concurrent_calls = 3",
        f"[serve]\nport = {port}",
        f'[store]\nurl = "sqlite:///{tmp_path / "c.db"}"',
    ]
    if token:
        lines.append(f'[api]\ntoken = "{token}"')
    config.write_text("\n".join(lines) + "\n")
    app = VoicecallApp(load_config(config, env={}))
    srv = uvicorn.Server(uvicorn.Config(app, log_config=None, lifespan="on"))
    task = asyncio.create_task(srv.serve(sockets=[sock]))
    while not srv.started:
        await asyncio.sleep(0.01)
    try:
        yield app, f"http://127.0.0.1:{port}", config
    finally:
        srv.should_exit = True
        await asyncio.wait_for(task, 10)


async def test_init_writes_a_template_that_loads(tmp_path: Path) -> None:
    target = tmp_path / "v.toml"
    code, _, _ = await run_cli("init", str(target))
    assert code == 0 and target.exists()
    assert oct(target.stat().st_mode & 0o777) == "0o600"
    settings = load_config(target, env={})
    assert settings.from_number == "+14155550100"
    code, _, err = await run_cli("init", str(target))
    assert code != 0 and "exists" in err


async def test_call_status_calls_end_through_the_api(tmp_path: Path) -> None:
    async with server(tmp_path, token="s3cret-token-123") as (app, url, config):
        code, out, err = await run_cli(
            "call", "--to", "+14155550123", "--message", "Hello there", config=config
        )
        assert code == 0, err
        call_id = out.split()[1]
        assert len(call_id) == 32
        code, out, _ = await run_cli("status", "--call-id", call_id[:6], config=config)
        assert code == 0 and "Hello there" in out and "initiated" in out and call_id in out
        code, out, _ = await run_cli("calls", config=config)
        assert code == 0 and call_id[:12] in out  # long enough to be a unique prefix
        code, out, _ = await run_cli("end", "--call-id", call_id[:8], config=config)
        assert code == 0 and "hangup-bot" in out
        # bad input: one clear line, no traceback, nothing stored
        code, _, err = await run_cli("call", "--to", "12345", "--message", "x", config=config)
        assert code == 1 and "Traceback" not in err and "E.164" in err
        code, _, err = await run_cli("speak", "--call-id", "nope", "--message", "x", config=config)
        assert code == 1 and "no call" in err
        page = await app.manager.list_calls()
        assert len(page.calls) == 1
        # a wrong token is refused with a clear message
        code, _, err = await run_cli("calls", url=url)
        assert code == 1 and "Unauthorized" in err
        assert "s3cret-token-123" not in err


async def test_json_output_is_the_api_document_and_nothing_else(tmp_path: Path) -> None:
    async with server(tmp_path) as (_app, _url, config):
        code, out, err = await run_cli(
            "call", "--to", "+14155550123", "-m", "Hello there", "--json", config=config
        )
        assert code == 0, err
        placed = json.loads(out)  # the whole of stdout is one document
        assert placed["state"] == "initiated" and placed["answer"] is None
        assert {"call_id", "to", "from", "mode", "direction", "end_reason"} <= set(placed)
        call_id = placed["call_id"]
        code, out, _ = await run_cli("status", "--call-id", call_id[:7], "--json", config=config)
        doc = json.loads(out)
        assert doc["call_id"] == call_id and doc["transcript"][0]["text"] == "Hello there"
        code, out, _ = await run_cli("status", "--json", config=config)
        assert [c["call_id"] for c in json.loads(out)["calls"]] == [call_id]
        code, out, _ = await run_cli("calls", "--json", "--limit", "5", config=config)
        listed = json.loads(out)
        assert set(listed) == {"calls", "next_cursor"} and listed["calls"][0]["call_id"] == call_id
        code, out, _ = await run_cli("calls", "--json", "--ended", config=config)
        assert json.loads(out)["calls"] == []


async def test_unreachable_server_message(tmp_path: Path) -> None:
    code, _, err = await run_cli("calls", url="http://127.0.0.1:9")
    assert code == 1 and "voicecall serve" in err and "Traceback" not in err


async def test_serve_refuses_public_bind_without_token(tmp_path: Path) -> None:
    cfg = tmp_path / "v.toml"
    cfg.write_text('provider = "mock"\n[serve]\nbind = "0.0.0.0"\n')
    code, _, err = await run_cli("serve", config=cfg)
    assert code == 2 and "api.token" in err


async def test_doctor_reports_problems(tmp_path: Path) -> None:
    cfg = tmp_path / "v.toml"
    cfg.write_text('provider = "mock"\npublic_url = "http://example.com:8443/x"\n')
    code, out, _ = await run_cli("doctor", config=cfg)
    assert code == 1
    assert "FAIL public_url uses https:" in out and "FAIL public_url has no explicit port:" in out


@pytest.mark.parametrize("bad", ["[serve]\nport = 'x'\n", "nonsense = 1\n"])
async def test_bad_config_one_line(tmp_path: Path, bad: str) -> None:
    cfg = tmp_path / "v.toml"
    cfg.write_text(bad)
    code, _, err = await run_cli("calls", config=cfg)
    assert code == 2 and len(err.strip().splitlines()) == 1


async def _start_emulator(port: int, env: dict[str, str], *args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "voicecall.cli",
        "emulator",
        "--port",
        str(port),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**env, "NO_COLOR": "1"},
    )


async def _stop(proc: asyncio.subprocess.Process) -> tuple[str, str]:
    import signal

    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGINT)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), 20)
    except TimeoutError:
        proc.kill()
        out, err = await proc.communicate()
    return out.decode(), err.decode()


@pytest.mark.e2e
@pytest.mark.parametrize("token_from", ["env", "default"])
async def test_emulator_command_serves_on_loopback(token_from: str) -> None:
    import httpx

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("EMULATOR_")}
    sid = "AC" + "5" * 32
    if token_from == "env":
        token = "emu-secret-tok-42"
        env |= {"EMULATOR_ACCOUNT_SID": sid, "EMULATOR_AUTH_TOKEN": token}
    else:
        sid, token = "AC" + "0" * 32, "emulator-token"
    proc = await _start_emulator(port, env)
    base = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=base, timeout=5) as c:
            health = None
            for _ in range(300):  # bounded: up to ~30 s for the process to start
                if proc.returncode is not None:
                    break
                try:
                    health = await c.get("/_emulator/health", auth=(sid, token))
                    break
                except httpx.TransportError:
                    await asyncio.sleep(0.1)
            assert health is not None and health.status_code == 200, await _stop(proc)
            assert health.json()["ok"] is True
            bad = await c.get(f"/2010-04-01/Accounts/{sid}/Calls.json", auth=(sid, "wrong"))
            assert bad.status_code == 401
            body = bad.json()
            assert body["code"] == 20003 and body["status"] == 401
            assert set(body) >= {"code", "message", "more_info", "status"}
            assert bad.headers["www-authenticate"].lower().startswith("basic")
            ok = await c.get(f"/2010-04-01/Accounts/{sid}/Calls.json", auth=(sid, token))
            assert ok.status_code == 200 and ok.json()["calls"] == []
    finally:
        out, err = await _stop(proc)
    assert f"listening on {base}" in out
    assert f"credentials: account {sid}" in err and "Traceback" not in err
    if token_from == "env":
        assert "auth token from EMULATOR_AUTH_TOKEN" in err and token not in err + out
    else:
        assert "WELL-KNOWN default auth token 'emulator-token'" in err


async def test_emulator_command_refuses_default_token_off_loopback() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EMULATOR_")}
    proc = await _start_emulator(9, env, "--host", "0.0.0.0")  # refused, never bound
    _, err_b = await asyncio.wait_for(proc.communicate(), 60)  # exits by itself
    err = err_b.decode()
    assert proc.returncode == 2 and "refusing the well-known auth token" in err
    code, out, _ = await run_cli("emulator", "load", "--help")
    assert code == 0 and "voicecall emulator load" in out and "--streams" in out


async def test_forget_erases_a_callers_memory_through_the_api(tmp_path: Path) -> None:
    caller = "+14155550123"
    async with server(tmp_path, token="s3cret-token-123") as (app, _url, config):
        assert app.manager is not None
        store = app.manager.store
        limits = {"max_entries": 10, "max_chars": 400, "max_callers": 100, "now": 1.0}
        await store.remember_caller(caller, "2026-11-20: asked about a table", **limits)
        await store.remember_caller("+14155550124", "someone else", **limits)
        code, out, err = await run_cli("forget", "--caller", caller, config=config)
        assert code == 0 and f"forgot {caller}" in out, err
        assert await store.caller_notes(caller) == []
        assert await store.caller_notes("+14155550124") == ["someone else"]  # only that caller
        code, out, _ = await run_cli("forget", "--caller", caller, config=config)
        assert code == 0 and "nothing was remembered" in out
        code, _, err = await run_cli("forget", "--caller", "12345", config=config)
        assert code == 1 and "Traceback" not in err and "E.164" in err


async def test_do_not_call_list_and_audit_from_the_cli(tmp_path: Path) -> None:
    async with server(tmp_path, token="s3cret-token-456") as (app, _, config):
        code, out, err = await run_cli(
            "block", "+14155550123", "--reason", "asked us not to call", config=config
        )
        assert code == 0, err
        assert "blocked +14155550123 (asked us not to call)" in out
        code, out, _ = await run_cli("blocked", config=config)
        assert code == 0 and "+14155550123" in out and "asked us not to call" in out
        # refused: one line naming the rule, nothing dialled
        code, _, err = await run_cli(
            "call", "--to", "+14155550123", "--message", "Hi", config=config
        )
        assert code == 1 and "do-not-call list" in err and "Traceback" not in err
        code, _, err = await run_cli(
            "call", "--to", "+19005550123", "--message", "Hi", config=config
        )
        assert code == 1 and "premium-rate" in err
        code, _, err = await run_cli(
            "call", "--to", "+1415ABC0100", "--message", "Hi", config=config
        )
        assert code == 1 and "letters" in err
        assert (await app.manager.list_calls()).calls == []
        code, out, _ = await run_cli("unblock", "+14155550123", config=config)
        assert code == 0 and "unblocked +14155550123" in out
        code, _, err = await run_cli("unblock", "+14155550123", config=config)
        assert code == 1 and "not on the do-not-call list" in err
        code, out, err = await run_cli(
            "call", "--to", "+14155550123", "--message", "Hi", config=config
        )
        assert code == 0, err
        code, out, _ = await run_cli("audit", config=config)
        assert code == 0 and "placed" in out and "refused" in out
        assert "do_not_call" in out and "outbound.allowed_number_types" in out
        assert "s3cret" not in out
        entries = await app.manager.outbound.audit(limit=10)
        assert {e.surface for e in entries} == {"cli"}


async def test_latency_per_stage_from_the_cli(tmp_path: Path) -> None:
    from voicecall.calls.model import (
        CallMode,
        CallRecord,
        Direction,
        Speaker,
        TranscriptEntry,
        new_call_id,
    )

    async with server(tmp_path) as (app, _, config):
        store = app.manager.store
        code, out, _ = await run_cli("latency", config=config)
        assert code == 0 and "no measured replies yet" in out
        call = CallRecord(
            call_id=new_call_id(),
            direction=Direction.INBOUND,
            mode=CallMode.CONVERSATION,
            from_number="+14155550123",
            to_number="+14155550199",
            created_at=1.0,
            updated_at=1.0,
        )
        lines = [TranscriptEntry(call.call_id, 0, Speaker.BOT, "Hello.", 1.0)]
        for i in range(1, 11):
            lines.append(TranscriptEntry(call.call_id, 2 * i - 1, Speaker.USER, "Hi.", 2.0 * i))
            lines.append(TranscriptEntry(call.call_id, 2 * i, Speaker.BOT, "Sure.", 2.0 * i + 1))
        await store.commit(call, transcript=lines)
        for i in range(1, 11):  # voice to voice 700, 800, ... 1600 ms
            v2v = 600.0 + 100 * i
            await store.set_latency(
                call.call_id,
                2 * i,
                {
                    "speech_end_stream_ms": 1000 * i,
                    "end_of_turn_ms": 300.0,
                    "stt_ms": v2v - 420.0,
                    "responder_ms": 5.0,
                    "tts_ms": 100.0,
                    "overhead_ms": 15.0,
                    "voice_to_voice_ms": v2v,
                    "marks": {},
                },
            )
        code, out, err = await run_cli(
            "latency", "--call-id", call.call_id[:8], "--turns", config=config
        )
        assert code == 0, err
        assert "latency of the last 10 replies" in out
        v2v_row = next(ln for ln in out.splitlines() if "voice to voice" in ln)
        assert v2v_row.split()[3:7] == ["1150", "1555", "1600", "10"]  # p50, p95, max, n
        assert "voicecall's own" in out
        code, out, _ = await run_cli("latency", "--last", "2", "--json", config=config)
        doc = json.loads(out)
        assert [t["seq"] for t in doc["turns"]] == [20, 18]
        assert doc["stages"]["voice_to_voice"] == {
            "count": 2,
            "p50": 1550.0,
            "p95": 1595.0,
            "max": 1600.0,
        }
        code, _, err = await run_cli("latency", "--call-id", "abc", config=config)
        assert code == 1 and "Traceback" not in err
        # the call's transcript shows each measured reply's voice-to-voice time
        code, out, _ = await run_cli("status", "--call-id", call.call_id[:8], config=config)
        assert code == 0 and "Sure. (1600 ms)" in out
