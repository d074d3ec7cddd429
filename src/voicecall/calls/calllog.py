"""One log line per call event that matters, from the event bus (not from the manager).

:class:`CallLog` is a bus listener (:meth:`EventBus.add_listener`): it reads the same events the
SSE stream carries and writes, on the ``voicecall.calls`` logger,

* ``placed`` (info): an outbound call was stored and is being dialled;
* ``inbound`` (info) / ``rejected`` (info): an inbound call was accepted or refused by policy;
* ``answered`` (info): with the ring time;
* ``error`` (warning): a call carries a new error while still live (say, a create whose answer
  was lost);
* ``ended`` (info, warning when it failed or carries an error): the end reason and how long the
  call lasted (talk time from the answer, or time until it gave up ringing);
* every other state change, media stream attach/detach and each transcript line at debug
  level (callers' words are not written at info).

Each record carries ``call_id`` and ``event`` (and ``state``, ``end_reason``, ``duration_s`` …)
as ``extra`` fields, so the JSON log is searchable by call id; the human log shows them in the
message. The listener is synchronous and cheap: it never blocks the publisher.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Final

__all__ = ["CallLog"]

log = logging.getLogger("voicecall.calls")

_FAILED_REASONS: Final = frozenset({"failed", "error", "timeout"})
_MAX_TRACKED: Final = 10_000


def _seconds(later: Any, earlier: Any) -> float | None:
    if isinstance(later, int | float) and isinstance(earlier, int | float):
        return round(max(0.0, float(later) - float(earlier)), 1)
    return None


class CallLog:
    """Bus listener writing the call log lines (see the module docstring)."""

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self._log = logger or log
        # per live call: (answered already logged, last error logged)
        self._seen: dict[str, tuple[bool, str | None]] = {}

    def __call__(self, event: Mapping[str, Any]) -> None:
        kind = event.get("type")
        if kind == "transcript":
            self._transcript(event)
            return
        if kind in ("stream.attached", "stream.detached") and self._log.isEnabledFor(logging.DEBUG):
            call_id = event.get("call_id")
            reason = f" ({event['reason']})" if event.get("reason") else ""
            self._log.debug(
                "call %s media stream %s%s",
                call_id,
                str(kind).split(".")[1],
                reason,
                extra={"call_id": call_id, "event": kind},
            )
            return
        call = event.get("call")
        if not isinstance(call, Mapping) or not isinstance(call.get("call_id"), str):
            return
        if kind == "call.created":
            self._created(call)
        elif kind == "call.updated":
            self._updated(call)
        elif kind == "call.ended":
            self._ended(call)
        elif kind == "call.rejected":
            self._write(
                logging.INFO,
                "rejected",
                call,
                f"inbound call {call['call_id']} from {call.get('from') or 'anonymous'} "
                "rejected by inbound_policy",
            )

    # ------------------------------------------------------------------ events

    def _created(self, call: Mapping[str, Any]) -> None:
        call_id = call["call_id"]
        self._track(call_id, bool(call.get("answered_at")), call.get("error"))
        if call.get("direction") == "inbound":
            self._write(
                logging.INFO,
                "inbound",
                call,
                f"call {call_id} from {call.get('from') or 'anonymous'} answered "
                f"(inbound, {call.get('mode')})",
            )
        else:
            self._write(
                logging.INFO,
                "placed",
                call,
                f"call {call_id} placed to {call.get('to')} ({call.get('mode')})",
            )

    def _updated(self, call: Mapping[str, Any]) -> None:
        call_id = call["call_id"]
        answered, last_error = self._seen.get(call_id, (False, None))
        if not answered and call.get("answered_at"):
            ring = _seconds(call.get("answered_at"), call.get("created_at"))
            after = f" after {ring} s" if ring is not None else ""
            self._write(
                logging.INFO, "answered", call, f"call {call_id} answered{after}", ring_s=ring
            )
            answered = True
        error = call.get("error")
        if error and error != last_error:
            self._write(
                logging.WARNING, "error", call, f"call {call_id} ({call.get('state')}): {error}"
            )
            last_error = error
        elif self._log.isEnabledFor(logging.DEBUG):
            self._write(logging.DEBUG, "state", call, f"call {call_id} {call.get('state')}")
        self._track(call_id, answered, last_error)

    def _ended(self, call: Mapping[str, Any]) -> None:
        call_id = call["call_id"]
        self._seen.pop(call_id, None)
        reason = call.get("end_reason") or call.get("state")
        if call.get("answered_at"):
            duration = _seconds(call.get("ended_at"), call.get("answered_at"))
            how = f"after {duration} s talking" if duration is not None else "after the answer"
        else:
            duration = _seconds(call.get("ended_at"), call.get("created_at"))
            how = "never answered" + (f", after {duration} s" if duration is not None else "")
        error = call.get("error")
        failed = bool(error) or reason in _FAILED_REASONS
        message = f"call {call_id} ended: {reason}, {how}"
        if error:
            message += f"; error: {error}"
        self._write(
            logging.WARNING if failed else logging.INFO,
            "ended",
            call,
            message,
            duration_s=duration,
        )

    def _transcript(self, event: Mapping[str, Any]) -> None:
        if not self._log.isEnabledFor(logging.DEBUG):
            return
        call_id = event.get("call_id")
        self._log.debug(
            "call %s %s: %s",
            call_id,
            event.get("speaker"),
            event.get("text"),
            extra={"call_id": call_id, "event": "transcript", "seq": event.get("seq")},
        )

    # ------------------------------------------------------------------ helpers

    def _track(self, call_id: str, answered: bool, error: str | None) -> None:
        if call_id not in self._seen and len(self._seen) >= _MAX_TRACKED:
            self._seen.pop(next(iter(self._seen)))  # a bound: forget the oldest live call
        self._seen[call_id] = (answered, error)

    def _write(
        self, level: int, event: str, call: Mapping[str, Any], message: str, **more: Any
    ) -> None:
        extra: dict[str, Any] = {
            "call_id": call["call_id"],
            "event": event,
            "state": call.get("state"),
            "direction": call.get("direction"),
        }
        if call.get("provider_call_id"):
            extra["provider_call_id"] = call["provider_call_id"]
        if call.get("end_reason"):
            extra["end_reason"] = call["end_reason"]
        extra.update({k: v for k, v in more.items() if v is not None})
        self._log.log(level, "%s", message, extra=extra)
