"""VoiceSession against an in-memory Twilio peer: say() on mark echoes, no overlap, barge-in,
echo guard, interrupt, DTMF, STT over the Deepgram fake, shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from voice_harness import (
    SILENCE_FRAME,
    FakeHost,
    ToneTts,
    TwilioPeer,
    espeak_ulaw,
    needs_espeak,
    start_message,
)

from voicecall.calls.channel import InboundTap
from voicecall.speech.errors import SpeechError
from voicecall.speech.stt.base import Transcript
from voicecall.speech.tts.base import TtsProvider
from voicecall.twilio.media import MediaSession
from voicecall.voice.latency import MARKS, STAGES
from voicecall.voice.session import ChannelClosed, SpeechQueueFull, VoiceSession
from voicecall.voice.settings import VoiceTuning

INTERRUPTION = "Wait, stop, I have a question about my booking please."


@dataclass
class Rig:
    host: FakeHost
    peer: TwilioPeer
    session: VoiceSession
    tts: ToneTts


async def make_rig(
    tts: ToneTts | None = None,
    *,
    tuning: VoiceTuning | None = None,
    hold_marks: bool = False,
    stt: object = None,
) -> Rig:
    host = FakeHost()
    peer = TwilioPeer(hold_marks=hold_marks)
    media = MediaSession()
    media.receive_text(start_message())
    tone_tts = tts or ToneTts()
    tts_provider: TtsProvider = tone_tts
    session = VoiceSession(
        call_id="call-1",
        media=media,
        transport=peer,
        host=host,
        tts=tts_provider,
        stt=stt,  # type: ignore[arg-type]
        tuning=tuning or VoiceTuning(lead_ms=60, message_ms=20, mark_every_ms=100),
    )
    peer.session, peer.media = session, media
    session.start()
    return Rig(host, peer, session, tone_tts)


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    r = await make_rig()
    yield r
    await r.session.shutdown("test over")


def names(peer: TwilioPeer) -> list[str]:
    """The outbound event kinds in order, media runs collapsed, marks by name (periodic marks
    left out)."""
    out: list[str] = []
    for _, m in peer.log:
        item = m["mark"]["name"] if m["event"] == "mark" else m["event"]
        if item.startswith("vc-tick"):
            continue
        if item == "media" and out and out[-1] == "media":
            continue
        out.append(item)
    return out


async def test_say_plays_all_audio_then_returns_on_the_end_mark_echo(rig: Rig) -> None:
    result = await rig.session.say("one two three")
    assert result.completed and result.heard_text == "one two three"
    assert result.total_ms == result.heard_ms == 300
    assert rig.peer.media_bytes() == rig.tts.total_bytes("one two three")
    seq = names(rig.peer)
    assert seq == ["u1s", "media", "u1e"]
    # every outbound media message is one 20 ms frame
    assert {len(m["media"]["payload"]) for m in rig.peer.events("media")} == {216}


async def test_say_waits_for_the_echo_not_for_a_timer() -> None:
    r = await make_rig(hold_marks=True)
    try:
        task = asyncio.create_task(r.session.say("one two"))
        await r.peer.wait_for(
            lambda: any(m["mark"]["name"] == "u1e" for m in r.peer.events("mark"))
        )
        for _ in range(40):
            await asyncio.sleep(0.01)  # past the nominal 200 ms playout: a timer would fire
        assert not task.done()  # all audio sent, no echo yet: the caller has not heard it
        r.peer.release_marks()
        result = await task
        assert result.completed
    finally:
        await r.session.shutdown("test over")


async def test_utterances_queue_and_never_overlap(rig: Rig) -> None:
    first = asyncio.create_task(rig.session.say("alpha beta"))
    second = asyncio.create_task(rig.session.say("gamma delta epsilon"))
    r1, r2 = await asyncio.gather(first, second)
    assert r1.completed and r2.completed
    seq = names(rig.peer)
    assert seq == ["u1s", "media", "u1e", "u2s", "media", "u2e"]
    # the second utterance's audio went out only after the first one's end mark was echoed
    log = rig.peer.log
    u2_start = next(i for i, (_, m) in enumerate(log) if m.get("mark", {}).get("name") == "u2s")
    assert rig.tts.started == ["alpha beta", "gamma delta epsilon"]
    assert sum(1 for _, m in log[:u2_start] if m["event"] == "media") == 2 * 100 * 8 // 160


async def test_queue_is_bounded() -> None:
    r = await make_rig(
        tuning=VoiceTuning(lead_ms=60, message_ms=20, max_queued_utterances=1), hold_marks=True
    )
    try:
        first = asyncio.create_task(r.session.say("one"))
        await r.peer.wait_for(lambda: bool(r.peer.events("media")))
        second = asyncio.create_task(r.session.say("two"))
        await asyncio.sleep(0)
        with pytest.raises(SpeechQueueFull):
            await r.session.say("three")
        await r.session.interrupt()
        assert not (await first).completed
        assert (await second) == type(await second)(False, 0, (await second).total_ms, "")
    finally:
        await r.session.shutdown("test over")


async def test_empty_text_is_spoken_at_once(rig: Rig) -> None:
    result = await rig.session.say("   ")
    assert result.completed and result.total_ms == 0
    assert rig.peer.log == []


async def test_interrupt_clears_drops_the_queue_and_does_not_call_the_host() -> None:
    r = await make_rig(ToneTts(ms_per_word=200))
    try:
        long = asyncio.create_task(r.session.say("one two three four five six seven eight"))
        queued = asyncio.create_task(r.session.say("never spoken"))
        await r.peer.wait_for(lambda: len(r.peer.events("media")) >= 20)
        await r.session.interrupt()
        cut, dropped = await long, await queued
        assert not cut.completed and cut.heard_ms < cut.total_ms == 1600
        assert not dropped.completed and dropped.heard_ms == 0
        assert r.peer.events("clear")
        assert r.host.interrupted == []
        assert "never spoken" not in r.tts.started
        media_after_clear = [
            m
            for m in r.peer.log[[m for _, m in r.peer.log].index(r.peer.events("clear")[0]) :]
            if m[1]["event"] == "media"
        ]
        assert media_after_clear == []
    finally:
        await r.session.shutdown("test over")


async def test_tts_failure_without_audio_raises_from_say() -> None:
    r = await make_rig(ToneTts(fail_after=0))
    try:
        with pytest.raises(SpeechError, match="tone engine broke"):
            await r.session.say("hello there")
        # the channel keeps working for the next utterance
        r.tts.fail_after = None
        assert (await r.session.say("hello again")).completed
    finally:
        await r.session.shutdown("test over")


async def test_tts_failure_midway_plays_what_it_had_and_reports_incomplete() -> None:
    r = await make_rig(ToneTts(ms_per_word=100, chunk_ms=100, fail_after=2))
    try:
        result = await r.session.say("one two three four five")
        assert not result.completed
        assert result.heard_ms == 200 and r.peer.media_bytes() == 1600
    finally:
        await r.session.shutdown("test over")


async def test_dtmf_reaches_the_host_in_order(rig: Rig) -> None:
    for digit in "12#":
        await rig.peer.deliver(rig.peer.wire.dtmf(digit))
    await rig.host.wait_for(lambda: len(rig.host.pressed) == 3)
    assert rig.host.pressed == [("call-1", "1"), ("call-1", "2"), ("call-1", "#")]


async def test_malformed_frames_are_skipped(rig: Rig) -> None:
    await rig.peer.deliver("{not json")
    await rig.peer.deliver('{"event":"media","sequenceNumber":"9"}')
    await rig.peer.deliver(rig.peer.wire.dtmf("5"))
    await rig.host.wait_for(lambda: rig.host.pressed == [("call-1", "5")])
    assert rig.session.media.malformed_count == 2


async def test_shutdown_resolves_pending_speech_and_closes_the_channel() -> None:
    r = await make_rig(hold_marks=True)
    task = asyncio.create_task(r.session.say("one two three"))
    await r.peer.wait_for(lambda: bool(r.peer.events("media")))
    assert await r.session.shutdown("stream disconnected (1006)") == "stream disconnected (1006)"
    result = await task
    assert not result.completed
    with pytest.raises(ChannelClosed):
        await r.session.say("too late")
    assert await r.session.shutdown("again") == "stream disconnected (1006)"


async def test_close_closes_the_socket_normally(rig: Rig) -> None:
    await rig.session.close("goodbye")
    assert rig.peer.closed == (1000, "goodbye")
    assert rig.session.closed and rig.session.detach_reason == "closed: goodbye"


# -- barge-in (real webrtcvad on espeak-ng speech) ------------------------------------------------


async def speak_over_bot(
    r: Rig, words: int = 40, interruptible: bool = True
) -> asyncio.Task[object]:
    text = " ".join(f"word{i}" for i in range(words))
    task: asyncio.Task[object] = asyncio.create_task(
        r.session.say(text, interruptible=interruptible)
    )
    # caller line noise floor while waiting: digital silence frames, 20 ms apart
    while len(r.peer.events("media")) < 40:  # ~800 ms of bot audio sent
        await r.peer.deliver(r.peer.wire.media(SILENCE_FRAME))
        await asyncio.sleep(0.02)
    return task


@needs_espeak
async def test_barge_in_clears_cancels_and_reports_what_was_heard() -> None:
    r = await make_rig(
        ToneTts(ms_per_word=100),
        tuning=VoiceTuning(lead_ms=60, message_ms=20, mark_every_ms=100, echo_guard_ms=200),
    )
    try:
        task = await speak_over_bot(r)
        queued = asyncio.create_task(r.session.say("this was queued"))
        await r.peer.speak(await espeak_ulaw(INTERRUPTION))
        result = await task
        assert not result.completed  # type: ignore[attr-defined]
        assert 0 < result.heard_ms < result.total_ms == 4000  # type: ignore[attr-defined]
        spoken = " ".join(f"word{i}" for i in range(40))
        assert spoken.startswith(result.heard_text)  # type: ignore[attr-defined]
        assert result.heard_text  # type: ignore[attr-defined]
        assert r.host.interrupted == [("call-1", result)]
        assert len(r.peer.events("clear")) == 1
        assert not (await queued).completed
        assert r.session.barge_ins == 1
        # nothing was sent after the clear, and synthesis was stopped early
        kinds = [m["event"] for _, m in r.peer.log]
        assert "media" not in kinds[kinds.index("clear") :]
        assert r.tts.finished == [spoken] or r.tts.closed_early
    finally:
        await r.session.shutdown("test over")


@needs_espeak
async def test_speech_inside_the_echo_guard_is_not_a_barge_in() -> None:
    r = await make_rig(
        ToneTts(ms_per_word=100),
        tuning=VoiceTuning(lead_ms=60, message_ms=20, mark_every_ms=100, echo_guard_ms=60_000),
    )
    try:
        task = await speak_over_bot(r, words=30)
        await r.peer.speak(await espeak_ulaw(INTERRUPTION))
        assert (await task).completed  # type: ignore[attr-defined]
        assert r.peer.events("clear") == [] and r.host.interrupted == []
        assert r.session.listener.speech_starts >= 1  # the VAD did hear the caller
    finally:
        await r.session.shutdown("test over")


@needs_espeak
async def test_an_utterance_said_as_not_interruptible_is_not_cut_by_the_caller() -> None:
    # a goodbye the call ends after: a farewell said over it ("Bye!") would cut it mid-word
    r = await make_rig(
        ToneTts(ms_per_word=100),
        tuning=VoiceTuning(lead_ms=60, message_ms=20, mark_every_ms=100, echo_guard_ms=200),
    )
    try:
        task = await speak_over_bot(r, words=30, interruptible=False)
        await r.peer.speak(await espeak_ulaw(INTERRUPTION))
        assert r.session.listener.speech_starts >= 1  # the VAD did hear the caller
        assert (await task).completed  # type: ignore[attr-defined]
        assert r.peer.events("clear") == [] and r.host.interrupted == []
        assert r.session.barge_ins == 0
    finally:
        await r.session.shutdown("test over")


@needs_espeak
async def test_caller_speech_while_the_bot_is_silent_is_not_a_barge_in(rig: Rig) -> None:
    await rig.peer.speak(SILENCE_FRAME * 10 + await espeak_ulaw(INTERRUPTION))
    assert rig.session.listener.speech_starts >= 1
    assert rig.peer.events("clear") == [] and rig.host.interrupted == []


@needs_espeak
async def test_barge_in_can_be_switched_off() -> None:
    r = await make_rig(
        ToneTts(ms_per_word=100),
        tuning=VoiceTuning(
            lead_ms=60, message_ms=20, mark_every_ms=100, echo_guard_ms=200, barge_in=False
        ),
    )
    try:
        task = await speak_over_bot(r, words=30)
        await r.peer.speak(await espeak_ulaw(INTERRUPTION))
        assert (await task).completed  # type: ignore[attr-defined]
        assert r.peer.events("clear") == []
    finally:
        await r.session.shutdown("test over")


# -- speech recognition through the Deepgram fake --------------------------------------------------


@needs_espeak
@pytest.mark.parametrize("service", ["deepgram", "openai-realtime"])
async def test_transcripts_from_stt_reach_the_host(service: str) -> None:
    from fake_serve import serve

    from voicecall.speech.stt.base import SttProvider

    script = ["i would like a table for two"]
    provider: SttProvider
    if service == "deepgram":
        from deepgram_server import FakeDeepgram

        from voicecall.speech.stt.deepgram import DeepgramStt

        fake: object = FakeDeepgram(script=list(script))
    else:
        from openai_server import FakeOpenAI

        from voicecall.speech.stt.openai_realtime import OpenAiRealtimeStt, ServerVad

        fake = FakeOpenAI(script=list(script))
    async with serve(fake.app()) as hostport:  # type: ignore[attr-defined]
        if service == "deepgram":
            provider = DeepgramStt(fake.api_key, base_url=f"ws://{hostport}/v1/listen")  # type: ignore[attr-defined]
        else:
            provider = OpenAiRealtimeStt(
                fake.api_key,  # type: ignore[attr-defined]
                base_url=f"ws://{hostport}/v1/realtime?intent=transcription",
                vad=ServerVad(silence_duration_ms=300),
            )
        stt = await provider.open_session()  # frames sent before it connects are buffered
        r = await make_rig(stt=stt)
        try:
            speech = await espeak_ulaw("I would like a table for two.")
            await r.peer.speak(speech + SILENCE_FRAME * 40, realtime=False)
            await r.host.wait_for(lambda: any(final for _, _, final in r.host.said))
            finals = [text for _, text, final in r.host.said if final]
            assert finals == script
        finally:
            await r.session.shutdown("test over")
            await provider.aclose()


class SlowPeer(TwilioPeer):
    """A socket whose write buffer fills now and then: every 7th send waits a little."""

    def __init__(self) -> None:
        super().__init__(nowait=False)  # every frame through send_text, some of which wait
        self.sends = 0
        self.waited = 0

    async def send_text(self, text: str) -> None:
        self.sends += 1
        if self.sends % 7 == 0:
            self.waited += 1
            await asyncio.sleep(0.015)
        await super().send_text(text)


async def test_sends_that_have_to_wait_keep_every_frame_in_order() -> None:
    peer = SlowPeer()
    media = MediaSession()
    media.receive_text(start_message())
    session = VoiceSession(
        call_id="call-1",
        media=media,
        transport=peer,
        host=FakeHost(),
        tts=ToneTts(),
        stt=None,
        tuning=VoiceTuning(lead_ms=60, message_ms=20, mark_every_ms=100),
    )
    peer.session, peer.media = session, media
    session.start()
    try:
        first = asyncio.create_task(session.say("one two three four five"))
        second = asyncio.create_task(session.say("six seven"))
        # (a lost frame would lose an end mark: say() would never return)
        r1, r2 = await asyncio.wait_for(asyncio.gather(first, second), 30)
        assert r1.completed and r2.completed
        assert peer.waited >= 3
        assert names(peer) == ["u1s", "media", "u1e", "u2s", "media", "u2e"]
        assert peer.media_bytes() == ToneTts().total_bytes("one two three four five six seven")
        ticks = [
            m["mark"]["name"] for m in peer.events("mark") if m["mark"]["name"].startswith("vc")
        ]
        assert ticks == sorted(ticks, key=lambda n: int(n.rsplit("-", 1)[1]))
    finally:
        await session.shutdown("test over")


# -- keypad tones (telephony/dtmf_out.py) -----------------------------------------------------


@needs_espeak
async def test_keypad_tones_follow_speech_and_are_not_cut_by_the_caller() -> None:
    import base64

    from voicecall.audio.dtmf import dtmf_ulaw

    r = await make_rig(
        ToneTts(ms_per_word=100),
        tuning=VoiceTuning(lead_ms=60, message_ms=20, mark_every_ms=100, echo_guard_ms=200),
    )
    prompt = await espeak_ulaw(INTERRUPTION)
    try:
        speech = asyncio.create_task(r.session.say("one moment"))
        tones = dtmf_ulaw("1wwwwww2")  # 3.4 s: the caller talks while they play
        keys = asyncio.create_task(r.session.play_audio(tones, "[keys 1wwwwww2]"))
        assert (await speech).completed
        while not any(m["mark"]["name"] == "u2s" for m in r.peer.events("mark")):
            await asyncio.sleep(0.01)  # the tones' start mark is out: they are playing now
        for _ in range(20):  # the caller's line, past the echo guard (as speak_over_bot does)
            await r.peer.deliver(r.peer.wire.media(SILENCE_FRAME))
            await asyncio.sleep(0.02)
        talking = asyncio.create_task(r.peer.speak(prompt))  # a menu prompt talks over them
        while r.session.listener.speech_starts < 1:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.3)
        assert not keys.done()  # the caller was heard while the tones were still playing
        assert r.peer.events("clear") == [] and r.session.barge_ins == 0
        result = await keys
        await talking
        assert result.completed and result.total_ms == len(tones) // 8
        assert r.peer.events("clear") == [] and r.session.barge_ins == 0
        sent = b"".join(base64.b64decode(m["media"]["payload"]) for m in r.peer.events("media"))
        assert sent.endswith(tones)  # every byte of the tones, after the speech
    finally:
        await r.session.shutdown("test over")


# -- latency records -----------------------------------------------------------------------------


class ScriptedStt:
    """An STT session that says one final transcript when told to (times given by the test)."""

    def __init__(self) -> None:
        self.frames = 0
        self.answers = 0
        self.queue: asyncio.Queue[Transcript | None] = asyncio.Queue()

    def send(self, ulaw_frame: bytes) -> None:
        self.frames += 1

    def answered(self) -> None:
        self.answers += 1

    async def events(self) -> AsyncIterator[Transcript]:
        while (item := await self.queue.get()) is not None:
            yield item

    async def aclose(self) -> None:
        self.queue.put_nowait(None)


async def test_the_first_reply_after_a_final_transcript_carries_its_latency() -> None:
    stt = ScriptedStt()
    r = await make_rig(stt=stt)
    try:
        for _ in range(25):  # 500 ms of caller audio, arriving frame by frame
            await r.peer.deliver(r.peer.wire.media(SILENCE_FRAME))
            await asyncio.sleep(0.002)
        stt.queue.put_nowait(
            Transcript("two please", True, 0, 500, speech_end_ms=300, decided_ms=500)
        )
        await r.host.wait_for(lambda: r.host.said)
        end_arrival, end_stream_ms = r.session.clock.arrival_at_ms(300) or (0.0, 0)
        decided_arrival, _ = r.session.clock.arrival_at_ms(500) or (0.0, 0)
        responder_at = time.monotonic()
        result = await r.session.say("Two it is.", responder_at=responder_at)
        rec = result.latency
        assert rec is not None
        # the speech end is the 15th frame's arrival; the media clock counts from its timestamps
        assert end_stream_ms == rec.speech_end_stream_ms == 320
        assert rec.end_of_turn_ms == pytest.approx((decided_arrival - end_arrival) * 1000, abs=0.1)
        assert rec.marks["responder_first"] == pytest.approx(
            (responder_at - end_arrival) * 1000, abs=0.1
        )
        marks = [rec.marks[m] for m in MARKS]
        assert marks == sorted(marks)  # every mark, in pipeline order
        assert rec.voice_to_voice_ms == rec.marks["first_frame_sent"]
        assert sum(rec.stage_ms(s) for s in STAGES[:-1]) == pytest.approx(
            rec.voice_to_voice_ms, abs=0.5
        )
        assert stt.answers == 1  # told: the reply was heard to its end, a new turn follows
        # the next utterance answers nothing new
        assert (await r.session.say("Anything else?")).latency is None
    finally:
        await r.session.shutdown("test over")


async def test_a_resumed_final_reaches_the_host_as_resumed() -> None:
    stt = ScriptedStt()
    r = await make_rig(stt=stt)
    try:
        stt.queue.put_nowait(Transcript("We need it for Friday.", True))
        stt.queue.put_nowait(Transcript("We need it for Friday and Saturday.", True, resumed=True))
        await r.host.wait_for(lambda: len(r.host.said) == 2)
        assert [text for _, text, _ in r.host.said][1] == "We need it for Friday and Saturday."
        assert r.host.resumed == [False, True]
    finally:
        await r.session.shutdown("test over")


async def test_the_latency_record_is_handed_out_when_the_first_frame_goes_out() -> None:
    """Not when the reply ends: a call that hangs up during the reply keeps its figure."""
    stt = ScriptedStt()
    r = await make_rig(stt=stt)
    try:
        for _ in range(25):
            await r.peer.deliver(r.peer.wire.media(SILENCE_FRAME))
            await asyncio.sleep(0.002)
        stt.queue.put_nowait(
            Transcript("two please", True, 0, 500, speech_end_ms=300, decided_ms=500)
        )
        await r.host.wait_for(lambda: r.host.said)
        got: list[object] = []
        saying = asyncio.create_task(
            r.session.say("Two it is. " * 20, responder_at=time.monotonic(), on_latency=got.append)
        )
        async with asyncio.timeout(10):
            while not got:
                await asyncio.sleep(0.01)
        assert not saying.done()  # seconds of speech still to play
        (rec,) = got
        assert rec.voice_to_voice_ms > 0  # type: ignore[attr-defined]
        await r.session.shutdown("the caller hung up")
        with contextlib.suppress(Exception):
            result = await saying
            assert result.latency in (None, rec)
        assert len(got) == 1
    finally:
        await r.session.shutdown("test over")


class _SlowFlushStt:
    """An STT session whose last transcript comes only when it is closed, ``delay`` later
    (local whisper transcribing a goodbye on a busy machine)."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self._queue: asyncio.Queue[Transcript | None] = asyncio.Queue()

    def send(self, ulaw_frame: bytes) -> None:
        pass

    async def events(self) -> AsyncIterator[Transcript]:
        while (item := await self._queue.get()) is not None:
            yield item

    async def aclose(self) -> None:
        await asyncio.sleep(self.delay)
        self._queue.put_nowait(Transcript("Thank you, goodbye.", final=True))
        self._queue.put_nowait(None)


