"""``application/x-www-form-urlencoded`` as Twilio sends it, parsed strictly. Pure.

Webhook bodies and our own query strings go through :func:`parse_form` /
:func:`parse_query`: order and repeats kept, ``+`` a space, ``%XX`` two hex digits, UTF-8
only, no empty names. Untrusted input never raises anything but
:class:`~voicecall.errors.WebhookRejected` (HTTP 400).
"""

from __future__ import annotations

import re
from urllib.parse import unquote_to_bytes

from voicecall.errors import WebhookRejected

__all__ = ["MAX_FORM_FIELDS", "parse_form", "parse_query"]

MAX_FORM_FIELDS = 200

_BAD_PERCENT_RE = re.compile(rb"%(?![0-9A-Fa-f]{2})")
_ESCAPED_SEPARATOR_RE = re.compile(rb"%(?:26|3[dD])")


def _reject(message: str) -> WebhookRejected:
    return WebhookRejected(message, http_status=400)


def _decode_component(raw: bytes, what: str) -> str:
    if b"%" not in raw:  # the common case for Twilio's fields: no percent-decoding needed
        try:
            return raw.replace(b"+", b" ").decode("utf-8")
        except UnicodeDecodeError:
            raise _reject(f"form {what} is not valid UTF-8") from None
    if _BAD_PERCENT_RE.search(raw):
        raise _reject(f"invalid percent-encoding in form {what}")
    try:
        return unquote_to_bytes(raw.replace(b"+", b" ")).decode("utf-8")
    except UnicodeDecodeError:
        raise _reject(f"form {what} is not valid UTF-8") from None


def parse_form(body: bytes, *, max_fields: int = MAX_FORM_FIELDS) -> tuple[tuple[str, str], ...]:
    """Parse an ``application/x-www-form-urlencoded`` body strictly, keeping order and repeats.

    ``+`` is a space; ``%XX`` must be two hex digits; the result must be UTF-8; a field needs a
    non-empty name; empty segments (``a=1&&b=2``) are skipped. More than ``max_fields`` fields,
    or anything malformed, raises :class:`WebhookRejected` (400), and nothing else is raised.
    """
    if not body:
        return ()
    segments = body.split(b"&")
    if b"" in segments:
        segments = [seg for seg in segments if seg]
    if len(segments) > max_fields:
        raise _reject(f"too many form fields ({len(segments)} > {max_fields})")
    # Fast path for the common, well-formed body: decode it as a whole, split the text. A body
    # that is not UTF-8 as a whole (its percent escapes may still complete a character), has a
    # bad escape, or has any other problem goes to the field-by-field parser below, which finds
    # the same answer and raises the precise error.
    if b"%" in body and _BAD_PERCENT_RE.search(body):
        return _parse_segments(segments)
    if b"%" in body and not _ESCAPED_SEPARATOR_RE.search(body):
        # No escaped "&" or "=": percent-decoding the whole body at once (after "+" → space)
        # cannot create or hide a separator, so split the decoded text (Twilio escapes "+",
        # ":" and "," in every callback: one decode instead of one per field).
        try:
            text = unquote_to_bytes(body.replace(b"+", b" ")).decode("utf-8")
        except UnicodeDecodeError:
            return _parse_segments(segments)
        fields: list[tuple[str, str]] = []
        for seg in text.split("&"):
            if not seg:
                continue
            name, _, value = seg.partition("=")
            if not name:
                return _parse_segments(segments)
            fields.append((name, value))
        return tuple(fields)
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return _parse_segments(segments)
    if "+" in text:
        text = text.replace("+", " ")
    fields = []
    append = fields.append
    try:
        for seg in text.split("&"):
            if not seg:
                continue
            name, _, value = seg.partition("=")
            if "%" in name:
                name = unquote_to_bytes(name).decode("utf-8")
            if not name:
                return _parse_segments(segments)
            if "%" in value:
                value = unquote_to_bytes(value).decode("utf-8")
            append((name, value))
    except UnicodeDecodeError:
        return _parse_segments(segments)
    return tuple(fields)


def _parse_segments(segments: list[bytes]) -> tuple[tuple[str, str], ...]:
    """The field-by-field parser: every rule checked in order, the first problem raised."""
    fields: list[tuple[str, str]] = []
    for seg in segments:
        raw_name, _, raw_value = seg.partition(b"=")
        name = _decode_component(raw_name, "name")
        if not name:
            raise _reject("form field with an empty name")
        fields.append((name, _decode_component(raw_value, "value")))
    return tuple(fields)


def parse_query(query_string: bytes | str, *, max_fields: int = 32) -> tuple[tuple[str, str], ...]:
    """Parse a raw URL query string with the same strict rules as :func:`parse_form`."""
    raw = (
        query_string.encode("utf-8", "surrogatepass")
        if isinstance(query_string, str)
        else query_string
    )
    return parse_form(raw, max_fields=max_fields)
