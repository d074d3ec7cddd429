"""How one turn's audio becomes words with faster-whisper: decode options and the fitted decode.

:class:`WhisperDecode` is ``[stt.whisper]``'s decoding. :func:`decode_fitted` runs Whisper on a
window fitted to the audio (the audio plus ``fit_seconds`` of silence instead of the fixed 30 s
window) and returns what it heard, or ``None`` when the result looks like a loop (the caller
redoes it on the full window).

**Was the end of the sentence heard?** Whisper was trained on subtitles, which end in whole
sentences: tiny.en turns a cut-off phrase into a finished one ("We need it for Friday and" →
"We need it for Friday.", the trailing "and" dropped). When the plain transcript sounds finished,
the same encoded audio is decoded a second time behind a disfluent, verbatim-style prompt
(:data:`VERBATIM_PROMPT`, the known way to make Whisper keep fillers and unfinished words),
which keeps such endings far more often ("we need it for Friday and..."). When that second
reading agrees with the first except at its end and ends unfinished
(:func:`~voicecall.voice.endturn.cut_short`), :attr:`Heard.cut_short` is set: the end of the
turn waits as for an unfinished sentence. Measured on 20 cut-off phrases and 36 whole sentences
in two voices (espeak-ng and Piper, 2026-12-04): cut-off phrases judged unfinished 13 → 16 of
20 (espeak) and 17 → 18 (Piper), whole sentences misjudged 0 of 72 before and after. The second
decode reuses the encoder's output (the costly part) and adds ~15–25 ms, only when the first
transcript sounds finished (``check_endings``).

**The conjunction it weighed.** Where the plain decode put its full stop, that step's
distribution says whether the audio also supported going on: "We need it for Friday and", read
"We need it for Friday." by both readings, had 7.6 % on " and" there, whole sentences at most
1.2 % on any conjunction. At ``conjunction_p`` or more the turn is held as well (the first
decode returns its logits for this: 2–6 ms).
"""

from __future__ import annotations

import importlib
import re
import zlib
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from voicecall.voice.endturn import CONJUNCTIONS, Completeness, cut_short, judge

__all__ = ["VERBATIM_PROMPT", "Heard", "Vocabulary", "WhisperDecode", "decode_fitted", "unloop"]

WHISPER_RATE: Final = 16_000
VERBATIM_PROMPT: Final = " Umm, let me think like, hmm... Okay, here's what I'm, like, thinking and"
"""Previous-text prompt of the second reading: disfluent, ending unfinished, so that Whisper
transcribes what was said rather than a tidy sentence. (The same prompt without the trailing
"and" caught nothing: 13 of 20 as before; a shorter disfluent one caught 1.)"""

_STUTTER: Final = re.compile(r"(.{1,8}?)\1{3,}")
_LOOP: Final = re.compile(r"(.{2,8}?)\1{5,}")  # long loops only: "555 5555" stays as said


@dataclass(frozen=True, slots=True)
class WhisperDecode:
    """faster-whisper decode options (``[stt.whisper]``)."""

    beam_size: int = 1
    temperature: float = 0.0
    """One temperature, no fallback: a retry at higher temperatures cost up to 1.9 s."""
    without_timestamps: bool = True
    no_speech_threshold: float | None = 0.6
    compute_type: str = "int8"
    cpu_threads: int = 1
    """Threads per transcription (0: CTranslate2's default). On a busy 2-core box one thread
    was fastest (0.45 s against 0.5–0.7 s for 2 and 0.7–1.2 s for 4)."""
    fit_seconds: float | None = 6.0
    """Encode only the audio plus this much silence instead of Whisper's fixed 30 s window
    (on 12 espeak sentences on a busy 2-core box: 0.16 s median against 0.85 s, the same word
    recall, 60/76; with 3 s: 0.11 s, 58/76). A short window can make Whisper loop; such a
    result (too many tokens, or text that compresses too well) is redone on the full window.
    ``None``: always the full window."""
    check_endings: bool = True
    """Read a finished-sounding transcript a second time behind :data:`VERBATIM_PROMPT` to
    catch a dropped unfinished ending (fitted window only; see the module's docstring)."""
    conjunction_p: float = 0.03
    """With ``check_endings``: where the transcript ends its sentence, Whisper's probability of
    a conjunction instead (" and", " but", " or", …) that counts as a dropped "… and" (0:
    never). Measured (espeak-ng and Piper, 2026-12-04): at most 0.012 on 94 whole sentences
    read with a sentence end, 0.076 on "We need it for Friday and" (read "… for Friday.")."""

    def __post_init__(self) -> None:
        if self.beam_size < 1:
            raise ValueError("beam_size must be >= 1")
        if not 0.0 <= self.temperature <= 1.0:
            raise ValueError("temperature must be within 0..1")
        if self.cpu_threads < 0:
            raise ValueError("cpu_threads must be >= 0")
        if self.fit_seconds is not None and not 0.5 <= self.fit_seconds <= 30:
            raise ValueError("fit_seconds must be within 0.5..30")
        if not 0.0 <= self.conjunction_p <= 1.0:
            raise ValueError("conjunction_p must be within 0..1")


