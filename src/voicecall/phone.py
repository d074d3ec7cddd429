"""E.164 phone numbers: parse, validate, display and match exactly.

Matching is exact equality of the normalized E.164 form. An anonymous, restricted or missing
caller id never matches anything (a field lesson: suffix matching let ``""`` and ``5678`` match).
"""

from __future__ import annotations

import re

import phonenumbers

from voicecall.errors import InvalidPhoneNumber

# Caller-id values Twilio and carriers use when the number is withheld.
ANONYMOUS_CALLER_IDS = frozenset(
    {"", "anonymous", "restricted", "unknown", "private", "unavailable", "+266696687", "266696687"}
)


# E.164 exactly as written: "+", a country code that does not start with 0, at most 15 digits
# in all. ASCII digits only ("\u0661" is a digit to str.isdigit(), not to a phone network).
_E164 = re.compile(r"\+[1-9][0-9]{1,14}", re.ASCII)
#: the shape of an E.164 number as a JSON Schema ``pattern`` (validity needs phonenumbers)
E164_PATTERN = r"^\+[1-9][0-9]{1,14}$"
_DIGIT_RUN = re.compile(r"\+[0-9]+", re.ASCII)
_REPAIRABLE = re.compile(r"[0-9+\s().\-/]+", re.ASCII)
_SHOWN_CHARS = 40


def _shown(text: str) -> str:
    """``text`` for an error message: repr-escaped (control characters visible), shortened."""
    if len(text) > _SHOWN_CHARS:
        return repr(text[:_SHOWN_CHARS]) + "…"
    return repr(text)


def parse_e164(raw: str, *, field: str = "number") -> str:
    """Return ``raw`` if it is a valid E.164 number exactly as written, else raise
    :class:`InvalidPhoneNumber` naming ``field`` and saying why.

    Nothing is repaired: no spaces or punctuation are dropped, no letters are turned into
    digits (``+1415ABC0100`` is refused, not dialled as +14152220100), nothing may follow the
    number (no extension, no trailing text). Only the international form is accepted: without a
    region a national number is ambiguous, and guessing would dial the wrong person. When the
    number only needs its spaces or punctuation removed, the message shows the E.164 form.
    """
    if not isinstance(raw, str) or raw == "":
        raise InvalidPhoneNumber(f"{field}: empty phone number")
    if _E164.fullmatch(raw) is None:
        raise InvalidPhoneNumber(f"{field}: {_shown(raw)} {_why_not_e164(raw)}")
    try:
        parsed = phonenumbers.parse(raw, None)
    except phonenumbers.NumberParseException as exc:
        raise InvalidPhoneNumber(f"{field}: {_shown(raw)} is not a phone number ({exc})") from None
    if not phonenumbers.is_valid_number(parsed):
        raise InvalidPhoneNumber(f"{field}: {_shown(raw)} is not a valid phone number")
    e164 = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
    if e164 != raw:  # defensive: the formats must agree, or we would dial something else
        raise InvalidPhoneNumber(f"{field}: {_shown(raw)} is not in canonical E.164 form")
    return e164


def _why_not_e164(raw: str) -> str:
    stripped = raw.strip()
    if stripped != raw and _E164.fullmatch(stripped):
        return "has spaces around the number: give exactly the E.164 number, e.g. +14155550100"
    if not raw.startswith("+") and stripped.startswith("+"):
        return "has spaces before the +: give exactly the E.164 number, e.g. +14155550100"
    if not raw.startswith("+"):
        return "is not in E.164 form (it must start with + and the country code, e.g. +14155550100)"
    run = _DIGIT_RUN.match(raw)
    rest = raw[run.end() :] if run else raw[1:]
    if run and rest and (_valid(run.group()) or not any(ch in "0123456789" for ch in rest)):
        if rest.strip(" ") == "" or _REPAIRABLE.fullmatch(rest):
            return "has something after the number: nothing may follow it"
        letters = "; letters are not converted to digits" if any(c.isalpha() for c in rest) else ""
        return f"has {_shown(rest)} after the number: nothing may follow it (no extension{letters})"
    if any(ch.isalpha() for ch in raw):
        return "contains letters: write the digits (letters are not converted), e.g. +14155550100"
    if _REPAIRABLE.fullmatch(raw):
        digits = "".join(ch for ch in raw if ch in "0123456789")
        if raw[1:].isascii() and raw[1:].isdigit():
            if raw[1] == "0":
                return "is not in E.164 form: country codes never start with 0"
            return "is too long: E.164 numbers have at most 15 digits"
        if not digits:
            return "is not in E.164 form: digits must follow the +, e.g. +14155550100"
        hint = f"; did you mean +{digits}?" if _E164.fullmatch("+" + digits) else ""
        return f"is not in E.164 form: only digits may follow the + (no spaces, punctuation){hint}"
    return "is not in E.164 form: + and 2-15 ASCII digits, nothing before or after"


def _valid(e164: str) -> bool:
    try:
        return phonenumbers.is_valid_number(phonenumbers.parse(e164, None))
    except phonenumbers.NumberParseException:
        return False


def normalize_caller_id(raw: str | None) -> str | None:
    """Normalize a caller id from a webhook; ``None`` when anonymous, missing or invalid."""
    if raw is None:
        return None
    text = raw.strip()  # a caller id from a webhook, not a number a client asked us to dial
    if text.lower() in ANONYMOUS_CALLER_IDS:
        return None
    try:
        return parse_e164(text)
    except InvalidPhoneNumber:
        return None


def is_allowed(caller: str | None, allowlist: frozenset[str] | set[str] | list[str]) -> bool:
    """Exact E.164 membership; anonymous or missing callers never match."""
    normalized = normalize_caller_id(caller)
    if normalized is None:
        return False
    return normalized in set(allowlist)


def display(number: str | None) -> str:
    """Human-friendly international format, or ``anonymous``."""
    if not number:
        return "anonymous"
    try:
        parsed = phonenumbers.parse(number, None)
    except phonenumbers.NumberParseException:
        return number
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.INTERNATIONAL)