async def test_the_callers_last_words_survive_a_slow_flush_at_the_hang_up() -> None:
    # the stream stops while the recogniser still works on the caller's last utterance: the
    # session waits for it (it waited 5 s and dropped the words; whisper took longer under load)
    stt = _SlowFlushStt(delay=6.0)
    r = await make_rig(stt=stt)
    await r.session.shutdown("stop")
    assert ("call-1", "Thank you, goodbye.", True) in r.host.said


class RecordingTap:
    """A MediaTap writing down what it is told (as the recorder hears a stream)."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, object]] = []

    def stream_started(self, now: float) -> None:
        self.seen.append(("started", None))

    def inbound(self, timestamp_ms: int, ulaw: bytes, now: float) -> None:
        self.seen.append(("inbound", (timestamp_ms, len(ulaw))))

    def outbound(self, position: int, ulaw: bytes, now: float) -> None:
        self.seen.append(("outbound", position))

    def cleared(self, now: float) -> None:
        self.seen.append(("cleared", None))

    def stream_ended(self, now: float) -> None:
        self.seen.append(("ended", None))


async def test_taps_added_to_a_running_stream_hear_it_until_removed() -> None:
    r = await make_rig()
    try:
        recorder, heard = RecordingTap(), []
        remove_recorder = r.session.add_tap(recorder)
        remove_detector = r.session.add_tap(InboundTap(heard.append))
        assert recorder.seen == [("started", None)]  # the stream already runs
        await r.peer.speak(b"\xff" * 480, realtime=False)
        assert [len(p) for p in heard] == [160, 160, 160]
        inbound = [x for k, x in recorder.seen if k == "inbound"]
        assert inbound == [(20, 160), (40, 160), (60, 160)]  # on the wire's clock
        say = asyncio.create_task(r.session.say("one two three"))
        await r.peer.wait_for(lambda: r.peer.events("media"))
        await r.session.interrupt()
        await say
        kinds = [k for k, _ in recorder.seen]
        assert "outbound" in kinds and kinds[-1] == "cleared"
        remove_detector()
        await r.peer.speak(b"\xff" * 160, realtime=False)
        assert len(heard) == 3  # removed: hears nothing more
        remove_recorder()
    finally:
        await r.session.shutdown("test over")
    assert ("ended", None) not in recorder.seen  # removed before the end


async def test_a_tap_given_at_construction_hears_start_and_end() -> None:
    recorder = RecordingTap()
    peer, media = TwilioPeer(), MediaSession()
    media.receive_text(start_message())
    session = VoiceSession(
        call_id="call-1",
        media=media,
        transport=peer,
        host=FakeHost(),
        tts=ToneTts(),
        stt=None,
        tuning=VoiceTuning(lead_ms=60, message_ms=20, mark_every_ms=100),
        tap=recorder,
    )
    peer.session, peer.media = session, media
    session.start()
    await peer.speak(b"\xff" * 160, realtime=False)
    await session.shutdown("test over")
    assert [k for k, _ in recorder.seen] == ["started", "inbound", "ended"]
