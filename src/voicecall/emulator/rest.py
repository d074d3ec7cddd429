"""The emulator's HTTP surface: Twilio's Calls REST API and the ``/_emulator`` control API.

A thin starlette layer: requests are decoded with :mod:`voicecall.emulator.forms`, checked, and
turned into calls on the :class:`~voicecall.emulator.runtime.Emulator`; answers are shaped by
:mod:`voicecall.emulator.resources`.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from voicecall.emulator.faults import FaultConfig, RestFault
from voicecall.emulator.forms import (
    MAX_FORM_BYTES,
    FormError,
    Params,
    decode_form,
    encode_form,
    first,
    get_all,
    is_address,
    is_e164,
)
from voicecall.emulator.listing import ListError, page_after, time_filters
from voicecall.emulator.resources import (
    call_resource,
    calls_path,
    error_body,
    page_body,
    recording_resource,
    recordings_path,
)
from voicecall.emulator.scripts import ScriptError, parse_script
from voicecall.emulator.sim import API_VERSION, CallSpec, CallStatus, InvalidCallState

if TYPE_CHECKING:
    from voicecall.emulator.runtime import Emulator

__all__ = ["MAX_TWIML_PARAM_CHARS", "build_app"]

MAX_TWIML_PARAM_CHARS = 4000
_EVENTS = frozenset({"initiated", "ringing", "answered", "completed"})
_DTMF_SEND = frozenset("0123456789*#wWABCD")
_RECORDING_EVENTS = frozenset({"in-progress", "completed", "absent"})
Handler = Callable[[Request], Awaitable[Response]]


class ApiError(Exception):
    def __init__(self, code: int, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status

    def response(self) -> JSONResponse:
        headers = {"WWW-Authenticate": 'Basic realm="Twilio API"'} if self.status == 401 else None
        return JSONResponse(
            error_body(self.code, self.message, self.status), self.status, headers=headers
        )


def _valid_url(url: str) -> bool:
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return parts.scheme in {"http", "https"} and bool(parts.hostname)


def _method(params: Params, name: str) -> str:
    value = first(params, name)
    if value is None or value == "":
        return "POST"
    if value.upper() not in {"GET", "POST"}:
        code = 21205 if name == "Method" else 21609 if name == "StatusCallbackMethod" else 20001
        raise ApiError(code, f"{name} must be GET or POST")
    return value.upper()


def _int_param(params: Params, name: str, default: int) -> int:
    value = first(params, name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise ApiError(20001, f"{name} must be an integer") from None


def _bool_param(params: Params, name: str) -> bool:
    value = (first(params, name) or "false").strip().lower()
    if value not in {"true", "false"}:
        raise ApiError(20001, f"{name} must be true or false")
    return value == "true"


def _url_param(params: Params, name: str, code: int = 21609) -> str | None:
    value = first(params, name) or None
    if value is not None and not _valid_url(value):
        raise ApiError(code, f"{name} is not a valid URL: {value}")
    return value


def _ranged(params: Params, name: str, default: int, low: int, high: int) -> int:
    value = _int_param(params, name, default)
    if not low <= value <= high:
        raise ApiError(20001, f"{name} must be within {low}..{high}, got {value}")
    return value


def _choice(params: Params, name: str, allowed: tuple[str, ...], default: str) -> str:
    value = first(params, name) or default
    if value not in allowed:
        raise ApiError(20001, f"{name} must be one of {', '.join(allowed)}")
    return value


def _recording_events(params: Params) -> frozenset[str]:
    events = {e for v in get_all(params, "RecordingStatusCallbackEvent") for e in v.split()}
    unknown = events - _RECORDING_EVENTS
    if unknown:
        raise ApiError(20001, f"Invalid RecordingStatusCallbackEvent: {', '.join(sorted(unknown))}")
    return frozenset(events) or frozenset({"completed"})


def _timeout(params: Params) -> int:
    """``Timeout``: a positive whole number of seconds (Twilio error 21208), at most 600."""
    value = first(params, "Timeout")
    if value is None or value == "":
        return 60
    try:
        timeout = int(value)
    except ValueError:
        raise ApiError(21208, f"Invalid Timeout: {value!r} is not a whole number") from None
    if timeout < 1:
        raise ApiError(21208, f"Invalid Timeout: {timeout} is not positive")
    return min(timeout, 600)


def parse_create(params: Params) -> CallSpec:
    """Validate a Calls create form into a :class:`CallSpec` or raise :class:`ApiError`."""
    to = first(params, "To")
    from_ = first(params, "From")
    if not to:
        raise ApiError(21201, "No 'To' number is specified")
    if not is_address(to):
        raise ApiError(21211, f"Invalid 'To' Phone Number: {to}")
    if not from_:
        raise ApiError(21213, "No 'From' number is specified")
    from_ok = is_e164(from_) or (to.startswith("client:") and is_address(from_))
    if not from_ok:
        raise ApiError(21212, f"Invalid 'From' Phone Number: {from_}")
    url = first(params, "Url") or None
    twiml = first(params, "Twiml") or None
    if first(params, "ApplicationSid"):
        raise ApiError(21205, "ApplicationSid is not supported by the emulator; use Url or Twiml")
    if url is None and twiml is None:
        raise ApiError(21205, "Url parameter is required (exactly one of Url or Twiml)")
    if url is not None and twiml is not None:
        raise ApiError(21205, "Exactly one of Url or Twiml may be given")
    if url is not None and not _valid_url(url):
        raise ApiError(21205, f"Url is not a valid URL: {url}")
    if twiml is not None and len(twiml) > MAX_TWIML_PARAM_CHARS:
        raise ApiError(21205, f"Twiml must be at most {MAX_TWIML_PARAM_CHARS} characters")
    status_callback = _url_param(params, "StatusCallback")
    events = [e.strip() for v in get_all(params, "StatusCallbackEvent") for e in v.split(" ")]
    events = [e for e in events if e]
    unknown = set(events) - _EVENTS
    if unknown:
        raise ApiError(20001, f"Invalid StatusCallbackEvent: {', '.join(sorted(unknown))}")
    time_limit = _int_param(params, "TimeLimit", 14_400)
    if time_limit < 1:
        raise ApiError(20001, "TimeLimit must be a positive integer")
    machine_detection = first(params, "MachineDetection") or None
    if machine_detection is not None and machine_detection not in {"Enable", "DetectMessageEnd"}:
        raise ApiError(20001, "MachineDetection must be Enable or DetectMessageEnd")
    send_digits = first(params, "SendDigits") or None
    if send_digits is not None and (len(send_digits) > 32 or not set(send_digits) <= _DTMF_SEND):
        raise ApiError(20001, "SendDigits must be at most 32 characters of 0-9 A-D * # w W")
    return CallSpec(
        to=to,
        from_=from_,
        url=url,
        method=_method(params, "Method"),
        twiml=twiml,
        status_callback=status_callback,
        status_callback_method=_method(params, "StatusCallbackMethod"),
        status_callback_events=frozenset(events) if events else frozenset({"completed"}),
        timeout=_timeout(params),
        time_limit=time_limit,
        send_digits=send_digits,
        machine_detection=machine_detection,
        machine_detection_timeout=_ranged(params, "MachineDetectionTimeout", 30, 3, 59),
        machine_detection_speech_threshold=_ranged(
            params, "MachineDetectionSpeechThreshold", 2400, 1000, 6000
        ),
        machine_detection_speech_end_threshold=_ranged(
            params, "MachineDetectionSpeechEndThreshold", 1200, 500, 5000
        ),
        machine_detection_silence_timeout=_ranged(
            params, "MachineDetectionSilenceTimeout", 5000, 2000, 10000
        ),
        async_amd=_bool_param(params, "AsyncAmd"),
        async_amd_status_callback=_url_param(params, "AsyncAmdStatusCallback", 20001),
        async_amd_status_callback_method=_method(params, "AsyncAmdStatusCallbackMethod"),
        record=_bool_param(params, "Record"),
        recording_status_callback=_url_param(params, "RecordingStatusCallback", 20001),
        recording_status_callback_method=_method(params, "RecordingStatusCallbackMethod"),
        recording_status_callback_events=_recording_events(params),
        recording_channels=_choice(params, "RecordingChannels", ("mono", "dual"), "mono"),
        recording_track=_choice(params, "RecordingTrack", ("inbound", "outbound", "both"), "both"),
    )


def build_app(emu: Emulator) -> Starlette:
    def authenticate(request: Request) -> None:
        header = request.headers.get("authorization", "")
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "basic":
            raise ApiError(20003, "Authenticate", 401)
        try:
            decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise ApiError(20003, "Authenticate", 401) from None
        user, _, password = decoded.partition(":")
        if not emu.check_credentials(user, password):
            raise ApiError(20003, "Authenticate", 401)
        path_sid = request.path_params.get("account_sid")
        if path_sid is not None and path_sid != user:
            raise ApiError(20003, "Authenticate", 401)

    async def read_form(request: Request) -> Params:
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > MAX_FORM_BYTES:
            raise ApiError(20001, "Request body too large", 413)
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_FORM_BYTES:
                raise ApiError(20001, "Request body too large", 413)
        try:
            return decode_form(bytes(body))
        except FormError as exc:
            raise ApiError(20001, f"Invalid form body: {exc}") from None

    def rest(handler: Handler) -> Handler:
        async def wrapped(request: Request) -> Response:
            cap = emu.faults.config.max_concurrent_requests
            if cap is not None and emu.rest_in_flight >= cap:
                return ApiError(20429, "Too Many Requests", 429).response()
            emu.rest_in_flight += 1
            try:
                authenticate(request)
                fault = emu.faults.rest_fault()
                if fault is RestFault.TOO_MANY:
                    return ApiError(20429, "Too Many Requests", 429).response()
                if fault is RestFault.SERVER_ERROR:
                    return ApiError(20500, "Internal Server Error", 500).response()
                if fault is RestFault.TIMEOUT:
                    # like the real service: the request is processed (a create places the
                    # call), only the answer comes too late for the client
                    response = await handler(request)
                    await asyncio.sleep(emu.faults.config.rest_timeout_seconds)
                    return response
                return await handler(request)
            except ApiError as exc:
                return exc.response()
            finally:
                emu.rest_in_flight -= 1

        return wrapped

    def not_found(request: Request) -> ApiError:
        return ApiError(20404, f"The requested resource {request.url.path} was not found", 404)

    def note(sid: str, request: Request, params: Params, status: int) -> None:
        sim = emu.calls.get(sid)
        if sim is not None:
            sim.record(
                emu.now(),
                "rest-request",
                method=request.method,
                path=request.url.path,
                params=dict(params),
                status_code=status,
            )

    @rest
    async def create_call(request: Request) -> Response:
        params = await read_form(request)
        spec = parse_create(params)
        sim = emu.create_call(spec)
        note(sim.sid, request, params, 201)
        return JSONResponse(call_resource(sim), 201)

    def paging(q: Any) -> tuple[int, int, str | None]:
        try:
            page_size = max(1, min(1000, int(q.get("PageSize", "50"))))
            page = max(0, int(q.get("Page", "0")))
        except ValueError:
            raise ApiError(20001, "PageSize and Page must be integers") from None
        return page, page_size, q.get("PageToken") or None

    @rest
    async def list_calls(request: Request) -> Response:
        q = request.query_params
        keys = ("To", "From", "Status", "ParentCallSid")
        filters = [(k, q[k]) for k in keys if q.get(k)]
        page, page_size, token = paging(q)
        try:
            times = time_filters(q)
        except ListError as exc:
            raise ApiError(20001, str(exc)) from None
        stamps = {"StartTime": "start_time", "EndTime": "end_time", "DateCreated": "date_created"}
        fields = {
            "To": "to",
            "From": "from",
            "Status": "status",
            "ParentCallSid": "parent_call_sid",
        }
        sims = sorted(emu.calls.values(), key=lambda s: s.date_created, reverse=True)
        rows = []
        for sim in sims:
            resource = call_resource(sim)
            if any(resource[fields[k]] != v for k, v in filters):
                continue
            if any(not test(getattr(sim, stamps[name])) for name, test in times):
                continue
            rows.append(resource)
        try:
            chunk, next_token = page_after(rows, page=page, page_size=page_size, token=token)
        except ListError as exc:
            raise ApiError(20001, str(exc)) from None
        time_query = [(k, q[k]) for k in q if k.startswith(("StartTime", "EndTime", "DateC"))]
        body = page_body(
            emu.account_sid,
            chunk,
            page=page,
            page_size=page_size,
            total=len(rows) if token is None else page * page_size + len(rows),
            query=encode_form(filters + time_query),
            next_token=next_token,
        )
        if token is not None:
            body["next_page_uri"] = body["next_page_uri"] if next_token else None
        return JSONResponse(body)

    # ------------------------------------------------------------------ recordings

    def recording_rows(call_sid: str | None) -> list[dict[str, Any]]:
        recs = sorted(emu.recordings.values(), key=lambda r: r.start, reverse=True)
        return [recording_resource(r) for r in recs if call_sid is None or r.call_sid == call_sid]

    def recordings_page(request: Request, rows: list[dict[str, Any]], path: str) -> Response:
        page, page_size, token = paging(request.query_params)
        try:
            chunk, next_token = page_after(rows, page=page, page_size=page_size, token=token)
        except ListError as exc:
            raise ApiError(20001, str(exc)) from None
        body = page_body(
            emu.account_sid,
            chunk,
            page=page,
            page_size=page_size,
            total=len(rows) if token is None else page * page_size + len(rows),
            query="",
            key="recordings",
            path=path,
            next_token=next_token,
        )
        return JSONResponse(body)

    @rest
    async def list_recordings(request: Request) -> Response:
        call_sid = request.query_params.get("CallSid") or None
        return recordings_page(request, recording_rows(call_sid), recordings_path(emu.account_sid))

    @rest
    async def list_call_recordings(request: Request) -> Response:
        sid = request.path_params["call_sid"]
        if sid not in emu.calls:
            raise not_found(request)
        path = f"{calls_path(emu.account_sid)}/{sid}/Recordings"
        return recordings_page(request, recording_rows(sid), path)

    @rest
    async def fetch_recording(request: Request) -> Response:
        sid = request.path_params["recording_sid"]
        rec = emu.recordings.get(sid)
        if rec is None:
            raise not_found(request)
        return JSONResponse(recording_resource(rec))

    @rest
    async def delete_recording(request: Request) -> Response:
        sid = request.path_params["recording_sid"]
        if not emu.delete_recording(sid):
            raise not_found(request)
        return Response(status_code=204)

    async def recording_media(request: Request) -> Response:
        # Like Twilio's default, recording media needs no credentials (the sid is the secret).
        sid = request.path_params["recording_sid"]
        ext = request.path_params.get("ext", "wav")
        rec = emu.recordings.get(sid)
        if request.path_params["account_sid"] != emu.account_sid or rec is None:
            return not_found(request).response()
        if ext != "wav":
            return ApiError(
                20404, f"the emulator serves recordings as .wav, not .{ext}", 404
            ).response()
        return Response(await emu.recording_wav(sid), media_type="audio/x-wav")

    @rest
    async def fetch_call(request: Request) -> Response:
        sid = request.path_params["call_sid"]
        sim = emu.calls.get(sid)
        if sim is None:
            raise not_found(request)
        return JSONResponse(call_resource(sim))

    @rest
    async def update_call(request: Request) -> Response:
        sid = request.path_params["call_sid"]
        params = await read_form(request)
        sim = emu.calls.get(sid)
        if sim is None:
            raise not_found(request)
        status = first(params, "Status") or None
        url = first(params, "Url") or None
        twiml = first(params, "Twiml") or None
        if status is not None and status not in {"completed", "canceled"}:
            raise ApiError(20001, "Status must be completed or canceled")
        if url is not None and twiml is not None:
            raise ApiError(21205, "Exactly one of Url or Twiml may be given")
        if url is not None and not _valid_url(url):
            raise ApiError(21205, f"Url is not a valid URL: {url}")
        if twiml is not None and len(twiml) > MAX_TWIML_PARAM_CHARS:
            raise ApiError(21205, f"Twiml must be at most {MAX_TWIML_PARAM_CHARS} characters")
        method = _method(params, "Method")
        status_callback = _url_param(params, "StatusCallback")
        callback_method = _method(params, "StatusCallbackMethod")
        try:
            if status_callback is not None:
                sim.update_status_callback(emu.now(), status_callback, callback_method)
            if status is not None:
                emu.hangup(sid, CallStatus(status))
            elif url is not None or twiml is not None:
                emu.redirect(sid, url=url, method=method, twiml=twiml)
            elif sim.is_over:
                raise InvalidCallState(sim.status.value)
        except InvalidCallState:
            note(sid, request, params, 400)
            raise ApiError(21220, "Call is not in-progress. Cannot redirect.") from None
        note(sid, request, params, 200)
        return JSONResponse(call_resource(sim))

    # ------------------------------------------------------------------ control API

    def control(handler: Handler) -> Handler:
        async def wrapped(request: Request) -> Response:
            try:
                authenticate(request)
                return await handler(request)
            except ApiError as exc:
                return exc.response()

        return wrapped

    async def json_body(request: Request) -> Any:
        raw = await request.body()
        if len(raw) > MAX_FORM_BYTES:
            raise ApiError(20001, "Request body too large", 413)
        try:
            return json.loads(raw or b"null")
        except ValueError:
            raise ApiError(20001, "Body must be JSON") from None

    def summary(sid: str) -> dict[str, Any]:
        sim = emu.call(sid)
        return {
            "sid": sim.sid,
            "status": sim.status.value,
            "direction": sim.spec.direction.value,
            "from": sim.spec.from_,
            "to": sim.spec.to,
            "duration": sim.duration,
            "error": None if sim.error is None else {"code": sim.error[0], "message": sim.error[1]},
            "heard": [h.to_dict() for h in sim.heard],
            "callee_inputs": list(sim.callee_inputs),
            "gather_posts": list(sim.gather_posts),
            "streams": sorted(sim.streams),
            "answered_by": sim.answered_by,
            "parent_call_sid": sim.parent_call_sid,
            "script_error": sim.script_error,
            "callee": None if sim.callee is None else sim.callee.summary(),
            "recordings": [r.to_dict() for r in emu.call_recordings(sim.sid)],
        }

    @control
    async def health(request: Request) -> Response:
        return JSONResponse({"ok": True, "calls": len(emu.calls), "api_version": API_VERSION})

    @control
    async def control_calls(request: Request) -> Response:
        return JSONResponse({"calls": [summary(sid) for sid in emu.calls]})

    @control
    async def control_call(request: Request) -> Response:
        sid = request.path_params["call_sid"]
        if sid not in emu.calls:
            raise not_found(request)
        return JSONResponse(summary(sid))

    @control
    async def control_timeline(request: Request) -> Response:
        sid = request.path_params["call_sid"]
        if sid not in emu.calls:
            raise not_found(request)
        return JSONResponse({"sid": sid, "timeline": emu.timeline(sid)})

    @control
    async def control_script(request: Request) -> Response:
        number = request.path_params["number"]
        if request.method == "DELETE":
            emu.set_script(number, None)
            return JSONResponse({"number": number, "script": None})
        raw = (await request.body()).decode("utf-8", "replace")
        try:
            script = parse_script(raw)
        except ScriptError as exc:
            raise ApiError(20001, f"Invalid script: {exc}") from None
        if number == "default":
            emu.set_default_script(script)
        else:
            emu.set_script(number, script)
        return JSONResponse({"number": number, "script": script.to_dict()})

    @control
    async def control_numbers(request: Request) -> Response:
        if request.method == "GET":
            return JSONResponse({"numbers": [n.to_dict() for n in emu.numbers.values()]})
        data = await json_body(request)
        if not isinstance(data, dict) or not isinstance(data.get("number"), str):
            raise ApiError(20001, "Body must be {number, voice_url, ...}")
        try:
            cfg = emu.register_number(
                data["number"],
                str(data["voice_url"]),
                voice_method=str(data.get("voice_method", "POST")),
                status_callback=data.get("status_callback"),
                status_callback_method=str(data.get("status_callback_method", "POST")),
                status_callback_events=list(data.get("status_callback_events", ["completed"])),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ApiError(20001, f"Invalid number: {exc}") from None
        return JSONResponse(cfg.to_dict(), 201)

    @control
    async def control_dial_in(request: Request) -> Response:
        data = await json_body(request)
        if not isinstance(data, dict):
            raise ApiError(20001, "Body must be {from, to}")
        try:
            sid = emu.dial_in(from_=str(data["from"]), to=str(data["to"]))
        except KeyError as exc:
            raise ApiError(20404, f"Unknown number or missing field: {exc}", 404) from None
        except ValueError as exc:
            raise ApiError(21212, str(exc)) from None
        return JSONResponse({"sid": sid}, 201)

    @control
    async def control_conferences(request: Request) -> Response:
        return JSONResponse(emu.conferences.to_dict())

    @control
    async def control_media(request: Request) -> Response:
        data = await json_body(request)
        if not isinstance(data, dict) or not {"url", "path"} <= set(data):
            raise ApiError(20001, "Body must be {url, path}")
        try:
            emu.add_media(str(data["url"]), str(data["path"]))
        except ValueError as exc:
            raise ApiError(20001, f"Invalid media: {exc}") from None
        return JSONResponse({"url": data["url"], "path": data["path"]}, 201)

    @control
    async def control_faults(request: Request) -> Response:
        if request.method in {"PUT", "POST"}:
            data = await json_body(request)
            if not isinstance(data, dict):
                raise ApiError(20001, "Body must be a JSON object of fault settings")
            inject = data.pop("inject_rest", None)
            try:
                emu.faults.configure(FaultConfig.from_dict(data))
                if inject is not None:
                    emu.faults.inject_rest(str(inject["fault"]), int(inject.get("count", 1)))
            except (TypeError, ValueError, KeyError) as exc:
                raise ApiError(20001, f"Invalid fault settings: {exc}") from None
        return JSONResponse(emu.faults.config.to_dict())

    base = f"/{API_VERSION}/Accounts/{{account_sid}}/Calls"
    recs = f"/{API_VERSION}/Accounts/{{account_sid}}/Recordings"
    routes = [
        Route(f"{base}.json", create_call, methods=["POST"]),
        Route(f"{base}.json", list_calls, methods=["GET"]),
        Route(f"{base}/{{call_sid}}.json", fetch_call, methods=["GET"]),
        Route(f"{base}/{{call_sid}}.json", update_call, methods=["POST"]),
        Route(f"{base}/{{call_sid}}/Recordings.json", list_call_recordings, methods=["GET"]),
        Route(f"{recs}.json", list_recordings, methods=["GET"]),
        Route(f"{recs}/{{recording_sid}}.json", fetch_recording, methods=["GET"]),
        Route(f"{recs}/{{recording_sid}}.json", delete_recording, methods=["DELETE"]),
        Route(f"{recs}/{{recording_sid}}.{{ext}}", recording_media, methods=["GET"]),
        Route(f"{recs}/{{recording_sid}}", recording_media, methods=["GET"]),
        Route("/_emulator/health", health, methods=["GET"]),
        Route("/_emulator/calls", control_calls, methods=["GET"]),
        Route("/_emulator/calls/{call_sid}", control_call, methods=["GET"]),
        Route("/_emulator/calls/{call_sid}/timeline", control_timeline, methods=["GET"]),
        Route("/_emulator/scripts/{number}", control_script, methods=["PUT", "POST", "DELETE"]),
        Route("/_emulator/numbers", control_numbers, methods=["GET", "POST"]),
        Route("/_emulator/dial-in", control_dial_in, methods=["POST"]),
        Route("/_emulator/faults", control_faults, methods=["GET", "PUT", "POST"]),
        Route("/_emulator/conferences", control_conferences, methods=["GET"]),
        Route("/_emulator/media", control_media, methods=["POST"]),
    ]

    async def missing(request: Request, exc: Exception) -> Response:
        return not_found(request).response()

    async def bad_method(request: Request, exc: Exception) -> Response:
        return ApiError(20004, f"Method {request.method} not allowed", 405).response()

    return Starlette(routes=routes, exception_handlers={404: missing, 405: bad_method})
