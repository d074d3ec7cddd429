"""A Prometheus histogram for one event loop's hot path (no lock per observation).

``prometheus_client.Histogram.observe`` takes two locks and walks the buckets in Python: about a
quarter of the CPU of sending one outbound media message (10 a second per stream). Every
observation of :class:`LoopHistogram` happens on the event loop's thread, so a plain list of
counts is enough; the exposition (``generate_latest``) is the same as the standard histogram's,
``_created`` included, which ``tests/server/test_loop_histogram.py`` checks.
"""

from __future__ import annotations

import math
import time
from bisect import bisect_left
from collections.abc import Iterable, Iterator
from itertools import accumulate

from prometheus_client import CollectorRegistry
from prometheus_client import metrics as _metrics
from prometheus_client.metrics_core import HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

__all__ = ["LoopHistogram"]


class LoopHistogram(Collector):
    """An unlabelled histogram observed from one thread only (the event loop's)."""

    def __init__(
        self, name: str, documentation: str, buckets: Iterable[float], registry: CollectorRegistry
    ) -> None:
        bounds = sorted(float(b) for b in buckets)
        if not bounds or bounds[-1] != math.inf:
            bounds.append(math.inf)
        self.name = name
        self.documentation = documentation
        self._bounds = bounds
        self._labels = [floatToGoString(b) for b in bounds]  # type: ignore[no-untyped-call]
        self._counts = [0] * len(bounds)
        self._sum = 0.0
        self._created = time.time()
        registry.register(self)

    def observe(self, amount: float) -> None:
        """One observation: its bucket is the first upper bound at or above it."""
        if amount == amount:  # NaN falls in no bucket (as in prometheus_client)
            self._counts[bisect_left(self._bounds, amount)] += 1
        self._sum += amount

    def collect(self) -> Iterator[Metric]:
        family = HistogramMetricFamily(self.name, self.documentation)
        cumulative = accumulate(self._counts)
        family.add_metric(
            [],
            list(zip(self._labels, cumulative, strict=True)),
            sum_value=self._sum,
        )
        if _metrics._use_created:
            family.add_sample(self.name + "_created", {}, self._created)
        yield family
