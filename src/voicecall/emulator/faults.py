"""Fault injection for the emulator: rates plus a seed make every run reproducible.

Each fault kind draws from its own random stream (seeded from ``seed`` and the kind's name), so
the decisions of one kind do not depend on how often another kind was consulted. Faults can also
be queued explicitly (``inject_rest("429")``): queued faults are used first, in order.

Kinds:

* REST: ``rest_429_rate`` (20429, HTTP 429), ``rest_500_rate`` (HTTP 500), ``rest_timeout_rate``
  (the response is held ``rest_timeout_seconds`` - longer than a client's timeout - and then the
  request is processed normally, so a "timed out" create may still have placed the call, as with
  the real service), and ``max_concurrent_requests`` (more REST requests in flight than this get
  20429 at once).
* Webhooks: ``webhook_delay_rate`` / ``webhook_delay_ms`` (sent late), ``duplicate_rate`` (the
  same delivery sent twice: same body, same signature, same idempotency token),
  ``reorder_rate`` (a status callback is held back and sent after the call's next one).
* Media: ``ws_drop_rate`` / ``ws_drop_after_ms`` (the stream's WebSocket is dropped mid-call).
"""

from __future__ import annotations

import random
from collections import deque
from dataclasses import asdict, dataclass, fields, replace
from enum import StrEnum
from typing import Any

__all__ = ["FaultConfig", "Faults", "RestFault"]


class RestFault(StrEnum):
    TOO_MANY = "429"
    SERVER_ERROR = "500"
    TIMEOUT = "timeout"


@dataclass(frozen=True, slots=True)
class FaultConfig:
    seed: int = 0
    rest_429_rate: float = 0.0
    rest_500_rate: float = 0.0
    rest_timeout_rate: float = 0.0
    rest_timeout_seconds: float = 20.0
    max_concurrent_requests: int | None = None
    webhook_delay_rate: float = 0.0
    webhook_delay_ms: int = 0
    duplicate_rate: float = 0.0
    reorder_rate: float = 0.0
    ws_drop_rate: float = 0.0
    ws_drop_after_ms: int = 3000

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name.endswith("_rate") and not 0.0 <= value <= 1.0:
                raise ValueError(f"{f.name} must be within 0..1")
        if self.rest_429_rate + self.rest_500_rate + self.rest_timeout_rate > 1.0:
            raise ValueError("REST fault rates add up to more than 1")
        if self.rest_timeout_seconds < 0 or self.webhook_delay_ms < 0 or self.ws_drop_after_ms < 0:
            raise ValueError("durations must be >= 0")
        if self.max_concurrent_requests is not None and self.max_concurrent_requests < 1:
            raise ValueError("max_concurrent_requests must be >= 1")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FaultConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown fault settings: {sorted(unknown)}")
        return cls(**data)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Faults:
    """The emulator's fault source. Mutable: tests change it while the emulator runs."""

    def __init__(self, config: FaultConfig | None = None) -> None:
        self._config = config or FaultConfig()
        self._queued_rest: deque[RestFault] = deque()
        self._rngs: dict[str, random.Random] = {}

    @property
    def config(self) -> FaultConfig:
        return self._config

    def configure(self, config: FaultConfig | None = None, **changes: Any) -> FaultConfig:
        """Replace the configuration (and restart the random streams from its seed)."""
        base = config or self._config
        self._config = replace(base, **changes) if changes else base
        self._rngs.clear()
        return self._config

    def reset(self) -> None:
        self._queued_rest.clear()
        self.configure(FaultConfig())

    def inject_rest(self, fault: RestFault | str, count: int = 1) -> None:
        """Make the next ``count`` REST requests fail with ``fault`` (before any rate applies)."""
        kind = RestFault(fault)
        for _ in range(count):
            self._queued_rest.append(kind)

    def _rng(self, kind: str) -> random.Random:
        rng = self._rngs.get(kind)
        if rng is None:
            rng = self._rngs[kind] = random.Random(f"{self._config.seed}:{kind}")
        return rng

    def _hit(self, kind: str, rate: float) -> bool:
        if rate <= 0.0:
            return False
        return self._rng(kind).random() < rate

    def rest_fault(self) -> RestFault | None:
        if self._queued_rest:
            return self._queued_rest.popleft()
        c = self._config
        total = c.rest_429_rate + c.rest_500_rate + c.rest_timeout_rate
        if total <= 0.0:
            return None
        x = self._rng("rest").random()
        if x < c.rest_429_rate:
            return RestFault.TOO_MANY
        if x < c.rest_429_rate + c.rest_500_rate:
            return RestFault.SERVER_ERROR
        if x < total:
            return RestFault.TIMEOUT
        return None

    def webhook_delay(self) -> float:
        """Seconds to hold a webhook before sending it (0 = no delay)."""
        c = self._config
        if c.webhook_delay_ms > 0 and self._hit("delay", c.webhook_delay_rate):
            return c.webhook_delay_ms / 1000.0
        return 0.0

    def duplicate(self) -> bool:
        return self._hit("duplicate", self._config.duplicate_rate)

    def reorder(self) -> bool:
        return self._hit("reorder", self._config.reorder_rate)

    def ws_drop_after(self) -> float | None:
        """Seconds after stream start to drop the WebSocket, or ``None``."""
        c = self._config
        if self._hit("ws_drop", c.ws_drop_rate):
            return c.ws_drop_after_ms / 1000.0
        return None
