"""How voicecall runs under uvicorn: the one set of server options every entry point uses
(``voicecall serve``, the demo, the end-to-end harness), so tests run what production runs."""

from __future__ import annotations

from typing import Any

from voicecall.config import Settings
from voicecall.server.ws_protocol import DirectWebSocketProtocol

__all__ = ["uvicorn_options"]


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
