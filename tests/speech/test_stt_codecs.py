"""The sans-I/O wire codecs of the STT services: no sockets, no clock."""

from __future__ import annotations

import base64
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from voicecall.speech.errors import SpeechAuthError, SpeechError
from voicecall.speech.stt.base import PendingFrames, SttNotice, Transcript
from voicecall.speech.stt.deepgram import DeepgramCodec, DeepgramStt, listen_query
from voicecall.speech.stt.openai_realtime import OpenAiRealtimeCodec, ServerVad


def ev(**fields: object) -> str:
    return json.dumps(fields)


# --- OpenAI Realtime ---------------------------------------------------------------------------


def test_openai_session_update_is_the_documented_shape() -> None:
    codec = OpenAiRealtimeCodec(
        model="gpt-4o-transcribe", language="en", vad=ServerVad(0.6, 200, 400)
    )
    (update,) = codec.opening_messages()
    assert json.loads(update) == {
        "type": "transcription_session.update",
        "session": {
            "input_audio_format": "g711_ulaw",
            "input_audio_transcription": {"model": "gpt-4o-transcribe", "language": "en"},
            "turn_detection": {
                "type": "server_vad",
                "threshold": 0.6,
                "prefix_padding_ms": 200,
                "silence_duration_ms": 400,
            },
        },
    }


def test_openai_append_carries_base64_ulaw() -> None:
    frame = bytes(range(160))
    msg = json.loads(OpenAiRealtimeCodec().audio_message(frame))
    assert msg["type"] == "input_audio_buffer.append"
    assert base64.b64decode(msg["audio"]) == frame


def test_openai_deltas_accumulate_per_item_and_complete() -> None:
    c = OpenAiRealtimeCodec()
    assert (
        c.receive(ev(type="input_audio_buffer.speech_started", audio_start_ms=120, item_id="a"))
        == []
    )
    assert (
        c.receive(ev(type="input_audio_buffer.speech_stopped", audio_end_ms=900, item_id="a")) == []
    )
    delta = "conversation.item.input_audio_transcription.delta"
    assert c.receive(ev(type=delta, item_id="a", content_index=0, delta="Hel")) == [
        Transcript("Hel", False, 120, 900)
    ]
    assert c.receive(ev(type=delta, item_id="a", content_index=0, delta="lo.")) == [
        Transcript("Hello.", False, 120, 900)
    ]
    done = "conversation.item.input_audio_transcription.completed"
    assert c.receive(ev(type=done, item_id="a", content_index=0, transcript=" Hello. ")) == [
        Transcript("Hello.", True, 120, 900)
    ]
    # the item is forgotten once completed
    assert c.receive(ev(type=delta, item_id="b", delta="x")) == [Transcript("x", False)]


def test_openai_empty_completed_is_no_transcript() -> None:
    done = "conversation.item.input_audio_transcription.completed"
    assert OpenAiRealtimeCodec().receive(ev(type=done, item_id="a", transcript="  ")) == []


def test_openai_invalid_key_error_event_is_fatal() -> None:
    error = {"type": "invalid_request_error", "code": "invalid_api_key", "message": "Incorrect"}
    with pytest.raises(SpeechAuthError):
        OpenAiRealtimeCodec().receive(ev(type="error", error=error))


def test_openai_other_error_events_are_notices() -> None:
    error = {"type": "invalid_request_error", "code": "invalid_value", "message": "bad"}
    assert OpenAiRealtimeCodec().receive(ev(type="error", error=error)) == [
        SttNotice("invalid_value", "bad")
    ]


def test_openai_close_codes() -> None:
    c = OpenAiRealtimeCodec()
    assert isinstance(
        c.close_error(3000, "invalid_request_error.invalid_api_key", requested=False),
        SpeechAuthError,
    )
    assert c.close_error(1000, "", requested=True) is None
    unexpected = c.close_error(1000, "", requested=False)
    assert unexpected is not None and unexpected.retryable


# --- Deepgram --------------------------------------------------------------------------------


def results(text: str, start: float, duration: float, *, is_final: bool, speech_final: bool) -> str:
    return ev(
        type="Results",
        start=start,
        duration=duration,
        is_final=is_final,
        speech_final=speech_final,
        channel={"alternatives": [{"transcript": text, "confidence": 0.9}]},
    )


