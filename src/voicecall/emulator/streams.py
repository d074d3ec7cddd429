"""Media Streams verbs in the call simulator (pure): ``<Connect><Stream>``, ``<Start>``, ``<Stop>``.

``<Connect><Stream>`` opens a bidirectional stream and blocks the document until the socket
closes; then ``action`` is requested (or the next verb runs). ``<Start><Stream>`` forks a
one-way stream and the document goes on at once; ``<Stop><Stream name>`` closes forks (all of
them without a name). Every stream is closed when the call ends or its document is replaced.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from voicecall.emulator.simtypes import CloseStream, OpenStream, Purpose, SimAction
from voicecall.emulator.twiml import Connect, Start, Stop

if TYPE_CHECKING:
    from voicecall.emulator.sim import CallSim

__all__ = ["StreamRun"]


class StreamRun:
    def __init__(self, sim: CallSim) -> None:
        self.sim = sim
        self.open: dict[str, OpenStream] = {}
        self._connect: tuple[str, Connect] | None = None

    def execute(self, now: float, verb: Connect | Start | Stop) -> list[SimAction]:
        sim = self.sim
        if isinstance(verb, Connect):
            sid = sim.ids.sid("MZ")
            opened = OpenStream(sid, verb.stream, bidirectional=True)
            self.open[sid] = opened
            self._connect = (sid, verb)
            sim.record(
                now,
                "verb",
                verb="Connect/Stream",
                stream_sid=sid,
                url=verb.stream.url,
                parameters=dict(verb.stream.parameters),
            )
            return [opened]
        if isinstance(verb, Start):
            sid = sim.ids.sid("MZ")
            opened = OpenStream(sid, verb.stream, bidirectional=False)
            self.open[sid] = opened
            sim.record(
                now,
                "verb",
                verb="Start/Stream",
                stream_sid=sid,
                url=verb.stream.url,
                track=verb.stream.track.value,
                name=verb.stream.name,
            )
            # Not waiting for the socket: <Start> forks and TwiML goes on at once.
            return [opened, *sim.advance(now)]
        sim.record(now, "verb", verb="Stop/Stream", name=verb.stream_name)
        closes: list[SimAction] = []
        for sid, opened in list(self.open.items()):
            if opened.bidirectional:
                continue
            if verb.stream_name is None or opened.stream.name == verb.stream_name:
                del self.open[sid]
                closes.append(CloseStream(sid, "stopped by <Stop>"))
        return closes + sim.advance(now)

    def ended(self, now: float, stream_sid: str, reason: str) -> list[SimAction]:
        """The stream's WebSocket closed (either side) or could not be opened."""
        if self.open.pop(stream_sid, None) is None:
            return []
        sim = self.sim
        sim.record(now, "stream-ended", stream_sid=stream_sid, reason=reason)
        if self._connect is not None and self._connect[0] == stream_sid:
            connect = self._connect[1]
            self._connect = None
            if connect.action:
                url = sim.resolve(connect.action)
                return sim.fetch(now, Purpose.CONNECT_ACTION, url, connect.method, ())
            return sim.advance(now)
        return []

    def abandon(self, reason: str) -> list[SimAction]:
        """The document was replaced: the ``<Connect>`` stream closes (forks stay)."""
        if self._connect is None:
            return []
        sid = self._connect[0]
        self._connect = None
        return [CloseStream(sid, reason)] if self.open.pop(sid, None) is not None else []

    def close_all(self, reason: str) -> list[SimAction]:
        out: list[SimAction] = [CloseStream(sid, reason) for sid in self.open]
        self.open.clear()
        self._connect = None
        return out
