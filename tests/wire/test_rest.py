"""Twilio REST client against httpx.MockTransport: request shape, error mapping, retries."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

import httpx
import pytest
from pydantic import SecretStr

from voicecall.errors import (
    CallNotFound,
    InvalidCallState,
    ProviderAuthError,
    ProviderError,
    ProviderRateLimited,
    ProviderUnavailable,
)
from voicecall.twilio.rest import (
    DEFAULT_TIMEOUT,
    CallOutcomeUnknown,
    CallResource,
    RetryPolicy,
    TwilioRest,
)
from voicecall.twilio.webhooks import CallStatus

ACCOUNT = "AC" + "a" * 32
TOKEN = "s3cr3t-auth-token-value"
SID = "CA" + "0123456789abcdef" * 2
BASE = "https://api.twilio.test"
CALLS = f"/2010-04-01/Accounts/{ACCOUNT}/Calls"

Handler = Callable[[httpx.Request], httpx.Response]


def call_json(status: str = "queued", **extra: Any) -> dict[str, Any]:
    return {
        "sid": SID,
        "status": status,
        "direction": "outbound-api",
        "from": "+15017122661",
        "to": "+15558675310",
        "duration": None,
        "start_time": None,
        "end_time": None,
        "uri": f"{CALLS}/{SID}.json",
        **extra,
    }


def twilio_error(status: int, code: int | None, message: str = "boom") -> httpx.Response:
    body: dict[str, Any] = {"message": message, "status": status}
    if code is not None:
        body["code"] = code
        body["more_info"] = f"https://www.twilio.com/docs/errors/{code}"
    return httpx.Response(status, json=body)


class Recorder:
    """Replays a script of responses (or exceptions) and records every request."""

    def __init__(self, *script: httpx.Response | Exception | Handler) -> None:
        self.script = list(script)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        step = self.script.pop(0) if len(self.script) > 1 else self.script[0]
        if isinstance(step, Exception):
            if isinstance(step, httpx.RequestError):
                step._request = request  # httpx wants the request on transport errors
            raise step
        if callable(step):
            return step(request)
        return step


class Sleeps:
    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


def make(
    *script: httpx.Response | Exception | Handler, jitter: float = 0.0, **policy: Any
) -> tuple[TwilioRest, Recorder, Sleeps]:
    recorder = Recorder(*script)
    sleeps = Sleeps()
    client = httpx.AsyncClient(transport=httpx.MockTransport(recorder))
    retry = RetryPolicy(sleep=sleeps, random=lambda: 0.5, jitter=jitter, **policy)
    rest = TwilioRest(
        client, account_sid=ACCOUNT, auth_token=SecretStr(TOKEN), base_url=BASE + "/", retry=retry
    )
    return rest, recorder, sleeps


def form_of(request: httpx.Request) -> list[tuple[str, str]]:
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    return parse_qsl(request.content.decode(), keep_blank_values=True, strict_parsing=True)


CREATE = {
    "to": "+15558675310",
    "from_": "+15017122661",
    "url": "https://voice.example.com/twilio/voice?callId=c1&kind=voice",
    "status_callback": "https://voice.example.com/twilio/voice?callId=c1&kind=status",
    "timeout": 30,
}


# -- request shape --------------------------------------------------------------------------------


async def test_create_call_request_shape() -> None:
    rest, rec, _ = make(httpx.Response(201, json=call_json()))
    call = await rest.create_call(**CREATE, time_limit=600, machine_detection="Enable")
    (req,) = rec.requests
    assert req.method == "POST"
    assert str(req.url) == f"{BASE}{CALLS}.json"
    expected_auth = base64.b64encode(f"{ACCOUNT}:{TOKEN}".encode()).decode()
    assert req.headers["authorization"] == f"Basic {expected_auth}"
    assert req.headers["accept"] == "application/json"
    assert form_of(req) == [
        ("To", "+15558675310"),
        ("From", "+15017122661"),
        ("Url", CREATE["url"]),
        ("Method", "POST"),
        ("StatusCallback", CREATE["status_callback"]),
        ("StatusCallbackMethod", "POST"),
        ("StatusCallbackEvent", "initiated"),
        ("StatusCallbackEvent", "ringing"),
        ("StatusCallbackEvent", "answered"),
        ("StatusCallbackEvent", "completed"),
        ("Timeout", "30"),
        ("TimeLimit", "600"),
        ("MachineDetection", "Enable"),
    ]
    timeouts = req.extensions["timeout"]
    assert timeouts == DEFAULT_TIMEOUT.as_dict()
    assert call == CallResource(
        sid=SID, status=CallStatus.QUEUED, direction="outbound-api", from_="+15017122661",
        to="+15558675310",
    )  # fmt: skip


async def test_create_call_argument_checks() -> None:
    rest, rec, _ = make(httpx.Response(201, json=call_json()))
    for bad in (
        {"timeout": 0},
        {"timeout": 601},
        {"machine_detection": "Maybe"},
        {"status_callback_events": ("answered", "hungup")},
        {"url": "ftp://x"},
        {"time_limit": 0},
    ):
        with pytest.raises(ValueError):
            await rest.create_call(**{**CREATE, **bad})
    assert rec.requests == []


async def test_fetch_parses_resource() -> None:
    body = call_json(
        "completed",
        duration="62",
        start_time="Fri, 08 Jan 2016 17:18:38 +0000",
        end_time="Fri, 08 Jan 2016 17:19:40 +0000",
    )
    rest, rec, _ = make(httpx.Response(200, json=body))
    call = await rest.fetch(SID)
    assert rec.requests[0].method == "GET"
    assert str(rec.requests[0].url) == f"{BASE}{CALLS}/{SID}.json"
    assert call.status is CallStatus.COMPLETED and call.duration == 62
    assert call.start_time == datetime(2016, 1, 8, 17, 18, 38, tzinfo=UTC)
    assert call.end_time == datetime(2016, 1, 8, 17, 19, 40, tzinfo=UTC)


async def test_hangup_cancel_redirect_shapes() -> None:
    rest, rec, _ = make(httpx.Response(200, json=call_json("completed")))
    assert await rest.hangup(SID) is True
    assert await rest.cancel(SID) is True
    await rest.redirect(SID, twiml="<Response><Hangup/></Response>")
    await rest.redirect(SID, url="https://voice.example.com/twilio/voice?kind=voice")
    assert all(str(r.url) == f"{BASE}{CALLS}/{SID}.json" for r in rec.requests)
    assert [form_of(r) for r in rec.requests] == [
        [("Status", "completed")],
        [("Status", "canceled")],
        [("Twiml", "<Response><Hangup/></Response>")],
        [("Url", "https://voice.example.com/twilio/voice?kind=voice"), ("Method", "POST")],
    ]


async def test_redirect_and_sid_argument_checks() -> None:
    rest, rec, _ = make(httpx.Response(200, json=call_json()))
    with pytest.raises(ValueError):
        await rest.redirect(SID)
    with pytest.raises(ValueError):
        await rest.redirect(SID, twiml="<Response/>", url="https://x/y")
    with pytest.raises(ValueError):
        await rest.redirect(SID, twiml="x" * 4001)
    with pytest.raises(ValueError):
        await rest.fetch("CA../../Accounts")
    assert rec.requests == []


async def test_list_calls() -> None:
    other = call_json("in-progress", sid="CA" + "1" * 32)
    rest, rec, _ = make(httpx.Response(200, json={"calls": [call_json(), other], "page": 0}))
    calls = await rest.list_calls(to="+15558675310", status="in-progress", page_size=20)
    (req,) = rec.requests
    assert req.url.path == f"{CALLS}.json"
    assert list(req.url.params.multi_items()) == [
        ("To", "+15558675310"),
        ("Status", "in-progress"),
        ("PageSize", "20"),
    ]
    assert [c.status for c in calls] == [CallStatus.QUEUED, CallStatus.IN_PROGRESS]


# -- error mapping --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("response", "exc_type", "code"),
    [
        (twilio_error(401, 20003, "Authenticate"), ProviderAuthError, 20003),
        (twilio_error(400, 21211, "Invalid 'To' Phone Number"), ProviderError, 21211),
        (twilio_error(400, 21212, "Invalid 'From'"), ProviderError, 21212),
        (twilio_error(400, 21210, "not verified"), ProviderError, 21210),
        (twilio_error(404, 20404, "not found"), CallNotFound, 20404),
        (twilio_error(400, 21220, "not in-progress"), InvalidCallState, 21220),
        (httpx.Response(404, text="<html>nope</html>"), CallNotFound, None),
        (httpx.Response(403, text="forbidden"), ProviderError, None),
    ],
)
async def test_error_mapping(
    response: httpx.Response, exc_type: type[Exception], code: int | None
) -> None:
    rest, rec, _ = make(response)
    with pytest.raises(exc_type) as info:
        await rest.fetch(SID)
    assert type(info.value) is exc_type
    assert isinstance(info.value, ProviderError)
    assert info.value.code == code and info.value.status == response.status_code
    assert len(rec.requests) == 1  # 4xx are not retried


@pytest.mark.parametrize(
    ("script", "exc_type"),
    [
        ((twilio_error(429, 20429, "Too Many Requests"),), ProviderRateLimited),
        ((twilio_error(503, None, "down"),), ProviderUnavailable),
        ((httpx.ConnectError("refused"),), ProviderUnavailable),
        ((httpx.ReadTimeout("slow"),), ProviderUnavailable),
        ((httpx.RemoteProtocolError("garbled"),), ProviderUnavailable),
    ],
)
async def test_retryable_errors_exhaust_attempts(
    script: tuple[Any, ...], exc_type: type[Exception]
) -> None:
    rest, rec, sleeps = make(*script)
    with pytest.raises(exc_type):
        await rest.fetch(SID)
    assert len(rec.requests) == 4
    assert sleeps.delays == [0.25, 0.5, 1.0]


async def test_retry_then_success_with_backoff_and_jitter() -> None:
    rest, rec, sleeps = make(
        twilio_error(500, None), httpx.ConnectTimeout("t"), httpx.Response(200, json=call_json()),
        jitter=0.2, base_delay=1.0, max_delay=1.5,
    )  # fmt: skip
    assert (await rest.fetch(SID)).sid == SID
    assert len(rec.requests) == 3
    # random() = 0.5 with jitter 0.2 removes 10% of each delay; the second is capped at 1.5.
    assert sleeps.delays == pytest.approx([0.9, 1.35])


async def test_retry_after_honoured_and_capped() -> None:
    limited = httpx.Response(
        429, json={"code": 20429, "message": "slow down"}, headers={"Retry-After": "3"}
    )
    huge = httpx.Response(429, json={"code": 20429}, headers={"Retry-After": "3600"})
    rest, rec, sleeps = make(limited, huge, httpx.Response(200, json=call_json()))
    await rest.fetch(SID)
    assert sleeps.delays == [3.0, 30.0]
    assert len(rec.requests) == 3


async def test_retry_after_http_date() -> None:
    limited = httpx.Response(
        429,
        json={"code": 20429},
        headers={
            "Retry-After": "Fri, 08 Jan 2016 17:18:45 GMT",
            "Date": "Fri, 08 Jan 2016 17:18:38 GMT",
        },
    )
    rest, _, sleeps = make(limited, httpx.Response(200, json=call_json()))
    await rest.fetch(SID)
    assert sleeps.delays == [7.0]


async def test_auth_error_not_retried() -> None:
    rest, rec, sleeps = make(twilio_error(401, 20003))
    with pytest.raises(ProviderAuthError):
        await rest.hangup(SID)
    assert len(rec.requests) == 1 and sleeps.delays == []


# -- create_call is not blindly retried -----------------------------------------------------------


@pytest.mark.parametrize(
    "failure",
    [
        httpx.ReadTimeout("read"),
        httpx.WriteTimeout("write"),
        httpx.ReadError("reset"),
        twilio_error(500, None),
        twilio_error(503, None),
    ],
)
async def test_create_not_retried_when_request_may_have_arrived(failure: Any) -> None:
    rest, rec, sleeps = make(failure, httpx.Response(201, json=call_json()))
    with pytest.raises(CallOutcomeUnknown) as info:
        await rest.create_call(**CREATE)
    assert isinstance(info.value, ProviderUnavailable)
    assert info.value.maybe_created is True
    assert len(rec.requests) == 1 and sleeps.delays == []


@pytest.mark.parametrize(
    "failure",
    [
        httpx.ConnectError("refused"),
        httpx.ConnectTimeout("connect"),
        httpx.PoolTimeout("pool"),
        twilio_error(429, 20429),
    ],
)
async def test_create_retried_when_never_processed(failure: Any) -> None:
    rest, rec, sleeps = make(failure, httpx.Response(201, json=call_json()))
    call = await rest.create_call(**CREATE)
    assert call.sid == SID
    assert len(rec.requests) == 2 and len(sleeps.delays) == 1


@pytest.mark.parametrize(
    "failure", [httpx.ReadTimeout("read"), httpx.WriteTimeout("write"), httpx.ReadError("reset")]
)
async def test_redirect_not_repeated_when_it_may_have_taken_effect(failure: Any) -> None:
    # the soak found it: a redirect that timed out had reached Twilio, the callee answered the
    # new <Gather>, and the repeat started that <Gather> again (its second answer was lost)
    rest, rec, sleeps = make(failure, httpx.Response(200, json=call_json()))
    with pytest.raises(ProviderUnavailable) as info:
        await rest.redirect(SID, twiml="<Response><Hangup/></Response>")
    assert info.value.maybe_applied is True
    assert len(rec.requests) == 1 and sleeps.delays == []


@pytest.mark.parametrize(
    "failure", [httpx.ConnectError("refused"), twilio_error(429, 20429), twilio_error(503, None)]
)
async def test_redirect_repeated_after_an_answer_or_no_connection(failure: Any) -> None:
    rest, rec, sleeps = make(failure, httpx.Response(200, json=call_json()))
    await rest.redirect(SID, twiml="<Response><Hangup/></Response>")
    assert len(rec.requests) == 2 and len(sleeps.delays) == 1


async def test_create_connect_failures_exhausted_are_not_maybe_created() -> None:
    rest, rec, _ = make(httpx.ConnectError("refused"))
    with pytest.raises(ProviderUnavailable) as info:
        await rest.create_call(**CREATE)
    assert not isinstance(info.value, CallOutcomeUnknown)
    assert getattr(info.value, "maybe_created", False) is False
    assert len(rec.requests) == 4


async def test_create_client_error_not_retried() -> None:
    rest, rec, _ = make(twilio_error(400, 21211, "Invalid 'To' Phone Number"))
    with pytest.raises(ProviderError) as info:
        await rest.create_call(**CREATE)
    assert info.value.code == 21211 and len(rec.requests) == 1
    assert "21211" in str(info.value)


# -- hang-up is idempotent ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "response",
    [twilio_error(404, 20404), twilio_error(400, 21220), httpx.Response(404, text="")],
)
async def test_hangup_already_over_returns_false(response: httpx.Response) -> None:
    """Field lesson: hang-up after the caller left returned 404 and raised."""
    rest, rec, _ = make(response)
    assert await rest.hangup(SID) is False
    assert await rest.cancel(SID) is False
    assert len(rec.requests) == 2


async def test_hangup_retries_5xx_then_reports_already_over() -> None:
    rest, rec, _ = make(twilio_error(502, None), twilio_error(400, 21220))
    assert await rest.hangup(SID) is False
    assert len(rec.requests) == 2


# -- secrets --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "failure",
    [
        twilio_error(401, 20003, f"Authenticate: bad token {TOKEN}"),
        twilio_error(500, None, f"internal {TOKEN}"),
        twilio_error(400, 21211, f"To {TOKEN}"),
        httpx.ReadTimeout(f"timed out {TOKEN}"),
        httpx.ConnectError(f"refused {TOKEN}"),
    ],
)
async def test_token_never_in_exception_text(failure: Any) -> None:
    for op in ("fetch", "create"):
        rest, _, _ = make(failure)
        with pytest.raises(ProviderError) as info:
            if op == "fetch":
                await rest.fetch(SID)
            else:
                await rest.create_call(**CREATE)
        exc: BaseException | None = info.value
        while exc is not None:
            assert TOKEN not in str(exc) and TOKEN not in repr(exc)
            assert TOKEN not in json.dumps(getattr(exc, "args", ()), default=str)
            exc = exc.__cause__ or exc.__context__
    assert TOKEN not in repr(rest)


async def test_plain_str_token_accepted_and_masked_in_repr() -> None:
    client = httpx.AsyncClient(
        transport=httpx.MockTransport(lambda r: httpx.Response(200, json=call_json()))
    )
    rest = TwilioRest(client, account_sid=ACCOUNT, auth_token=TOKEN)
    assert TOKEN not in repr(rest)
    assert ACCOUNT in repr(rest)


# -- malformed success responses ------------------------------------------------------------------


@pytest.mark.parametrize(
    "response",
    [
        httpx.Response(200, text="not json"),
        httpx.Response(200, json=["a"]),
        httpx.Response(200, json={"status": "queued"}),
        httpx.Response(200, json=call_json("exploded")),
    ],
)
async def test_malformed_success_is_provider_error(response: httpx.Response) -> None:
    rest, _, _ = make(response)
    with pytest.raises(ProviderError):
        await rest.fetch(SID)


def test_retry_policy_validation() -> None:
    for bad in ({"attempts": 0}, {"jitter": 1.5}, {"base_delay": -1}):
        with pytest.raises(ValueError):
            RetryPolicy(**bad)  # type: ignore[arg-type]
    policy = RetryPolicy(random=lambda: 1.0, jitter=1.0)
    assert policy.backoff(3) == 0.0  # full jitter can remove the whole delay
    assert RetryPolicy(random=lambda: 0.0).backoff(10) == 4.0  # capped at max_delay


def paged_calls(n: int) -> Handler:
    """A Calls.json list endpoint over ``n`` calls, paged the way Twilio (and the emulator) do."""
    from voicecall.emulator.resources import page_body

    rows = [call_json("completed", sid=f"CA{i:032x}") for i in range(n)]

    def handler(request: httpx.Request) -> httpx.Response:
        q = request.url.params
        size, page = int(q["PageSize"]), int(q.get("Page", "0"))
        chunk = rows[page * size : (page + 1) * size]
        return httpx.Response(
            200,
            json=page_body(ACCOUNT, chunk, page=page, page_size=size, total=n, query="To=%2B1555"),
        )

    return handler


@pytest.mark.parametrize(
    ("limit", "want", "pages"), [(None, 3, 1), (5, 5, 2), (7, 7, 3), (50, 7, 3)]
)
async def test_list_calls_follows_next_page_uri_up_to_the_limit(
    limit: int | None, want: int, pages: int
) -> None:
    rest, rec, _ = make(paged_calls(7))
    calls = await rest.list_calls(page_size=3, limit=limit)
    assert [c.sid for c in calls] == [f"CA{i:032x}" for i in range(want)]
    assert len(rec.requests) == pages
    for n, req in enumerate(rec.requests):
        assert req.url.path == f"{CALLS}.json"
        assert req.url.params.get("Page", "0") == str(n)
        assert req.url.params["PageSize"] == "3"


async def test_list_calls_never_follows_a_next_page_elsewhere() -> None:
    evil = {"calls": [call_json()], "next_page_uri": "https://evil.example/steal?PageSize=3"}
    rest, rec, _ = make(httpx.Response(200, json=evil))
    with pytest.raises(ProviderError, match="outside this account"):
        await rest.list_calls(page_size=1, limit=5)
    assert len(rec.requests) == 1  # the credentials went nowhere else
    other = {"calls": [call_json()], "next_page_uri": "/2010-04-01/Accounts/ACother/Calls.json?P=1"}
    rest, rec, _ = make(httpx.Response(200, json=other))
    with pytest.raises(ProviderError):
        await rest.list_calls(page_size=1, limit=5)
    with pytest.raises(ValueError):
        await rest.list_calls(limit=0)
