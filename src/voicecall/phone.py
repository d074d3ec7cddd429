"""E.164 phone numbers: parse, validate, display and match exactly.

Matching is exact equality of the normalized E.164 form. An anonymous, restricted or missing
caller id never matches anything (a field lesson: suffix matching let ``""`` and ``5678`` match).
"""

from __future__ import annotations

import phonenumbers

from voicecall.errors import InvalidPhoneNumber

# Caller-id values Twilio and carriers use when the number is withheld.
ANONYMOUS_CALLER_IDS = frozenset(
    {"", "anonymous", "restricted", "unknown", "private", "unavailable", "+266696687", "266696687"}
)


def parse_e164(raw: str, *, field: str = "number") -> str:
    """Return ``raw`` normalized to E.164, or raise :class:`InvalidPhoneNumber` saying why.

    Only numbers written in international form (leading ``+``) are accepted: without a region we
    cannot know what a national number means, and guessing would dial the wrong person.
    """
    text = raw.strip() if isinstance(raw, str) else ""
    if not text:
        raise InvalidPhoneNumber(f"{field}: empty phone number")
    if not text.startswith("+"):
        raise InvalidPhoneNumber(
            f"{field}: {text!r} is not in E.164 form (it must start with + and a country code)"
        )
    try:
        parsed = phonenumbers.parse(text, None)
    except phonenumbers.NumberParseException as exc:
        raise InvalidPhoneNumber(f"{field}: {text!r} is not a phone number ({exc})") from None
    if not phonenumbers.is_valid_number(parsed):
        raise InvalidPhoneNumber(f"{field}: {text!r} is not a valid phone number")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def normalize_caller_id(raw: str | None) -> str | None:
    """Normalize a caller id from a webhook; ``None`` when anonymous, missing or invalid."""
    if raw is None:
        return None
    text = raw.strip()
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
