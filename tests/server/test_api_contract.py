"""The control API's front door and contract, in-process (mock provider, real SQLite):
authentication before parsing, problem+json everywhere, ``Allow`` on 405, the OpenAPI document,
text clients may send, and the outbound policy's routes and audit trail."""

from __future__ import annotations

import re
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fakes"))

from voicecall_server import MockPhone

from voicecall.agent.client import Client, ClientError
from voicecall.config import load_config
from voicecall.server.app import VoicecallApp

TOKEN = "api-test-token"
FROM = "+14155550199"
TO = "+14155550100"
AUTH = {"authorization": f"Bearer {TOKEN}"}


@dataclass
class Api:
    app: VoicecallApp
    http: httpx.AsyncClient
    phone: MockPhone

    async def call_count(self) -> int:
        assert self.app.manager is not None
        return len((await self.app.manager.list_calls(limit=500)).calls)


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    settings = load_config(
        env={},
        overrides={
            "provider": "mock",
            "from_number": FROM,
            "to_number": TO,
            "max_concurrent_calls": 5,
            "api": {"token": TOKEN},
            "store": {"url": f"sqlite:///{tmp_path / 'v.db'}"},
            "outbound": {"notify_hangup_delay_seconds": 0},
        },
    )
    app = VoicecallApp(settings, reaper_interval_seconds=0)
    await app.startup()
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as http:
        yield Api(app, http, MockPhone(app, "http://api.test", http))
    await app.shutdown()


# -- defect 6: authenticate before parsing -------------------------------------------------------

UNAUTHENTICATED = [
    ("PUT", "/api/calls", None, None),  # 405 before
    ("DELETE", "/api/calls/x", None, None),  # 405 before
    ("POST", "/api/calls", b"{not json", "application/json"),  # 422 before
    ("POST", "/api/calls", b"to=+1", "text/plain"),  # 422 before
    ("POST", "/api/calls", b'{"message": ""}', "application/json"),  # 422 before
    ("GET", "/api/calls?limit=abc", None, None),  # 422 before
    ("GET", "/api/nowhere", None, None),  # 404 before
    ("POST", "/api/calls/x/speak", b"{}", "application/json"),
    ("POST", "/api/calls/x/end", b"[", "application/json"),
    ("DELETE", "/api/blocked/not-a-number", None, None),
    ("GET", "/api/audit?limit=0", None, None),
    ("PATCH", "/api/blocked/+14155550100", None, None),
    ("GET", "/api/events", None, None),
    ("GET", "/api", None, None),
]


@pytest.mark.parametrize(("method", "path", "body", "ctype"), UNAUTHENTICATED)
@pytest.mark.parametrize("token", [None, "wrong-token"])
async def test_unauthenticated_requests_get_401_before_anything_else(
    api: Api, method: str, path: str, body: bytes | None, ctype: str | None, token: str | None
) -> None:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    if ctype:
        headers["content-type"] = ctype
    r = await api.http.request(method, path, content=body, headers=headers)
    assert r.status_code == 401, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert r.headers["www-authenticate"] == "Bearer"
    assert r.json()["title"] == "Unauthorized"
    assert "allow" not in r.headers
    assert await api.call_count() == 0


async def test_the_contract_and_its_docs_stay_public(api: Api) -> None:
    assert (await api.http.get("/api/openapi.json")).status_code == 200
    assert (await api.http.get("/api/docs")).status_code == 200


# -- defect 9: 405 carries Allow; the OpenAPI contract --------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("PUT", "/api/calls", "GET, POST"),
        ("DELETE", "/api/calls/abc", "GET"),
        ("GET", "/api/calls/abc/speak", "POST"),
        ("PUT", "/api/blocked/+14155550100", "DELETE, POST"),
        ("POST", "/api/audit", "GET"),
    ],
)
async def test_405_lists_every_allowed_method(api: Api, method: str, path: str, allow: str) -> None:
    r = await api.http.request(method, path, headers=AUTH)
    assert r.status_code == 405
    assert r.headers["allow"] == allow
    assert r.headers["content-type"] == "application/problem+json"


