"""The soak test (bench/soak.py) for a couple of minutes on each store: calls through the emulator
with REST faults, duplicated/reordered webhooks, dropped streams and kill -9 of the server; at
the end every call is terminal with a reason, no accepted or heard line is missing from the
transcripts, nothing was dialled twice and the store is intact.

``VOICECALL_SOAK_MINUTES`` (default 2) sets the length; the 30-minute run is
``.venv/bin/python bench/soak.py`` (figures in docs/benchmarks.md).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

ROOT = Path(__file__).resolve().parents[2]
PG = os.environ.get("VOICECALL_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
MINUTES = float(os.environ.get("VOICECALL_SOAK_MINUTES", "2"))

pytestmark = [pytest.mark.slow, pytest.mark.e2e]


def _voice() -> str:
    """Both voices when the stream side can run here (espeak-ng and faster-whisper)."""
    try:
        import faster_whisper  # noqa: F401
    except ImportError:
        return "gather"
    return "both" if shutil.which("espeak-ng") else "gather"


def _postgres_or_skip() -> None:
    try:
        with psycopg.connect(PG, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"PostgreSQL unreachable: {exc}")
        pytest.skip(f"PostgreSQL unreachable: {exc}")


@pytest.mark.parametrize("store", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_soak(store: str, tmp_path: Path) -> None:
    if store == "postgres":
        _postgres_or_skip()
    report_path = tmp_path / "soak.json"
    cmd = [
        sys.executable,
        str(ROOT / "bench" / "soak.py"),
        "--minutes",
        str(MINUTES),
        "--store",
        store,
        "--voice",
        _voice(),
        "--pg",
        PG,
        "--workdir",
        str(tmp_path / "work"),
        "--json",
        str(report_path),
    ]
    proc = subprocess.run(
        cmd, capture_output=True, text=True, timeout=MINUTES * 60 + 600, cwd=ROOT, check=False
    )
    assert report_path.exists(), proc.stderr[-3000:]
    report = json.loads(report_path.read_text())
    assert report["calls_placed"] > 0 and sum(report["kills"].values()) >= 2, report
    assert proc.returncode == 0, "\n".join(report["failures"][:20])
