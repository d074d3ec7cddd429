"""The outbound policy: may the service dial this number, now? Pure: facts in, a decision out.

An AI that can dial is a toll-fraud and harassment risk, so every number the service is about to
call (an outbound call, later a transfer destination) is checked against these rules, in this
order, before any provider request. The first rule that refuses decides; its name is the config
key (or list) to look at, and the detail says what was found::

    rule                                   status  refuses
    outbound.blocked_numbers               403     a number listed in the configuration
    do_not_call                            403     a number on the store's do-not-call list
    outbound.allowed_number_types          403     premium rate, shared cost, satellite, …
    outbound.allowed_countries             403     another country than the allowed ones
    outbound.quiet_hours                   403     night time where the callee is
    max_concurrent_calls                   429     too many calls up at once
    outbound.max_calls_per_number_per_day  429     the same number too often (last 24 h)
    outbound.max_calls_per_hour            429     too many calls (last 60 min)
    outbound.max_minutes_per_day           429     the daily talk-time budget is spent

Number facts come from ``phonenumbers``: the region (``region_code_for_number``; non-geographic
numbers such as +881 satellite phones have the region ``001``), the type (``number_type``, with
the non-geographic calling codes classified by what they are) and the time zones
(``phonenumbers.timezone``). Nothing here reads a clock or the store: ``now`` and the counts are
passed in (:mod:`voicecall.calls.outbound` does the I/O).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from phonenumbers import PhoneNumberType
from phonenumbers import timezone as pn_timezone

if TYPE_CHECKING:
    from voicecall.config import Settings

#: ``phonenumbers``' region code of numbers that belong to no country (+800, +870, +881, …)
NON_GEOGRAPHIC = "001"
#: ``outbound.allowed_countries`` entry that allows every region (including ``001``)
ANY_COUNTRY = "*"


class NumberType(StrEnum):
    """What kind of line a number is (``phonenumbers.PhoneNumberType``, plus the kinds of the
    non-geographic calling codes, which phonenumbers reports as mobile or VoIP)."""

    FIXED_LINE = "fixed_line"
    MOBILE = "mobile"
    FIXED_LINE_OR_MOBILE = "fixed_line_or_mobile"
    TOLL_FREE = "toll_free"
    VOIP = "voip"
    PREMIUM_RATE = "premium_rate"
    SHARED_COST = "shared_cost"
    PERSONAL_NUMBER = "personal_number"
    UAN = "uan"
    PAGER = "pager"
    VOICEMAIL = "voicemail"
    SATELLITE = "satellite"
    INTERNATIONAL_NETWORK = "international_network"
    UNKNOWN = "unknown"


#: Types dialled without asking. Everything else (premium rate, shared cost, personal/UAN,
#: pagers, voicemail access, satellite, international networks, unknown) must be allowed
#: explicitly in ``outbound.allowed_number_types``.
DEFAULT_ALLOWED_TYPES: tuple[NumberType, ...] = (
    NumberType.FIXED_LINE,
    NumberType.MOBILE,
    NumberType.FIXED_LINE_OR_MOBILE,
    NumberType.TOLL_FREE,
    NumberType.VOIP,
)

_PN_TYPES: dict[int, NumberType] = {
    PhoneNumberType.FIXED_LINE: NumberType.FIXED_LINE,
    PhoneNumberType.MOBILE: NumberType.MOBILE,
    PhoneNumberType.FIXED_LINE_OR_MOBILE: NumberType.FIXED_LINE_OR_MOBILE,
    PhoneNumberType.TOLL_FREE: NumberType.TOLL_FREE,
    PhoneNumberType.PREMIUM_RATE: NumberType.PREMIUM_RATE,
    PhoneNumberType.SHARED_COST: NumberType.SHARED_COST,
    PhoneNumberType.VOIP: NumberType.VOIP,
    PhoneNumberType.PERSONAL_NUMBER: NumberType.PERSONAL_NUMBER,
    PhoneNumberType.PAGER: NumberType.PAGER,
    PhoneNumberType.UAN: NumberType.UAN,
    PhoneNumberType.VOICEMAIL: NumberType.VOICEMAIL,
}

# Non-geographic (ITU "global service") calling codes: phonenumbers calls +881 "mobile" and
# +882/+883 "voip"; what they cost is what matters here.
_GLOBAL_SERVICES: dict[int, NumberType] = {
    800: NumberType.TOLL_FREE,  # international freephone (UIFN)
    808: NumberType.SHARED_COST,  # international shared cost
    870: NumberType.SATELLITE,  # Inmarsat
    878: NumberType.PERSONAL_NUMBER,  # universal personal telecommunications
    881: NumberType.SATELLITE,  # global mobile satellite systems (Iridium, Globalstar, …)
    882: NumberType.INTERNATIONAL_NETWORK,
    883: NumberType.INTERNATIONAL_NETWORK,
    888: NumberType.INTERNATIONAL_NETWORK,  # UN OCHA
    979: NumberType.PREMIUM_RATE,  # international premium rate
}

_TYPE_WORDS: dict[NumberType, str] = {
    NumberType.FIXED_LINE: "a fixed-line number",
    NumberType.MOBILE: "a mobile number",
    NumberType.FIXED_LINE_OR_MOBILE: "a fixed-line or mobile number",
    NumberType.TOLL_FREE: "a toll-free number",
    NumberType.VOIP: "a VoIP number",
    NumberType.PREMIUM_RATE: "a premium-rate number",
    NumberType.SHARED_COST: "a shared-cost number",
    NumberType.PERSONAL_NUMBER: "a personal (follow-me) number",
    NumberType.UAN: "a universal access number",
    NumberType.PAGER: "a pager number",
    NumberType.VOICEMAIL: "a voicemail access number",
    NumberType.SATELLITE: "a satellite phone number",
    NumberType.INTERNATIONAL_NETWORK: "an international network number",
    NumberType.UNKNOWN: "a number of unknown type",
}


@dataclass(frozen=True, slots=True)
class NumberFacts:
    """What ``phonenumbers`` says about a (valid, E.164) number."""

    number: str
    region: str  # ISO 3166 alpha-2, or "001" for non-geographic numbers
    type: NumberType
    time_zones: tuple[str, ...]  # IANA names; empty when unknown


def number_facts(e164: str) -> NumberFacts:
    """Region, type and time zones of an E.164 number (already validated by ``parse_e164``)."""
    parsed = phonenumbers.parse(e164, None)
    region = phonenumbers.region_code_for_number(parsed) or NON_GEOGRAPHIC
    if region == NON_GEOGRAPHIC:
        kind = _GLOBAL_SERVICES.get(parsed.country_code or 0, NumberType.INTERNATIONAL_NETWORK)
    else:
        kind = _PN_TYPES.get(phonenumbers.number_type(parsed), NumberType.UNKNOWN)
    zones = tuple(
        z for z in pn_timezone.time_zones_for_number(parsed) if z != pn_timezone.UNKNOWN_TIMEZONE
    )
    return NumberFacts(number=e164, region=region, type=kind, time_zones=zones)


def region_of(e164: str) -> str:
    """The region code of an E.164 number (``001`` when it has none)."""
    parsed = phonenumbers.parse(e164, None)
    return phonenumbers.region_code_for_number(parsed) or NON_GEOGRAPHIC


# ----------------------------------------------------------------------------- quiet hours

_HHMM = re.compile(r"([01][0-9]|2[0-3]):([0-5][0-9])", re.ASCII)


@dataclass(frozen=True, slots=True)
class QuietHours:
    """A daily window of local time, ``start`` included, ``end`` excluded, in minutes after
    midnight; it wraps over midnight when ``start > end`` (``21:00-08:00``)."""

    start: int
    end: int

    @classmethod
    def parse(cls, text: str) -> QuietHours:
        """``"HH:MM-HH:MM"`` (24-hour clock); ``ValueError`` saying what is wrong."""
        parts = text.split("-")
        if len(parts) != 2:
            raise ValueError(f"{text!r} is not HH:MM-HH:MM (e.g. 21:00-08:00)")
        minutes = []
        for part in parts:
            m = _HHMM.fullmatch(part)
            if m is None:
                raise ValueError(f"{text!r}: {part!r} is not a 24-hour time HH:MM")
            minutes.append(int(m[1]) * 60 + int(m[2]))
        if minutes[0] == minutes[1]:
            raise ValueError(f"{text!r}: start and end are equal (an empty or full-day window)")
        return cls(minutes[0], minutes[1])

    def contains(self, minute_of_day: int) -> bool:
        if self.start < self.end:
            return self.start <= minute_of_day < self.end
        return minute_of_day >= self.start or minute_of_day < self.end

    def __str__(self) -> str:
        (h1, m1), (h2, m2) = divmod(self.start, 60), divmod(self.end, 60)
        return f"{h1:02d}:{m1:02d}-{h2:02d}:{m2:02d}"


# ----------------------------------------------------------------------------- rules and facts


@dataclass(frozen=True, slots=True)
class OutboundRules:
    """The policy's settings. ``None`` turns a rule off."""

    allowed_countries: frozenset[str] | None  # None: any country ("*")
    allowed_types: frozenset[NumberType]
    blocked_numbers: frozenset[str]
    quiet_hours: QuietHours | None
    max_concurrent_calls: int | None
    max_calls_per_number_per_day: int | None
    max_calls_per_hour: int | None
    max_minutes_per_day: float | None

    @classmethod
    def from_settings(cls, settings: Settings) -> OutboundRules:
        o = settings.outbound
        countries: frozenset[str] | None
        if o.allowed_countries is None:
            # default: the country of the number we call from; none configured: nothing allowed
            origin = settings.from_number
            countries = frozenset({region_of(origin)}) if origin else frozenset()
        elif ANY_COUNTRY in o.allowed_countries:
            countries = None
        else:
            countries = frozenset(o.allowed_countries)
        return cls(
            allowed_countries=countries,
            allowed_types=frozenset(NumberType(t) for t in o.allowed_number_types),
            blocked_numbers=frozenset(o.blocked_numbers),
            quiet_hours=QuietHours.parse(o.quiet_hours) if o.quiet_hours else None,
            max_concurrent_calls=settings.max_concurrent_calls,
            max_calls_per_number_per_day=o.max_calls_per_number_per_day,
            max_calls_per_hour=o.max_calls_per_hour,
            max_minutes_per_day=o.max_minutes_per_day,
        )

    @property
    def counts_needed(self) -> bool:
        """Whether any rule needs the store's call counts."""
        return any(
            v is not None
            for v in (
                self.max_calls_per_number_per_day,
                self.max_calls_per_hour,
                self.max_minutes_per_day,
            )
        )


