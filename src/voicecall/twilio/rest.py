"""Twilio Calls REST API client: the I/O edge (httpx), with typed errors and careful retries.

Errors are translated here, at the edge that meets them (see :mod:`voicecall.errors`)::

    HTTP 401 / code 20003            → ProviderAuthError
    HTTP 429 / code 20429            → ProviderRateLimited    (retried, Retry-After honoured)
    HTTP 5xx, connect error, timeout → ProviderUnavailable    (retried when safe, see below)
    code 20404 (or a bare 404)       → CallNotFound
    code 21220                       → InvalidCallState
    anything else ≥ 400              → ProviderError          (21210/21211/21212 included)

Every error carries Twilio's ``code`` and HTTP ``status``; the Auth Token never appears in a
message (it travels only in the Authorization header, and any echo of it is redacted).

Retries are bounded (:class:`RetryPolicy`: exponential backoff with jitter) and only where a
repeat cannot do harm: fetch, list, hang-up and cancel are retried on 429, 5xx and transport
errors; redirect too, except after a transport error once the request was sent (it may have
taken effect and the call moved on: a repeat would replay old TwiML; ``maybe_applied`` says
so). ``create_call`` is **not** idempotent (a repeat dials the person twice), so it is retried
only when the failure proves Twilio never processed it: the connection was never
made (``ConnectError``, ``ConnectTimeout``, ``PoolTimeout``) or Twilio answered 429 (documented
as not processed). After a read timeout or a 5xx the call may exist:
:class:`CallOutcomeUnknown` (a :class:`ProviderUnavailable`) is raised with
``maybe_created = True`` and the caller should look the call up rather than dial again.
"""

from __future__ import annotations

import asyncio
import random
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode

import httpx
from pydantic import SecretStr

from voicecall.errors import (
    CallNotFound,
    InvalidCallState,
    ProviderAuthError,
    ProviderError,
    ProviderRateLimited,
    ProviderUnavailable,
)
from voicecall.twilio.webhooks import CALL_SID_RE, RECORDING_SID_RE, CallStatus

__all__ = [
    "DEFAULT_TIMEOUT",
    "CallOutcomeUnknown",
    "CallResource",
    "RetryPolicy",
    "TwilioRest",
]

DEFAULT_TIMEOUT = httpx.Timeout(connect=5.0, read=15.0, write=10.0, pool=5.0)
STATUS_CALLBACK_EVENTS = frozenset({"initiated", "ringing", "answered", "completed"})
MACHINE_DETECTION = frozenset({"Enable", "DetectMessageEnd"})
MAX_TWIML_CHARS = 4000
_ACCOUNT_SID_RE = re.compile(r"[A-Za-z0-9]{1,64}")
_NEVER_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)
_MAX_MESSAGE_CHARS = 300


