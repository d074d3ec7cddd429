"""StreamResampler: no tail lost at the end of an utterance, and real anti-aliasing."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest

from voicecall.audio.resample import StreamResampler

IN_RATE = 24_000
OUT_RATE = 8_000


def tone(
    freq: float, seconds: float, rate: int = IN_RATE, amp: float = 0.5
) -> npt.NDArray[np.int16]:
    t = np.arange(int(seconds * rate)) / rate
    return np.rint(amp * 32767 * np.sin(2 * np.pi * freq * t)).astype(np.int16)


def random_chunks(x: npt.NDArray[np.int16], seed: int) -> list[npt.NDArray[np.int16]]:
    rng = np.random.default_rng(seed)
    out, i = [], 0
    while i < x.size:
        n = int(rng.integers(1, 2000))
        out.append(x[i : i + n])
        i += n
    return out


def resample_utterance(
    r: StreamResampler, x: npt.NDArray[np.int16], seed: int
) -> tuple[npt.NDArray[np.int16], npt.NDArray[np.int16]]:
    body = [r.process(c) for c in random_chunks(x, seed)]
    return np.concatenate(body), r.flush()


def peak_db(x: npt.NDArray[np.int16]) -> float:
    """Level of the strongest spectral line (Hann window), dB re 1 LSB."""
    spectrum = np.abs(np.fft.rfft(x.astype(np.float64) * np.hanning(x.size)))
    return float(20 * np.log10(np.max(spectrum) + 1e-12))


def linear_interpolation(
    x: npt.NDArray[np.int16], in_rate: int, out_rate: int
) -> npt.NDArray[np.int16]:
    """The seed's resampler: np.interp with no low-pass filter (the test's negative control)."""
    n_out = x.size * out_rate // in_rate
    pos = np.arange(n_out) * (in_rate / out_rate)
    return np.rint(np.interp(pos, np.arange(x.size), x)).astype(np.int16)


def steady(x: npt.NDArray[np.int16]) -> npt.NDArray[np.int16]:
    """Drop 50 ms at both ends (filter start-up and tail) before measuring."""
    edge = OUT_RATE // 20
    return x[edge:-edge]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_utterance_length_preserved_including_tail(seed: int) -> None:
    speechish = tone(440, 1.37) // 2 + tone(1900, 1.37) // 2
    r = StreamResampler(IN_RATE, OUT_RATE)
    body, tail = resample_utterance(r, speechish, seed)
    expected = speechish.size * OUT_RATE / IN_RATE
    assert abs(body.size + tail.size - expected) <= 2
    # the tail is real: without flush() the utterance would be short by tens of samples
    assert tail.size >= 20
    assert body.size + 20 <= expected


def test_tail_carries_the_end_of_the_signal() -> None:
    # 300 ms of silence then a 40 ms burst right at the end: its energy must come out.
    x = np.concatenate([np.zeros(IN_RATE * 3 // 10, np.int16), tone(1000, 0.04)])
    r = StreamResampler(IN_RATE, OUT_RATE)
    body, tail = resample_utterance(r, x, seed=5)
    out = np.concatenate([body, tail])
    burst = out[-(OUT_RATE * 40 // 1000) :].astype(np.float64)
    rms = np.sqrt(np.mean(burst**2))
    assert rms > 0.5 * 0.5 * 32767 / np.sqrt(2)  # most of the burst's RMS survives


def test_flush_leaves_resampler_ready_for_next_utterance() -> None:
    x = tone(700, 0.5)
    r = StreamResampler(IN_RATE, OUT_RATE)
    first = np.concatenate(resample_utterance(r, x, seed=11))
    second = np.concatenate(resample_utterance(r, x, seed=12))
    # same input, same output: the second utterance starts from a clean filter, nothing leaks over
    assert first.size == second.size
    assert np.max(np.abs(first.astype(np.int32) - second.astype(np.int32))) <= 1
    assert r.samples_in == 2 * x.size
    assert r.samples_out == first.size + second.size


def test_chunking_does_not_change_output() -> None:
    x = tone(1234, 0.6)
    whole = np.concatenate(resample_utterance(StreamResampler(IN_RATE, OUT_RATE), x, seed=0))
    one = StreamResampler(IN_RATE, OUT_RATE)
    single = np.concatenate([one.process(x), one.flush()])
    assert whole.size == single.size
    assert np.max(np.abs(whole.astype(np.int32) - single.astype(np.int32))) <= 1


def test_flush_without_input_is_empty() -> None:
    r = StreamResampler(IN_RATE, OUT_RATE)
    assert r.flush().size == 0
    r.process(tone(500, 0.1))
    assert r.flush().size > 0
    assert r.flush().size == 0


def test_reset_discards_pending_tail() -> None:
    r = StreamResampler(IN_RATE, OUT_RATE)
    r.process(tone(500, 0.1))
    r.reset()
    assert r.flush().size == 0


def test_alias_rejection_at_least_55_db() -> None:
    """A 6 kHz tone at 24 kHz must not fold back to 2 kHz at 8 kHz."""
    ref = StreamResampler(IN_RATE, OUT_RATE)
    ref_out = np.concatenate([ref.process(tone(1000, 1.0)), ref.flush()])
    alias = StreamResampler(IN_RATE, OUT_RATE)
    alias_out = np.concatenate([alias.process(tone(6000, 1.0)), alias.flush()])
    rejection = peak_db(steady(ref_out)) - peak_db(steady(alias_out))
    assert rejection >= 55.0, f"only {rejection:.1f} dB"


def test_linear_interpolation_fails_the_alias_bar() -> None:
    """Negative control: the same measurement rejects the seed's linear interpolation."""
    ref_out = linear_interpolation(tone(1000, 1.0), IN_RATE, OUT_RATE)
    alias_out = linear_interpolation(tone(6000, 1.0), IN_RATE, OUT_RATE)
    rejection = peak_db(steady(ref_out)) - peak_db(steady(alias_out))
    assert rejection < 55.0
    assert abs(rejection) < 3.0  # the 6 kHz tone aliases at (close to) full level


