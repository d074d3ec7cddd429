"""What agents say on a call: ``speak``, ``continue`` (say, then wait for the answer), ``end``.

Every bot line is stored before it is delivered (a new turn gets a fresh Gather token in the same
commit), then spoken over the call's Media Stream or by redirecting the live call to new TwiML.

Two rules keep what people say and hear honest:

* **Nothing the caller says is cut off.** On a ``<Gather>`` call, a line that arrives while the
  caller is in the middle of an utterance (the Gather's partial results say speech started) is
  *held back*: it is kept with the call (``pending_say`` in the stored record) and said in the
  answer to the Gather request that ends their utterance, instead of a redirect that would
  throw that utterance away. It becomes a transcript line when it is said, after the caller's
  words (in the same commit as them). A backstop delivers it by redirect if no such request
  comes.
* **Nothing unspoken passes for spoken.** A line the provider or the speech engine could not
  deliver is amended in the transcript to say so.

An end is final: the call is ``ending`` at once (speak/continue get 409), the goodbye plays, and
the call hangs up right after it, or at once when the goodbye cannot be said. A second end hangs
up immediately.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from voicecall.calls import states
from voicecall.calls.channel import SpeechChannel, SpokenResult
from voicecall.calls.live import LiveCall
from voicecall.calls.model import CallRecord, CallState, EndReason, Speaker, TranscriptEntry
from voicecall.calls.replies import PENDING_SAY, pending_say
from voicecall.calls.states import Signal
from voicecall.conversation.latency import record_latency
from voicecall.conversation.text import check_message
from voicecall.errors import CallNotActive, ProviderError, StoreError, TurnTimeout, VoicecallError
from voicecall.providers.base import ParsedWebhook, WebhookKind
from voicecall.telephony.transfer_plan import transfer_under_way

if TYPE_CHECKING:
    from voicecall.calls.manager import CallManager
    from voicecall.voice.latency import TurnLatency

log = logging.getLogger("voicecall.turns")

#: a held-back line is delivered by redirect if no Gather answer brought it within this time
PENDING_SAY_SECONDS = 15.0
#: after a goodbye's expected length, how long before we hang up ourselves
GOODBYE_GRACE_SECONDS = 15.0
WORDS_PER_SECOND = 2.5
_PENDING_TIMER = "pending-say"
_ENDING_TIMER = "ending"


@dataclass(frozen=True, slots=True)
class OpenedTurn:
    """A bot line stored as a new turn; ``future`` resolves with the caller's answer."""

    record: CallRecord
    line: TranscriptEntry | None  # None: held back for the caller's utterance, stored when said
    future: asyncio.Future[str] | None
    held: bool


def speaking_seconds(text: str) -> float:
    """A generous estimate of how long ``text`` takes to say."""
    return len(text.split()) / WORDS_PER_SECOND + 1.0


#: how long past its estimate a line said by a call update may take to be reported heard (the
#: provider's speech synthesis and the hold request's trip) before the next line goes anyway
LINE_HEARD_GRACE_SECONDS = 5.0


def line_seconds(text: str) -> float:
    """How long the next line update waits at most for a line said by an update."""
    return speaking_seconds(text) + LINE_HEARD_GRACE_SECONDS