def test_deepgram_query_has_what_twilio_audio_needs() -> None:
    q = listen_query("nova-2")
    assert q == (
        "model=nova-2&encoding=mulaw&sample_rate=8000&channels=1&interim_results=true&punctuate=true"
    )
    url = DeepgramStt("k", base_url="wss://x/v1/listen?tier=a").url
    assert url.startswith("wss://x/v1/listen?tier=a&model=nova-2&")


def test_deepgram_finals_join_until_speech_final() -> None:
    c = DeepgramCodec()
    assert c.receive(results("book a", 1.0, 0.5, is_final=False, speech_final=False)) == [
        Transcript("book a", False, 1000, 1500)
    ]
    assert c.receive(results("book a table", 1.0, 1.0, is_final=True, speech_final=False)) == [
        Transcript("book a table", False, 1000, 2000)
    ]
    assert c.receive(results("for", 2.0, 0.3, is_final=False, speech_final=False)) == [
        Transcript("book a table for", False, 1000, 2300)
    ]
    assert c.receive(results("for two", 2.0, 0.6, is_final=True, speech_final=True)) == [
        Transcript("book a table for two", True, 1000, 2600)
    ]
    assert c.receive(results("", 2.6, 1.0, is_final=True, speech_final=True)) == []


def test_deepgram_utterance_end_and_end_of_stream_flush() -> None:
    c = DeepgramCodec()
    c.receive(results("hi", 0.0, 0.4, is_final=True, speech_final=False))
    assert c.receive(ev(type="UtteranceEnd", last_word_end=0.4)) == [Transcript("hi", True, 0, 400)]
    c.receive(results("bye", 1.0, 0.4, is_final=True, speech_final=False))
    assert c.end_of_stream() == [Transcript("bye", True, 1000, 1400)]
    assert c.end_of_stream() == []


def test_deepgram_never_sends_an_empty_frame_and_has_control_messages() -> None:
    c = DeepgramCodec()
    assert c.audio_message(b"\x01" * 160) == b"\x01" * 160
    assert json.loads(c.keepalive_message() or "") == {"type": "KeepAlive"}
    assert [json.loads(m) for m in c.closing_messages()] == [{"type": "CloseStream"}]


# --- untrusted input: parse or notice, never crash ----------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=5)
    ),
    max_leaves=20,
)
event_types = st.sampled_from(
    [
        "Results",
        "UtteranceEnd",
        "Metadata",
        "error",
        "input_audio_buffer.speech_started",
        "input_audio_buffer.speech_stopped",
        "conversation.item.input_audio_transcription.delta",
        "conversation.item.input_audio_transcription.completed",
        "conversation.item.input_audio_transcription.failed",
    ]
)
keys = st.sampled_from(
    [
        "item_id",
        "delta",
        "transcript",
        "audio_start_ms",
        "audio_end_ms",
        "start",
        "duration",
        "is_final",
        "speech_final",
        "channel",
        "error",
    ]
)
messages = st.one_of(
    st.binary(max_size=50),
    st.text(max_size=50),
    json_values.map(json.dumps),
    st.builds(
        lambda t, extra: json.dumps({"type": t, **extra}),
        event_types,
        st.dictionaries(keys, json_values, max_size=6),
    ),
)


@given(st.lists(messages, max_size=8))
def test_codecs_parse_or_notice_anything(batch: list[str | bytes]) -> None:
    for codec in (OpenAiRealtimeCodec(), DeepgramCodec()):
        for message in batch:
            try:
                out = codec.receive(message)
            except SpeechError:
                continue  # only a fatal service error may be raised
            assert all(isinstance(x, Transcript | SttNotice) for x in out)
        assert all(isinstance(x, Transcript) for x in codec.end_of_stream())


def test_pending_frames_bounded_drop_oldest() -> None:
    p = PendingFrames(3)
    for i in range(5):
        p.push(bytes([i]))
    assert p.dropped == 2 and p.drain() == [b"\x02", b"\x03", b"\x04"] and len(p) == 0
    assert p.total_bytes == 5
