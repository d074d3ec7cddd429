"""The outbound policy, pure: facts in, a decision out (no store, no clock, no sockets)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from voicecall.calls.policy import (
    NON_GEOGRAPHIC,
    NumberType,
    OutboundCounts,
    OutboundRules,
    QuietHours,
    check_limits,
    check_number,
    decide,
    number_facts,
)
from voicecall.config import load_config

FROM = "+14155550199"
SF = "+14155550100"  # America/Los_Angeles


def rules(**outbound: Any) -> OutboundRules:
    over: dict[str, Any] = {"from_number": FROM, "max_concurrent_calls": 2}
    over["outbound"] = outbound
    return OutboundRules.from_settings(load_config(env={}, overrides=over))


def utc(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


NOON_SF = utc("2030-06-01T19:00:00")  # 12:00 PDT


# -- number facts ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("number", "region", "kind"),
    [
        ("+19005550123", "US", NumberType.PREMIUM_RATE),  # +1 900
        ("+449091234567", "GB", NumberType.PREMIUM_RATE),  # +44 909
        ("+448712345678", "GB", NumberType.PREMIUM_RATE),  # +44 871 (phonenumbers: premium)
        ("+447012345678", "GB", NumberType.PERSONAL_NUMBER),  # +44 70
        ("+881612345678", NON_GEOGRAPHIC, NumberType.SATELLITE),  # phonenumbers says "mobile"
        ("+870772123456", NON_GEOGRAPHIC, NumberType.SATELLITE),  # Inmarsat
        ("+883510012345", NON_GEOGRAPHIC, NumberType.INTERNATIONAL_NETWORK),  # says "voip"
        ("+18005550123", "US", NumberType.TOLL_FREE),
        ("+448001234567", "GB", NumberType.TOLL_FREE),
        ("+14155550100", "US", NumberType.FIXED_LINE_OR_MOBILE),
        ("+442071838750", "GB", NumberType.FIXED_LINE),
        ("+33612345678", "FR", NumberType.MOBILE),
    ],
)
def test_number_facts(number: str, region: str, kind: NumberType) -> None:
    facts = number_facts(number)
    assert (facts.region, facts.type) == (region, kind)


def test_time_zones_come_from_the_number() -> None:
    assert number_facts(SF).time_zones == ("America/Los_Angeles",)
    assert number_facts("+12125551234").time_zones == ("America/New_York",)
    assert len(number_facts("+18005550123").time_zones) > 10  # toll-free: all of NANP
    assert number_facts("+881612345678").time_zones == ()  # unknown


# -- which numbers ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("number", "rule"),
    [
        ("+19005550123", "outbound.allowed_number_types"),
        ("+449091234567", "outbound.allowed_number_types"),
        ("+881612345678", "outbound.allowed_number_types"),
        ("+883510012345", "outbound.allowed_number_types"),
        ("+447012345678", "outbound.allowed_number_types"),
        ("+442071838750", "outbound.allowed_countries"),  # default: from_number's country
        ("+12125551234", None),
        ("+18005550123", None),  # toll-free passes
        (SF, None),
    ],
)
def test_default_rules(number: str, rule: str | None) -> None:
    refusal = decide(number_facts(number), rules(), OutboundCounts(), now=NOON_SF)
    assert (refusal.rule if refusal else None) == rule
    if refusal is not None:
        assert refusal.status == 403 and refusal.detail.startswith(f"to: {number}")


def test_refusal_details_say_what_was_found() -> None:
    r = check_number(number_facts("+19005550123"), rules(), now=0)
    assert r is not None
    assert "premium-rate" in r.detail and "premium_rate" in r.detail and "region US)" in r.detail
    r = check_number(number_facts("+881612345678"), rules(), now=0)
    assert r is not None and "satellite" in r.detail
    r = check_number(number_facts("+442071838750"), rules(), now=0)
    assert r is not None and "region GB" in r.detail and "allows US" in r.detail


def test_types_and_countries_can_be_allowed_explicitly() -> None:
    gb = rules(allowed_countries=["gb", "US"], allowed_number_types=["premium_rate", "mobile"])
    assert check_number(number_facts("+449091234567"), gb, now=0) is None
    assert check_number(number_facts("+442071838750"), gb, now=0) is not None  # fixed_line
    sat = rules(allowed_countries=["001"], allowed_number_types=["satellite"])
    assert check_number(number_facts("+881612345678"), sat, now=0) is None
    anywhere = rules(allowed_countries=["*"])
    assert check_number(number_facts("+33612345678"), anywhere, now=0) is None
    # the type rule still applies with any country
    assert check_number(number_facts("+19005550123"), anywhere, now=0) is not None


def test_no_from_number_allows_no_country() -> None:
    bare = OutboundRules.from_settings(load_config(env={}, overrides={}))
    r = check_number(number_facts(SF), bare, now=0)
    assert r is not None and r.rule == "outbound.allowed_countries" and "allows none" in r.detail


def test_blocked_numbers_and_do_not_call() -> None:
    listed = rules(blocked_numbers=[SF])
    r = check_number(number_facts(SF), listed, now=0)
    assert r is not None and r.rule == "outbound.blocked_numbers" and r.status == 403
    r = check_number(number_facts("+12125551234"), rules(), now=0, do_not_call="asked")
    assert r is not None and r.rule == "do_not_call" and "(reason: asked)" in r.detail
    r = check_number(number_facts("+12125551234"), rules(), now=0, do_not_call=None)
    assert r is not None and r.rule == "do_not_call" and "reason" not in r.detail
    assert check_number(number_facts("+12125551234"), rules(), now=0, do_not_call=False) is None


# -- quiet hours ------------------------------------------------------------------------------


def test_quiet_hours_in_the_callees_local_time() -> None:
    quiet = rules(quiet_hours="21:00-08:00")
    facts = number_facts(SF)
    assert check_number(facts, quiet, now=NOON_SF) is None
    late = utc("2030-06-02T05:30:00")  # 22:30 in San Francisco, 01:30 in New York
    r = check_number(facts, quiet, now=late)
    assert r is not None and r.rule == "outbound.quiet_hours" and r.status == 403
    assert "it is 22:30 in America/Los_Angeles" in r.detail and "21:00-08:00" in r.detail
    # 20:59 local is fine, 21:00 is not; 08:00 is fine again
    assert check_number(facts, quiet, now=utc("2030-06-02T03:59:00")) is None
    assert check_number(facts, quiet, now=utc("2030-06-02T04:00:00")) is not None
    assert check_number(facts, quiet, now=utc("2030-06-02T14:59:00")) is not None
    assert check_number(facts, quiet, now=utc("2030-06-02T15:00:00")) is None


def test_a_number_spanning_zones_is_refused_if_any_zone_is_quiet() -> None:
    quiet = rules(quiet_hours="21:00-08:00")
    tollfree = number_facts("+18005550123")  # Honolulu … St Johns
    # 19:00 UTC is daytime from Honolulu (09:00) to St Johns (16:30), but 05:00 on Guam
    r = check_number(tollfree, quiet, now=NOON_SF)
    assert r is not None and "Pacific/Guam" in r.detail and "time zones" in r.detail


def test_unknown_local_time_is_refused_under_quiet_hours() -> None:
    quiet = rules(quiet_hours="21:00-08:00", allowed_countries=["*"])
    quiet = OutboundRules(**{**_fields(quiet), "allowed_types": frozenset(NumberType)})
    r = check_number(number_facts("+881612345678"), quiet, now=NOON_SF)
    assert r is not None and r.rule == "outbound.quiet_hours" and "unknown" in r.detail


def _fields(r: OutboundRules) -> dict[str, Any]:
    return {k: getattr(r, k) for k in OutboundRules.__slots__}


@pytest.mark.parametrize(
    ("text", "inside", "outside"),
    [("21:00-08:00", [1260, 0, 479], [480, 1259]), ("12:30-13:00", [750, 779], [749, 780])],
)
def test_quiet_hours_windows(text: str, inside: list[int], outside: list[int]) -> None:
    q = QuietHours.parse(text)
    assert str(q) == text
    assert all(q.contains(m) for m in inside)
    assert not any(q.contains(m) for m in outside)


@pytest.mark.parametrize(
    "text",
    [
        "21:00",
        "21:00-08:00-09:00",
        "9:00-10:00",
        "24:00-01:00",
        "10:00-10:00",
        "10:60-11:00",
        "ab:cd-ef:gh",
        "",
    ],
)
def test_quiet_hours_parse_refuses(text: str) -> None:
    with pytest.raises(ValueError):
        QuietHours.parse(text)


@given(st.text(max_size=20))
def test_quiet_hours_parse_is_total(text: str) -> None:
    try:
        q = QuietHours.parse(text)
    except ValueError:
        return
    assert str(q) == text


# -- limits -----------------------------------------------------------------------------------


def test_limits_in_order_with_429() -> None:
    r = rules(max_calls_per_number_per_day=3, max_calls_per_hour=5, max_minutes_per_day=10)
    facts = number_facts(SF)
    assert check_limits(facts, r, OutboundCounts(2, 4, 599.0), active_calls=1) is None
    hit = check_limits(facts, r, OutboundCounts(2, 4, 599.0), active_calls=2)
    assert hit is not None and hit.rule == "max_concurrent_calls" and hit.status == 429
    hit = check_limits(facts, r, OutboundCounts(3, 4, 0.0))
    assert hit is not None and hit.rule == "outbound.max_calls_per_number_per_day"
    assert "called 3 time(s) in the last 24 hours" in hit.detail
    hit = check_limits(facts, r, OutboundCounts(0, 5, 0.0))
    assert hit is not None and hit.rule == "outbound.max_calls_per_hour" and hit.status == 429
    hit = check_limits(facts, r, OutboundCounts(0, 0, 600.0))
    assert hit is not None and hit.rule == "outbound.max_minutes_per_day"
    assert "10.0 minutes" in hit.detail


def test_limits_can_be_turned_off() -> None:
    off = rules(
        max_calls_per_number_per_day=None, max_calls_per_hour=None, max_minutes_per_day=None
    )
    assert not off.counts_needed
    assert check_limits(number_facts(SF), off, OutboundCounts(10**6, 10**6, 1e9)) is None
    assert rules().counts_needed


def test_number_rules_come_before_limits() -> None:
    r = decide(
        number_facts("+19005550123"),
        rules(),
        OutboundCounts(100, 100, 1e9),
        now=NOON_SF,
        active_calls=100,
    )
    assert r is not None and r.rule == "outbound.allowed_number_types"
