"""The direct lane of :class:`DirectWebSocketProtocol`, over real sockets with a real client.

Whatever mix of lanes carries them, messages arrive once each and in order; frames the lane
does not own (binary, ping, fragments, close) keep uvicorn's ASGI behaviour."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from voicecall.server.ws_protocol import DIRECT_EXTENSION, DirectLane, DirectWebSocketProtocol

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fakes"))

from fake_serve import serve

Message = dict[str, Any]


class LaneApp:
    """Records every inbound message (``("lane"|"asgi", value)``) and echoes texts back."""

    def __init__(
        self, *, enable_after: float = 0.0, raise_on: str | None = None, pairs: bool = False
    ) -> None:
        self.pairs = pairs  # echo each lane text twice, both frames in one write
        self.enable_after = enable_after
        self.raise_on = raise_on
        self.got: list[tuple[str, Any]] = []
        self.disconnect: Message | None = None
        self.lane: DirectLane | None = None
        self.nowait_sends = 0
        self.done = asyncio.Event()

    async def __call__(self, scope: Message, receive: Callable[..., Any], send: Any) -> None:
        assert scope["type"] == "websocket"
        await receive()  # websocket.connect
        await send({"type": "websocket.accept"})
        lane = scope["extensions"].get(DIRECT_EXTENSION)
        self.lane = lane
        if self.enable_after:
            await asyncio.sleep(self.enable_after)

        def on_text(text: str) -> None:
            if text == self.raise_on:
                raise RuntimeError("handler bug")
            self.got.append(("lane", text))
            if self.pairs:
                if lane.send_texts_nowait(["echo:" + text, "again:" + text]):
                    self.nowait_sends += 1
            elif lane.send_text_nowait("echo:" + text):
                self.nowait_sends += 1

        try:
            while True:
                if lane is not None and not lane.active:
                    lane.receive_text_directly(on_text)
                message = await receive()
                if message["type"] == "websocket.disconnect":
                    self.disconnect = message
                    return
                if message.get("text") is not None:
                    self.got.append(("asgi", message["text"]))
                    await send({"type": "websocket.send", "text": "echo:" + message["text"]})
                else:
                    self.got.append(("asgi", message["bytes"]))
        finally:
            self.done.set()


async def exchange(app: LaneApp, script: Callable[[Any], Any]) -> list[str]:
    async with serve(app, ws=DirectWebSocketProtocol, ws_per_message_deflate=False) as hostport:
        echoes: list[str] = []
        async with connect(f"ws://{hostport}/stream") as ws:

            async def read() -> None:
                try:
                    async for m in ws:
                        echoes.append(str(m))
                except ConnectionClosed:
                    pass

            reader = asyncio.create_task(read())
            await script(ws)
            await asyncio.sleep(0.2)
            await ws.close(1000)
            await reader
        async with asyncio.timeout(5):
            await app.done.wait()
        return echoes


async def test_texts_take_the_lane_and_everything_else_keeps_asgi_in_order() -> None:
    app = LaneApp()

    async def script(ws: Any) -> None:
        for i in range(100):
            await ws.send(f"m{i}")
            if i == 50:
                await ws.send(b"\x00binary")
                await ws.ping(b"keepalive")
                await ws.send("right behind the binary")  # queued behind it, not overtaking
                await asyncio.sleep(0.05)  # the app drains the queue; the lane carries on
        await ws.send("é∑ unicode")

    echoes = await exchange(app, script)
    texts = [v for _, v in app.got if isinstance(v, str)]
    sent = [f"m{i}" for i in range(100)]
    sent.insert(51, "right behind the binary")
    assert texts == [*sent, "é∑ unicode"]
    at = app.got.index(("asgi", b"\x00binary"))
    assert app.got[at - 1] == ("lane", "m50")
    assert app.got[at + 1][1] == "right behind the binary"  # by either lane, never before it
    assert app.got[-1] == ("lane", "é∑ unicode")  # back on the lane once the queue drained
    assert sum(1 for lane, _ in app.got if lane == "lane") >= 90  # the lane carried the stream
    assert echoes == ["echo:" + t for t in texts]  # sync sends: every one, in order
    assert app.nowait_sends >= 90
    assert app.disconnect is not None and app.disconnect["code"] == 1000


async def test_several_frames_written_at_once_arrive_as_separate_messages_in_order() -> None:
    app = LaneApp(pairs=True)

    async def script(ws: Any) -> None:
        for i in range(50):
            await ws.send(f"m{i}é")

    echoes = await exchange(app, script)
    assert [text for _, text in app.got] == [f"m{i}é" for i in range(50)]
    on_lane = [text for lane, text in app.got if lane == "lane"]
    assert app.nowait_sends == len(on_lane) >= 40  # the lane carried the stream
    expected: list[str] = []
    for lane, text in app.got:
        expected += [f"echo:{text}", f"again:{text}"] if lane == "lane" else [f"echo:{text}"]
    assert echoes == expected


async def test_messages_queued_before_the_lane_opens_are_not_overtaken() -> None:
    app = LaneApp(enable_after=0.3)

    async def script(ws: Any) -> None:
        for i in range(20):  # all before the app looks at the lane
            await ws.send(f"early{i}")
        await asyncio.sleep(0.5)
        for i in range(20):
            await ws.send(f"late{i}")

    await exchange(app, script)
    texts = [v for _, v in app.got]
    assert texts == [f"early{i}" for i in range(20)] + [f"late{i}" for i in range(20)]
    assert app.got[0][0] == "asgi" and app.got[-1][0] == "lane"


async def test_a_fragmented_message_hands_the_connection_back_to_asgi() -> None:
    app = LaneApp()

    async def script(ws: Any) -> None:
        await ws.send("first")
        await asyncio.sleep(0.05)
        await ws.send(iter(["frag", "mented"]))  # websockets sends these as fragments
        await ws.send("after")

    echoes = await exchange(app, script)
    assert app.got == [("lane", "first"), ("asgi", "fragmented"), ("asgi", "after")]
    assert echoes == ["echo:first", "echo:fragmented", "echo:after"]


async def test_a_failing_handler_closes_the_connection_with_1011() -> None:
    app = LaneApp(raise_on="boom")
    async with serve(app, ws=DirectWebSocketProtocol, ws_per_message_deflate=False) as hostport:
        async with connect(f"ws://{hostport}/stream") as ws:
            await ws.send("ok")
            await asyncio.sleep(0.05)
            await ws.send("boom")
            with pytest.raises(ConnectionClosed) as closed:
                async with asyncio.timeout(5):
                    while True:
                        await ws.recv()
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1011
        async with asyncio.timeout(5):
            await app.done.wait()
    assert app.got == [("lane", "ok")]
    assert app.disconnect is not None and app.disconnect["code"] == 1011


async def test_compression_negotiated_keeps_the_connection_on_asgi() -> None:
    app = LaneApp()
    async with serve(app, ws=DirectWebSocketProtocol) as hostport:  # deflate offered and taken
        async with connect(f"ws://{hostport}/stream") as ws:
            for text in ("one", "two"):
                await ws.send(text)
                assert await ws.recv() == "echo:" + text
            await ws.close()
        async with asyncio.timeout(5):
            await app.done.wait()
    assert app.lane is not None and not app.lane.active
    assert app.got == [("asgi", "one"), ("asgi", "two")]


async def test_without_the_protocol_the_app_gets_plain_asgi() -> None:
    app = LaneApp()
    async with serve(app) as hostport:  # uvicorn's own websockets-sansio
        async with connect(f"ws://{hostport}/stream") as ws:
            await ws.send("hello")
            assert await ws.recv() == "echo:hello"
            await ws.close()
        async with asyncio.timeout(5):
            await app.done.wait()
    assert app.lane is None and app.got == [("asgi", "hello")]


async def test_texts_after_the_peers_close_frame_in_the_same_read_are_dropped() -> None:
    """A raw client writes text, close, text in one segment: only the first text is delivered."""
    import base64
    import os as _os

    from websockets.frames import Close, Frame, Opcode

    app = LaneApp()
    async with serve(app, ws=DirectWebSocketProtocol, ws_per_message_deflate=False) as hostport:
        host, port = hostport.split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        key = base64.b64encode(_os.urandom(16)).decode()
        writer.write(
            (
                f"GET /stream HTTP/1.1\r\nHost: {hostport}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101")
        await asyncio.sleep(0.1)  # the app has opened the lane

        def frame(op: Opcode, data: bytes) -> bytes:
            return Frame(op, data).serialize(mask=True)

        writer.write(
            frame(Opcode.TEXT, b"first")
            + frame(Opcode.CLOSE, Close(1000, "bye").serialize())
            + frame(Opcode.TEXT, b"after close")
        )
        await writer.drain()
        async with asyncio.timeout(5):
            await app.done.wait()
        writer.close()
    assert app.got == [("lane", "first")]
    assert app.disconnect is not None and app.disconnect["code"] == 1000
