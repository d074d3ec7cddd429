"""The main job: `voicecall demo`, both variants, as a user runs it (offline, no accounts)."""

from __future__ import annotations

import io
import wave
from pathlib import Path

import pytest
from rich.console import Console

from voicecall.cli.demo import run_demo, voice_available

pytestmark = pytest.mark.slow


async def test_voice_demo(tmp_path: Path) -> None:
    missing = voice_available()
    if missing:
        pytest.skip(f"needs {', '.join(missing)}")
    out = io.StringIO()
    result = await run_demo(Console(file=out, width=120), tmp_path, mode="voice")
    assert (result.state, result.end_reason) == ("hangup-bot", "hangup-bot"), out.getvalue()
    said = [text for speaker, text in result.transcript if speaker == "user"]
    assert len(said) == 2, result.transcript
    assert result.transcript[-1][1].startswith("Goodbye")
    assert result.audio["underruns"] in ("0", "1")
    assert result.wav_path is not None
    with wave.open(str(result.wav_path)) as w:
        assert (w.getnchannels(), w.getframerate()) == (2, 8000)
        assert w.getnframes() / 8000 > 8
    text = out.getvalue()
    assert "demo call summary (voice)" in text and "bot reply latency" in text


async def test_gather_demo(tmp_path: Path) -> None:
    out = io.StringIO()
    result = await run_demo(Console(file=out, width=120), tmp_path, mode="gather")
    assert (result.state, result.end_reason) == ("hangup-bot", "hangup-bot"), out.getvalue()
    assert [s for s, _ in result.transcript].count("user") == 3
    assert result.webhook_failures == 0


async def test_voice_demo_without_espeak_uses_piper_for_the_person(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fresh machine where apt could not run (no root): pip's Piper voices both sides."""
    import shutil

    import voicecall.cli.demo as demo

    real_which = shutil.which
    monkeypatch.setattr(
        demo.shutil,
        "which",
        lambda name, *a, **k: None if name == "espeak-ng" else real_which(name),
    )
    if demo.voice_available():
        pytest.skip(f"needs {', '.join(demo.voice_available())}")
    assert demo._person_voice() == "piper"
    out = io.StringIO()
    result = await run_demo(Console(file=out, width=120), tmp_path)  # auto picks voice
    assert result.mode == "voice", out.getvalue()
    assert (result.state, result.end_reason) == ("hangup-bot", "hangup-bot"), out.getvalue()
    said = [text.lower() for speaker, text in result.transcript if speaker == "user"]
    assert len(said) == 2, result.transcript
    assert "table" in said[0], said  # whisper understood Piper's person
