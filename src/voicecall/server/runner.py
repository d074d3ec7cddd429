"""How voicecall runs under uvicorn: the one set of server options every entry point uses
(``voicecall serve``, the demo, the end-to-end harness), so tests run what production runs."""

from __future__ import annotations

import gc
from typing import Any

from voicecall.config import Settings
from voicecall.server.ws_protocol import DirectWebSocketProtocol

__all__ = ["settle_gc", "uvicorn_options"]

#: young-generation threshold for a running server: every request and media frame allocates
#: short-lived objects, and the default (700) ran a collection every few requests
GC_GEN0_THRESHOLD = 20_000


def uvicorn_options(settings: Settings, **overrides: Any) -> dict[str, Any]:
    """Keyword arguments for ``uvicorn.Config``/``uvicorn.run`` (host and port not included)."""
    options: dict[str, Any] = {
        "log_config": None,
        "access_log": False,
        "proxy_headers": False,  # trusted proxies are handled by voicecall itself
        "timeout_keep_alive": 5,
        "timeout_graceful_shutdown": 3,
        "h11_max_incomplete_event_size": 16 * 1024,
        "ws": DirectWebSocketProtocol,  # uvicorn's sans-I/O protocol + the media fast lane
        "ws_per_message_deflate": False,  # μ-law does not compress; it only costs CPU
        "ws_max_size": 2 * settings.streaming.max_frame_bytes,
        "lifespan": "on",
    }
    options.update(overrides)
    return options


def settle_gc(*, collect: bool = True) -> None:
    """Before serving: collect once, move everything alive (modules, classes, settings) out of
    the collector's sight (``gc.freeze``), and collect the young generation less often. Full
    collections then scan only what the server allocated since, which kept them (and the
    event-loop stalls they cause) short. Only for a process that is about to serve for long:
    frozen objects are never collected. ``voicecall serve`` calls it twice: before serving
    (modules) and once the instance is active with its speech models loaded (the store, the
    manager, model objects, lazily loaded phone metadata: left in the old generation they made
    each full collection a 40-50 ms stall of the event loop). The second time it only freezes
    (``collect=False``): traffic may already be flowing, and the garbage it keeps is small."""
    if collect:  # a full collection of a large heap stalls the loop: skipped once serving
        gc.collect()
    gc.freeze()
    _, gen1, gen2 = gc.get_threshold()
    gc.set_threshold(GC_GEN0_THRESHOLD, gen1, gen2)
