"""FastMediaReader: the common media frame read without the JSON parser must change nothing.

Oracle: the same session without the reader (``_reader = None``: the JSON path) must produce the
same events and counters for every text, whether the reader takes it or declines it.
"""

from __future__ import annotations

import base64
import json

from hypothesis import given, settings
from hypothesis import strategies as st

from voicecall.twilio.media import Media, MediaSession, SessionState
from voicecall.twilio.media_frames import FastMediaReader, json_str, read_fast_media

MZ = "MZ2222222222222222222222222222bbbb"
START = json.dumps(
    {
        "event": "start",
        "sequenceNumber": "1",
        "streamSid": MZ,
        "start": {
            "accountSid": "AC0123456789abcdef0123456789abcdef",
            "streamSid": MZ,
            "callSid": "CA1111111111111111111111111111aaaa",
            "tracks": ["inbound"],
            "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
            "customParameters": {"token": "t"},
        },
    }
)


def streaming(*, reader: bool = True) -> MediaSession:
    s = MediaSession()
    s.receive_text(START)
    assert s.state is SessionState.STREAMING
    if not reader:
        s._reader = None
    return s


def compact(
    seq: str, track: str, chunk: str, ts: str, payload: str, sid: str, *, sid_first: bool
) -> str:
    """A media message as Twilio writes it (no whitespace), ``streamSid`` before or after."""
    media = {"track": track, "chunk": chunk, "timestamp": ts, "payload": payload}
    head: dict[str, object] = {"event": "media", "sequenceNumber": seq}
    if sid_first:
        msg = {**head, "streamSid": sid, "media": media}
    else:
        msg = {**head, "media": media, "streamSid": sid}
    return json.dumps(msg, separators=(",", ":"), ensure_ascii=False)


def state(s: MediaSession) -> tuple[object, ...]:
    return (
        s.frames_received,
        s.media_received,
        s.malformed_count,
        s.sequence_gaps,
        s._last_sequence,
        s.state,
    )


def agree(texts: list[str]) -> None:
    fast, slow = streaming(), streaming(reader=False)
    for text in texts:
        assert fast.receive_text(text) == slow.receive_text(text)
        assert state(fast) == state(slow)


def test_the_common_frame_is_read_without_json_in_either_order() -> None:
    payload = base64.b64encode(bytes(range(160))).decode()
    reader = FastMediaReader(MZ)
    for sid_first in (True, False):
        text = compact("7", "inbound", "6", "120", payload, MZ, sid_first=sid_first)
        got = reader.read(text)
        assert got == Media("inbound", 6, 120, bytes(range(160)), 7)
        assert got == read_fast_media(json.loads(text), MZ)
    assert reader.read(compact("7", "inbound", "6", "120", payload, "MZx", sid_first=True)) is None
    assert reader.read(text.replace(":", ": ", 1)) is None  # whitespace: the JSON path decides
    agree([text, text.replace(":", ": ", 1)])


def test_after_stop_the_reader_is_not_used() -> None:
    payload = base64.b64encode(b"\xff" * 160).decode()
    stop = json.dumps({"event": "stop", "sequenceNumber": "3", "streamSid": MZ, "stop": {}})
    agree(
        [
            compact("2", "inbound", "1", "0", payload, MZ, sid_first=True),
            stop,
            compact("4", "inbound", "2", "20", payload, MZ, sid_first=True),
        ]
    )


# mostly well-formed values (so that whole frames are often valid), then the edge cases
valid_numbers = st.integers(0, 10**6).map(str)
numbers = (
    valid_numbers
    | valid_numbers
    | st.sampled_from(["", "-1", "01", "1.0", "1e3", " 1", "\u0661", "1" * 19, "1" * 20])
    | st.integers(0, 10**21).map(str)
)
tracks = st.sampled_from(["inbound", "inbound", "outbound", "", "Inbound", "in bound", "x" * 33])
tracks = tracks | st.text(max_size=6)
valid_payloads = st.binary(max_size=200).map(lambda b: base64.b64encode(b).decode())
payloads = valid_payloads | valid_payloads | st.text(alphabet="AB+/=\\\n ", max_size=12)
sids = st.sampled_from([MZ, MZ, MZ, MZ + "x", MZ[:-1], "", MZ.lower()])