@dataclass(frozen=True, slots=True)
class Heard:
    """What Whisper made of a turn's audio."""

    text: str
    cut_short: bool = False
    """A second, verbatim reading ends unfinished where ``text`` sounds finished."""


@dataclass(frozen=True, slots=True)
class Vocabulary:
    """What every decode of one model and language needs from its tokenizer, built once (with
    the model) instead of per transcription (~0.4 ms each time)."""

    tokenizer: Any
    suppress: list[int]
    """Tokens never generated: non-speech symbols and the task/control tokens."""
    verbatim: list[int]
    """The second reading's previous-text prompt (:data:`VERBATIM_PROMPT`)."""
    conjunctions: tuple[int, ...]
    """The tokens of :data:`CONJUNCTIONS` (see :func:`conjunction_ids`)."""

    @classmethod
    def of(cls, model: Any, lang: str | None) -> Vocabulary:
        tokenizer_mod = importlib.import_module("faster_whisper.tokenizer")
        multilingual = model.model.is_multilingual
        tokenizer = tokenizer_mod.Tokenizer(
            model.hf_tokenizer,
            multilingual,
            task="transcribe",
            language=lang if multilingual else None,
        )
        suppress = sorted(
            {
                *tokenizer.non_speech_tokens,
                tokenizer.transcribe,
                tokenizer.translate,
                tokenizer.sot,
                tokenizer.sot_prev,
                tokenizer.sot_lm,
                tokenizer.no_speech,
            }
        )
        verbatim = [tokenizer.sot_prev, *tokenizer.encode(VERBATIM_PROMPT)]
        return cls(tokenizer, suppress, verbatim, conjunction_ids(tokenizer))


def conjunction_ids(tokenizer: Any) -> tuple[int, ...]:
    """The token of each of :data:`CONJUNCTIONS` after a space; a word the vocabulary splits
    into several tokens is left out (its first token would stand for other words too)."""
    words = (tokenizer.encode(" " + w) for w in CONJUNCTIONS)
    return tuple(w[0] for w in words if len(w) == 1)


def unloop(text: str) -> str:
    """Keep one of each long repeat ("Half-half-half-…" → "Half-half-")."""
    return _LOOP.sub(r"\1", text)


def _looks_looped(text: str) -> bool:
    if len(text) > 24 and len(text.encode()) / len(zlib.compress(text.encode())) > 2.4:
        return True
    return bool(_STUTTER.search(text))  # "4-F-F-F-F": a loop cut short by the budget


def _text(result: Any, tokenizer: Any, budget: int) -> tuple[str, int] | None:
    """A generation's text and token count; ``None`` when it loops (too many tokens, text
    that compresses too well, a stutter)."""
    tokens = [t for t in result.sequences_ids[0] if t < tokenizer.eot]
    if len(tokens) >= budget:
        return None
    text = str(tokenizer.decode(tokens)).strip()
    return None if _looks_looped(text) else (text, len(tokens))