@dataclass(frozen=True, slots=True)
class OutboundCounts:
    """What the store says about recent outbound calls (windows end at ``now``)."""

    calls_to_number_last_day: int = 0
    calls_last_hour: int = 0
    talk_seconds_last_day: float = 0.0


@dataclass(frozen=True, slots=True)
class Refusal:
    """The policy says no: ``rule`` names the setting/list, ``status`` is 403 or 429."""

    rule: str
    status: int
    detail: str


FORBIDDEN = 403
LIMITED = 429


def check_number(
    facts: NumberFacts,
    rules: OutboundRules,
    *,
    now: float,
    do_not_call: str | bool | None = False,
    field: str = "to",
) -> Refusal | None:
    """The rules about *which* number and *when* (no counts). ``do_not_call`` is ``False``
    when the number is not on the store's list, else the reason it was listed (or ``None``)."""
    n = facts.number
    if n in rules.blocked_numbers:
        return Refusal(
            "outbound.blocked_numbers",
            FORBIDDEN,
            f"{field}: {n} is listed in outbound.blocked_numbers; it is never called",
        )
    if do_not_call is not False:
        why = f" (reason: {do_not_call})" if isinstance(do_not_call, str) and do_not_call else ""
        return Refusal(
            "do_not_call",
            FORBIDDEN,
            f"{field}: {n} is on the do-not-call list{why}; `voicecall unblock {n}` removes it",
        )
    if facts.type not in rules.allowed_types:
        return Refusal(
            "outbound.allowed_number_types",
            FORBIDDEN,
            f"{field}: {n} is {_TYPE_WORDS[facts.type]} ({facts.type.value}, region "
            f"{facts.region}); outbound.allowed_number_types does not include {facts.type.value}",
        )
    if rules.allowed_countries is not None and facts.region not in rules.allowed_countries:
        allowed = ", ".join(sorted(rules.allowed_countries)) or "none"
        where = "no country (a non-geographic number)" if facts.region == NON_GEOGRAPHIC else ""
        return Refusal(
            "outbound.allowed_countries",
            FORBIDDEN,
            f"{field}: {n} is in region {facts.region}{f', {where}' if where else ''}; "
            f"outbound.allowed_countries allows {allowed}",
        )
    if rules.quiet_hours is not None:
        refusal = _quiet(facts, rules.quiet_hours, now, field)
        if refusal is not None:
            return refusal
    return None


