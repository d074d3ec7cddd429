"""One call's live speech over a Media Stream: :class:`VoiceSession` is its ``SpeechChannel``.

Built by the stream endpoint once ``start`` was verified and the manager claimed the stream.

Outbound: :meth:`VoiceSession.say` queues an utterance (bounded queue; utterances never
overlap). The speaker task synthesizes it and pushes μ-law into the :class:`Pacer` as the TTS
bytes arrive; the :class:`Player` task sends what is due. Each utterance is framed by a start
mark and an end mark (plus the pacer's periodic marks), and ``say()`` returns when Twilio echoes
the end mark: what the caller heard, never a timer.

Inbound: every media payload goes to the STT session (which buffers while it connects) and to
the :class:`Listener` (VAD). Caller speech while the bot's audio plays, past the echo guard, is a
barge-in: ``clear`` is sent at once, synthesis and the queue are cancelled, the cut utterance's
``say()`` returns ``completed=False`` with what was heard (from the mark echoes), and the host
hears about it through ``bot_interrupted``. Transcripts and DTMF go to the host in order through
one notifier task, so a slow host never stalls the audio path.

Latency: every inbound frame's arrival is noted on an :class:`ArrivalClock`; a final transcript
opens a caller turn (:class:`TurnStamps`: speech end, decision, transcript), the next ``say()``
takes it (responder output, TTS request, first audio, first frame sent), and its
:class:`SpokenResult` carries the :class:`TurnLatency` (see voice/latency.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any, Final

from voicecall.audio.g711 import ulaw_decode
from voicecall.audio.pacer import Chunk, Item, MarkPoint
from voicecall.calls.channel import MediaTap, SpokenResult, StreamHost
from voicecall.speech.errors import SpeechError
from voicecall.speech.stt.base import SttSession, Transcript, TurnAware
from voicecall.speech.tts.base import TtsProvider
from voicecall.twilio.media import (
    CloseCode,
    Dtmf,
    Malformed,
    Mark,
    MarkStatus,
    Media,
    MediaEvent,
    MediaSession,
    SessionState,
    Stop,
)
from voicecall.voice.bargein import BargeInDetector, frame_rms
from voicecall.voice.edges import ChannelClosed, SpeechQueueFull, Transport, VoiceObserver
from voicecall.voice.latency import ArrivalClock, TurnLatency, TurnStamps
from voicecall.voice.listener import Listener
from voicecall.voice.player import Player, drive
from voicecall.voice.settings import VoiceTuning
from voicecall.voice.utterance import Utterance, never_spoken, prepared

__all__ = [
    "ChannelClosed",
    "SpeechQueueFull",
    "Transport",
    "VoiceObserver",
    "VoiceSession",
]

log = logging.getLogger("voicecall.voice")

_REPORT_EVERY: Final = 50  # inbound frames per metrics update (one second of caller audio)
_REPORT_OUT_EVERY: Final = 5  # outbound messages per metrics update (a second at 200 ms)
#: How long a closing stream waits for the recogniser to transcribe what the caller said last
#: (a goodbye just before the hang-up). Local whisper on a busy 2-core machine took more than
#: the 5 s this was, and the caller's last words were dropped; nothing waits on it but the
#: call's own wrap-up.
STT_FLUSH_SECONDS: Final = 30.0
_STT_HELD_MAX: Final = 150  # payloads kept while the recogniser is held (3 s of 20 ms frames)
_ULAW_SILENCE: Final = b"\xff" * 1600


class VoiceSession:
    """The ``SpeechChannel`` of one call; see the module docs.

    The endpoint calls :meth:`start` once, then :meth:`handle` for every event after ``start``
    and :meth:`shutdown` when the socket is gone. The host calls :meth:`say`,
    :meth:`interrupt` and :meth:`close`.
    """

    def __init__(
        self,
        *,
        call_id: str,
        media: MediaSession,
        transport: Transport,
        host: StreamHost,
        tts: TtsProvider,
        stt: SttSession | None,
        tuning: VoiceTuning,
        observer: VoiceObserver | None = None,
        vad_enabled: bool = True,
        tap: MediaTap | None = None,
    ) -> None:
        if media.state is not SessionState.STREAMING:
            raise ValueError("the media session must have accepted start")
        self.call_id: Final = call_id
        self.media: Final = media
        self.tuning: Final = tuning
        self._transport = transport
        self._host = host
        self._tts = tts
        self._stt = stt
        self._obs = observer or VoiceObserver()
        self.detector: Final = BargeInDetector(
            echo_guard_ms=tuning.echo_guard_ms, energy_ratio=tuning.echo_energy_ratio
        )
        vad = tuning.vad_factory()() if vad_enabled and tuning.barge_in else None
        self.listener: Final = Listener(vad, self.detector)
        self.player: Final = Player(tuning.make_pacer(), self._emit)
        self._queue: asyncio.Queue[Utterance] = asyncio.Queue(tuning.max_queued_utterances)
        self._current: Utterance | None = None
        self._numbers = 0
        self._mark_pos: dict[str, int] = {}
        self._bot_levels: deque[float] = deque(
            maxlen=max(1, math.ceil((tuning.lead_ms + 200) / tuning.message_ms))
        )
        self._writer: asyncio.Task[None] | None = None  # finishing a send that had to wait
        self._spurt_start = 0.0
        self._space = asyncio.Event()
        self._notices: asyncio.Queue[Coroutine[Any, Any, None] | None] = asyncio.Queue()
        self._notices_closed = False
        self._tasks: list[asyncio.Task[None]] = []
        self._closed = False
        self._broken = False
        self.detach_reason: str | None = None
        self.barge_ins = 0
        self.frames_in = 0
        self._frames_out_unreported = 0  # batched like frames_in
        #: who hears the stream beside the pipeline (the recorder, detectors); replaced, never
        #: mutated (a tap may remove itself while the taps are being called); empty: no cost
        self._taps: tuple[MediaTap, ...] = () if tap is None else (tap,)
        #: while the far end is on hold the recogniser hears silence; the real audio is kept
        #: (bounded) so the onset of the person who picks up can be replayed to it
        self._stt_held: deque[bytes] | None = None
        self.clock: Final = ArrivalClock()
        self._caller_turn: TurnStamps | None = None  # the last final transcript, unanswered

    # -- lifecycle ------------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def speaking(self) -> bool:
        """The bot's audio is playing (sent, end mark not yet echoed)."""
        return self.detector.bot_speaking

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        for tap in self._taps:
            tap.stream_started(loop.time())
        self.player.start()
        self._tasks.append(loop.create_task(self._speak_loop(), name="voice-speaker"))
        self._tasks.append(loop.create_task(self._notify_loop(), name="voice-notifier"))
        if self._stt is not None:
            self._tasks.append(loop.create_task(self._stt_loop(), name="voice-stt"))

    async def shutdown(self, reason: str) -> str:
        """The stream is over (socket gone, ``stop``, or closed): resolve every pending
        ``say()``, stop the tasks, close STT. Idempotent; returns the first reason given."""
        if self.detach_reason is None:
            self.detach_reason = reason
        if self._closed:
            return self.detach_reason
        self._closed = True
        self._obs.frames_in(self.frames_in % _REPORT_EVERY)
        if self._frames_out_unreported:
            self._obs.frames_out(self._frames_out_unreported)
            self._frames_out_unreported = 0
        self._abandon_all(self.player.now())
        for tap in self._taps:
            tap.stream_ended(self.player.now())
        await self.player.aclose()
        if self._writer is not None:
            self._writer.cancel()
        speaker, notifier, *rest = self._tasks
        speaker.cancel()
        if self._stt is not None:
            try:
                # flushes the last transcript (the caller's words just before the hang-up)
                await asyncio.wait_for(self._stt.aclose(), STT_FLUSH_SECONDS)
            except TimeoutError:
                log.warning(
                    "call %s: speech recognition did not finish within %.0f s of the end; "
                    "the caller's last words may be missing",
                    self.call_id,
                    STT_FLUSH_SECONDS,
                )
            except Exception:  # noqa: S110  (the recogniser reports its own failure)
                pass
        if rest:
            (stt_task,) = rest
            with contextlib.suppress(Exception):
                await asyncio.wait_for(stt_task, 5.0)
        self._notices.put_nowait(None)  # the notifier drains what is queued, then ends
        self._notices_closed = True
        if asyncio.current_task() is not notifier:  # a host callback may be closing us
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.shield(notifier), 10.0)
        with contextlib.suppress(asyncio.CancelledError):
            await speaker
        self._tasks.clear()
        return self.detach_reason

    # -- SpeechChannel -----------------------------------------------------------------------

    async def say(
        self,
        text: str,
        *,
        responder_at: float | None = None,
        on_latency: Callable[[TurnLatency], None] | None = None,
        interruptible: bool = True,
    ) -> SpokenResult:
        """Queue ``text``; return once its end mark was echoed (heard) or it was cut off.

        The first ``say()`` after a final transcript answers that caller turn: its result
        carries the turn's latency record (``responder_at``: when the responder produced
        ``text``, monotonic; unknown for an agent's own text), and ``on_latency`` is called
        with it as soon as it is whole, when the first frame went out: an utterance that never
        ends (the call hangs up during it) keeps its figure.

        Cancelling the caller of ``say()`` does not cancel the utterance (use
        :meth:`interrupt`). Raises :class:`SpeechQueueFull`, :class:`ChannelClosed`, or the
        TTS provider's :class:`SpeechError` when it produced no audio at all.
        """
        if self._closed:
            raise ChannelClosed(f"call {self.call_id}: the media stream is closed")
        if not text.strip():
            return SpokenResult(True, 0, 0, "")
        self._numbers += 1
        utt = Utterance(self._numbers, text, asyncio.get_running_loop().create_future())
        utt.on_latency = on_latency
        utt.interruptible = interruptible
        try:
            self._queue.put_nowait(utt)
        except asyncio.QueueFull:
            raise SpeechQueueFull(
                f"call {self.call_id}: {self._queue.maxsize} utterances already queued"
            ) from None
        turn, self._caller_turn = self._caller_turn, None
        if turn is not None:
            if responder_at is not None:
                turn.stamp("responder_first", responder_at)
            turn.stamp("tts_requested", time.monotonic())
            utt.turn = turn
        return await asyncio.shield(utt.future)

    async def play_audio(self, ulaw: bytes, label: str) -> SpokenResult:
        """Queue prepared μ-law audio (in-band keypad tones) in order with speech; return once
        it was played. Caller speech does not cut it (an IVR prompt talks over keys)."""
        if self._closed:
            raise ChannelClosed(f"call {self.call_id}: the media stream is closed")
        self._numbers += 1
        future = asyncio.get_running_loop().create_future()
        utt = Utterance(self._numbers, label, future, audio=ulaw)
        try:
            self._queue.put_nowait(utt)
        except asyncio.QueueFull:
            raise SpeechQueueFull(
                f"call {self.call_id}: {self._queue.maxsize} utterances already queued"
            ) from None
        return await asyncio.shield(utt.future)

    async def interrupt(self) -> None:
        """Stop speaking now: cancel synthesis, drop queued audio and utterances, ``clear``."""
        if not self._closed:
            self._cut(notify=False)

    async def close(self, reason: str) -> None:
        """Close the socket normally (Twilio then runs the TwiML after ``<Connect>``)."""
        if self.detach_reason is None:
            self.detach_reason = f"closed: {reason}" if reason else "closed"
        if self.media.state in (SessionState.STREAMING, SessionState.STOPPED):
            self.media.close(CloseCode.NORMAL_CLOSURE, reason)
        if not self._broken and self.media.close_code is not None:
            with contextlib.suppress(Exception):
                await self._transport.close(self.media.close_code, self.media.close_reason)
        await self.shutdown(self.detach_reason)

    # -- inbound ---------------------------------------------------------------------------

    def handle(self, event: MediaEvent) -> None:
        """One event from the media session (after ``start``); never blocks."""
        if self._closed:
            return
        if type(event) is Media:  # ~50 a second: no further dispatch, no extra coroutine
            self.clock.frame(len(event.payload), event.timestamp_ms, time.monotonic())
            taps = self._taps
            if taps and event.track != "outbound":
                now = self.player.now()
                for tap in taps:
                    tap.inbound(event.timestamp_ms, event.payload, now)
            self._on_media(event.payload)
            if self._stt is not None:
                if self._stt_held is None:
                    self._stt.send(event.payload)  # never blocks: buffers while connecting
                else:
                    self._stt_held.append(event.payload)
                    self._stt.send(_ULAW_SILENCE[: len(event.payload)])
        elif isinstance(event, Mark):
            self._on_mark(event)
        elif isinstance(event, Dtmf):
            self._notify(self._host.caller_pressed(self.call_id, event.digit))
        elif isinstance(event, Malformed):
            self._obs.malformed(event.reason)
        elif isinstance(event, Stop):
            self.detach_reason = self.detach_reason or "stream stopped"

    def add_tap(self, tap: MediaTap) -> Callable[[], None]:
        """Tell ``tap`` about the stream from now on (in the audio path: it must be quick);
        ``stream_started`` at once if the stream runs. Returns the remover."""
        self._taps = (*self._taps, tap)
        if self._tasks and not self._closed:  # started, not over
            tap.stream_started(self.player.now())

        def remove() -> None:
            self._taps = tuple(t for t in self._taps if t is not tap)

        return remove

    def hold_stt(self, held: bool, *, replay_frames: int = 0) -> None:
        """``held``: the recogniser hears silence instead of the caller's audio (hold music
        never becomes a transcript). Released, the last ``replay_frames`` payloads (the onset
        of the person who picked up, heard before it was recognised as speech) are sent first."""
        if held:
            if self._stt_held is None:
                self._stt_held = deque(maxlen=_STT_HELD_MAX)
            return
        kept, self._stt_held = self._stt_held, None
        if kept and self._stt is not None and replay_frames > 0:
            for payload in list(kept)[-replay_frames:]:
                self._stt.send(payload)

    def _on_media(self, payload: bytes) -> None:
        self.frames_in += 1
        if self.frames_in % _REPORT_EVERY == 0:  # batched: metrics cost per frame adds up
            self._obs.frames_in(_REPORT_EVERY)
        bot_levels = self._bot_levels
        onset = self.listener.feed(payload, bot_rms=max(bot_levels) if bot_levels else 0.0)
        if onset is not None and self.tuning.barge_in and self.detector.bot_speaking:
            current = self._current
            if current is not None and (current.audio is not None or not current.interruptible):
                return  # keypad tones, a goodbye: talking over them does not stop them
            self.barge_ins += 1
            self._obs.barge_in()
            self._cut(notify=True)

    def _on_mark(self, mark: Mark) -> None:
        position = self._mark_pos.pop(mark.name, None)
        utt = self._current
        if utt is None or mark.status is not MarkStatus.PLAYED or position is None:
            return
        if utt.start_pos is not None and position >= utt.start_pos:
            utt.played_pos = position
            utt.played_at = self.player.now()
        if mark.name == utt.end_mark:
            self.detector.bot_stopped()
            if isinstance(self._stt, TurnAware) and not utt.failed:
                self._stt.answered()  # the caller heard it all: what they say next is new
            result = utt.played_out()
            if not utt.future.done():
                utt.future.set_result(result)

    # -- outbound ---------------------------------------------------------------------------

    def _emit(self, items: list[Item], now: float) -> None:
        """Player callback: put due chunks and marks on the wire."""
        if self.media.state is not SessionState.STREAMING:
            return
        utt = self._current
        chunks = 0
        track_levels = self.tuning.echo_energy_ratio is not None
        for item in items:
            if isinstance(item, Chunk):
                self.media.send_media(item.payload)
                chunks += 1
                for tap in self._taps:
                    tap.outbound(item.position, item.payload, now)
                if utt is not None and not utt.audio_sent:
                    utt.audio_sent = True
                    self.detector.bot_started(self.listener.samples)
                    self._spurt_start = now  # the lead's messages are due before this
                # late against the schedule, but never before the audio existed (a chunk the
                # TTS delivered after its due time is the producer's delay, not the sender's)
                ready = max(item.due, self._spurt_start, self.player.last_push)
                self._obs.lateness(max(0.0, now - ready))
                if utt is not None:
                    utt.sent_pos = item.position + len(item.payload)
                if track_levels:
                    self._bot_levels.append(frame_rms(ulaw_decode(item.payload)))
            elif isinstance(item, MarkPoint):
                self.media.send_mark(item.name)
                self._mark_pos[item.name] = item.position
                if utt is not None and item.name == utt.start_mark:
                    utt.start_pos = item.position
        if chunks:
            unreported = self._frames_out_unreported + chunks
            if unreported >= _REPORT_OUT_EVERY:  # batched: a metric update per message adds up
                self._obs.frames_out(unreported)
                unreported = 0
            self._frames_out_unreported = unreported
            self._space.set()
        self._flush()
        if chunks and utt is not None and utt.turn is not None:
            first = not utt.turn.complete
            utt.turn.stamp("first_frame_sent", time.monotonic())  # the first write is done
            record = utt.turn.build() if first and utt.on_latency is not None else None
            if record is not None and utt.on_latency is not None:
                try:
                    utt.on_latency(record)
                except Exception:  # a figure is not worth the stream
                    log.exception("call %s: latency callback failed", self.call_id)
        if self.player.underruns:
            self._obs.underrun(self.player.underruns)
            self.player.underruns = 0

    def _flush(self) -> None:
        """Write the queued frames now, in order, without awaiting: each ``send_text`` runs
        synchronously (:func:`drive`); one that has to wait (full socket buffer) finishes in a
        writer task, which then sends everything queued meanwhile."""
        if self._writer is not None or self._broken:
            return  # the writer task sends what is queued, in order
        frames = self.media.data_to_send()
        if not frames:
            return
        if len(frames) > 1:  # a media message and a mark: one write for both
            try:
                if self._transport.send_texts_nowait(frames):
                    return
            except Exception as exc:  # the socket is gone; the reader will see it
                self._send_failed(exc)
                return
        nowait = self._transport.send_text_nowait
        for i, frame in enumerate(frames):
            try:
                if nowait(frame):
                    continue
                pending = drive(self._transport.send_text(frame))
            except Exception as exc:  # the socket is gone; the reader will see it
                self._send_failed(exc)
                return
            if pending is not None:
                self._writer = asyncio.get_running_loop().create_task(
                    self._write_rest(pending, frames[i + 1 :]), name="voice-writer"
                )
                return

    async def _write_rest(self, pending: asyncio.Task[None], frames: list[str]) -> None:
        try:
            await pending
            while not self._broken:
                for frame in frames:
                    await self._transport.send_text(frame)
                frames = self.media.data_to_send()
                if not frames:
                    break
        except Exception as exc:
            self._send_failed(exc)
        finally:
            self._writer = None

    def _send_failed(self, exc: Exception) -> None:
        self._broken = True
        log.debug("call %s: send failed: %r", self.call_id, exc)

    async def _speak_loop(self) -> None:
        while True:
            utt = await self._queue.get()
            if utt.future.done():
                continue
            self._current = utt
            utt.synth_task = asyncio.get_running_loop().create_task(
                self._synthesize(utt), name="voice-tts"
            )
            try:
                await asyncio.wait([utt.future])
            finally:
                if not utt.synth_task.done():
                    utt.synth_task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await utt.synth_task
                self._current = None

    async def _synthesize(self, utt: Utterance) -> None:
        pacer = self.player.pacer
        self.player.push(b"", mark=utt.start_mark)
        audio = prepared(utt.audio) if utt.audio is not None else self._tts.synthesize(utt.text)
        try:
            async for chunk in audio:
                if not chunk:
                    continue
                while pacer.free_bytes < len(chunk):  # back-pressure: wait for the sender
                    self._space.clear()
                    await self._space.wait()
                if utt.turn is not None and not utt.bytes_pushed:
                    utt.turn.stamp("tts_first_audio", time.monotonic())
                utt.bytes_pushed += len(chunk)
                self.player.push(chunk)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            utt.failed = True
            log.warning("call %s: speech synthesis failed: %s", self.call_id, exc)
            if utt.bytes_pushed == 0:
                if not utt.future.done():
                    utt.future.set_exception(
                        exc
                        if isinstance(exc, SpeechError)
                        else SpeechError(f"synthesis failed: {type(exc).__name__}", provider="tts")
                    )
                return
        finally:
            closer = getattr(audio, "aclose", None)
            if closer is not None:
                with contextlib.suppress(Exception):
                    await closer()
        utt.synth_done = True
        self.player.push(b"", mark=utt.end_mark)

    # -- cutting ---------------------------------------------------------------------------

    def _cut(self, *, notify: bool) -> None:
        for name in self.player.clear():
            self._mark_pos.pop(name, None)
        if self.media.state is SessionState.STREAMING:
            for name in self.media.send_clear():
                self._mark_pos.pop(name, None)
            self._flush()
            for tap in self._taps:
                tap.cleared(self.player.now())
        self.detector.bot_stopped()
        now = self.player.now()
        utt = self._current
        if utt is not None and not utt.future.done():
            if utt.synth_task is not None:
                utt.synth_task.cancel()
            result = utt.cut_at(now, self.tuning.mark_every_ms)
            utt.future.set_result(result)
            if notify:
                self._notify(self._host.bot_interrupted(self.call_id, result))
        self._drop_queued()

    def _drop_queued(self) -> None:
        while not self._queue.empty():
            queued = self._queue.get_nowait()
            if not queued.future.done():
                queued.future.set_result(never_spoken(queued.text))

    def _abandon_all(self, now: float) -> None:
        utt = self._current
        if utt is not None and not utt.future.done():
            if utt.synth_task is not None:
                utt.synth_task.cancel()
            utt.future.set_result(utt.cut_at(now, self.tuning.mark_every_ms))
        self._drop_queued()
        self.detector.bot_stopped()

    # -- host notifications ----------------------------------------------------------------

    def _notify(self, call: Coroutine[Any, Any, None]) -> None:
        if self._notices_closed:
            call.close()
            return
        self._notices.put_nowait(call)

    async def _notify_loop(self) -> None:
        while (call := await self._notices.get()) is not None:
            try:
                await call
            except Exception as exc:
                log.warning("call %s: stream host callback failed: %r", self.call_id, exc)

    async def _stt_loop(self) -> None:
        assert self._stt is not None
        try:
            async for transcript in self._stt.events():
                if transcript.text.strip():
                    if transcript.final:
                        self._caller_turn = self._turn_of(transcript, time.monotonic())
                    self._notify(
                        self._host.caller_said(
                            self.call_id,
                            transcript.text,
                            final=transcript.final,
                            resumed=transcript.resumed,
                        )
                    )
        except SpeechError as exc:
            log.warning("call %s: speech recognition failed: %s", self.call_id, exc)

    def _turn_of(self, transcript: Transcript, now: float) -> TurnStamps:
        """The caller turn a final transcript closes, on the monotonic clock (voice/latency.py).

        The speech end is the STT's ``speech_end_ms`` (else the end of the audio it
        transcribed); the decision is ``decided_ms`` (else: now, when the final arrived).
        """
        clock = self.clock
        decided = (
            None if transcript.decided_ms is None else clock.arrival_at_ms(transcript.decided_ms)
        )
        end_ms = (
            transcript.speech_end_ms
            if transcript.speech_end_ms is not None
            else transcript.ended_at_ms
        )
        end = None if end_ms is None else clock.arrival_at_ms(end_ms)
        decided_at = now if decided is None else decided[0]
        if end is None:  # nothing known of where it ended: the last frame received
            end = clock.locate(clock.samples) or (decided_at, 0)
        return TurnStamps(
            speech_end=min(end[0], decided_at),
            speech_end_stream_ms=end[1],
            turn_decided=decided_at,
            transcript_final=now,
        )