class CallOutcomeUnknown(ProviderUnavailable):
    """``create_call`` failed after the request may have reached Twilio: the call may exist.

    Not retried, because a retry could dial the person twice. ``maybe_created`` is ``True``.
    """

    maybe_created: bool = True


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded exponential backoff with jitter.

    The n-th retry (n = 0, 1, …) waits ``min(max_delay, base_delay * 2**n)`` minus up to
    ``jitter`` of it at random; a ``Retry-After`` from Twilio raises the wait to that value,
    capped at ``max_retry_after``. ``sleep`` and ``random`` are injectable for tests.
    """

    attempts: int = 4
    base_delay: float = 0.25
    max_delay: float = 4.0
    jitter: float = 0.2
    max_retry_after: float = 30.0
    sleep: Callable[[float], Awaitable[None]] = field(
        default=asyncio.sleep, compare=False, repr=False
    )
    random: Callable[[], float] = field(default=random.random, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("attempts must be >= 1")
        if self.base_delay < 0 or self.max_delay < 0 or self.max_retry_after < 0:
            raise ValueError("delays must be >= 0")
        if not 0.0 <= self.jitter <= 1.0:
            raise ValueError("jitter must be within 0..1")

    def backoff(self, retry_index: int) -> float:
        delay = min(self.max_delay, self.base_delay * (2**retry_index))
        return float(delay * (1.0 - self.jitter * float(self.random())))

    def delay(self, retry_index: int, retry_after: float | None) -> float:
        delay = self.backoff(retry_index)
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.max_retry_after))
        return delay


def _parse_time(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def _opt_str(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _opt_int(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdecimal() and len(value) < 10:
        return int(value)
    return None


@dataclass(frozen=True, slots=True)
class CallResource:
    """A call as the REST API describes it."""

    sid: str
    status: CallStatus
    direction: str | None = None
    from_: str | None = None
    to: str | None = None
    duration: int | None = None
    start_time: datetime | None = None
    end_time: datetime | None = None

    @classmethod
    def from_json(cls, data: object) -> CallResource:
        """Build from Twilio's JSON; a malformed document raises :class:`ProviderError`."""
        if not isinstance(data, dict):
            raise ProviderError("Twilio returned a call that is not a JSON object")
        sid = data.get("sid")
        if not isinstance(sid, str) or not CALL_SID_RE.fullmatch(sid):
            raise ProviderError("Twilio returned a call without a valid sid")
        try:
            status = CallStatus(str(data.get("status")))
        except ValueError:
            raise ProviderError("Twilio returned a call with an unknown status") from None
        return cls(
            sid=sid,
            status=status,
            direction=_opt_str(data.get("direction")),
            from_=_opt_str(data.get("from")),
            to=_opt_str(data.get("to")),
            duration=_opt_int(data.get("duration")),
            start_time=_parse_time(data.get("start_time")),
            end_time=_parse_time(data.get("end_time")),
        )


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        when = _parse_time(value)
        now = _parse_time(response.headers.get("date"))
        if when is None or now is None:
            return None
        try:
            seconds = (when - now).total_seconds()
        except TypeError:  # one naive, one aware
            return None
    if seconds != seconds or seconds < 0:  # NaN or negative
        return None
    return seconds


def _check_sid(call_sid: str) -> str:
    if not isinstance(call_sid, str) or not CALL_SID_RE.fullmatch(call_sid):
        raise ValueError("call_sid must look like CA followed by 32 hex digits")
    return call_sid


def _check_recording_sid(recording_sid: str) -> str:
    if not isinstance(recording_sid, str) or not RECORDING_SID_RE.fullmatch(recording_sid):
        raise ValueError("recording_sid must look like RE followed by 32 hex digits")
    return recording_sid


def _check_http_url(url: str, what: str) -> None:
    if not isinstance(url, str) or not url.lower().startswith(("https://", "http://")):
        raise ValueError(f"{what} must be an http(s) URL")


