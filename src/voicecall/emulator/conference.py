"""Conference rooms for ``<Dial><Conference>`` (pure): who is in, when a room ends.

Enough to hold and bridge legs: a room exists while it has participants. It *starts* when a
participant with ``startConferenceOnEnter`` (the default) is in it (others wait, on hold, until
then). When a participant with ``endConferenceOnExit`` leaves, or the last one does, the room
ends and everyone still in it leaves (their ``<Dial>`` ends: ``action`` or the next verb). A
room at ``maxParticipants`` turns newcomers away (their ``<Dial>`` ends at once).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from voicecall.emulator.twiml import Conference

__all__ = ["Conferences", "Room"]


@dataclass(slots=True)
class Room:
    name: str
    created: float
    participants: dict[str, Conference] = field(default_factory=dict)
    started_at: float | None = None
    ended_at: float | None = None
    log: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "created": self.created,
            "participants": sorted(self.participants),
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            "log": list(self.log),
        }


class Conferences:
    def __init__(self) -> None:
        self.rooms: dict[str, Room] = {}
        self.history: list[Room] = []

    def room(self, name: str) -> Room | None:
        return self.rooms.get(name)

    def join(self, now: float, name: str, sid: str, conf: Conference) -> list[tuple[str, str]]:
        """Add ``sid``; returns ``(sid, reason)`` for calls that must leave at once."""
        room = self.rooms.get(name)
        if room is None:
            room = self.rooms[name] = Room(name, now)
        if len(room.participants) >= conf.max_participants:
            room.log.append({"t": now, "event": "full", "call_sid": sid})
            return [(sid, "room full")]
        room.participants[sid] = conf
        room.log.append({"t": now, "event": "join", "call_sid": sid})
        if room.started_at is None and conf.start_on_enter:
            room.started_at = now
            room.log.append({"t": now, "event": "start"})
        return []

    def leave(self, now: float, name: str, sid: str) -> list[tuple[str, str]]:
        """Remove ``sid``; returns ``(sid, reason)`` for the others who must leave now."""
        room = self.rooms.get(name)
        if room is None or sid not in room.participants:
            return []
        conf = room.participants.pop(sid)
        room.log.append({"t": now, "event": "leave", "call_sid": sid})
        if conf.end_on_exit or not room.participants:
            return self._end(now, room, "ended by a participant" if conf.end_on_exit else "empty")
        return []

    def _end(self, now: float, room: Room, reason: str) -> list[tuple[str, str]]:
        room.ended_at = now
        room.log.append({"t": now, "event": "end", "reason": reason})
        others = [(s, "conference ended") for s in room.participants]
        room.participants.clear()
        del self.rooms[room.name]
        self.history.append(room)
        return others

    def to_dict(self) -> dict[str, Any]:
        return {
            "rooms": [r.to_dict() for r in self.rooms.values()],
            "ended": [r.to_dict() for r in self.history],
        }
