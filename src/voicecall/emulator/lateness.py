"""Send lateness of paced frames: a bounded histogram (pure).

Each 20 ms frame has an absolute due time; its *lateness* is how long after that time it was
actually handed to the socket. Samples go into 0.1 ms buckets (sparse, so memory stays bounded
however long a stream runs); percentiles are the upper edge of the bucket that holds them, so
they never understate. The maximum is kept exactly.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["BUCKET_MS", "LatenessHistogram"]

BUCKET_MS = 0.1
_MAX_BUCKET = 100_000  # 10 s; anything later lands in the last bucket (max stays exact)


@dataclass(slots=True)
class LatenessHistogram:
    """Counts of lateness samples in 0.1 ms buckets, plus the exact maximum."""

    counts: dict[int, int] = field(default_factory=dict)
    count: int = 0
    max_ms: float = 0.0

    def add(self, lateness_ms: float) -> None:
        # Hot: called for every frame of every stream.
        if lateness_ms > 0.0:
            bucket = int(lateness_ms * 10.0)
            if bucket > _MAX_BUCKET:
                bucket = _MAX_BUCKET
            if lateness_ms > self.max_ms:
                self.max_ms = lateness_ms
        else:
            bucket = 0
        counts = self.counts
        counts[bucket] = counts.get(bucket, 0) + 1
        self.count += 1

    def merge(self, other: LatenessHistogram) -> None:
        for bucket, n in other.counts.items():
            self.counts[bucket] = self.counts.get(bucket, 0) + n
        self.count += other.count
        self.max_ms = max(self.max_ms, other.max_ms)

    @classmethod
    def merged(cls, parts: Iterable[LatenessHistogram]) -> LatenessHistogram:
        total = cls()
        for part in parts:
            total.merge(part)
        return total

    def percentile(self, q: float) -> float | None:
        """The ``q``-quantile (0..1) in ms, as the upper edge of its bucket; None when empty."""
        if not 0.0 <= q <= 1.0:
            raise ValueError("q must be between 0 and 1")
        if self.count == 0:
            return None
        rank = max(1, math.ceil(q * self.count - 1e-9))
        seen = 0
        for bucket in sorted(self.counts):
            seen += self.counts[bucket]
            if seen >= rank:
                return min((bucket + 1) * BUCKET_MS, max(self.max_ms, bucket * BUCKET_MS))
        return self.max_ms  # pragma: no cover - rank <= count always

    def above(self, threshold_ms: float) -> int:
        """How many samples were later than ``threshold_ms`` (to bucket resolution)."""
        edge = int(threshold_ms * 10.0)
        return sum(n for bucket, n in self.counts.items() if bucket >= edge)

    def summary(self) -> dict[str, Any]:
        def r(v: float | None) -> float | None:
            return None if v is None else round(v, 2)

        return {
            "frames": self.count,
            "p50": r(self.percentile(0.5)),
            "p99": r(self.percentile(0.99)),
            "max": r(self.max_ms if self.count else None),
        }
