"""JSON shapes of the emulated REST API: call resources, pages and errors (pure)."""

from __future__ import annotations

from typing import Any

from voicecall.emulator.recording import Recording
from voicecall.emulator.sim import CallSim
from voicecall.emulator.simtypes import API_VERSION, CallStatus, rfc2822

__all__ = [
    "call_resource",
    "calls_path",
    "error_body",
    "format_number",
    "page_body",
    "recording_resource",
    "recordings_path",
]


def calls_path(account_sid: str) -> str:
    return f"/{API_VERSION}/Accounts/{account_sid}/Calls"


def recordings_path(account_sid: str) -> str:
    return f"/{API_VERSION}/Accounts/{account_sid}/Recordings"


def error_body(code: int, message: str, status: int) -> dict[str, Any]:
    return {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }


def format_number(number: str) -> str:
    """``+14155551212`` -> ``(415) 555-1212`` for NANP numbers, else unchanged."""
    if len(number) == 12 and number.startswith("+1") and number[1:].isdigit():
        d = number[2:]
        return f"({d[:3]}) {d[3:6]}-{d[6:]}"
    return number


def call_resource(sim: CallSim) -> dict[str, Any]:
    """The call as Twilio's Calls resource JSON shows it."""
    base = calls_path(sim.account_sid)
    uri = f"{base}/{sim.sid}.json"
    status = sim.status
    if status is CallStatus.INITIATED:
        # The REST resource has no "initiated" status; it reads "queued" until ringing.
        status = CallStatus.QUEUED
    duration = sim.duration
    return {
        "account_sid": sim.account_sid,
        "annotation": None,
        "answered_by": sim.answered_by,
        "api_version": API_VERSION,
        "caller_name": None,
        "date_created": rfc2822(sim.date_created),
        "date_updated": rfc2822(sim.date_updated),
        "direction": sim.spec.direction.value,
        "duration": None if duration is None else str(duration),
        "end_time": None if sim.end_time is None else rfc2822(sim.end_time),
        "forwarded_from": None,
        "from": sim.spec.from_,
        "from_formatted": format_number(sim.spec.from_),
        "group_sid": None,
        "parent_call_sid": sim.parent_call_sid,
        "phone_number_sid": None,
        "price": None,
        "price_unit": "USD",
        "queue_time": "0",
        "sid": sim.sid,
        "start_time": None if sim.start_time is None else rfc2822(sim.start_time),
        "status": status.value,
        "subresource_uris": {
            "notifications": f"{base}/{sim.sid}/Notifications.json",
            "recordings": f"{base}/{sim.sid}/Recordings.json",
            "payments": f"{base}/{sim.sid}/Payments.json",
            "events": f"{base}/{sim.sid}/Events.json",
            "siprec": f"{base}/{sim.sid}/Siprec.json",
            "streams": f"{base}/{sim.sid}/Streams.json",
            "user_defined_message_subscriptions": (
                f"{base}/{sim.sid}/UserDefinedMessageSubscriptions.json"
            ),
            "user_defined_messages": f"{base}/{sim.sid}/UserDefinedMessages.json",
        },
        "to": sim.spec.to,
        "to_formatted": format_number(sim.spec.to),
        "trunk_sid": None,
        "uri": uri,
    }


def recording_resource(rec: Recording) -> dict[str, Any]:
    """A recording as Twilio's Recordings resource JSON shows it."""
    uri = f"{rec.path}.json"
    return {
        "account_sid": rec.account_sid,
        "api_version": API_VERSION,
        "call_sid": rec.call_sid,
        "conference_sid": None,
        "channels": rec.channels,
        "date_created": rfc2822(rec.start),
        "date_updated": rfc2822(rec.end if rec.end is not None else rec.start),
        "duration": str(rec.duration) if rec.status == "completed" else "-1",
        "encryption_details": None,
        "error_code": None if rec.status != "absent" else rec.error_code,
        "media_url": rec.url,
        "price": None,
        "price_unit": "USD",
        "sid": rec.sid,
        "source": rec.source,
        "start_time": rfc2822(rec.start),
        "status": rec.status,
        "subresource_uris": {
            "add_on_results": f"{rec.path}/AddOnResults.json",
            "transcriptions": f"{rec.path}/Transcriptions.json",
        },
        "track": rec.track,
        "uri": uri,
    }


def page_body(
    account_sid: str,
    calls: list[dict[str, Any]],
    *,
    page: int,
    page_size: int,
    total: int,
    query: str,
    key: str = "calls",
    path: str | None = None,
    next_token: str | None = None,
) -> dict[str, Any]:
    """A Twilio list page. ``query`` holds the filters (already encoded, may be empty).

    ``next_token``: the ``PageToken`` the next page starts after (Twilio's cursor paging);
    ``next_page_uri`` carries it.
    """
    base = (path or calls_path(account_sid)) + ".json"
    extra = f"&{query}" if query else ""

    def page_uri(n: int, token: str | None = None) -> str:
        cursor = f"&PageToken={token}" if token else ""
        return f"{base}?PageSize={page_size}&Page={n}{cursor}{extra}"

    start = page * page_size
    has_next = start + len(calls) < total
    return {
        key: calls,
        "end": start + len(calls) - 1 if calls else start,
        "first_page_uri": page_uri(0),
        "next_page_uri": page_uri(page + 1, next_token) if has_next else None,
        "page": page,
        "page_size": page_size,
        "previous_page_uri": page_uri(page - 1) if page > 0 else None,
        "start": start,
        "uri": page_uri(page),
    }
