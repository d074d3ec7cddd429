"""The media fast path's frame splitter, against frames built by ``websockets`` itself."""

from __future__ import annotations

import os

import pytest
from hypothesis import given
from hypothesis import strategies as st
from websockets.frames import Frame, Opcode
from websockets.protocol import Protocol, Side, State

from voicecall.server.ws_frames import FrameSplitter, text_frame

MAX = 4096


def client_frame(opcode: Opcode, data: bytes, *, fin: bool = True, rsv1: bool = False) -> bytes:
    """Bytes of one client frame (masked), serialized by websockets."""
    raw = Frame(opcode, data, fin=fin).serialize(mask=True)
    return bytes([raw[0] | 0x40]) + raw[1:] if rsv1 else raw


def unmasked(opcode: Opcode, data: bytes) -> bytes:
    return Frame(opcode, data).serialize(mask=False)


def feed_in(splitter: FrameSplitter, stream: bytes, cuts: list[int]) -> list[str | bytes]:
    out: list[str | bytes] = []
    last = 0
    for cut in [*sorted({c % (len(stream) + 1) for c in cuts}), len(stream)]:
        out += splitter.feed(stream[last:cut])
        last = cut
    return out


def test_a_text_frame_comes_out_decoded_and_the_rest_raw_in_order() -> None:
    media = '{"event": "media", "media": {"payload": "////"}}'
    ping = client_frame(Opcode.PING, b"hi")
    stream = (
        client_frame(Opcode.TEXT, media.encode()) + ping + client_frame(Opcode.TEXT, "é".encode())
    )
    s = FrameSplitter(MAX)
    assert s.feed(stream) == [media, ping, "é"]
    assert s.buffered == 0 and not s.passthrough


def test_partial_frames_wait_for_the_rest() -> None:
    frame = client_frame(Opcode.TEXT, b"x" * 300)  # 16-bit length
    s = FrameSplitter(MAX)
    for i in range(len(frame) - 1):
        assert s.feed(frame[i : i + 1]) == []
    assert s.feed(frame[-1:]) == ["x" * 300]


def test_64_bit_lengths_are_parsed() -> None:
    frame = client_frame(Opcode.TEXT, b"y" * 70_000)
    assert FrameSplitter(100_000).feed(frame) == ["y" * 70_000]


@pytest.mark.parametrize(
    "odd",
    [
        client_frame(Opcode.TEXT, b"part", fin=False),  # a fragment
        client_frame(Opcode.TEXT, b"zip", rsv1=True),  # compressed / reserved bit
        unmasked(Opcode.TEXT, b"no mask"),  # clients must mask
        client_frame(Opcode.TEXT, b"z" * (MAX + 1)),  # over the size limit
    ],
    ids=["fragment", "rsv1", "unmasked", "oversized"],  # the masks are random: stable ids
)
def test_a_frame_the_fast_path_does_not_own_switches_to_passthrough_for_good(odd: bytes) -> None:
    before = client_frame(Opcode.TEXT, b"before")
    after = client_frame(Opcode.TEXT, b"after")
    s = FrameSplitter(MAX)
    out = s.feed(before + odd + after)
    assert out == ["before", odd + after]
    assert s.passthrough
    assert s.feed(after) == [after]


def test_oversized_frames_are_handed_over_before_their_body_arrives() -> None:
    s = FrameSplitter(MAX)
    head = client_frame(Opcode.TEXT, b"z" * (MAX * 4))[:14]
    assert s.feed(head) == [head]  # never buffered up to the declared length
    assert s.passthrough


def test_invalid_utf8_is_left_to_the_websocket_stack() -> None:
    bad = client_frame(Opcode.TEXT, b"\xff\xfe")
    assert FrameSplitter(MAX).feed(bad) == [bad]


def test_take_buffered_returns_the_incomplete_frame_from_its_first_byte() -> None:
    frame = client_frame(Opcode.TEXT, b"hello")
    s = FrameSplitter(MAX)
    assert s.feed(frame + frame[:3]) == ["hello"]
    assert s.take_buffered() == frame[:3]
    assert s.buffered == 0


def test_server_text_frames_parse_back_with_websockets() -> None:
    client = Protocol(Side.CLIENT, state=State.OPEN)  # websockets as the oracle client
    payloads = [os.urandom(n // 2 + 1).hex()[:n].encode() for n in (0, 125, 126, 65535, 65536)]
    client.receive_data(b"".join(text_frame(p) for p in payloads))
    frames = client.events_received()
    assert [(f.opcode, f.fin, f.data) for f in frames] == [(Opcode.TEXT, True, p) for p in payloads]


frames_st = st.lists(
    st.one_of(
        st.tuples(st.just(Opcode.TEXT), st.text(max_size=300).map(str.encode)),
        st.tuples(st.just(Opcode.BINARY), st.binary(max_size=300)),
        st.tuples(st.sampled_from([Opcode.PING, Opcode.PONG]), st.binary(max_size=125)),
    ),
    max_size=12,
)


@given(frames=frames_st, cuts=st.lists(st.integers(min_value=0, max_value=10_000), max_size=8))
def test_any_chunking_gives_the_same_messages_in_order(
    frames: list[tuple[Opcode, bytes]], cuts: list[int]
) -> None:
    raw = [client_frame(op, data) for op, data in frames]
    expected = [
        data.decode() if op is Opcode.TEXT else r for (op, data), r in zip(frames, raw, strict=True)
    ]
    got = feed_in(FrameSplitter(MAX), b"".join(raw), cuts)
    assert got == expected


@given(
    frames=frames_st,
    odd=st.sampled_from(["fragment", "rsv", "unmasked", "big"]),
    tail=frames_st,
    cuts=st.lists(st.integers(min_value=0, max_value=10_000), max_size=8),
)
def test_after_passthrough_the_raw_bytes_are_exactly_the_rest_of_the_stream(
    frames: list[tuple[Opcode, bytes]], odd: str, tail: list[tuple[Opcode, bytes]], cuts: list[int]
) -> None:
    odd_frame = {
        "fragment": client_frame(Opcode.TEXT, b"part", fin=False),
        "rsv": client_frame(Opcode.BINARY, b"zip", rsv1=True),
        "unmasked": unmasked(Opcode.TEXT, b"plain"),
        "big": client_frame(Opcode.BINARY, b"b" * (MAX + 1)),
    }[odd]
    head = b"".join(client_frame(op, data) for op, data in frames)
    rest = odd_frame + b"".join(client_frame(op, data) for op, data in tail)
    s = FrameSplitter(MAX)
    got = feed_in(s, head + rest, cuts)
    fast = feed_in(FrameSplitter(MAX), head, [])
    assert s.passthrough
    # the frames before the odd one come out as without it; everything from it on is raw
    n = len(fast)
    assert got[:n] == fast
    assert b"".join(x for x in got[n:] if isinstance(x, bytes)) == rest
    assert all(isinstance(x, bytes) for x in got[n:])


@given(st.binary(max_size=2000), st.lists(st.integers(0, 3000), max_size=6))
def test_garbage_never_raises_and_never_buffers_beyond_one_frame(
    data: bytes, cuts: list[int]
) -> None:
    s = FrameSplitter(MAX)
    feed_in(s, data, cuts)
    assert s.buffered <= MAX + 14
