"""LoopHistogram: the same exposition as prometheus_client's Histogram for the same values."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Histogram, generate_latest

from voicecall.server.loop_histogram import LoopHistogram

BUCKETS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1.0)


def exposition(values: list[float], *, ours: bool) -> list[str]:
    registry = CollectorRegistry(auto_describe=True)
    kind = LoopHistogram if ours else Histogram
    h = kind("x_seconds", "How late.", buckets=BUCKETS, registry=registry)
    for v in values:
        h.observe(v)
    lines = generate_latest(registry).decode().splitlines()
    # the _created gauge's value is the creation time: only its presence and place compare
    return ["x_seconds_created T" if ln.startswith("x_seconds_created ") else ln for ln in lines]


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.floats(min_value=0.0, max_value=5.0)
        | st.sampled_from([*BUCKETS, 0.0, math.inf, math.nan, 1e-9]),
        max_size=40,
    )
)
def test_same_exposition_as_prometheus_histogram(values: list[float]) -> None:
    assert exposition(values, ours=True) == exposition(values, ours=False)