class Turns:
    """The agent operations on live calls (the manager delegates to it)."""

    def __init__(self, core: CallManager) -> None:
        self.core = core

    # ------------------------------------------------------------------ speak / continue

    async def speak(self, call_id: str, message: str) -> CallRecord:
        """Say ``message`` on a live call, then keep the line open. Returns once queued (on a
        stream) or sent (without one, that is once the line before it was heard)."""
        message = check_message(message)
        core = self.core
        live = await core.require_answered(call_id)
        async with live.lock:
            rec = _talkable(live)
            held = self._caller_mid_utterance(live)
            t = states.apply(rec.state, Signal.SPEAKING)
            metadata = (
                self._held_back(live, rec, message, "hold", rec.turn) if held else rec.metadata
            )
            updated = rec.copy(state=t.state, updated_at=core.now(), metadata=metadata)
            line = None if held else live.line(Speaker.BOT, message, at=core.now(), turn=rec.turn)
            await core.commit(live, updated, [line] if line else [])
        if line is not None:
            core.publish_line(line)
        await self.deliver(live, OpenedTurn(updated, line, None, held), then="hold", wait=False)
        return updated

    async def continue_call(
        self, call_id: str, message: str, *, wait_seconds: float | None = None
    ) -> str:
        """Say ``message``, then wait for the caller's next final transcript of that turn."""
        message = check_message(message)
        core = self.core
        live = await core.require_answered(call_id)
        core.autoreply.cancel(live)  # the agent takes this turn
        opened = await self.open_turn(live, message, wait=True)
        fut = opened.future
        assert fut is not None
        wait = (
            wait_seconds if wait_seconds is not None else core.settings.transcript_timeout_seconds
        )
        try:
            await self.deliver(live, opened, then="listen", wait=True)
            return await asyncio.wait_for(fut, wait)
        except TimeoutError:
            raise TurnTimeout(f"no answer from the caller within {wait:.0f} s") from None
        finally:
            if live.waiters.get(opened.record.turn) is fut:
                live.waiters.pop(opened.record.turn, None)

    async def open_turn(self, live: LiveCall, message: str, *, wait: bool) -> OpenedTurn:
        """Store the bot's line as a new turn (fresh Gather token); optionally register the
        waiter for the caller's answer, inside the lock so no answer can slip past it."""
        core = self.core
        async with live.lock:
            rec = _talkable(live)
            held = self._caller_mid_utterance(live)
            turn = rec.turn + 1
            metadata = (
                self._held_back(live, rec, message, "listen", turn)
                if held
                else {k: v for k, v in rec.metadata.items() if k != PENDING_SAY}
            )
            metadata["turn_token"] = secrets.token_urlsafe(12)
            t = states.apply(rec.state, Signal.SPEAKING)
            updated = rec.copy(
                turn=turn,
                state=t.state if core.streams(live) else CallState.LISTENING,
                updated_at=core.now(),
                metadata=metadata,
            )
            line = None if held else live.line(Speaker.BOT, message, at=core.now(), turn=turn)
            await core.commit(live, updated, [line] if line else [])
            fut: asyncio.Future[str] | None = None
            if wait:
                fut = asyncio.get_running_loop().create_future()
                live.waiters[turn] = fut
        if line is not None:
            core.publish_line(line)
        return OpenedTurn(updated, line, fut, held)

    async def bot_line(self, live: LiveCall, text: str) -> TranscriptEntry:
        """Store one more bot line in the current turn (the rest of a streamed reply)."""
        core = self.core
        async with live.lock:
            line = live.line(Speaker.BOT, text, at=core.now(), turn=live.record.turn)
            await core.commit(live, None, [line])
        core.publish_line(line)
        return line

    async def deliver(self, live: LiveCall, opened: OpenedTurn, *, then: str, wait: bool) -> None:
        """Speak a stored line: on the stream, held for the Gather answer, or by redirect."""
        core = self.core
        if opened.held:
            core.arm(live, _PENDING_TIMER, PENDING_SAY_SECONDS, self._deliver_pending)
            return
        line = opened.line
        assert line is not None
        if core.streams(live):
            channel = await self.channel(live)
            speaking = self.say_on_stream(live, channel, line.text, line=line)
            if wait:
                await speaking
            else:
                core.spawn(speaking)
            return
        reply = core.replies.line(opened.record, line.text, then, seq=line.seq)
        async with live.lines.turn():  # the line before it is heard to its end first
            try:
                await core.provider.redirect(_sid(opened.record), reply)
            except ProviderError as exc:
                await self._unspoken(live, [line], exc)
                raise
            if then == "hold" and core.provider.reports_lines_heard:
                live.lines.saying(line.seq, line_seconds(line.text))

    # ------------------------------------------------------------------ end

    async def end_call(self, call_id: str, *, message: str | None = None) -> CallRecord:
        """Hang up, after saying ``message`` if given. The call is ``ending`` meanwhile."""
        core = self.core
        live = core.live(call_id)
        if live is None:
            return await core.get_call(call_id)
        goodbye = check_message(message) if message else None
        lines: list[TranscriptEntry] = []
        held = False
        async with live.lock:
            rec = live.record
            if rec.is_terminal:
                return rec
            again = rec.state is CallState.ENDING
            if not again:
                held = goodbye is not None and self._caller_mid_utterance(live)
                base = (
                    self._held_back(live, rec, goodbye, "hangup", rec.turn)
                    if held and goodbye is not None
                    else rec.metadata
                )
                metadata = {**base, "hangup_requested": True}
                t = states.apply(rec.state, Signal.ENDING)
                rec = rec.copy(state=t.state, metadata=metadata, updated_at=core.now())
                if goodbye and not held:
                    lines.append(live.line(Speaker.BOT, goodbye, at=core.now(), turn=rec.turn))
                await core.commit(live, rec, lines)
        if again:  # a second end: hang up now
            await core.timeout_hangup(call_id, EndReason.HANGUP_BOT, None)
            return await core.get_call(call_id)
        core.autoreply.cancel(live)  # the bot says nothing more of its own
        for entry in lines:
            core.publish_line(entry)
        core.publish("call.updated", rec)
        async with live.lines.turn():  # a line being said by a call update is heard first
            return await self._end_after(live, rec, goodbye, lines, held=held)

    async def _end_after(
        self,
        live: LiveCall,
        rec: CallRecord,
        goodbye: str | None,
        lines: list[TranscriptEntry],
        *,
        held: bool,
    ) -> CallRecord:
        """The rest of :meth:`end_call`: the goodbye said (or held back), or the hang-up."""
        core = self.core
        call_id = live.call_id
        if rec.provider_call_id is None or goodbye is None:
            await core.timeout_hangup(call_id, EndReason.HANGUP_BOT, None)
            return await core.get_call(call_id)
        core.arm(
            live,
            _ENDING_TIMER,
            speaking_seconds(goodbye)
            + GOODBYE_GRACE_SECONDS
            + (PENDING_SAY_SECONDS if held else 0.0),
            self.on_ending_backstop,
        )
        if held:
            core.arm(live, _PENDING_TIMER, PENDING_SAY_SECONDS, self._deliver_pending)
            return live.record
        line = lines[0]
        if core.streams(live):
            core.spawn(self._goodbye_on_stream(live, line))
        else:
            try:
                await core.provider.redirect(
                    _sid(rec), core.replies.line(rec, line.text, "hangup", seq=line.seq)
                )
            except ProviderError as exc:  # it cannot be said: hang up at once
                await self._unspoken(live, lines, exc)
                await core.timeout_hangup(call_id, EndReason.HANGUP_BOT, None)
                return await core.get_call(call_id)
        return live.record

    async def _goodbye_on_stream(self, live: LiveCall, line: TranscriptEntry) -> None:
        try:
            channel = await self.channel(live)
            # not cut by the caller's speech: the call ends after it whatever they say, and a
            # farewell said over ours ("Bye!") would only cut it off mid-word
            await self.say_on_stream(live, channel, line.text, line=line, interruptible=False)
        except VoicecallError as exc:
            log.info("call %s: goodbye not said (%s); hanging up", live.call_id, exc)
        finally:
            await self.core.timeout_hangup(live.call_id, EndReason.HANGUP_BOT, None)

    async def on_ending_backstop(self, call_id: str) -> None:
        """The goodbye should be over by now: make sure the call does not stay up."""
        if self.core.live(call_id) is not None:
            log.info("call %s: still up after its goodbye; hanging up", call_id)
        await self.core.timeout_hangup(call_id, EndReason.HANGUP_BOT, None)

    # ------------------------------------------------------------------ media stream

    async def channel(self, live: LiveCall) -> SpeechChannel:
        """The call's live stream, waiting up to the reconnect grace for one to attach."""
        if live.channel is None:
            try:
                await asyncio.wait_for(live.attached.wait(), self.core.stream_grace_seconds)
            except TimeoutError:
                raise CallNotActive("no media stream is attached to this call") from None
        assert live.channel is not None
        return live.channel

    async def say_on_stream(
        self,
        live: LiveCall,
        channel: SpeechChannel,
        text: str,
        *,
        line: TranscriptEntry | None = None,
        responder_at: float | None = None,
        interruptible: bool = True,
    ) -> SpokenResult:
        """Speak ``text`` on the stream; the call is ``listening`` again once it was heard.
        ``responder_at``: when the responder produced ``text`` (for the latency record);
        ``interruptible``: see :meth:`SpeechChannel.say`."""
        recorded: list[TurnLatency] = []

        def on_latency(latency: TurnLatency) -> None:
            # stored when the first frame went out, not when the utterance ends: a reply the
            # call hangs up during (or that GET /api/latency is asked about meanwhile) has it
            if line is not None and not recorded:
                recorded.append(latency)
                self.core.spawn(record_latency(self.core, line, latency))

        try:
            result = await channel.say(
                text, responder_at=responder_at, on_latency=on_latency, interruptible=interruptible
            )
        except VoicecallError as exc:
            if line is not None:
                await self._unspoken(live, [line], exc)
            raise
        if result.latency is not None and line is not None and not recorded:
            recorded.append(result.latency)
            await record_latency(self.core, line, result.latency)
        async with live.lock:
            rec = live.record
            t = states.apply(rec.state, Signal.LISTENING)
            if t.changed and not rec.is_terminal:
                live.record = rec.copy(state=t.state)
        if not result.completed:
            log.info(
                "call %s: the caller heard %d of %d ms",
                live.call_id,
                result.heard_ms,
                result.total_ms,
            )
            if line is not None:
                await self._cut_off(line, result)
        return result

    async def _cut_off(self, line: TranscriptEntry, result: SpokenResult) -> None:
        """Barge-in (or a clear) cut this line: the transcript keeps what the caller heard of
        it (``"Let me read [cut off]"``), says it was never spoken when the cut came before any
        of it played (``"[not spoken] <line>"``), and, when some audio played but no word of it
        was heard, keeps the line the agent meant to say (``"[cut off] <line>"``): a bare
        ``"[cut off]"`` would lose it and match any accepted line."""
        text = cut_off_text(line.text, result)
        with contextlib.suppress(StoreError):
            await self.core.store.amend_lines([dataclasses.replace(line, text=text)])

    # ------------------------------------------------------------------ held-back lines

    def caller_speaking(self, live: LiveCall, hook: ParsedWebhook) -> None:
        """A Gather's partial result: the caller has started an utterance on that turn."""
        rec = live.record
        if self.core.streams(live) or rec.is_terminal:
            return
        if hook.turn == rec.turn and hook.token == rec.metadata.get("turn_token"):
            live.speech_turn = hook.turn

    def after_webhook(self, live: LiveCall, hook: ParsedWebhook) -> None:
        """Bookkeeping once a webhook was applied (the lock is held)."""
        if hook.kind is WebhookKind.GATHER and hook.turn == live.speech_turn:
            live.speech_turn = None  # that utterance is over
        held = pending_say(live.record)
        if held is None or _PENDING_TIMER not in live.timers:
            return
        if (
            hook.kind is WebhookKind.GATHER
            and hook.turn == held.get("after_turn")
            and hook.token == held.get("after_token")
        ):
            self.core.disarm(live, _PENDING_TIMER)  # the reply to this request says it
        elif hook.kind is WebhookKind.HOLD:
            # the Gather ended without a result: say the line by redirect now
            self.core.disarm(live, _PENDING_TIMER)
            self.core.spawn(self._deliver_pending(live.call_id))

    def _caller_mid_utterance(self, live: LiveCall) -> bool:
        if self.core.streams(live):
            return False
        if _PENDING_TIMER in live.timers:
            return True  # a line already waits for the caller's utterance: queue behind it
        return live.speech_turn is not None and live.speech_turn == live.record.turn

    def _held_back(
        self, live: LiveCall, rec: CallRecord, text: str, then: str, turn: int
    ) -> dict[str, Any]:
        """The record's metadata with ``text`` held for the Gather answer under way (``turn``:
        the turn its transcript line will belong to). Lines held while one already waits are
        said right after it, and each keeps its own transcript line."""
        earlier = pending_say(rec) if _PENDING_TIMER in live.timers else None
        lines = [{"text": text, "turn": turn}]
        if earlier is not None:
            lines = [*_held_lines(earlier), *lines]
            after_turn, after_token = earlier["after_turn"], earlier["after_token"]
        else:
            after_turn, after_token = rec.turn, rec.metadata.get("turn_token")
        held = {
            "text": " ".join(str(ln["text"]) for ln in lines),  # what is said, in one go
            "lines": lines,
            "then": then,
            "after_turn": after_turn,
            "after_token": after_token,
        }
        return {**rec.metadata, PENDING_SAY: held}

    def held_lines(self, live: LiveCall, hook: ParsedWebhook, *, seq: int) -> list[TranscriptEntry]:
        """The transcript lines of the held-back lines that the answer to ``hook`` says (stored
        in the same commit as the caller's words they waited for); ``[]`` if none."""
        held = pending_say(live.record)
        if (
            held is None
            or _PENDING_TIMER not in live.timers
            or hook.kind is not WebhookKind.GATHER
            or hook.turn != held.get("after_turn")
            or hook.token != held.get("after_token")
        ):
            return []
        now = self.core.now()
        return [
            TranscriptEntry(live.call_id, seq + i, Speaker.BOT, text, now, turn=turn)
            for i, (text, turn) in enumerate(_texts_and_turns(held, live.record.turn))
        ]

    async def _deliver_pending(self, call_id: str) -> None:
        """Say held-back lines by redirecting the call (no Gather answer brought them)."""
        core = self.core
        live = core.live(call_id)
        if live is None:
            return
        async with live.lock:
            live.timers.pop(_PENDING_TIMER, None)
            held = pending_say(live.record)
            if held is None or live.record.is_terminal:
                return
            rec = live.record.copy(
                metadata={k: v for k, v in live.record.metadata.items() if k != PENDING_SAY}
            )
            lines = [
                live.line(Speaker.BOT, text, at=core.now(), turn=turn, offset=i)
                for i, (text, turn) in enumerate(_texts_and_turns(held, rec.turn))
            ]
            await core.commit(live, rec, lines)
        for line in lines:
            core.publish_line(line)
        then = str(held["then"])
        text = " ".join(line.text for line in lines)
        # one line can be fetched by the provider if its markup is too long; several cannot
        seq = lines[0].seq if len(lines) == 1 else None
        async with live.lines.turn():
            try:
                await core.provider.redirect(_sid(rec), core.replies.line(rec, text, then, seq=seq))
            except (ProviderError, ValueError) as exc:
                why = exc if isinstance(exc, ProviderError) else ProviderError(str(exc))
                await self._unspoken(live, lines, why)
                if then == "hangup":
                    await core.timeout_hangup(call_id, EndReason.HANGUP_BOT, None)
                return
            if then == "hold" and seq is not None and core.provider.reports_lines_heard:
                live.lines.saying(seq, line_seconds(text))

    # ------------------------------------------------------------------ helpers

    async def _unspoken(
        self, live: LiveCall, lines: list[TranscriptEntry], why: VoicecallError
    ) -> None:
        """Say in the transcript that these stored lines were never spoken (unless the failed
        request may have taken effect: then nobody knows, and the line stays as it is)."""
        if isinstance(why, ProviderError) and why.maybe_applied:
            log.warning(
                "call %s: delivering a bot line failed after an attempt that may have reached "
                "the provider (%s); the line is kept as said",
                live.call_id,
                why,
            )
            return
        marked = [
            TranscriptEntry(
                ln.call_id, ln.seq, ln.speaker, f"[not spoken] {ln.text}", ln.at, ln.final, ln.turn
            )
            for ln in lines
            if not ln.text.startswith("[not spoken]")
        ]
        log.warning("call %s: a bot line was not spoken (%s)", live.call_id, why)
        with contextlib.suppress(StoreError):
            await self.core.store.amend_lines(marked)


