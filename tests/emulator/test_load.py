"""The load generator, its sink, and the fast paths the emulator streams with.

The end-to-end tests run a few streams for about two seconds against the in-process sink and
check that the report is consistent with itself and with what the sink counted; no timing
thresholds are asserted (speed is measured by bench/emulator_load.py).
"""

from __future__ import annotations

import asyncio
import base64
import json
import math
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from websockets.frames import Frame, Opcode
from websockets.streams import StreamReader

from voicecall.emulator.__main__ import main as cli_main
from voicecall.emulator.lateness import LatenessHistogram
from voicecall.emulator.load import LoadConfig, LoadError, is_loopback_url, run_load
from voicecall.emulator.media import SILENCE, MediaSession
from voicecall.emulator.sink import StreamSink, serve_sink
from voicecall.emulator.ticker import SLOTS, FrameTicker
from voicecall.emulator.wsclient import text_frame

# ------------------------------------------------------------------ lateness histogram


def test_histogram_percentiles_and_exact_max():
    h = LatenessHistogram()
    for ms in [0.05] * 90 + [3.0] * 9 + [42.123]:
        h.add(ms)
    assert h.count == 100
    assert h.percentile(0.5) == pytest.approx(0.1)  # upper edge of the 0.0-0.1 ms bucket
    assert h.percentile(0.99) == pytest.approx(3.1)
    assert h.percentile(1.0) == pytest.approx(42.123)  # never above the exact max
    assert h.max_ms == 42.123
    assert h.above(20.0) == 1
    assert h.summary() == {"frames": 100, "p50": 0.1, "p99": 3.1, "max": 42.12}


def test_histogram_empty_negative_and_merge():
    assert LatenessHistogram().percentile(0.99) is None
    assert LatenessHistogram().summary()["max"] is None
    a, b = LatenessHistogram(), LatenessHistogram()
    a.add(-0.5)  # a frame can never be early; clamped into the first bucket
    b.add(7.0)
    b.add(1e9)  # beyond the last bucket: counted there, max stays exact
    m = LatenessHistogram.merged([a, b])
    assert m.count == 3 and m.max_ms == 1e9
    assert m.percentile(0.0) == pytest.approx(0.1)
    assert m.percentile(0.5) == pytest.approx(7.1)
    with pytest.raises(ValueError):
        m.percentile(1.5)


# ------------------------------------------------------------------ wire fast paths


@pytest.mark.parametrize("size", [0, 5, 125, 126, 300, 65535, 65536, 70000])
def test_text_frame_parses_as_a_masked_final_text_frame(size):
    payload = bytes(i % 251 for i in range(size))
    reader = StreamReader()
    reader.feed_data(text_frame(payload, b"\x01\x02\x03\x04"))
    reader.feed_eof()
    parser = Frame.parse(reader.read_exact, mask=True)
    with pytest.raises(StopIteration) as stop:
        next(parser)
    frame = stop.value.value
    assert frame.opcode is Opcode.TEXT and frame.fin and frame.data == payload


def test_media_message_is_byte_identical_to_json_dumps():
    s = MediaSession(
        account_sid="AC" + "1" * 32, call_sid="CA" + "2" * 32, stream_sid="MZ" + "3" * 32
    )
    s.say(b"\x10" * 200, "hi")  # one full frame, then a partial one padded with silence
    for n in range(1, 5):
        frame_bytes = [b"\x10" * 160, b"\x10" * 40 + SILENCE[40:], SILENCE, SILENCE][n - 1]
        expected = json.dumps(
            {
                "event": "media",
                "sequenceNumber": str(n),
                "streamSid": s.stream_sid,
                "media": {
                    "track": "inbound",
                    "chunk": str(n),
                    "timestamp": str((n - 1) * 20),
                    "payload": base64.b64encode(frame_bytes).decode(),
                },
            }
        )
        assert s.media() == expected


# ------------------------------------------------------------------ ticker