def test_float32_input_matches_int16_input() -> None:
    x = tone(900, 0.3)
    a = StreamResampler(IN_RATE, OUT_RATE)
    b = StreamResampler(IN_RATE, OUT_RATE)
    out_i = np.concatenate([a.process(x), a.flush()])
    out_f = np.concatenate([b.process(x.astype(np.float32) / 32768), b.flush()])
    assert out_f.dtype == np.int16
    assert np.max(np.abs(out_i.astype(np.int32) - out_f.astype(np.int32))) <= 1


def test_upsampling_8k_to_16k_length() -> None:
    x = tone(300, 0.5, rate=8000)
    r = StreamResampler(8000, 16000)
    body, tail = resample_utterance(r, x, seed=4)
    assert abs(body.size + tail.size - 2 * x.size) <= 2


def test_equal_rates_pass_through() -> None:
    x = tone(300, 0.1, rate=8000)
    r = StreamResampler(8000, 8000)
    np.testing.assert_array_equal(r.process(x), x)
    assert r.flush().size == 0


def test_clipping_of_float_input() -> None:
    r = StreamResampler(8000, 8000)
    out = r.process(np.array([2.0, -2.0, 0.5], np.float32))
    assert out.tolist() == [32767, -32768, 16384]


@pytest.mark.parametrize(
    ("chunk", "exc"),
    [
        (np.zeros(4, np.float64), TypeError),
        (np.zeros(4, np.int32), TypeError),
        (np.zeros((2, 2), np.int16), ValueError),
    ],
)
def test_rejects_bad_input(chunk: npt.NDArray[np.generic], exc: type[Exception]) -> None:
    with pytest.raises(exc):
        StreamResampler(IN_RATE, OUT_RATE).process(chunk)  # type: ignore[arg-type]


def test_rejects_bad_config() -> None:
    with pytest.raises(ValueError):
        StreamResampler(0, 8000)
    with pytest.raises(ValueError, match="quality"):
        StreamResampler(24000, 8000, quality="best")  # type: ignore[arg-type]
