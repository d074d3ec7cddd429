"""Local TTS with the ``espeak-ng`` program, streamed from its stdout.

``espeak-ng --stdout`` writes a WAV header (22050 Hz, 16-bit mono) and then PCM clause by
clause while it synthesizes; each piece is resampled to 8 kHz and μ-law encoded as it is read.
The text goes in on stdin, never on the command line (no option injection, no length limit).
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
from collections.abc import AsyncIterator
from typing import Final

from voicecall.speech.errors import SpeechEngineMissing, SpeechError, clip_detail
from voicecall.speech.tts.base import PcmToUlaw
from voicecall.speech.tts.wav import WavFormatError, WavStreamParser

__all__ = ["EspeakTts"]

_READ_SIZE: Final = 4096
_INSTALL_HINT: Final = "espeak-ng is not installed (apt install espeak-ng)"


class EspeakTts:
    """Streaming TTS with a local ``espeak-ng`` subprocess per utterance."""

    name: Final = "espeak"

    def __init__(
        self, *, voice: str = "en-us", rate_wpm: int = 170, executable: str = "espeak-ng"
    ) -> None:
        if not 80 <= rate_wpm <= 500:
            raise ValueError("rate_wpm must be between 80 and 500")
        if not voice or voice.startswith("-") or any(c.isspace() for c in voice):
            raise ValueError(f"invalid espeak voice name {voice!r}")
        self.voice: Final = voice
        self.rate_wpm: Final = rate_wpm
        self.executable: Final = executable

    def __repr__(self) -> str:
        return f"EspeakTts(voice={self.voice!r}, rate_wpm={self.rate_wpm})"

    def check_installed(self) -> str:
        """The program's path; raises :class:`SpeechEngineMissing` when it is not installed."""
        path = shutil.which(self.executable)
        if path is None:
            raise SpeechEngineMissing(_INSTALL_HINT, provider=self.name)
        return path

    async def synthesize(self, text: str) -> AsyncIterator[bytes]:
        program = self.check_installed()
        try:
            proc = await asyncio.create_subprocess_exec(
                program,
                "--stdout",
                "--stdin",
                "-v",
                self.voice,
                "-s",
                str(self.rate_wpm),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
        except FileNotFoundError as exc:
            raise SpeechEngineMissing(_INSTALL_HINT, provider=self.name) from exc
        assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
        finished = False
        try:
            proc.stdin.write(text.encode("utf-8") + b"\n")
            proc.stdin.close()
            parser = WavStreamParser()
            conv: PcmToUlaw | None = None
            while chunk := await proc.stdout.read(_READ_SIZE):
                pcm = parser.feed(chunk)
                if not pcm:
                    continue
                if conv is None:
                    assert parser.format is not None
                    conv = PcmToUlaw(parser.format.sample_rate)
                out = conv.feed(pcm)
                if out:
                    yield out
            stderr = await proc.stderr.read()
            code = await proc.wait()
            finished = True
            if code != 0:
                detail = clip_detail(stderr.decode("utf-8", "replace"))
                raise SpeechError(
                    f"espeak-ng exited with {code}: {detail}",
                    provider=self.name,
                )
            if conv is not None:
                tail = conv.flush()
                if tail:
                    yield tail
        except WavFormatError as exc:
            raise SpeechError(
                f"unexpected output from espeak-ng: {exc}", provider=self.name
            ) from exc
        finally:
            if not finished:
                # cancelled (barge-in) or failed: stop the engine now, not when it finishes
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await asyncio.shield(proc.wait())

    async def aclose(self) -> None:
        return None
