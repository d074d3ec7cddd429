"""The Python API: a typed client of a running voicecall server's control API.

::

    async with voicecall.Client("http://127.0.0.1:3334", token) as vc:
        call = await vc.call("+15551234567", "Hi, it's your assistant.", mode="conversation")
        reply = await call.ask("Is now a good time?")
        await call.say("Great, talk soon.")
        await call.hangup()

        # or hand over the whole call and get its outcome back
        call = await vc.call("+15551234567", task="Book a table for two tonight at 7.")
        result = await call.result(timeout=600)     # result.outcome, result.summary

Errors carry the server's RFC 9457 problem detail and say what to do. The client never starts
a server: ``voicecall serve`` is the one runtime that owns calls.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import httpx

from voicecall.calls.model import TERMINAL_STATES
from voicecall.errors import VoicecallError

if TYPE_CHECKING:
    from voicecall.config import Settings

DEFAULT_URL = "http://127.0.0.1:3334"

_TERMINAL = frozenset(s.value for s in TERMINAL_STATES)

# What to do about an error, by HTTP status, appended to the server's own detail.
_HINTS = {
    401: "the client's token must equal the server's api.token (VOICECALL_API__TOKEN)",
    403: "the outbound policy refuses this number; docs/security.md explains each rule",
    404: "check the call id (list calls with `voicecall calls`)",
    429: "wait for a call to end, or raise max_concurrent_calls",
    502: "the telephony provider failed; see the server log and run `voicecall doctor`",
    503: "the server cannot store calls right now; see the server log",
    504: "the caller did not answer in time; the call may still be live",
}


class ClientError(VoicecallError):
    """The server answered with an error.

    ``status`` is the HTTP status, ``title`` the problem type name (``UnknownCall``,
    ``CallNotActive``, ``TooManyCalls``, ``TurnTimeout``, ``OutboundRefused``,
    ``OutboundLimited``, ``Invalid request`` …), ``detail`` the server's explanation, ``rule``
    the outbound rule that refused a call (or ``None``) and ``hint`` what to do about it.
    """

    def __init__(
        self, status: int, title: str, detail: str | None, rule: str | None = None
    ) -> None:
        self.status = status
        self.title = title
        self.detail = detail
        #: for outbound policy refusals (403/429): the rule, e.g. ``outbound.allowed_countries``
        self.rule = rule
        self.http_status = status
        self.hint = _HINTS.get(status)
        if status == 429 and rule and rule != "max_concurrent_calls":
            self.hint = f"an outbound limit is reached: wait, or raise {rule}"
        text = f"{title}: {detail}" if detail else title
        if self.hint:
            text = f"{text} ({self.hint})"
        super().__init__(text)


class ServerUnreachable(VoicecallError):
    """No voicecall server answered at the URL (not running, wrong port, or it hung)."""

    http_status = 503


@dataclass(frozen=True, slots=True)
class CallInfo:
    """One call as the server reports it. ``raw`` holds the full JSON document."""

    call_id: str
    state: str
    end_reason: str | None
    direction: str
    mode: str
    to: str | None
    from_: str | None
    transcript: list[dict[str, Any]]
    raw: dict[str, Any]

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CallInfo:
        return cls(
            call_id=data["call_id"],
            state=data["state"],
            end_reason=data.get("end_reason"),
            direction=data.get("direction", ""),
            mode=data.get("mode", ""),
            to=data.get("to"),
            from_=data.get("from"),
            transcript=list(data.get("transcript") or []),
            raw=data,
        )

    @property
    def ended(self) -> bool:
        """True once the call is over (any terminal state)."""
        return self.state in _TERMINAL

    @property
    def answered(self) -> bool:
        return self.raw.get("answered_at") is not None

    @property
    def transfer(self) -> dict[str, Any] | None:
        """The call's last transfer (``to``, ``mode``, ``status`` …), or ``None``."""
        value = self.raw.get("transfer")
        return value if isinstance(value, dict) else None

    @property
    def outcome(self) -> Any:
        """Task calls: the result (an instance of the call's outcome schema), or ``None``."""
        return self.raw.get("outcome")

    @property
    def summary(self) -> str | None:
        return self.raw.get("summary")

    @property
    def outcome_error(self) -> str | None:
        """Why a task call has no outcome (never connected, the model failed …)."""
        return self.raw.get("outcome_error")

    @property
    def outcome_final(self) -> bool:
        """The call has ended and (task calls) its outcome is stored: nothing more will change."""
        return bool(self.raw.get("outcome_final"))

    @property
    def pending_question(self) -> str | None:
        """The question the call's agent is waiting for the owner to answer, if any."""
        pending = self.raw.get("pending_question")
        return pending.get("question") if isinstance(pending, dict) else None

    @property
    def report(self) -> dict[str, Any] | None:
        """The end-of-call report's delivery state (``state``, ``attempts`` …), if any."""
        report = self.raw.get("report")
        return report if isinstance(report, dict) else None

    @property
    def recording(self) -> dict[str, Any] | None:
        """Where the call's recording is (``source``, ``status``, ``duration_seconds`` …), if
        it has one; :meth:`Client.recording` fetches the audio."""
        recording = self.raw.get("recording")
        return recording if isinstance(recording, dict) else None

    def lines(self, speaker: str | None = None) -> list[str]:
        """Transcript texts, optionally of one speaker (``"bot"`` or ``"user"``)."""
        return [t["text"] for t in self.transcript if speaker is None or t["speaker"] == speaker]


