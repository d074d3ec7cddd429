"""Prometheus metrics: what an operator needs to see a voicecall instance is healthy.

Each app gets its own registry (tests build many apps in one process).
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from voicecall.voice.latency import STAGES

__all__ = ["CONTENT_TYPE_LATEST", "Metrics"]


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.webhooks = Counter(
            "voicecall_webhooks_total",
            "Webhooks received, by kind and outcome (ok, duplicate, rejected_*, store_error).",
            ["kind", "outcome"],
            registry=r,
        )
        self.webhook_seconds = Histogram(
            "voicecall_webhook_seconds",
            "Time from the webhook's first byte to the answer (verified and persisted).",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
            registry=r,
        )
        self.lease_held = Gauge(
            "voicecall_store_lease_held",
            "1 when this instance holds the store lease and acts; 0 on a standby.",
            registry=r,
        )
        self.calls_active = Gauge(
            "voicecall_calls_active", "Calls not yet in a terminal state.", registry=r
        )
        self.calls_ended = Counter(
            "voicecall_calls_ended_total",
            "Calls that reached a terminal state, by direction and end reason.",
            ["direction", "end_reason"],
            registry=r,
        )
        self.calls_placed = Counter(
            "voicecall_calls_placed_total", "Outbound calls dialled.", registry=r
        )
        self.api_requests = Counter(
            "voicecall_api_requests_total",
            "Control API requests by route and status.",
            ["route", "status"],
            registry=r,
        )
        self.provider_errors = Counter(
            "voicecall_provider_errors_total",
            "Provider REST errors by type.",
            ["type"],
            registry=r,
        )
        self.turn_latency = Histogram(
            "voicecall_turn_latency_seconds",
            "Bot replies on Media Streams: time per stage, from the caller's speech end to the"
            " first frame sent (stage: end_of_turn, stt, responder, tts, overhead,"
            " voice_to_voice; see docs/realtime.md, Measuring turns).",
            ["stage"],
            buckets=(0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 0.8, 1.0, 1.2, 1.5, 2.0, 3.0, 5.0),
            registry=r,
        )
        self.stream_connections = Gauge(
            "voicecall_stream_connections", "Open Media Streams WebSockets.", registry=r
        )

    def observe_turn(self, latency: dict[str, Any]) -> None:
        """One ``turn.latency`` record (``<stage>_ms`` figures) into the histograms."""
        for stage in STAGES:
            value = latency.get(f"{stage}_ms")
            if isinstance(value, int | float) and not isinstance(value, bool):
                self.turn_latency.labels(stage).observe(value / 1000.0)

    def render(self) -> bytes:
        return generate_latest(self.registry)