async def test_every_operation_documents_its_problem_answers(api: Api) -> None:
    doc = (await api.http.get("/api/openapi.json")).json()
    schemas = doc["components"]["schemas"]
    assert "HTTPValidationError" not in schemas and "ValidationError" not in schemas
    assert set(schemas["Problem"]["properties"]) == {"type", "title", "status", "detail", "rule"}
    assert doc["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    documented: dict[tuple[str, str], set[str]] = {}
    for path, operations in doc["paths"].items():
        for method, op in operations.items():
            responses = op["responses"]
            documented[(method.upper(), path)] = set(responses)
            assert op["security"] == [{"bearerAuth": []}]
            for status, answer in responses.items():
                if int(status) < 400:
                    continue
                assert answer["content"] == {
                    "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
                }, (method, path, status)
            assert {"401", "503"} <= set(responses), (method, path)
    assert {"403", "415", "422", "429", "502"} <= documented[("POST", "/api/calls")]
    assert "504" in documented[("POST", "/api/calls/{call_id}/continue")]
    assert {"404", "409", "415"} <= documented[("POST", "/api/calls/{call_id}/speak")]
    assert "422" in documented[("GET", "/api/calls/{call_id}")]  # ?wait= out of range
    assert {"200", "201"} <= documented[("POST", "/api/blocked/{number}")]


async def test_a_blank_message_is_invalid_in_the_schema_too(api: Api) -> None:
    doc = (await api.http.get("/api/openapi.json")).json()
    message = doc["components"]["schemas"]["PlaceCall"]["properties"]["message"]
    # optional (a task call's agent opens by itself): the text rule is one branch of anyOf
    (text,) = [s for s in message.get("anyOf", [message]) if s.get("type") == "string"]
    pattern = re.compile(text["pattern"])
    assert pattern.search("Hello") and pattern.search("  Hello\n")
    for blank in ("   ", "\n\t", "\u00a0\u3000"):
        assert not pattern.search(blank)
        r = await api.http.post("/api/calls", json={"message": blank}, headers=AUTH)
        assert r.status_code == 422 and "message" in r.json()["detail"]
    assert await api.call_count() == 0


# -- defect 3, client half: control characters in text clients send ------------------------------


@pytest.mark.parametrize("bad", ["a\x00b", "\x1b[31mred", "bell\x07", "del\x7f", "c1\x85"])
async def test_control_characters_are_refused_naming_the_field(api: Api, bad: str) -> None:
    # before the fix a NUL went through to the store and came back as a 503 (StoreError)
    r = await api.http.post("/api/calls", json={"message": bad}, headers=AUTH)
    assert r.status_code == 422, r.text
    assert r.json()["detail"].startswith("message: contains the control character U+")
    assert await api.call_count() == 0

    placed = await api.http.post("/api/calls", json={"message": "Hi"}, headers=AUTH)
    call_id = placed.json()["call_id"]
    await api.phone.answer(call_id)
    assert api.app.manager is not None
    lines_before = len(await api.app.manager.transcript(call_id))
    for path, body in [
        (f"/api/calls/{call_id}/speak", {"message": bad}),
        (f"/api/calls/{call_id}/continue", {"message": bad, "timeout_seconds": 1}),
        (f"/api/calls/{call_id}/end", {"message": bad}),
        ("/api/blocked/+14155550101", {"reason": bad}),
    ]:
        r = await api.http.post(path, json=body, headers=AUTH)
        assert r.status_code == 422, (path, r.text)
        field = "reason" if "blocked" in path else "message"
        assert r.json()["detail"].startswith(f"{field}: contains the control character")
    assert len(await api.app.manager.transcript(call_id)) == lines_before
    assert (await api.app.manager.get_call(call_id)).is_terminal is False
    assert await api.app.manager.outbound.blocked() == []


async def test_tabs_and_newlines_are_fine(api: Api) -> None:
    r = await api.http.post(
        "/api/calls", json={"message": "Line one.\n\tLine two.\r\n"}, headers=AUTH
    )
    assert r.status_code == 201


async def test_a_body_that_is_not_json_is_415(api: Api) -> None:
    for ctype in ("text/plain", "application/x-www-form-urlencoded", None):
        headers = dict(AUTH)
        if ctype:
            headers["content-type"] = ctype
        r = await api.http.post("/api/calls", content=b'{"message": "hi"}', headers=headers)
        assert r.status_code == 415, ctype
        assert r.headers["content-type"] == "application/problem+json"
    ok = await api.http.post(
        "/api/calls",
        content=b'{"message": "hi"}',
        headers={**AUTH, "content-type": "application/json; charset=utf-8"},
    )
    assert ok.status_code == 201
    # no body where the body is optional: fine without a content type
    ended = await api.http.post(f"/api/calls/{ok.json()['call_id']}/end", headers=AUTH)
    assert ended.status_code == 200
    assert await api.call_count() == 1


# -- the outbound policy over the API ----------------------------------------------------------


async def test_refusals_are_problems_naming_the_rule_and_are_audited(api: Api) -> None:
    r = await api.http.post(
        "/api/calls",
        json={"to": "+19005550123", "message": "hi"},
        headers={**AUTH, "x-voicecall-client": "mcp"},
    )
    assert r.status_code == 403
    problem = r.json()
    assert problem["title"] == "OutboundRefused" and problem["rule"] == (
        "outbound.allowed_number_types"
    )
    assert "premium-rate" in problem["detail"]
    r = await api.http.post(
        "/api/calls", json={"to": "+1415ABC0100", "message": "hi"}, headers=AUTH
    )
    assert r.status_code == 422 and r.json()["detail"].startswith("to: '+1415ABC0100'")
    r = await api.http.post(
        "/api/calls", json={"message": "hi"}, headers={**AUTH, "x-voicecall-client": "cli"}
    )
    assert r.status_code == 201
    r = await api.http.post(
        "/api/calls", json={"message": "hi"}, headers={**AUTH, "x-voicecall-client": "shell"}
    )
    assert r.status_code == 422 and "x-voicecall-client" in r.json()["detail"]
    audit = (await api.http.get("/api/audit", headers=AUTH)).json()
    entries = audit["entries"]
    assert [(e["outcome"], e["surface"]) for e in entries] == [
        ("placed", "cli"),
        ("refused", "mcp"),
    ]
    assert entries[0]["call_id"] and entries[1]["rule"] == "outbound.allowed_number_types"
    fingerprint = entries[0]["token_fingerprint"]
    assert fingerprint and fingerprint.startswith("tk_") and TOKEN not in str(audit)
    assert audit["next_before"] is None


async def test_do_not_call_list_through_the_python_client(api: Api) -> None:
    transport = httpx.ASGITransport(app=api.app)
    async with Client("http://api.test", TOKEN, transport=transport) as vc:
        entry = await vc.block(TO, "asked not to be called again")
        assert entry.number == TO and entry.reason == "asked not to be called again"
        assert (await vc.block(TO)).reason == "asked not to be called again"  # idempotent
        assert [e.number for e in await vc.blocked()] == [TO]
        with pytest.raises(ClientError) as info:
            await vc.call(TO, "Hi")
        assert info.value.status == 403 and info.value.rule == "do_not_call"
        assert "outbound policy" in str(info.value)
        assert await vc.unblock(TO) is True
        assert await vc.unblock(TO) is False
        await vc.call(TO, "Hi")
        entries, more = await vc.audit(limit=1)
        assert more is not None and entries[0]["surface"] == "python"
        older, _ = await vc.audit(limit=5, before=more)
        assert [e["rule"] for e in older] == ["do_not_call"]
        with pytest.raises(ClientError) as info:
            await vc.block("+1 415 555 0100")
        assert info.value.status == 422 and "did you mean +14155550100" in str(info.value)


async def test_limits_are_429_with_the_rule(api: Api) -> None:
    for _ in range(5):
        assert (await api.http.post("/api/calls", json={"message": "x"}, headers=AUTH)).is_success
    r = await api.http.post("/api/calls", json={"message": "x"}, headers=AUTH)
    assert r.status_code == 429 and r.json()["rule"] == "max_concurrent_calls"
    assert r.json()["title"] == "TooManyCalls"