@dataclass(frozen=True, slots=True)
class BlockedEntry:
    """An entry of the do-not-call list."""

    number: str
    reason: str | None
    created_at: float

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> BlockedEntry:
        return cls(data["number"], data.get("reason"), float(data["created_at"]))


class Client:
    """Talks to ``voicecall serve``. One instance per server; use it as an async context.

    ``url`` is the server's base URL, ``token`` its ``api.token`` (if it has one).
    """

    def __init__(
        self,
        url: str = DEFAULT_URL,
        token: str | None = None,
        *,
        timeout: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
        surface: str = "python",
    ) -> None:
        # ``surface`` tells the server's audit trail which client asked (api/cli/mcp/python)
        headers = {"x-voicecall-client": surface}
        if token:
            headers["authorization"] = f"Bearer {token}"
        self._http = httpx.AsyncClient(
            base_url=url.rstrip("/"),
            headers=headers,
            timeout=httpx.Timeout(timeout, connect=5.0),
            transport=transport,
        )
        self.url = url.rstrip("/")

    def __repr__(self) -> str:  # never shows the token
        return f"Client({self.url!r})"

    @property
    def surface(self) -> str:
        """Which client this is for the server's audit trail (``X-Voicecall-Client``)."""
        return str(self._http.headers["x-voicecall-client"])

    @surface.setter
    def surface(self, value: str) -> None:
        self._http.headers["x-voicecall-client"] = value

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        url: str | None = None,
        *,
        timeout: float = 30.0,
        surface: str = "python",
    ) -> Client:
        """A client of the server these settings describe (``serve.bind``/``serve.port``)."""
        return cls(control_url(settings, url), _token(settings), timeout=timeout, surface=surface)

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    def _unreachable(self, what: str) -> ServerUnreachable:
        return ServerUnreachable(
            f"{what} at {self.url}: start it with `voicecall serve` "
            "(or point --url / VOICECALL_URL at the running server)"
        )

    async def _request(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        params: Any = None,
        timeout: float | None = None,
        raw: bool = False,
    ) -> Any:
        """The answer's JSON (``raw``: its bytes); problems raise :class:`ClientError`."""
        try:
            kwargs: dict[str, Any] = {"json": json_body, "params": params}
            if timeout is not None:
                kwargs["timeout"] = httpx.Timeout(timeout, connect=5.0)
            response = await self._http.request(method, path, **kwargs)
        except httpx.ConnectError:
            raise self._unreachable("no voicecall server answered") from None
        except httpx.TimeoutException:
            raise ServerUnreachable(
                f"the voicecall server at {self.url} did not answer in time"
            ) from None
        except httpx.TransportError as exc:
            raise ServerUnreachable(
                f"the connection to the voicecall server at {self.url} failed "
                f"({type(exc).__name__})"
            ) from None
        if response.status_code >= 400:
            title, detail, rule = response.reason_phrase or "error", None, None
            try:
                doc = response.json()
            except ValueError:
                detail = response.text[:200] or None
            else:
                if isinstance(doc, dict):
                    title = str(doc.get("title") or title)
                    detail = doc.get("detail")
                    rule = doc.get("rule") if isinstance(doc.get("rule"), str) else None
            raise ClientError(response.status_code, title, detail, rule)
        if raw:
            return response.content
        try:
            return response.json()
        except ValueError:
            raise ClientError(
                response.status_code,
                "Not a voicecall server",
                f"{method} {path} did not answer JSON; is {self.url} the voicecall server?",
            ) from None

    # ------------------------------------------------------------------ calls

    async def call(
        self,
        to: str | None,
        message: str | None = None,
        mode: str | None = None,
        *,
        task: str | None = None,
        context: str | None = None,
        outcome_schema: dict[str, Any] | None = None,
        report_url: str | None = None,
        record: bool | None = None,
        transfer_to: list[str] | None = None,
    ) -> Call:
        """Place a call and return its handle.

        ``to`` is an E.164 number (``None``: the configured ``to_number``); ``message`` is said
        first; ``mode`` is ``notify`` (say and hang up), ``conversation`` (keep listening) or
        ``task`` (implied by ``task``): an agent makes the whole call for ``task``, using the
        facts in ``context``, and :meth:`Call.result` returns its outcome (an instance of
        ``outcome_schema``, a JSON Schema). ``report_url`` receives the signed end-of-call
        report (any mode). ``record``: record the call (``None``: the server's
        ``recording.enabled``); the callee first hears ``recording.announcement``.
        report (any mode). ``transfer_to``: numbers a task call's agent may transfer it to.
        """
        body: dict[str, Any] = {"to": to, "message": message, "mode": mode}
        for key, value in (
            ("task", task),
            ("context", context),
            ("outcome_schema", outcome_schema),
            ("report_url", report_url),
            ("record", record),
            ("transfer_to", transfer_to),
        ):
            if value is not None:
                body[key] = value
        doc = await self._request("POST", "/api/calls", json_body=body)
        return Call(self, doc["call_id"])

    def get(self, call_id: str) -> Call:
        """A handle on an existing call (no request is made)."""
        return Call(self, call_id)

    async def status(
        self, call_id: str, *, wait: float | None = None, questions: bool = True
    ) -> CallInfo:
        """The call's record and transcript (and task, outcome, questions, report).

        ``wait`` (seconds, at most 600): answer only once the call has ended with its outcome
        final, or (``questions``) a question waits for the owner, or after ``wait`` seconds.
        """
        if not wait:
            return CallInfo.from_json(await self._request("GET", f"/api/calls/{call_id}"))
        params = {"wait": f"{min(wait, 600.0):g}", "questions": str(questions).lower()}
        doc = await self._request(
            "GET", f"/api/calls/{call_id}", params=params, timeout=min(wait, 600.0) + 30.0
        )
        return CallInfo.from_json(doc)

    async def recording(self, call_id: str) -> bytes:
        """The call's recording as WAV bytes (stereo 16-bit 8 kHz, left the caller, right the
        bot, for Media Streams calls; Twilio's for ``<Gather>`` calls). ``ClientError`` 404
        ``NoRecording`` when it has none."""
        data: bytes = await self._request("GET", f"/api/calls/{call_id}/recording", raw=True)
        return data

    async def answer(self, call_id: str, answer: str) -> dict[str, Any]:
        """Answer the question the call's agent asked the owner (409 if none waits)."""
        doc: dict[str, Any] = await self._request(
            "POST", f"/api/calls/{call_id}/answer", json_body={"answer": answer}
        )
        return doc

    async def calls(
        self, *, limit: int = 50, cursor: str | None = None, active: bool | None = None
    ) -> tuple[list[CallInfo], str | None]:
        """One page of calls, newest first, and the cursor of the next page (``None``: last)."""
        params: dict[str, Any] = {"limit": limit}
        if cursor:
            params["cursor"] = cursor
        if active is not None:
            params["active"] = str(active).lower()
        doc = await self._request("GET", "/api/calls", params=params)
        return [CallInfo.from_json(c) for c in doc["calls"]], doc.get("next_cursor")

    async def all_calls(self, *, active: bool | None = None, page: int = 100) -> list[CallInfo]:
        """Every call (following cursors), newest first."""
        out: list[CallInfo] = []
        cursor: str | None = None
        while True:
            items, cursor = await self.calls(limit=page, cursor=cursor, active=active)
            out.extend(items)
            if not cursor:
                return out

    async def speak(self, call_id: str, message: str) -> CallInfo:
        """Say ``message`` on a live call without waiting for an answer."""
        doc = await self._request(
            "POST", f"/api/calls/{call_id}/speak", json_body={"message": message}
        )
        return CallInfo.from_json(doc)

    async def dtmf(self, call_id: str, digits: str) -> dict[str, Any]:
        """Press keys on a live call (``0-9 * # A-D``, ``w`` = 0.5 s pause). Returns
        ``{call_id, digits, via, seconds}``; invalid digits raise :class:`ClientError` 422."""
        doc: dict[str, Any] = await self._request(
            "POST", f"/api/calls/{call_id}/dtmf", json_body={"digits": digits}
        )
        return doc

    async def transfer(
        self, call_id: str, to: str, *, mode: str = "cold", summary: str | None = None
    ) -> CallInfo:
        """Transfer a live call to ``to`` (E.164): ``cold`` hands it over at once; ``warm``
        first tells the number ``summary`` and comes back to the agent if nobody takes it
        (see :attr:`CallInfo.transfer`). A blocked number raises :class:`ClientError` 403."""
        body: dict[str, Any] = {"to": to, "mode": mode}
        if summary is not None:
            body["summary"] = summary
        doc = await self._request("POST", f"/api/calls/{call_id}/transfer", json_body=body)
        return CallInfo.from_json(doc)

    async def continue_(self, call_id: str, message: str, *, timeout: float | None = None) -> str:
        """Say ``message`` and return the caller's answer (their next final transcript).

        ``timeout``: seconds to wait for the answer (default: the server's
        ``transcript_timeout_seconds``); a timeout raises :class:`ClientError` 504.
        """
        body: dict[str, Any] = {"message": message}
        if timeout is not None:
            body["timeout_seconds"] = timeout
        doc = await self._request(
            "POST",
            f"/api/calls/{call_id}/continue",
            json_body=body,
            timeout=(timeout or 3600.0) + 30.0,
        )
        return str(doc["transcript"])

    async def forget_caller(self, number: str) -> bool:
        """Erase what the responder remembers about a caller (E.164); ``True`` if it knew them."""
        doc = await self._request("DELETE", f"/api/callers/{quote(number, safe='+')}/memory")
        return bool(doc["forgotten"])

    # ------------------------------------------------------------------ outbound policy

    async def block(self, number: str, reason: str | None = None) -> BlockedEntry:
        """Put an E.164 number on the do-not-call list (idempotent): it is never called."""
        doc = await self._request(
            "POST",
            f"/api/blocked/{quote(number, safe='+')}",
            json_body={"reason": reason} if reason else None,
        )
        return BlockedEntry.from_json(doc)

    async def unblock(self, number: str) -> bool:
        """Take a number off the do-not-call list; ``False`` if it was not on it."""
        try:
            await self._request("DELETE", f"/api/blocked/{quote(number, safe='+')}")
        except ClientError as exc:
            if exc.status == 404 and exc.title == "NotBlocked":
                return False
            raise
        return True

    async def blocked(self) -> list[BlockedEntry]:
        """The do-not-call list, oldest entry first."""
        doc = await self._request("GET", "/api/blocked")
        return [BlockedEntry.from_json(e) for e in doc["blocked"]]

    async def audit(
        self, *, limit: int = 50, before: int | None = None
    ) -> tuple[list[dict[str, Any]], int | None]:
        """One page of the audit trail (placed and refused calls), newest first, and the
        ``before`` of the next page (``None``: last page)."""
        params: dict[str, Any] = {"limit": limit}
        if before is not None:
            params["before"] = before
        doc = await self._request("GET", "/api/audit", params=params)
        return list(doc["entries"]), doc.get("next_before")

    async def latency(self, *, call_id: str | None = None, last: int = 50) -> dict[str, Any]:
        """The newest bot replies' latency records (``turns``, newest first) and p50/p95/max
        per stage (``stages``); only one call's with ``call_id`` (an id or a unique prefix)."""
        params: dict[str, Any] = {"last": last}
        if call_id is not None:
            params["call_id"] = call_id
        doc: dict[str, Any] = await self._request("GET", "/api/latency", params=params)
        return doc

    async def end(self, call_id: str, message: str | None = None) -> CallInfo:
        """Hang up, after saying ``message`` if given. Idempotent."""
        doc = await self._request(
            "POST",
            f"/api/calls/{call_id}/end",
            json_body={"message": message} if message else None,
        )
        return CallInfo.from_json(doc)

    async def wait(
        self,
        call_id: str,
        until: Callable[[CallInfo], bool],
        *,
        timeout: float,
        poll_seconds: float = 1.0,
    ) -> CallInfo:
        """Wait until ``until(status)`` holds or the call ends; return the last status.

        Wakes on the server's events for this call and re-checks every ``poll_seconds`` in
        any case, so a missed event only delays the answer. Returns the last status when
        ``timeout`` passes (check ``until`` again to tell).
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        woken = asyncio.Event()

        async def watch() -> None:
            with contextlib.suppress(VoicecallError):
                async for event in self.events():
                    doc = event.get("call") or {}
                    if call_id in (event.get("call_id"), doc.get("call_id")):
                        woken.set()

        watcher = asyncio.create_task(watch())
        try:
            while True:
                woken.clear()
                info = await self.status(call_id)
                left = deadline - loop.time()
                if until(info) or info.ended or left <= 0:
                    return info
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(woken.wait(), min(poll_seconds, left))
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher

    async def events(self) -> AsyncIterator[dict[str, Any]]:
        """Server-sent events from ``/api/events`` as dicts, until the server closes.

        Types: ``call.created``, ``call.updated``, ``call.ended`` (with the ``call`` document)
        and ``transcript`` (``call_id``, ``speaker``, ``text``, ``seq``, ``turn``).
        """
        try:
            async with self._http.stream(
                "GET", "/api/events", timeout=httpx.Timeout(None, connect=5.0)
            ) as response:
                if response.status_code >= 400:
                    await response.aread()
                    try:
                        doc = response.json()
                        title, detail = str(doc.get("title", "error")), doc.get("detail")
                    except ValueError:
                        title, detail = "events refused", response.text[:200] or None
                    raise ClientError(response.status_code, title, detail)
                data: list[str] = []
                async for line in response.aiter_lines():
                    if line.startswith("data:"):
                        data.append(line[5:].removeprefix(" "))
                    elif line == "" and data:
                        try:
                            doc = json.loads("\n".join(data))
                        except ValueError:
                            doc = None
                        data = []
                        if isinstance(doc, dict):
                            yield doc
        except httpx.ConnectError:
            raise self._unreachable("no voicecall server answered") from None
        except httpx.TransportError:
            return  # the server went away mid-stream: the stream is over


class Call:
    """A handle on one call."""

    def __init__(self, client: Client, call_id: str) -> None:
        self._client = client
        self.call_id = call_id

    def __repr__(self) -> str:
        return f"Call({self.call_id!r})"

    async def status(self) -> CallInfo:
        return await self._client.status(self.call_id)

    async def say(self, text: str) -> None:
        """Say ``text`` without waiting for an answer."""
        await self._client.speak(self.call_id, text)

    async def ask(self, text: str, *, timeout: float | None = None) -> str:
        """Say ``text`` and return what the caller answers (their next final transcript)."""
        return await self._client.continue_(self.call_id, text, timeout=timeout)

    async def press(self, digits: str) -> dict[str, Any]:
        """Press keys on the call (``"1w23#"``: ``w`` waits half a second)."""
        return await self._client.dtmf(self.call_id, digits)

    async def transfer(
        self, to: str, *, mode: str = "cold", summary: str | None = None
    ) -> CallInfo:
        """Transfer the call to ``to`` (cold, or warm with ``summary`` for the number)."""
        return await self._client.transfer(self.call_id, to, mode=mode, summary=summary)

    async def hangup(self, goodbye: str | None = None) -> CallInfo:
        """End the call (saying ``goodbye`` first, if given). Idempotent."""
        return await self._client.end(self.call_id, goodbye)

    async def wait_answered(self, timeout: float = 120.0) -> CallInfo:
        """Wait until the call is answered (or ends, or ``timeout`` passes)."""
        return await self._client.wait(self.call_id, lambda i: i.answered, timeout=timeout)

    async def wait_ended(self, timeout: float = 3600.0) -> CallInfo:
        """Wait until the call is over (or ``timeout`` passes)."""
        return await self._client.wait(self.call_id, lambda i: i.ended, timeout=timeout)

    async def answer(self, answer: str) -> dict[str, Any]:
        """Answer the question the call's agent is asking the owner."""
        return await self._client.answer(self.call_id, answer)

    async def recording(self) -> bytes:
        """The call's recording as WAV bytes (see :meth:`Client.recording`)."""
        return await self._client.recording(self.call_id)

    async def result(self, timeout: float = 900.0) -> CallInfo:
        """Wait until the call has ended and its outcome is final; return it (``outcome``,
        ``summary``, ``outcome_error``). Questions to the owner do not stop the wait (answer
        them with :meth:`answer` from elsewhere, or they time out). Raises
        :class:`TimeoutError` if the outcome is not final within ``timeout`` seconds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            left = deadline - loop.time()
            info = await self._client.status(
                self.call_id, wait=max(min(left, 600.0), 0.001), questions=False
            )
            if info.outcome_final:
                return info
            if deadline - loop.time() <= 0:
                raise TimeoutError(
                    f"call {self.call_id} has no final outcome after {timeout:.0f} s "
                    f"(state {info.state})"
                )

    async def events(self) -> AsyncIterator[dict[str, Any]]:
        """This call's events (state changes and transcript lines) until it ends."""
        async for event in self._client.events():
            call = event.get("call") or {}
            if event.get("call_id") == self.call_id or call.get("call_id") == self.call_id:
                yield event
                if event.get("type") == "call.ended":
                    return


def control_url(settings: Settings, url: str | None = None) -> str:
    """The control API base URL for these settings (``url`` wins when given)."""
    if url:
        return url.rstrip("/")
    host = settings.serve.bind
    if host in ("0.0.0.0", "::", ""):
        host = "127.0.0.1"
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"http://{host}:{settings.serve.port}"


def _token(settings: Settings) -> str | None:
    return settings.api.token.get_secret_value() if settings.api.token else None
