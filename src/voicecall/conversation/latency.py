"""Keeping a bot reply's latency record: on its transcript line, on the bus (metrics, tail).

The record itself is made by the voice pipeline (voice/latency.py) and comes back with the
reply's :class:`~voicecall.calls.channel.SpokenResult`; this stores it with the line that was
spoken and publishes a ``turn.latency`` event. A store failure loses the figure, never a line.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from voicecall.calls.model import TranscriptEntry
from voicecall.errors import StoreError

if TYPE_CHECKING:
    from voicecall.calls.manager import CallManager
    from voicecall.voice.latency import TurnLatency

log = logging.getLogger("voicecall.latency")


async def record_latency(core: CallManager, line: TranscriptEntry, latency: TurnLatency) -> None:
    data = latency.to_json()
    try:
        await core.store.set_latency(line.call_id, line.seq, data)
    except StoreError as exc:
        log.warning("call %s: latency of line %d not stored: %s", line.call_id, line.seq, exc)
    log.debug(
        "call %s: line %d answered in %.0f ms", line.call_id, line.seq, latency.voice_to_voice_ms
    )
    core.bus.publish(
        {
            "type": "turn.latency",
            "at": core.now(),
            "call_id": line.call_id,
            "seq": line.seq,
            "latency": data,
        }
    )
