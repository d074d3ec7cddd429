"""Fault decisions are reproducible from a seed; scripts parse from dict, JSON and YAML."""

from __future__ import annotations

import json

import pytest

from voicecall.emulator.faults import FaultConfig, Faults, RestFault
from voicecall.emulator.scripts import (
    DEFAULT_SCRIPT,
    DigitsReply,
    Outcome,
    ScriptError,
    SilenceReply,
    SpeechReply,
    TimedLine,
    parse_script,
)


def draw(faults: Faults, n: int = 200) -> list[object]:
    out: list[object] = []
    for _ in range(n):
        out += [faults.rest_fault(), faults.duplicate(), faults.reorder(), faults.webhook_delay()]
    return out


def test_same_seed_same_decisions_and_different_seed_different():
    cfg = FaultConfig(
        seed=42,
        rest_429_rate=0.2,
        rest_500_rate=0.1,
        duplicate_rate=0.3,
        reorder_rate=0.3,
        webhook_delay_rate=0.5,
        webhook_delay_ms=100,
    )
    a, b = draw(Faults(cfg)), draw(Faults(cfg))
    assert a == b
    c = draw(Faults(FaultConfig(**{**cfg.to_dict(), "seed": 43})))
    assert a != c


def test_kinds_use_independent_streams():
    cfg = FaultConfig(seed=1, duplicate_rate=0.5, reorder_rate=0.5)
    f1, f2 = Faults(cfg), Faults(cfg)
    for _ in range(50):
        f2.reorder()  # consulting another kind must not shift duplicate decisions
    assert [f1.duplicate() for _ in range(100)] == [f2.duplicate() for _ in range(100)]


def test_rates_are_roughly_honoured():
    f = Faults(FaultConfig(seed=9, rest_429_rate=0.25))
    hits = sum(f.rest_fault() is RestFault.TOO_MANY for _ in range(4000))
    assert 850 < hits < 1150


def test_injected_rest_faults_come_first_in_order():
    f = Faults()
    f.inject_rest("429", count=2)
    f.inject_rest(RestFault.TIMEOUT)
    assert [f.rest_fault() for _ in range(4)] == [
        RestFault.TOO_MANY,
        RestFault.TOO_MANY,
        RestFault.TIMEOUT,
        None,
    ]


@pytest.mark.parametrize(
    "bad",
    [
        {"rest_429_rate": 1.5},
        {"rest_429_rate": 0.6, "rest_500_rate": 0.6},
        {"max_concurrent_requests": 0},
        {"webhook_delay_ms": -1},
    ],
)
def test_fault_config_validation(bad):
    with pytest.raises(ValueError):
        FaultConfig(**bad)
    with pytest.raises(ValueError):
        FaultConfig.from_dict({"unknown": 1})


SCRIPT = {
    "answer_after_ms": 1500,
    "replies": ["table for two", {"speech": "yes", "confidence": 0.5}, {"digits": "12#"}, None],
    "say_at": [{"at_ms": 3000, "text": "later"}, {"at_ms": 100, "text": "hello?"}],
    "hangup_after_ms": 20000,
}


def test_script_from_dict_json_and_yaml_agree():
    import yaml

    a = parse_script(SCRIPT)
    assert parse_script(json.dumps(SCRIPT)) == a
    assert parse_script(yaml.safe_dump(SCRIPT)) == a
    assert a.replies == (
        SpeechReply("table for two"),
        SpeechReply("yes", 0.5),
        DigitsReply("12#"),
        SilenceReply(),
    )
    assert a.say_at == (TimedLine(100, "hello?"), TimedLine(3000, "later"))
    assert parse_script(a.to_dict()) == a


def test_no_script_is_the_default():
    assert parse_script(None) == DEFAULT_SCRIPT
    assert DEFAULT_SCRIPT.answer_after_ms == 1000
    assert DEFAULT_SCRIPT.outcome is Outcome.ANSWER
    assert DEFAULT_SCRIPT.hangup_after_ms is None


@pytest.mark.parametrize(
    "bad",
    [
        {"anwser_after_ms": 10},
        {"outcome": "maybe"},
        {"answer_after_ms": -1},
        {"answer_after_ms": "soon"},
        {"replies": "hi"},
        {"replies": [{"digits": "12a"}]},
        {"replies": [""]},
        {"replies": [{"speech": "x", "confidence": 2}]},
        {"say_at": [{"at": 1, "text": "x"}]},
        "[1, 2]",
        "{not: valid: yaml: [",
    ],
)
def test_bad_scripts_are_refused(bad):
    with pytest.raises(ScriptError):
        parse_script(bad)
