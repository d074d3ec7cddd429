"""Settings: a TOML file, overridden by ``VOICECALL_*`` environment variables, validated.

Precedence (highest first): environment ``VOICECALL_<KEY>`` (nested with ``__``, e.g.
``VOICECALL_TWILIO__AUTH_TOKEN``), the TOML file, ``TWILIO_ACCOUNT_SID`` / ``TWILIO_AUTH_TOKEN``
(and ``OPENAI_API_KEY`` …) as fallbacks, then the defaults below.

:func:`load_config` raises :class:`~voicecall.errors.ConfigError` with one line per problem
(``key.path: what is wrong``); the CLI prints those lines and exits non-zero, no traceback.
"""

from __future__ import annotations

import os
import tomllib
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import phonenumbers
from pydantic import (
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from voicecall.calls.policy import (
    ANY_COUNTRY,
    DEFAULT_ALLOWED_TYPES,
    NON_GEOGRAPHIC,
    NumberType,
    QuietHours,
)
from voicecall.config_speech import (  # the speech path's sections (importable from here too)
    PacerSettings,
    Section,
    StreamingSettings,
    SttSettings,
    TtsSettings,
    TurnSettings,
    VadSettings,
)
from voicecall.errors import ConfigError, InvalidPhoneNumber
from voicecall.phone import parse_e164

DEFAULT_CONFIG_PATH = Path("voicecall.toml")
DEFAULT_HOME = Path.home() / ".voicecall"


class InboundPolicy(StrEnum):
    DISABLED = "disabled"
    ALLOWLIST = "allowlist"
    OPEN = "open"


class CallMode(StrEnum):
    NOTIFY = "notify"
    CONVERSATION = "conversation"


def _e164(value: str | None) -> str | None:
    if value is None or value == "":
        return None
    try:
        return parse_e164(value)
    except InvalidPhoneNumber as exc:
        # pydantic turns ValueError into a located validation error
        raise ValueError(exc.message.split(": ", 1)[-1]) from None


_REGIONS = frozenset(phonenumbers.SUPPORTED_REGIONS) | {NON_GEOGRAPHIC, ANY_COUNTRY}


def _e164_list(v: list[str]) -> list[str]:
    out = []
    for i, raw in enumerate(v):
        try:
            out.append(parse_e164(raw))
        except InvalidPhoneNumber as exc:
            raise ValueError(f"entry {i}: {exc.message.split(': ', 1)[-1]}") from None
    return out


# the speech path's sections live in config_speech.py (re-exported here)
_Section = Section


class TwilioSettings(_Section):
    account_sid: str | None = None
    auth_token: SecretStr | None = None
    api_base_url: str = "https://api.twilio.com"
    request_timeout_seconds: float = Field(10.0, gt=0, le=120)

    @field_validator("account_sid")
    @classmethod
    def _sid(cls, v: str | None) -> str | None:
        if v is not None and v != "" and not (v.startswith("AC") and len(v) == 34):
            raise ValueError("must look like AC followed by 32 hex characters")
        return v or None

    @field_validator("api_base_url")
    @classmethod
    def _base(cls, v: str) -> str:
        parts = urlsplit(v)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError("must be an http(s) URL such as https://api.twilio.com")
        return v.rstrip("/")


class OutboundSettings(_Section):
    """``[outbound]``: how calls are placed, and the policy every dialled number must pass
    (:mod:`voicecall.calls.policy`; docs/security.md lists every rule). ``false`` (``None``)
    turns a limit or the quiet hours off."""

    default_mode: CallMode = CallMode.NOTIFY
    notify_hangup_delay_seconds: float = Field(3.0, ge=0, le=60)
    allowed_countries: list[str] | None = None
    """ISO 3166 region codes that may be called (``"001"``: non-geographic numbers, ``"*"``:
    any); unset: the country of ``from_number`` only."""
    allowed_number_types: list[NumberType] = Field(
        default_factory=lambda: list(DEFAULT_ALLOWED_TYPES)
    )
    """Number types that may be called; premium rate, shared cost, personal, UAN, pager,
    voicemail, satellite, international network and unknown numbers are refused unless listed."""
    blocked_numbers: list[str] = Field(default_factory=list)
    """E.164 numbers never called (the store's do-not-call list adds to these)."""
    max_calls_per_number_per_day: int | None = Field(10, ge=1, le=100_000)
    """Outbound calls to one number in any 24 hours."""
    max_calls_per_hour: int | None = Field(30, ge=1, le=1_000_000)
    """Outbound calls in any 60 minutes."""
    max_minutes_per_day: float | None = Field(240, gt=0, le=1_000_000)
    """Talk time (answer to hang-up) of the outbound calls placed in the last 24 hours."""
    quiet_hours: str | None = None
    """``"21:00-08:00"``: no calls in that window of the callee's local time (time zones from
    the number; a number spanning several zones is refused if any of them is in it)."""
    audit_retention_days: int = Field(400, ge=1, le=36_500)
    """Audit-trail entries older than this are deleted."""

    @field_validator(
        "max_calls_per_number_per_day",
        "max_calls_per_hour",
        "max_minutes_per_day",
        "quiet_hours",
        mode="before",
    )
    @classmethod
    def _off(cls, v: Any) -> Any:
        # TOML has no null: `false` (or "off", e.g. from the environment) turns a limit off
        if v is False or (isinstance(v, str) and v.strip().lower() in ("false", "off", "none")):
            return None
        return v

    @field_validator("allowed_countries")
    @classmethod
    def _countries(cls, v: list[str] | None) -> list[str] | None:
        if v is None:
            return None
        out = []
        for i, raw in enumerate(v):
            code = raw.strip().upper() if isinstance(raw, str) else ""
            if code not in _REGIONS:
                raise ValueError(
                    f"entry {i}: {raw!r} is not an ISO 3166 region code phonenumbers knows "
                    '(e.g. "US", "GB"; "001" for non-geographic numbers, "*" for any)'
                )
            out.append(code)
        return out

    @field_validator("blocked_numbers")
    @classmethod
    def _blocked(cls, v: list[str]) -> list[str]:
        return _e164_list(v)

    @field_validator("quiet_hours")
    @classmethod
    def _quiet(cls, v: str | None) -> str | None:
        if v is None or v == "":
            return None
        return str(QuietHours.parse(v))


class ServeSettings(_Section):
    bind: str = "127.0.0.1"
    port: int = Field(3334, ge=1, le=65535)
    webhook_path: str = "/voice/webhook"
    stream_path: str = "/voice/stream"
    trusted_proxies: list[str] = Field(default_factory=list)

    @field_validator("webhook_path", "stream_path")
    @classmethod
    def _path(cls, v: str) -> str:
        if not v.startswith("/") or "?" in v or "#" in v or " " in v:
            raise ValueError("must be an absolute path like /voice/webhook, no query or fragment")
        return v


class StoreSettings(_Section):
    url: str = Field(default_factory=lambda: f"sqlite:///{DEFAULT_HOME / 'voicecall.db'}")
    standby_poll_seconds: float = Field(2.0, gt=0, le=60)
    """How often a standby instance tries to take the store lease (and the active one checks
    it still holds it)."""
    sqlite_synchronous: Literal["full", "normal"] = "full"
    """SQLite only. ``full`` (the default): every webhook is in the WAL *on disk* before its
    200, so it survives a power loss or an OS crash. ``normal``: it is in the WAL in the OS's
    memory before the 200 (it survives a crash of voicecall, not of the machine; Twilio does
    not resend what was answered) and is on disk at the next checkpoint, within ~0.5 s. It
    saves one fsync per commit: at 1,000 webhooks/s on the dev VM a commit's p50 went from
    0.5 to 0.2 ms and its p99 from 2.5 to 0.9 ms."""

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        if not (v.startswith("sqlite:///") or v.startswith(("postgresql://", "postgres://"))):
            raise ValueError("must be sqlite:///path or postgresql://…")
        return v


class ApiSettings(_Section):
    token: SecretStr | None = None


class ResponderSettings(_Section):
    """``[responder]``: who answers a conversation turn when no agent is waiting on it.

    ``none`` (agents drive every turn via ``continue``), ``scripted`` (a small built-in bot),
    ``chat`` (any OpenAI-compatible chat endpoint, streamed), or ``hook`` (``package.module:fn``).
    """

    kind: Literal["none", "scripted", "chat", "hook"] = "none"
    base_url: str = "https://api.openai.com/v1"
    model: str = "gpt-4o-mini"
    api_key: SecretStr | None = None
    system_prompt: str | None = None
    hook: str | None = None
    timeout_seconds: float = Field(10.0, gt=0, le=120)
    # Caller memory lives in the store (table caller_memory). A JSON file from an older voicecall
    # given here is imported into the store once at start-up, then renamed to <file>.imported.
    memory_path: str | None = None


# --- task calls and end-of-call reports (issue 8) ----------------------------------------------

DEFAULT_HOLD_LINES = [
    "One moment, please, I'm just checking that.",
    "Thanks for holding, I'm still checking.",
    "Sorry for the wait, I'll be right with you.",
]


class TaskSettings(_Section):
    """``[task]``: task calls (an agent hands over a whole call and gets its outcome back)."""

    disclosure: bool = True
    """Open every task call by saying it is an AI assistant calling on someone's behalf."""
    disclosure_text: str = Field(
        "Hello, this is an AI assistant calling on someone's behalf.", min_length=1, max_length=500
    )
    owner_timeout_seconds: float = Field(60.0, gt=0, le=3600)
    """How long a question to the owner (ask_owner) waits for an answer."""
    hold_lines: list[str] = Field(default_factory=lambda: list(DEFAULT_HOLD_LINES))
    """Said while the owner is asked: one at once, the next every ``hold_interval_seconds``."""
    hold_interval_seconds: float = Field(10.0, ge=2, le=120)
    max_tool_rounds: int = Field(4, ge=1, le=20)
    """Model requests in one reply (each round may call tools whose results feed the next)."""
    outcome_timeout_seconds: float = Field(60.0, gt=0, le=600)
    """How long the model may take to write a finished call's summary and outcome."""

    @field_validator("hold_lines")
    @classmethod
    def _hold_lines(cls, v: list[str]) -> list[str]:
        lines = [line.strip() for line in v]
        if not lines or not all(lines):
            raise ValueError("needs at least one line, none of them empty")
        if any(len(line) > 500 for line in lines):
            raise ValueError("each line must be at most 500 characters")
        return lines


class ReportsSettings(_Section):
    """``[reports]``: the end-of-call report POSTed (Standard Webhooks signed) when a call ends."""

    url: str | None = None
    """Where reports go when the call did not name its own ``report_url``; unset: none."""
    secret: SecretStr | None = None
    """Signing secret in Standard Webhooks form: ``whsec_`` + base64 of 24-64 random bytes."""
    allow_private_urls: bool = False
    """Allow report URLs that resolve to private, loopback or link-local addresses."""
    timeout_seconds: float = Field(10.0, gt=0, le=60)

    @field_validator("url")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        if not v:
            return None
        parts = urlsplit(v)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http(s) URL such as https://hooks.example.com/calls")
        if parts.username or parts.password:
            raise ValueError("must not carry credentials (user:password@)")
        return v

    @field_validator("secret")
    @classmethod
    def _secret(cls, v: SecretStr | None) -> SecretStr | None:
        if v is None:
            return None
        from voicecall.reports.signing import parse_secret

        try:
            parse_secret(v.get_secret_value())
        except ValueError as exc:
            raise ValueError(str(exc)) from None
        return v


class VoicemailSettings(_Section):
    """``[voicemail]``: answering-machine detection on outbound calls (docs/telephony.md)."""

    machine_detection: Literal["off", "detect", "voicemail"] = "off"
    """The default of a call's ``machine_detection``: ``off``; ``detect`` records what answered
    (Twilio's ``answered_by``); ``voicemail`` also leaves a message on a machine and hangs up."""
    max_message_chars: int = Field(1000, ge=1, le=4000)
    """The longest ``voicemail_message`` a call may ask for."""


class HoldSettings(_Section):
    """``[hold]``: hold music, ringing and recorded announcements on a Media Stream."""

    detect: Literal["auto", "off"] = "auto"
    """``auto``: outbound streamed calls listen for hold music/ringing (the bot stays silent,
    such audio never reaches the model); ``off``: every sound is a person."""
    max_hold_seconds: float = Field(600.0, gt=0, le=4 * 3600)
    """How long the bot waits on hold before it hangs up (end reason ``timeout``)."""


class RecordingSettings(_Section):
    """``[recording]``: call recordings (a call may ask for one with ``record: true``)."""

    enabled: bool = False
    """Record every call (outbound calls may still say ``record: false``), inbound calls too."""
    dir: str = Field(default_factory=lambda: str(DEFAULT_HOME / "recordings"))
    """Where Media Streams recordings are written (one stereo WAV per call)."""
    announcement: str = Field("This call is recorded.", min_length=1, max_length=500)
    """Said before the first line of every recorded call."""
    retention_days: float | None = Field(None, gt=0, le=36_500)
    """Recordings older than this are deleted (files and references); unset: kept."""


class TransferSettings(_Section):
    """``[transfer]``: handing a live call to another number (docs/telephony.md)."""

    ring_timeout_seconds: int = Field(30, ge=5, le=600)
    """How long the number rings before a warm transfer counts as not answered."""
    whisper_voice: str | None = None
    """``<Say voice>`` of the summary the number hears first (default: Twilio's)."""


class Settings(BaseSettings):
    """Every setting voicecall reads. Secrets are :class:`SecretStr`: masked in every repr."""

    model_config = SettingsConfigDict(
        env_prefix="VOICECALL_",
        env_nested_delimiter="__",
        extra="forbid",
        case_sensitive=False,
    )

    provider: Literal["twilio", "mock"] = "twilio"
    from_number: str | None = None
    to_number: str | None = None
    public_url: str | None = None
    inbound_policy: InboundPolicy = InboundPolicy.DISABLED
    allow_from: list[str] = Field(default_factory=list)
    inbound_greeting: str = "Hello, you have reached voicecall. How can I help?"
    max_concurrent_calls: int = Field(1, ge=1, le=10_000)
    max_duration_seconds: float = Field(300, gt=0, le=4 * 3600)
    ring_timeout_seconds: int = Field(30, ge=5, le=600)
    transcript_timeout_seconds: float = Field(180, gt=0, le=3600)
    outbound: OutboundSettings = Field(default_factory=OutboundSettings)
    twilio: TwilioSettings = Field(default_factory=TwilioSettings)
    serve: ServeSettings = Field(default_factory=ServeSettings)
    store: StoreSettings = Field(default_factory=StoreSettings)
    api: ApiSettings = Field(default_factory=ApiSettings)
    streaming: StreamingSettings = Field(default_factory=StreamingSettings)
    tts: TtsSettings = Field(default_factory=TtsSettings)
    stt: SttSettings = Field(default_factory=SttSettings)
    vad: VadSettings = Field(default_factory=VadSettings)
    turn: TurnSettings = Field(default_factory=TurnSettings)
    pacer: PacerSettings = Field(default_factory=PacerSettings)
    responder: ResponderSettings = Field(default_factory=ResponderSettings)
    task: TaskSettings = Field(default_factory=TaskSettings)
    reports: ReportsSettings = Field(default_factory=ReportsSettings)
    voicemail: VoicemailSettings = Field(default_factory=VoicemailSettings)
    hold: HoldSettings = Field(default_factory=HoldSettings)
    recording: RecordingSettings = Field(default_factory=RecordingSettings)
    transfer: TransferSettings = Field(default_factory=TransferSettings)

    @field_validator("from_number", "to_number")
    @classmethod
    def _number(cls, v: str | None) -> str | None:
        return _e164(v)

    @field_validator("allow_from")
    @classmethod
    def _allow(cls, v: list[str]) -> list[str]:
        return _e164_list(v)

    @field_validator("public_url")
    @classmethod
    def _public(cls, v: str | None) -> str | None:
        if not v:
            return None
        parts = urlsplit(v)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http(s) origin such as https://voice.example.com")
        if parts.query or parts.fragment:
            raise ValueError("must not carry a query string or fragment")
        return v.rstrip("/")

    @model_validator(mode="after")
    def _cross(self) -> Settings:
        if self.inbound_policy is InboundPolicy.ALLOWLIST and not self.allow_from:
            raise ValueError("inbound_policy is allowlist but allow_from is empty")
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # init (the TOML file, merged with fallbacks by load_config) < environment
        return (env_settings, init_settings)

    # --- derived values -------------------------------------------------------------------
    @property
    def webhook_url(self) -> str | None:
        """The public webhook URL Twilio requests (and signs)."""
        if not self.public_url:
            return None
        return self.public_url + self.serve.webhook_path

    @property
    def stream_url(self) -> str | None:
        """The public ``wss://`` (``ws://`` for plain-http origins) Media Streams URL."""
        if not self.public_url:
            return None
        parts = urlsplit(self.public_url)
        scheme = "wss" if parts.scheme == "https" else "ws"
        return f"{scheme}://{parts.netloc}{self.serve.stream_path}"


def _format_error(err: Any) -> str:
    loc = ".".join(str(p) for p in err.get("loc", ()) if p != "__root__")
    msg = str(err.get("msg", "invalid"))
    msg = msg.removeprefix("Value error, ")
    if err.get("type") == "extra_forbidden":
        msg = "unknown key"
    return f"{loc}: {msg}" if loc else msg


def _fallbacks(env: dict[str, str]) -> dict[str, Any]:
    twilio: dict[str, str] = {}
    if env.get("TWILIO_ACCOUNT_SID"):
        twilio["account_sid"] = env["TWILIO_ACCOUNT_SID"]
    if env.get("TWILIO_AUTH_TOKEN"):
        twilio["auth_token"] = env["TWILIO_AUTH_TOKEN"]
    return {"twilio": twilio} if twilio else {}


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def config_path(explicit: str | Path | None = None, env: dict[str, str] | None = None) -> Path:
    env = dict(os.environ) if env is None else env
    if explicit:
        return Path(explicit)
    if env.get("VOICECALL_CONFIG"):
        return Path(env["VOICECALL_CONFIG"])
    return DEFAULT_CONFIG_PATH


def load_config(
    path: str | Path | None = None,
    *,
    env: dict[str, str] | None = None,
    overrides: dict[str, Any] | None = None,
) -> Settings:
    """Load settings from the TOML file and the environment.

    A missing file is fine only when it was not asked for explicitly. Raises
    :class:`ConfigError` with one line per problem.
    """
    env_map = dict(os.environ) if env is None else env
    explicit = path is not None or bool(env_map.get("VOICECALL_CONFIG"))
    file = config_path(path, env_map)
    data: dict[str, Any] = {}
    if file.exists():
        try:
            data = tomllib.loads(file.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError([f"{file}: not valid TOML ({exc})"]) from None
        except OSError as exc:
            raise ConfigError([f"{file}: cannot be read ({exc.strerror})"]) from None
    elif explicit:
        raise ConfigError([f"{file}: no such config file (run `voicecall init` to write one)"])
    data.pop("config", None)
    merged = _merge(_fallbacks(env_map), data)
    if overrides:
        merged = _merge(merged, overrides)
    saved = dict(os.environ)
    try:
        if env is not None:
            # pydantic-settings reads os.environ; give it exactly the mapping we were handed
            os.environ.clear()
            os.environ.update(env_map)
        return Settings(**merged)
    except ValidationError as exc:
        raise ConfigError([_format_error(e) for e in exc.errors()]) from None
    finally:
        if env is not None:
            os.environ.clear()
            os.environ.update(saved)
