"""The stored form of a bot line that barge-in cut: never loses what the agent meant to say."""

from __future__ import annotations

from voicecall.calls.channel import SpokenResult
from voicecall.conversation.turns import cut_off_text

LINE = "Apple violet yellow candle."


def test_heard_words_are_kept() -> None:
    assert cut_off_text(LINE, SpokenResult(False, 700, 2000, "Apple violet")) == (
        "Apple violet [cut off]"
    )


def test_cut_before_playing_is_not_spoken() -> None:
    assert cut_off_text(LINE, SpokenResult(False, 0, 2000, "")) == f"[not spoken] {LINE}"


def test_audio_played_but_no_word_heard_keeps_the_line() -> None:
    # the soak's lost line: some audio played, no whole word was heard; a bare "[cut off]"
    # threw the agent's line away
    assert cut_off_text(LINE, SpokenResult(False, 120, 2000, "")) == f"[cut off] {LINE}"
    assert cut_off_text(LINE, SpokenResult(False, 120, 2000, "  ")) == f"[cut off] {LINE}"