class _Counter:
    def __init__(self) -> None:
        self.due = 0.0
        self.ticks = 0

    def tick(self) -> None:
        self.ticks += 1
        self.due += 0.020

    def tick_failed(self, exc: Exception) -> None:  # pragma: no cover - never fails
        raise AssertionError(exc)


async def test_ticker_spreads_streams_over_slots_and_keeps_the_20ms_grid():
    ticker = FrameTicker(asyncio.get_running_loop())
    streams = [_Counter() for _ in range(2 * SLOTS)]
    firsts = [ticker.add(s) for s in streams]
    try:
        phases = sorted(round((f - firsts[0]) / 0.005) % SLOTS for f in firsts)
        assert phases == sorted(list(range(SLOTS)) * 2)  # two streams per slot
        assert len(ticker) == 2 * SLOTS
        await asyncio.sleep(0.2)
        assert all(s.ticks >= 1 for s in streams)  # every stream was driven
    finally:
        for s in streams:
            ticker.remove(s)
    assert len(ticker) == 0


# ------------------------------------------------------------------ config


@pytest.mark.parametrize(
    ("url", "ok"),
    [
        ("http://127.0.0.1:8780/voice", True),
        ("http://127.9.9.9/voice", True),
        ("http://[::1]:80/v", True),
        ("ws://localhost/stream", True),
        ("http://10.0.0.1/voice", False),
        ("http://example.com/voice", False),
        ("http://0.0.0.0:1/voice", False),
        ("ftp://127.0.0.1/x", False),
        ("not a url", False),
    ],
)
def test_loopback_only(url, ok):
    assert is_loopback_url(url) is ok


def test_config_bounds():
    with pytest.raises(LoadError):
        LoadConfig(app_url="http://example.com/voice")
    with pytest.raises(LoadError):
        LoadConfig(app_url="ws://127.0.0.1/voice")  # the webhook is HTTP
    with pytest.raises(LoadError):
        LoadConfig(app_url="http://127.0.0.1/voice", streams=0)
    with pytest.raises(LoadError):
        LoadConfig(app_url="http://127.0.0.1/voice", streams=10_000)
    with pytest.raises(LoadError):
        LoadConfig(app_url="http://127.0.0.1/voice", max_seconds=0)
    assert LoadConfig(app_url="http://127.0.0.1/voice", hold_seconds=2).script() == {
        "answer_after_ms": 0,
        "hangup_after_ms": 2000,
    }


def test_cli_refuses_a_non_loopback_app():
    with pytest.raises(SystemExit) as exc:
        cli_main(["load", "--app", "http://example.com/voice", "--streams", "1"])
    assert exc.value.code == 2


# ------------------------------------------------------------------ end to end


@pytest_asyncio.fixture
async def sink() -> AsyncIterator[tuple[StreamSink, str]]:
    s = StreamSink(utterance_ms=200, every_ms=600)
    server = await serve_sink(s)
    port = server.sockets[0].getsockname()[1]
    try:
        yield s, f"http://127.0.0.1:{port}/voice"
    finally:
        server.close()
        await server.wait_closed()


