"""The soak's transcript checker (bench/soak.py ``match_accepted``): strict, order-independent."""

from __future__ import annotations

import importlib.util
import sys
from collections import Counter
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]


def _soak() -> ModuleType:
    spec = importlib.util.spec_from_file_location("soak_bench", ROOT / "bench" / "soak.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("soak_bench", mod)
    spec.loader.exec_module(mod)
    return mod


def test_a_not_spoken_line_is_not_taken_by_a_cut_off_line() -> None:
    # the CI failure: a bare "[cut off]" matched any accepted line, so the line stored as
    # "[not spoken] Violet…" took a cut-off slot first and a later accepted line was "lost"
    soak = _soak()
    accepted = [
        "Pencil silver river planet.",
        "Summer garden window.",
        "Violet apple yellow yellow.",
        "Apple violet yellow candle.",
        "Thanks, goodbye.",
    ]
    stored = Counter(
        [
            "Pencil silver river planet.",
            "[cut off] Summer garden window.",
            "[not spoken] Violet apple yellow yellow.",
            "[cut off] Apple violet yellow candle.",
            "Thanks, goodbye.",
        ]
    )
    figures, lost = soak.match_accepted(accepted, stored)
    assert lost == []
    assert figures["lines accepted, stored cut off (barge-in)"] == 2
    assert figures["lines accepted, stored as not spoken (cut before playing)"] == 1


def test_a_bare_cut_off_matches_nothing() -> None:
    soak = _soak()
    _figures, lost = soak.match_accepted(["Apple violet."], Counter(["[cut off]"]))
    assert lost == ["Apple violet."]


def test_heard_prefix_matches_its_own_line_only() -> None:
    soak = _soak()
    accepted = ["Summer river.", "Summer garden."]
    stored = Counter(["Summer garden [cut off]", "Summer river."])
    figures, lost = soak.match_accepted(accepted, stored)
    assert lost == [] and figures["lines accepted, stored cut off (barge-in)"] == 1
    _f, lost = soak.match_accepted(["Summer river."], Counter(["Summer garden [cut off]"]))
    assert lost == ["Summer river."]