@st.composite
def media_texts(draw: st.DrawFn) -> str:
    text = compact(
        draw(numbers),
        draw(tracks),
        draw(numbers),
        draw(numbers),
        draw(payloads),
        draw(sids),
        sid_first=draw(st.booleans()),
    )
    if text and not draw(st.integers(0, 2)):  # and one character changed, inserted or removed
        i = draw(st.integers(0, len(text) - 1))
        c = draw(st.sampled_from(['"', "\\", ",", "}", " ", "0", "A", "é", ""]))
        cut = draw(st.integers(0, 1))
        text = text[:i] + c + text[i + cut :]
    return text


@settings(max_examples=600, deadline=None)
@given(st.lists(media_texts(), min_size=1, max_size=5))
def test_the_reader_agrees_with_the_json_path(texts: list[str]) -> None:
    agree(texts)


@settings(max_examples=300, deadline=None)
@given(media_texts())
def test_whatever_the_reader_takes_json_reads_the_same(text: str) -> None:
    got = FastMediaReader(MZ).read(text)
    if got is not None:
        assert got == read_fast_media(json.loads(text), MZ)


# -- mark echoes -----------------------------------------------------------------------------

SENT = ["u1s", "vc-tick-1", "vc-tick-2", "u1e", "naïve \u2028 \x7f"]


def mark_text(seq: str, name: str, sid: str, *, sid_first: bool) -> str:
    head: dict[str, object] = {"event": "mark", "sequenceNumber": seq}
    body = {"name": name}
    msg = {**head, "streamSid": sid, "mark": body} if sid_first else {**head, "mark": body}
    if not sid_first:
        msg["streamSid"] = sid
    return json.dumps(msg, separators=(",", ":"), ensure_ascii=False)


def agree_marks(texts: list[str], *, clear_after: int) -> None:
    """Both sessions sent the same marks (some then cleared); the echoes must agree."""
    fast, slow = streaming(), streaming(reader=False)
    for s in (fast, slow):
        for i, name in enumerate(SENT):
            s.send_mark(name)
            if i == clear_after:
                s.send_clear()
    for text in texts:
        assert fast.receive_text(text) == slow.receive_text(text)
        assert state(fast) == state(slow)
        assert (fast.marks_pending, fast._cleared) == (slow.marks_pending, slow._cleared)


def test_a_mark_echo_is_read_without_json() -> None:
    reader = FastMediaReader(MZ)
    for sid_first in (True, False):
        assert reader.read_mark(mark_text("9", "vc-tick-1", MZ, sid_first=sid_first)) == (
            9,
            "vc-tick-1",
        )
    assert reader.read_mark(mark_text("9", "a\\b", MZ, sid_first=True)) is None  # an escape
    assert reader.read_mark(mark_text("9", "", MZ, sid_first=True)) is None
    echoes = [mark_text(str(i + 2), n, MZ, sid_first=True) for i, n in enumerate(SENT)]
    agree_marks(echoes, clear_after=1)


names = st.sampled_from([*SENT, "", "u9e", '"', "a\\b", "\x00", "tab\there"]) | st.text(max_size=8)


@st.composite
def mark_texts(draw: st.DrawFn) -> str:
    text = mark_text(draw(numbers), draw(names), draw(sids), sid_first=draw(st.booleans()))
    if not draw(st.integers(0, 2)):  # one character changed, inserted or removed
        i = draw(st.integers(0, len(text) - 1))
        c = draw(st.sampled_from(['"', "\\", ",", "}", " ", "0", "é", ""]))
        text = text[:i] + c + text[i + draw(st.integers(0, 1)) :]
    return text


@settings(max_examples=500, deadline=None)
@given(st.lists(mark_texts() | media_texts(), min_size=1, max_size=6), st.integers(-1, 4))
def test_mark_echoes_agree_with_the_json_path(texts: list[str], clear_after: int) -> None:
    agree_marks(texts, clear_after=clear_after)


@settings(max_examples=500, deadline=None)
@given(st.text() | st.sampled_from(["vc-tick-1", 'a"b', "a\\b", "\x7f", "\u2028", "\ud800"]))
def test_json_str_is_json_dumps(value: str) -> None:
    assert json_str(value) == json.dumps(value, ensure_ascii=False)