@pytest.mark.e2e
async def test_load_report_is_consistent_with_itself_and_the_sink(sink):
    app, url = sink
    config = LoadConfig(app_url=url, streams=5, ramp_seconds=0.2, hold_seconds=2.0, max_seconds=15)
    snapshots = []
    report = await run_load(config, on_progress=snapshots.append, progress_interval=0.2)
    tot = report.totals()

    assert not report.timed_out and report.aborted is None
    assert tot["statuses"] == {"completed": 5}
    assert tot["streams"] == tot["streams_connected"] == 5
    for s in report.streams:
        assert s.reason == "call ended"
        # One frame per 20 ms of open stream, give or take the handshake and the first slot.
        expected = s.open_seconds / 0.020
        assert expected - 5 <= s.frames_sent <= expected + 1, (s.frames_sent, s.open_seconds)
        assert s.lateness_p50_ms is not None and s.lateness_p99_ms is not None
        assert s.lateness_p50_ms <= s.lateness_p99_ms <= s.lateness_max_ms + 0.1  # type: ignore[operator]
        assert s.underruns == 0  # the sink sends whole utterances, each closed by a mark
        assert s.media_received % 10 == 0 and s.media_received > 0  # whole 200 ms utterances
        assert s.frames_played == s.media_received  # all of it was played out...
        assert s.marks_echoed == s.marks_received  # ...so every mark came back
    # Both ends agree on every count.
    stats = app.snapshot()
    assert stats["webhooks"] == stats["streams_started"] == stats["streams_stopped"] == 5
    assert stats["media_in"] == tot["frames_sent"]
    assert stats["media_out"] == tot["media_received"]
    assert stats["marks_out"] == tot["marks_received"]
    assert stats["mark_echoes_in"] == tot["marks_echoed"]
    # Lateness is measured for every frame sent, per stream and in aggregate.
    assert report.lateness.count == tot["frames_sent"] == sum(s.frames_sent for s in report.streams)
    assert sum(w.lateness.count for w in report.windows) == tot["frames_sent"]
    assert report.cpu_seconds > 0 and math.isfinite(report.cpu_share)
    # Progress snapshots were taken and end with the final counts.
    assert snapshots and snapshots[-1].frames_sent == tot["frames_sent"]
    assert snapshots[-1].ended == 5
    assert json.loads(json.dumps(report.to_dict()))["totals"]["streams"] == 5


@pytest.mark.e2e
async def test_a_stream_url_off_loopback_aborts_the_run():
    app = StreamSink(utterance_ms=0, every_ms=0, stream_url="ws://0.0.0.0:1/stream")
    server = await serve_sink(app)
    port = server.sockets[0].getsockname()[1]
    try:
        config = LoadConfig(
            app_url=f"http://127.0.0.1:{port}/voice",
            streams=3,
            ramp_seconds=3.0,
            hold_seconds=5.0,
            max_seconds=10,
        )
        report = await run_load(config)
    finally:
        server.close()
        await server.wait_closed()
    assert report.aborted is not None and "ws://0.0.0.0:1/stream" in report.aborted
    assert report.calls < 3  # the ramp stopped


class _FakeTransport:
    def __init__(self) -> None:
        self.writes: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        self.writes.append(b"")

    def abort(self) -> None:
        pass

    def get_write_buffer_size(self) -> int:
        return 0


def _server_frame(opcode: int, payload: bytes, fin: bool = True) -> bytes:
    return Frame(Opcode(opcode), payload, fin).serialize(mask=False)


@pytest.mark.parametrize("chunk", [1, 3, 7, 1000])
async def test_receive_fast_path_matches_the_protocol_whatever_the_chunking(chunk):
    from websockets.client import ClientProtocol
    from websockets.protocol import State
    from websockets.uri import parse_uri

    from voicecall.emulator.wsclient import WebSocketClient

    got: list[str | bytes] = []
    client = WebSocketClient(
        ClientProtocol(parse_uri("ws://127.0.0.1/x"), state=State.OPEN), got.append, 1 << 20
    )
    transport = _FakeTransport()
    client.connection_made(transport)  # type: ignore[arg-type]
    client.is_open = True
    client._receive(b"")  # enables the fast path on a frame boundary
    assert client._fast
    long_text = "é" * 200  # 400 bytes: a 16-bit length
    stream = b"".join(
        [
            _server_frame(0x1, b'{"event": "mark"}'),
            _server_frame(0x9, b"ping!"),  # answered with a pong by the protocol
            _server_frame(0x1, long_text.encode()),
            _server_frame(0x1, b"frag-", fin=False),  # fragmented: the protocol reassembles
            _server_frame(0x0, b"ment", fin=True),
            _server_frame(0x2, b"\x00\x01"),  # binary
            _server_frame(0x1, b"last"),
        ]
    )
    for i in range(0, len(stream), chunk):
        client.data_received(stream[i : i + chunk])
    assert got == ['{"event": "mark"}', long_text, "frag-ment", b"\x00\x01", "last"]
    pongs = [w for w in transport.writes if w and w[0] == 0x8A]  # FIN + PONG, masked
    assert len(pongs) == 1
