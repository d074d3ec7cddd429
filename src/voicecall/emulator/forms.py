"""Form encoding and decoding for the emulator's wire, plus its own E.164 check (pure).

Kept apart from the service's parsers on purpose (independent twin). Repeated keys survive in
both directions: parameters are ordered lists of ``(name, value)`` pairs, never dicts.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from urllib.parse import quote_plus, unquote_plus

__all__ = [
    "MAX_FORM_BYTES",
    "MAX_FORM_FIELDS",
    "FormError",
    "Params",
    "decode_form",
    "encode_form",
    "first",
    "get_all",
    "is_address",
    "is_anonymous_caller",
    "is_e164",
]

Params = tuple[tuple[str, str], ...]

MAX_FORM_BYTES = 64 * 1024
MAX_FORM_FIELDS = 200

_E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")
_CLIENT = re.compile(r"^client:[A-Za-z0-9_.\-]{1,121}$")
_SIP = re.compile(r"^sips?:[^@\s<>\"]+@[A-Za-z0-9.\-\[\]:]+(;[^\s<>\"]*)?$")
# Twilio's stand-ins for a caller with no caller ID (documented values).
_ANONYMOUS = frozenset({"anonymous", "+266696687", "+2666966", "+7378742833", "+86282452253"})


class FormError(ValueError):
    """The form body could not be decoded (the client is at fault)."""


def encode_form(params: Iterable[tuple[str, str]]) -> str:
    """``application/x-www-form-urlencoded`` body for ``params``, order and repeats kept."""
    return "&".join(f"{quote_plus(k, safe='')}={quote_plus(v, safe='')}" for k, v in params)


def decode_form(body: bytes | str) -> Params:
    """Decode a form body strictly enough for untrusted input.

    Raises :class:`FormError` on oversize bodies, too many fields or bytes that are not UTF-8.
    Blank values are kept (``To=`` means an empty ``To``, which is then rejected as invalid).
    """
    if isinstance(body, bytes):
        if len(body) > MAX_FORM_BYTES:
            raise FormError(f"form body larger than {MAX_FORM_BYTES} bytes")
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise FormError("form body is not UTF-8") from exc
    else:
        text = body
        if len(text.encode("utf-8")) > MAX_FORM_BYTES:
            raise FormError(f"form body larger than {MAX_FORM_BYTES} bytes")
    if not text:
        return ()
    out: list[tuple[str, str]] = []
    for piece in text.split("&"):
        if not piece:
            continue
        name, _, value = piece.partition("=")
        try:
            pair = (
                unquote_plus(name, errors="strict"),
                unquote_plus(value, errors="strict"),
            )
        except UnicodeDecodeError as exc:
            raise FormError("percent-escapes do not decode as UTF-8") from exc
        out.append(pair)
        if len(out) > MAX_FORM_FIELDS:
            raise FormError(f"more than {MAX_FORM_FIELDS} form fields")
    return tuple(out)


def get_all(params: Sequence[tuple[str, str]], name: str) -> list[str]:
    """Every value of ``name``, in order."""
    return [v for k, v in params if k == name]


def first(params: Sequence[tuple[str, str]], name: str) -> str | None:
    """The first value of ``name`` or ``None``."""
    for k, v in params:
        if k == name:
            return v
    return None


def is_e164(number: str) -> bool:
    """``+`` then 7 to 15 digits, first digit not 0 (the shape Twilio accepts for ``To``)."""
    return bool(_E164.fullmatch(number))


def is_address(value: str) -> bool:
    """A call's ``To``: an E.164 number, ``client:identity`` or a ``sip:user@host`` URI."""
    return is_e164(value) or bool(_CLIENT.fullmatch(value)) or bool(_SIP.fullmatch(value))


def is_anonymous_caller(number: str) -> bool:
    """True for the caller IDs Twilio uses when the caller withheld theirs."""
    return number.strip().lower() in _ANONYMOUS
