"""The main job: `voicecall demo`, both variants, as a user runs it (offline, no accounts): a
task call that books a table, asks the owner, returns the outcome and sends the signed report."""

from __future__ import annotations

import io
import sys
import wave
from pathlib import Path

import pytest
from rich.console import Console

from voicecall.cli.demo import DemoResult, _summary, run_demo, voice_available

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "fakes"))

pytestmark = pytest.mark.slow

BOOKED = {"booked": True, "time": "19:30", "name": "Sam"}
#: the host (the emulator's keyword-driven `restaurant` scenario) reacts to what it hears:
#: these of its lines must come, in this order (it offers 7:30, waits, confirms and says bye)
HOST_SAYS = ("how can i help", "seven thirty instead", "take your time", "goodbye")
#: how the call may end: our agent says goodbye first, or the host hangs up after theirs
ENDINGS = {("hangup-bot", "hangup-bot"), ("hangup-user", "hangup-user")}


def host_followed_the_booking(heard: list[str]) -> None:
    """The host's lines went through the booking in order (each phrase in a later line)."""
    text = [h.lower().replace("7:30", "seven thirty").replace("730", "seven thirty") for h in heard]
    at = 0
    for phrase in HOST_SAYS:
        found = next((i for i in range(at, len(text)) if phrase in text[i]), None)
        assert found is not None, (phrase, heard)
        at = found + 1


def check_task_result(result: object, out: str) -> None:
    assert result.ok, out  # type: ignore[attr-defined]
    assert result.outcome == BOOKED, out  # type: ignore[attr-defined]
    assert "Sam" in (result.summary or "")  # type: ignore[attr-defined]
    (question,) = result.questions  # type: ignore[attr-defined]
    assert question["status"] == "answered" and "19:30" in question["question"]
    report = result.report  # type: ignore[attr-defined]
    assert report is not None and report["state"] == "delivered", out
    assert result.report_verified, out  # type: ignore[attr-defined]
    assert result.agent.startswith("scripted demo agent")  # type: ignore[attr-defined]
    assert "scripted demo agent" in out and '"booked": true' in out


async def test_voice_demo(tmp_path: Path) -> None:
    missing = voice_available()
    if missing:
        pytest.skip(f"needs {', '.join(missing)}")
    out = io.StringIO()
    result = await run_demo(Console(file=out, width=120), tmp_path, mode="voice")
    text = out.getvalue()
    assert (result.state, result.end_reason) in ENDINGS, text
    check_task_result(result, text)
    heard = [t for speaker, t in result.transcript if speaker == "user"]
    # whisper may cut or mishear a little; the host's reactions still show the booking's path
    assert any("seven" in h.lower() or "7" in h for h in heard), heard
    assert any("goodbye" in h.lower() or "bye" in h.lower() for h in heard), heard
    assert result.audio["underruns"] in ("0", "1")
    assert result.wav_path is not None
    with wave.open(str(result.wav_path)) as w:
        assert (w.getnchannels(), w.getframerate()) == (2, 8000)
        assert w.getnframes() / 8000 > 8
    assert "demo call summary (voice)" in text and "bot reply latency" in text
    # the server measured the agent's replies itself, and says how fast they were
    assert result.latency["voice_to_voice"]["count"] >= 1, result.latency
    assert "voice to voice (measured by voicecall)" in text and "voicecall's own" in text


async def test_gather_demo(tmp_path: Path) -> None:
    out = io.StringIO()
    result = await run_demo(Console(file=out, width=120), tmp_path, mode="gather")
    text = out.getvalue()
    assert (result.state, result.end_reason) in ENDINGS, text
    check_task_result(result, text)
    host_followed_the_booking([t for s, t in result.transcript if s == "user"])
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
    check_task_result(result, out.getvalue())
    said = [text.lower() for speaker, text in result.transcript if speaker == "user"]
    assert "table" in said[1], said  # whisper understood Piper's host


async def test_gather_demo_with_an_llm_endpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`voicecall demo --llm URL --model M`: the same scenario with an OpenAI-compatible model
    (here the fake server, planned like a model that books the table)."""
    import json

    from chat_server import FakeChat, Plan
    from fake_serve import serve

    fake = FakeChat(api_key="sk-demo-llm")
    fake.plan(Plan(text="Hi, I'd like a table for two tonight at seven, please."))
    fake.plan(
        Plan(
            text="One moment, let me check with Sam.",
            tool_call=("ask_owner", {"question": "Only 19:30 is free. Is 19:30 fine?"}),
        )
    )
    fake.plan(Plan(text="Seven thirty is fine, under the name Sam, please."))
    fake.plan(Plan(text="", tool_call=("end_call", {"goodbye": "Thank you, goodbye!"})))
    fake.plan_json(json.dumps({"summary": "Booked 19:30 for Sam.", "outcome": BOOKED}))
    monkeypatch.setenv("OPENAI_API_KEY", "sk-demo-llm")
    out = io.StringIO()
    async with serve(fake.app()) as at:
        result = await run_demo(
            Console(file=out, width=120),
            tmp_path,
            mode="gather",
            llm=f"http://{at}/v1",
            model="fake-model",
        )
    text = out.getvalue()
    assert result.ok and result.outcome == BOOKED, text
    assert result.agent == f"fake-model at http://{at}/v1"
    assert "scripted" not in text
    assert fake.rejected == [] and len(fake.structured) == 1
    assert all(s.body["model"] == "fake-model" for s in fake.served)


@pytest.mark.parametrize("digits", [1, 4, 6])
def test_the_summary_never_wraps_a_label(digits: int) -> None:
    """The voice demo test looked for "voicecall's own" and sometimes found "voicecall's" and
    "own" on two lines: rich wrapped the per-stage cell when the figures were longer."""
    figure = float("9" * digits)
    stages = {
        s: {"p50": figure, "p95": figure, "max": figure, "count": 12}
        for s in ("end_of_turn", "stt", "responder", "tts", "overhead", "voice_to_voice")
    }
    result = DemoResult(
        call_id="c",
        state="completed",
        end_reason="hangup-bot",
        transcript=[("user", "Two people.")] * 12,
        turn_latencies=[12.345] * 12,
        webhooks=3,
        webhook_failures=0,
        elapsed=1.0,
        mode="voice",
        audio={},
        wav_path=None,
        agent="scripted demo agent (no LLM; it only knows this booking)",
        outcome={"booked": True},
        summary="The table for two was booked. " * 4,
        outcome_error=None,
        questions=[],
        report=None,
        report_verified=False,
        latency=stages,
    )
    out = io.StringIO()
    _summary(Console(file=out, width=80), result)
    text = out.getvalue()
    for label in ("voice to voice (measured by voicecall)", "voicecall's own", "end of turn"):
        assert label in text, text