def _quiet(facts: NumberFacts, quiet: QuietHours, now: float, field: str) -> Refusal | None:
    rule = "outbound.quiet_hours"
    if not facts.time_zones:
        return Refusal(
            rule,
            FORBIDDEN,
            f"{field}: {facts.number}: the callee's local time is unknown (no time zone for this "
            f"number), so outbound.quiet_hours {quiet} cannot be respected",
        )
    for zone in facts.time_zones:
        try:
            local = datetime.fromtimestamp(now, ZoneInfo(zone))
        except (ZoneInfoNotFoundError, ValueError):
            return Refusal(
                rule,
                FORBIDDEN,
                f"{field}: {facts.number}: time zone {zone} is unknown to this system, so "
                f"outbound.quiet_hours {quiet} cannot be respected",
            )
        if quiet.contains(local.hour * 60 + local.minute):
            several = (
                f" (one of its {len(facts.time_zones)} time zones)"
                if len(facts.time_zones) > 1
                else ""
            )
            return Refusal(
                rule,
                FORBIDDEN,
                f"{field}: {facts.number}: it is {local:%H:%M} in {zone}{several}, inside "
                f"outbound.quiet_hours {quiet} (the callee's local time)",
            )
    return None


def check_limits(
    facts: NumberFacts,
    rules: OutboundRules,
    counts: OutboundCounts,
    *,
    active_calls: int | None = None,
    field: str = "to",
) -> Refusal | None:
    """The rules about *how much* (counts of recent calls; ``active_calls`` ``None``: the
    concurrency limit is not checked, e.g. for a transfer of a call already up)."""
    limit = rules.max_concurrent_calls
    if active_calls is not None and limit is not None and active_calls >= limit:
        return Refusal(
            "max_concurrent_calls",
            LIMITED,
            f"{active_calls} call(s) active; max_concurrent_calls is {limit}",
        )
    limit = rules.max_calls_per_number_per_day
    if limit is not None and counts.calls_to_number_last_day >= limit:
        return Refusal(
            "outbound.max_calls_per_number_per_day",
            LIMITED,
            f"{field}: {facts.number} was called {counts.calls_to_number_last_day} time(s) in "
            f"the last 24 hours; outbound.max_calls_per_number_per_day is {limit}",
        )
    limit = rules.max_calls_per_hour
    if limit is not None and counts.calls_last_hour >= limit:
        return Refusal(
            "outbound.max_calls_per_hour",
            LIMITED,
            f"{counts.calls_last_hour} call(s) were placed in the last hour; "
            f"outbound.max_calls_per_hour is {limit}",
        )
    budget = rules.max_minutes_per_day
    if budget is not None and counts.talk_seconds_last_day >= budget * 60:
        return Refusal(
            "outbound.max_minutes_per_day",
            LIMITED,
            f"outbound calls of the last 24 hours lasted {counts.talk_seconds_last_day / 60:.1f} "
            f"minutes; outbound.max_minutes_per_day is {budget:g}",
        )
    return None


def decide(
    facts: NumberFacts,
    rules: OutboundRules,
    counts: OutboundCounts,
    *,
    now: float,
    do_not_call: str | bool | None = False,
    active_calls: int | None = None,
    field: str = "to",
) -> Refusal | None:
    """Every rule in order; ``None`` means the call may be placed."""
    return check_number(
        facts, rules, now=now, do_not_call=do_not_call, field=field
    ) or check_limits(facts, rules, counts, active_calls=active_calls, field=field)
