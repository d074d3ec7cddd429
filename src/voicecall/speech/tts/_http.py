"""Shared edge for the HTTP TTS services: one streamed POST, errors translated at the boundary."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any, Final

import httpx

from voicecall.speech.errors import SpeechUnavailable, error_for_status

__all__ = ["DEFAULT_TIMEOUT", "stream_post"]

DEFAULT_TIMEOUT: Final = httpx.Timeout(connect=10.0, read=30.0, write=10.0, pool=10.0)
_MAX_ERROR_BODY: Final = 4096


async def stream_post(
    http: httpx.AsyncClient,
    provider: str,
    url: str,
    *,
    headers: Mapping[str, str],
    json: Any,
    params: Mapping[str, str] | None = None,
) -> AsyncIterator[bytes]:
    """POST ``json`` and yield the response body as it arrives.

    Leaving the generator early (cancellation, ``aclose``) closes the response, so the
    connection is dropped and the service stops generating.
    """
    try:
        async with http.stream(
            "POST", url, headers=headers, json=json, params=params, timeout=DEFAULT_TIMEOUT
        ) as resp:
            if resp.status_code != 200:
                body = b""
                async for piece in resp.aiter_bytes():
                    body += piece
                    if len(body) >= _MAX_ERROR_BODY:
                        break
                raise error_for_status(
                    provider, resp.status_code, body[:_MAX_ERROR_BODY].decode("utf-8", "replace")
                )
            async for chunk in resp.aiter_bytes():
                if chunk:
                    yield chunk
    except httpx.TransportError as exc:
        # the exception text names the host, never the headers
        raise SpeechUnavailable(
            f"{type(exc).__name__} talking to the service", provider=provider
        ) from exc