def _conjunction_p(result: Any, tokenizer: Any, conjunctions: tuple[int, ...]) -> float:
    """Whisper's probability of a conjunction (``conjunctions``: their token ids) where the
    generation ended its sentence (0 when it did not end on ".", "?" or "!")."""
    sequence = result.sequences_ids[0]
    text_at = [i for i, t in enumerate(sequence) if t < tokenizer.eot]  # no timestamps, no eot
    if not text_at or not result.logits or len(result.logits[0]) <= text_at[-1]:
        return 0.0
    if tokenizer.decode([sequence[text_at[-1]]]).strip() not in (".", "?", "!"):
        return 0.0
    logits = np.asarray(result.logits[0][text_at[-1]], dtype=np.float64)
    probs = np.exp(logits - logits.max())
    probs /= probs.sum()
    return float(sum(probs[t] for t in conjunctions))


def decode_fitted(
    model: Any,
    vocab: Vocabulary,
    audio: npt.NDArray[np.float32],
    d: WhisperDecode,
    *,
    check_endings: bool = True,
) -> Heard | None:
    """Whisper on a window fitted to the audio (see ``WhisperDecode.fit_seconds``); ``None``
    when the result looks like a loop (redo it on the full window). The second reading runs
    when ``d.check_endings`` and ``check_endings`` both ask for it."""
    ctranslate2 = importlib.import_module("ctranslate2")
    tokenizer = vocab.tokenizer
    assert d.fit_seconds is not None
    pad = np.zeros(int(d.fit_seconds * WHISPER_RATE), np.float32)
    # a little silence first: without it the last word was dropped more often (6 of 28
    # sentences against 3, as on the full window)
    lead = np.zeros(int(0.3 * WHISPER_RATE), np.float32)
    features = model.feature_extractor(np.concatenate([lead, audio, pad]))
    frames = min(features.shape[-1], 3000)
    frames -= frames % 2
    x = ctranslate2.StorageView.from_array(np.ascontiguousarray(features[None, :, :frames]))
    prompt = [*tokenizer.sot_sequence]
    if d.without_timestamps:
        prompt.append(tokenizer.no_timestamps)
    # ~3 words a second at most, ~1.5 tokens a word: anything longer is a loop
    budget = 8 + int(6 * audio.size / WHISPER_RATE)
    kwargs: dict[str, Any] = (
        {"beam_size": d.beam_size}
        if d.temperature == 0
        else {"beam_size": 1, "sampling_topk": 0, "sampling_temperature": d.temperature}
    )
    endings = d.check_endings and check_endings
    encoded = model.model.encode(x, to_cpu=False)

    def generate(prefix: list[int], **options: Any) -> Any:
        return model.model.generate(
            encoded,
            [prefix],
            max_length=len(prefix) + budget,
            suppress_blank=True,
            suppress_tokens=vocab.suppress,
            **options,
        )[0]

    result = generate(
        prompt,
        return_scores=True,
        return_no_speech_prob=True,
        return_logits_vocab=endings and d.conjunction_p > 0 and kwargs["beam_size"] == 1,
        **kwargs,
    )
    read = _text(result, tokenizer, budget)
    if read is None:
        return None
    text, count = read
    avg_logprob = result.scores[0] / (count + 1) if count else 0.0
    if (
        d.no_speech_threshold is not None
        and result.no_speech_prob > d.no_speech_threshold
        and avg_logprob < -1.0
    ):
        return Heard("")
    if not endings or not text:
        return Heard(text)
    if judge(text) is Completeness.INCOMPLETE:
        return Heard(text)
    if (
        d.conjunction_p > 0
        and _conjunction_p(result, tokenizer, vocab.conjunctions) >= d.conjunction_p
    ):
        return Heard(text, cut_short=True)  # "… for Friday." where it heard "… for Friday and"
    # the second, verbatim reading of the same encoded audio (greedy: it is evidence, not the
    # transcript)
    second = generate([*vocab.verbatim, *prompt], beam_size=1)
    verbatim = _text(second, tokenizer, budget)
    if verbatim is None:
        return Heard(text)  # a looping second reading is no evidence
    return Heard(text, cut_short(text, verbatim[0]))