class TwilioRest:
    """Async client of the Twilio Calls API over a caller-owned :class:`httpx.AsyncClient`.

    ``base_url`` is configurable so the local emulator can stand in for Twilio.
    """

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        account_sid: str,
        auth_token: SecretStr | str,
        base_url: str = "https://api.twilio.com",
        retry: RetryPolicy = RetryPolicy(),
        timeout: httpx.Timeout = DEFAULT_TIMEOUT,
    ) -> None:
        if not isinstance(account_sid, str) or not _ACCOUNT_SID_RE.fullmatch(account_sid):
            raise ValueError("account_sid must be alphanumeric")
        _check_http_url(base_url, "base_url")
        self._http = http
        self._account_sid = account_sid
        self._token = auth_token if isinstance(auth_token, SecretStr) else SecretStr(auth_token)
        self._base = base_url.rstrip("/")
        self._retry = retry
        self._timeout = timeout

    def __repr__(self) -> str:
        return f"TwilioRest(account_sid={self._account_sid!r}, base_url={self._base!r})"

    @property
    def account_sid(self) -> str:
        return self._account_sid

    # -- public operations ------------------------------------------------------------------------

    async def create_call(
        self,
        *,
        to: str,
        from_: str,
        url: str,
        status_callback: str,
        status_callback_events: Sequence[str] = ("initiated", "ringing", "answered", "completed"),
        timeout: int,
        time_limit: int | None = None,
        machine_detection: str | None = None,
        recording_status_callback: str | None = None,
    ) -> CallResource:
        """Place an outbound call (``POST /Calls.json``). See the module docstring on retries.

        ``recording_status_callback``: record the call (``Record=true``, both parties on their
        own channel) and post the recording's ``completed``/``absent`` status there."""
        if not to or not from_:
            raise ValueError("to and from_ are required")
        _check_http_url(url, "url")
        _check_http_url(status_callback, "status_callback")
        unknown = set(status_callback_events) - STATUS_CALLBACK_EVENTS
        if unknown:
            raise ValueError(f"unknown status callback events: {sorted(unknown)}")
        if isinstance(timeout, bool) or not 1 <= timeout <= 600:
            raise ValueError("timeout must be within 1..600 seconds")
        if time_limit is not None and (isinstance(time_limit, bool) or time_limit < 1):
            raise ValueError("time_limit must be >= 1 second")
        if machine_detection is not None and machine_detection not in MACHINE_DETECTION:
            raise ValueError("machine_detection must be Enable or DetectMessageEnd")
        form: list[tuple[str, str]] = [
            ("To", to),
            ("From", from_),
            ("Url", url),
            ("Method", "POST"),
            ("StatusCallback", status_callback),
            ("StatusCallbackMethod", "POST"),
        ]
        form += [("StatusCallbackEvent", event) for event in status_callback_events]
        form.append(("Timeout", str(timeout)))
        if time_limit is not None:
            form.append(("TimeLimit", str(time_limit)))
        if machine_detection is not None:
            form.append(("MachineDetection", machine_detection))
        if recording_status_callback is not None:
            _check_http_url(recording_status_callback, "recording_status_callback")
            form += [
                ("Record", "true"),
                ("RecordingChannels", "dual"),
                ("RecordingStatusCallback", recording_status_callback),
                ("RecordingStatusCallbackMethod", "POST"),
                ("RecordingStatusCallbackEvent", "completed absent"),
            ]
        data = await self._call("create call", "POST", "/Calls.json", form=form, create=True)
        return CallResource.from_json(data)

    async def hangup(self, call_sid: str) -> bool:
        """Hang up an answered call. ``False`` when it was already over (20404 / 21220)."""
        return await self._end(call_sid, "completed", "hang up")

    async def cancel(self, call_sid: str) -> bool:
        """Cancel a queued or ringing call. ``False`` when it was already over."""
        return await self._end(call_sid, "canceled", "cancel")

    async def redirect(
        self, call_sid: str, *, twiml: str | None = None, url: str | None = None
    ) -> CallResource:
        """Point a live call at new TwiML (inline ``twiml`` or a ``url``, exactly one)."""
        sid = _check_sid(call_sid)
        if (twiml is None) == (url is None):
            raise ValueError("give exactly one of twiml and url")
        form: list[tuple[str, str]]
        if twiml is not None:
            if not twiml or len(twiml) > MAX_TWIML_CHARS:
                raise ValueError(f"twiml must be 1..{MAX_TWIML_CHARS} characters")
            form = [("Twiml", twiml)]
        else:
            assert url is not None
            _check_http_url(url, "url")
            form = [("Url", url), ("Method", "POST")]
        # Not repeated after a request that may have reached Twilio without an answer (a read
        # timeout): the call may have moved on meanwhile (the caller answered the new TwiML),
        # and a repeat would start that TwiML again. Twilio's own error answers are repeated.
        data = await self._call(
            "redirect call", "POST", f"/Calls/{sid}.json", form=form, replay_after_send=False
        )
        return CallResource.from_json(data)

    async def fetch(self, call_sid: str) -> CallResource:
        sid = _check_sid(call_sid)
        return CallResource.from_json(await self._call("fetch call", "GET", f"/Calls/{sid}.json"))

    async def recording_media(self, recording_sid: str) -> bytes:
        """A recording's audio as WAV (``GET /Recordings/{Sid}.wav``, with the account's
        credentials: media URLs may require them). Retried like every read."""
        sid = _check_recording_sid(recording_sid)
        data = await self._call(
            "fetch recording", "GET", f"/Recordings/{sid}.wav", raw=True, accept="audio/wav"
        )
        if not isinstance(data, bytes):  # pragma: no cover - raw answers are bytes
            raise ProviderError("Twilio fetch recording: no audio")
        return data

    async def delete_recording(self, recording_sid: str) -> bool:
        """Delete a recording; ``False`` when it was already gone (20404)."""
        sid = _check_recording_sid(recording_sid)
        try:
            await self._call("delete recording", "DELETE", f"/Recordings/{sid}.json", raw=True)
        except CallNotFound:
            return False
        return True

    async def list_calls(
        self,
        *,
        to: str | None = None,
        from_: str | None = None,
        status: str | None = None,
        page_size: int = 50,
        limit: int | None = None,
    ) -> list[CallResource]:
        """Up to ``limit`` calls matching the filters (default: one page), newest first.

        Pages are followed through Twilio's ``next_page_uri``, but only while it stays on this
        account's ``Calls.json`` (our credentials are never sent anywhere else).
        """
        if isinstance(page_size, bool) or not 1 <= page_size <= 1000:
            raise ValueError("page_size must be within 1..1000")
        if limit is None:
            limit = page_size
        if isinstance(limit, bool) or not 1 <= limit <= 100_000:
            raise ValueError("limit must be within 1..100000")
        if status is not None:
            status = CallStatus(status).value
        params: list[tuple[str, str]] = []
        if to is not None:
            params.append(("To", to))
        if from_ is not None:
            params.append(("From", from_))
        if status is not None:
            params.append(("Status", status))
        params.append(("PageSize", str(page_size)))
        out: list[CallResource] = []
        own = f"/2010-04-01/Accounts/{self._account_sid}/Calls.json?"
        while True:
            data = await self._call("list calls", "GET", "/Calls.json", params=params)
            calls = data.get("calls") if isinstance(data, dict) else None
            if not isinstance(calls, list):
                raise ProviderError("Twilio returned a call list without 'calls'")
            out.extend(CallResource.from_json(item) for item in calls[: limit - len(out)])
            following = data.get("next_page_uri")
            if len(out) >= limit or not calls or not isinstance(following, str) or not following:
                return out
            if not following.startswith(own):
                raise ProviderError("Twilio returned a next page outside this account's calls")
            params = parse_qsl(following[len(own) :], keep_blank_values=True)

    # -- plumbing ---------------------------------------------------------------------------------

    async def _end(self, call_sid: str, status: str, op: str) -> bool:
        sid = _check_sid(call_sid)
        try:
            await self._call(op, "POST", f"/Calls/{sid}.json", form=[("Status", status)])
        except (CallNotFound, InvalidCallState):
            return False  # already over: not an error for a hang-up
        return True

    def _redact(self, text: str) -> str:
        secret = self._token.get_secret_value()
        if secret:
            text = text.replace(secret, "***")
        return text

    def _error(self, response: httpx.Response, op: str) -> ProviderError:
        status = response.status_code
        code: int | None = None
        detail: str | None = None
        try:
            body = response.json()
        except (ValueError, UnicodeDecodeError):
            body = None
        if isinstance(body, dict):
            raw_code = body.get("code")
            code = (
                raw_code if isinstance(raw_code, int) and not isinstance(raw_code, bool) else None
            )
            raw_message = body.get("message")
            detail = raw_message if isinstance(raw_message, str) else None
        message = f"Twilio {op} failed: HTTP {status}"
        if detail:
            message += f": {detail[:_MAX_MESSAGE_CHARS]}"
        message = self._redact(message)
        cls: type[ProviderError]
        if status == 401 or code == 20003:
            cls = ProviderAuthError
        elif status == 429 or code == 20429:
            cls = ProviderRateLimited
        elif status >= 500:
            cls = ProviderUnavailable
        elif code == 20404 or (status == 404 and code is None):
            cls = CallNotFound
        elif code == 21220:
            cls = InvalidCallState
        else:
            cls = ProviderError
        return cls(message, code=code, status=status)

    async def _call(
        self,
        op: str,
        method: str,
        path: str,
        *,
        form: Sequence[tuple[str, str]] | None = None,
        params: Sequence[tuple[str, str]] | None = None,
        create: bool = False,
        replay_after_send: bool = True,
        raw: bool = False,
        accept: str = "application/json",
    ) -> Any:
        """The response's JSON (``raw``: its bytes)."""
        url = f"{self._base}/2010-04-01/Accounts/{self._account_sid}{path}"
        headers = {"Accept": accept}
        content: bytes | None = None
        if form is not None:
            content = urlencode(list(form)).encode("ascii")
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        idempotent = not create
        policy = self._retry
        sent = False  # some attempt may have reached Twilio and taken effect
        for attempt in range(policy.attempts):
            last = attempt == policy.attempts - 1
            response: httpx.Response | None = None
            failure: type[httpx.TransportError] | None = None
            try:
                response = await self._http.request(
                    method,
                    url,
                    params=list(params) if params is not None else None,
                    content=content,
                    headers=headers,
                    auth=httpx.BasicAuth(self._account_sid, self._token.get_secret_value()),
                    timeout=self._timeout,
                )
            except httpx.TransportError as exc:
                # Keep only the type: the exception is not chained into ours (its text and
                # request are not ours to vouch for), so nothing from it can leak a secret.
                failure = type(exc)
            if response is None:
                assert failure is not None
                never_sent = issubclass(failure, _NEVER_SENT)
                sent = sent or not never_sent
                if (never_sent or (idempotent and replay_after_send)) and not last:
                    await policy.sleep(policy.delay(attempt, None))
                    continue
                reason = f"Twilio {op} failed: {failure.__name__}"
                if create and not never_sent:
                    # The request may have reached Twilio and created the call; a retry could
                    # dial the person twice. The caller must look it up instead.
                    raise CallOutcomeUnknown(
                        reason + " after the request was sent; the call may exist"
                    )
                unavailable = ProviderUnavailable(reason)
                unavailable.maybe_applied = sent
                raise unavailable
            if response.status_code < 400 and raw:
                return response.content
            if response.status_code < 400:
                try:
                    return response.json()
                except (ValueError, UnicodeDecodeError):
                    raise ProviderError(
                        f"Twilio {op}: response is not JSON", status=response.status_code
                    ) from None
            error = self._error(response, op)
            sent = sent or isinstance(error, ProviderUnavailable)
            error.maybe_applied = sent
            # 429 is documented as "not processed": safe to repeat, even a create.
            retryable = isinstance(error, ProviderRateLimited) or (
                idempotent and isinstance(error, ProviderUnavailable)
            )
            if retryable and not last:
                retry_after = (
                    _retry_after(response) if isinstance(error, ProviderRateLimited) else None
                )
                await policy.sleep(policy.delay(attempt, retry_after))
                continue
            if create and isinstance(error, ProviderUnavailable):
                # A 5xx after Twilio read the request: the call may have been created.
                raise CallOutcomeUnknown(
                    error.message + "; the call may exist", code=error.code, status=error.status
                )
            raise error
        raise AssertionError("unreachable: the loop returns or raises")  # pragma: no cover