def _talkable(live: LiveCall) -> CallRecord:
    """The record, if an agent may still talk on the call (checked under the lock)."""
    rec = live.record
    if rec.is_terminal:
        raise CallNotActive(f"call {rec.call_id} has ended ({rec.state})")
    if rec.state is CallState.ENDING:
        raise CallNotActive(f"call {rec.call_id} is ending: an end was asked for")
    if transfer_under_way(rec.metadata):  # a line now would replace the transfer's <Dial>
        raise CallNotActive(f"call {rec.call_id} is being transferred: nobody to talk to here")
    return rec


def _sid(record: CallRecord) -> str:
    assert record.provider_call_id is not None
    return record.provider_call_id


def _held_lines(held: dict[str, Any]) -> list[dict[str, Any]]:
    lines = held.get("lines")
    return [ln for ln in lines if isinstance(ln, dict)] if isinstance(lines, list) else []


def _texts_and_turns(held: dict[str, Any], default_turn: int) -> list[tuple[str, int]]:
    """Each held-back line's text and turn, in the order they are said."""
    out: list[tuple[str, int]] = []
    for ln in _held_lines(held):
        turn = ln.get("turn")
        out.append((str(ln.get("text", "")), turn if isinstance(turn, int) else default_turn))
    return out


def cut_off_text(said: str, result: SpokenResult) -> str:
    """The stored form of a bot line ``said`` that barge-in (or a clear) cut (pure)."""
    heard = result.heard_text.strip()
    if result.heard_ms <= 0 and not heard:
        return f"[not spoken] {said}"
    if heard:
        return f"{heard} [cut off]"
    return f"[cut off] {said}"
