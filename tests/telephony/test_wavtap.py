"""The recorder's file: written as the call goes, valid after a kill -9, repaired and continued
after a restart."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import wave
from pathlib import Path

import numpy as np

from voicecall.audio.g711 import ulaw_encode
from voicecall.audio.stereo_wav import repair
from voicecall.telephony.wavtap import WavTap

FRAME = 160


def _tone(level: int = 1000) -> bytes:
    return bytes(ulaw_encode(np.full(FRAME, level, dtype=np.int16)))


def _frames(path: Path) -> int:
    with wave.open(str(path), "rb") as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (2, 2, 8000)
        return w.getnframes()


def test_written_as_the_call_goes_and_closed_at_the_end(tmp_path: Path) -> None:
    path = tmp_path / "c.wav"
    tap = WavTap(path)
    tap.stream_started(0.0)
    for i in range(150):  # 3 s of caller audio
        tap.inbound(20 * i, _tone(), (i + 1) * 0.02)
    # before the end: every flushed second is in the file, with a true header
    tap.written()
    on_disk = _frames(path)
    assert 8000 <= on_disk < 150 * FRAME
    tap.outbound(0, _tone(3000) * 5, 3.0)
    tap.stream_ended(3.01)
    assert tap.close() == (150 * FRAME) / 8000 + 0.1 - 0.0  # the bot ran 100 ms past the end
    assert _frames(path) == 150 * FRAME + 800
    assert tap.closed


def test_stale_header_is_repaired_and_the_file_continued(tmp_path: Path) -> None:
    path = tmp_path / "c.wav"
    tap = WavTap(path)
    tap.stream_started(0.0)
    for i in range(100):
        tap.inbound(20 * i, _tone(), (i + 1) * 0.02)
    tap.written()
    flushed = _frames(path)
    # the process dies after appending, before the header was rewritten (and mid-frame)
    with open(path, "ab") as f:
        f.write(b"\x01\x00" * 2 * 400 + b"\x07")
    assert _frames(path) == flushed  # still readable: the header covers the last flush
    plan = repair(path)
    assert plan is not None and plan.frames == flushed + 400
    assert _frames(path) == flushed + 400  # every whole frame on disk, the torn one cut
    # a restarted server appends to it: the next stream goes after what is there
    again = WavTap(path)
    again.stream_started(100.0)
    again.inbound(0, _tone(), 100.02)
    again.close()
    assert _frames(path) == flushed + 400 + FRAME


def test_disk_errors_stop_the_recording_not_the_call(tmp_path: Path) -> None:
    path = tmp_path / "c.wav"
    tap = WavTap(path, flush_every=1)
    tap.stream_started(0.0)
    def full(data: bytes) -> None:
        raise OSError(28, "No space left on device")

    tap.wav.append = full  # type: ignore[method-assign]  # the disk is full
    for i in range(3):
        tap.inbound(20 * i, _tone(), (i + 1) * 0.02)  # never raises
    tap.stream_ended(0.1)  # hands everything to the writer, which meets the full disk
    tap.written()
    assert tap.failed is not None and "No space" in tap.failed
    assert tap.closed
    tap.close()  # still closes the file


_CHILD = textwrap.dedent(
    """
    import sys, time
    import numpy as np
    from pathlib import Path
    from voicecall.audio.g711 import ulaw_encode
    from voicecall.telephony.wavtap import WavTap
    tap = WavTap(Path(sys.argv[1]))
    tone = bytes(ulaw_encode(np.full(160, 1000, dtype=np.int16)))
    tap.stream_started(0.0)
    i = 0
    while True:
        tap.inbound(20 * i, tone, (i + 1) * 0.02)
        tap.outbound(160 * i, tone, (i + 1) * 0.02)
        i += 1
        if i == 150:
            tap.written()
            print("flushed", flush=True)
        if i >= 150:
            time.sleep(0.005)
    """
)


def test_kill_9_keeps_what_was_said(tmp_path: Path) -> None:
    path = tmp_path / "killed.wav"
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "flushed"
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
    frames = _frames(path)  # a valid header without any repair
    assert frames >= 2 * 8000
    repair(path)
    with wave.open(str(path), "rb") as w:
        data = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").reshape(-1, 2)
    assert (data[:8000, 0] != 0).all()  # the caller's first second is there
