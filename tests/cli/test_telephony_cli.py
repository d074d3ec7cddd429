"""`voicecall dtmf` and `voicecall transfer` as a person uses them: a subprocess against a real
server on loopback (mock provider, real SQLite)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

from voicecall.events import CallEvent, EventKind
from voicecall.providers.base import ParsedWebhook, WebhookKind

_spec = importlib.util.spec_from_file_location(
    "cli_harness", Path(__file__).with_name("test_cli.py")
)
assert _spec is not None and _spec.loader is not None
_harness = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_harness)
run_cli = _harness.run_cli
server = _harness.server


async def test_dtmf_and_transfer_commands(tmp_path: Path) -> None:
    async with server(tmp_path) as (app, _url, config):
        code, out, err = await run_cli(
            "call",
            "--to",
            "+14155550123",
            "-m",
            "Hello.",
            "--mode",
            "conversation",
            "--json",
            config=config,
        )
        assert code == 0, err
        call_id = json.loads(out)["call_id"]
        record = await app.manager.get_call(call_id)
        sid = record.provider_call_id
        await app.manager.handle_webhook(
            ParsedWebhook(
                kind=WebhookKind.VOICE,
                provider_call_id=sid,
                call_id=call_id,
                events=(
                    CallEvent(
                        kind=EventKind.ANSWERED,
                        dedupe_key=f"t:{sid}:voice",
                        provider_call_id=sid,
                        call_id=call_id,
                    ),
                ),
                inbound=False,
                from_number="+14155550199",
                to_number="+14155550123",
            )
        )
        code, out, err = await run_cli("dtmf", call_id[:8], "1w2#", config=config)
        assert code == 0, err
        assert "pressed 1w2#" in out and "(play)" in out
        code, out, err = await run_cli("dtmf", call_id, "9", "--json", config=config)
        assert code == 0 and json.loads(out)["digits"] == "9", err
        code, _, err = await run_cli("dtmf", call_id, "12x", config=config)
        assert code == 1 and "digits" in err and "Traceback" not in err
        code, _, err = await run_cli(
            "transfer", call_id, "+14155550177", "--mode", "tepid", config=config
        )
        assert code == 2 and "--mode" in err
        code, _, err = await run_cli(
            "transfer", call_id, "+14155550177", "--mode", "warm", config=config
        )
        assert code == 1 and "summary" in err
        code, out, err = await run_cli("transfer", call_id, "+14155550177", "--json", config=config)
        assert code == 0, err
        doc = json.loads(out)
        assert doc["state"] == "transferred" and doc["transfer"]["status"] == "handed-over"
        code, _, err = await run_cli("dtmf", call_id, "1", config=config)
        assert code == 1 and "ended" in err
