"""``voicecall expose``: make the local server reachable from Twilio, and say what to configure.

Two tunnels, used when their binaries are on ``PATH``:

- **Tailscale Funnel**: ``tailscale status --json`` (is the node logged in, what is its DNS
  name), then ``tailscale funnel --bg <port>``: tailscaled keeps proxying
  ``https://<node>.<tailnet>.ts.net/`` → ``http://127.0.0.1:<port>`` after we exit
  (``tailscale funnel --https=443 off`` stops it). ``tailscale serve`` is tailnet-only, so
  Twilio could not reach it; it is not offered.
- **ngrok**: ``ngrok http <port> --log stdout --log-format json``; the public URL is read from
  its own log line ``{"msg":"started tunnel","url":…}``. We read the log rather than the local
  API on 127.0.0.1:4040 because that port belongs to whichever ngrok agent started first: with
  two agents running, the API could hand us the other one's tunnel. The tunnel lives as long as
  the ngrok process, so ``voicecall expose`` stays in the foreground until Ctrl-C.

Then :func:`check_public_url` compares the tunnel URL with the settings and warns about what
makes Twilio's signatures fail. Twilio signs the exact URL it requests: the scheme, host and
path of ``public_url`` + the webhook path (for https voice webhooks without the port). The
server rebuilds that URL from ``public_url``, so it must be the tunnel's origin exactly; both
tunnels terminate TLS locally and forward plain http from 127.0.0.1, so without ``public_url``
the server would see ``http://…`` and reject every webhook.

The parsers are pure functions; only :func:`tailscale_funnel`, :func:`start_ngrok` and
:func:`expose_and_check` run processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import shutil
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Literal
from urllib.parse import urlsplit

import httpx

from voicecall.errors import VoicecallError

if TYPE_CHECKING:
    from rich.console import Console

    from voicecall.config import Settings

FUNNEL_PORTS = (443, 8443, 10000)
COMMAND_TIMEOUT_SECONDS = 30.0
NGROK_START_TIMEOUT_SECONDS = 20.0


class ExposeError(VoicecallError):
    """The tunnel could not be started; the message says why and what to do."""


class Level(StrEnum):
    ERROR = "error"  # webhooks will fail as configured
    WARNING = "warning"  # likely to fail or to surprise
    INFO = "info"


@dataclass(frozen=True, slots=True)
class Finding:
    level: Level
    text: str


@dataclass
class Tunnel:
    tool: str
    url: str
    process: asyncio.subprocess.Process | None = None
    stop_hint: str | None = None
    notes: list[str] = field(default_factory=list)


# ----------------------------------------------------------------------------- parsers


@dataclass(frozen=True, slots=True)
class TailscaleStatus:
    backend_state: str
    dns_name: str | None


def parse_tailscale_status(text: str) -> TailscaleStatus:
    """``tailscale status --json`` → backend state and this node's DNS name (no trailing dot)."""
    try:
        doc = json.loads(text)
    except ValueError:
        raise ExposeError("`tailscale status --json` did not print JSON") from None
    if not isinstance(doc, dict):
        raise ExposeError("`tailscale status --json` printed an unexpected document")
    state = str(doc.get("BackendState") or "Unknown")
    me = doc.get("Self")
    dns = me.get("DNSName") if isinstance(me, dict) else None
    name = str(dns).rstrip(".") if isinstance(dns, str) and dns.strip(".") else None
    return TailscaleStatus(state, name)


_URL = re.compile(r"https?://[A-Za-z0-9.\-]+(?::\d+)?(?:/[^\s|]*)?")


def parse_funnel_output(text: str) -> str | None:
    """The first public https URL ``tailscale funnel`` printed (origin + path, no trailing /)."""
    for match in _URL.finditer(text):
        url = match.group(0)
        parts = urlsplit(url)
        if parts.scheme == "https" and parts.hostname not in ("127.0.0.1", "localhost"):
            if "login.tailscale.com" in (parts.hostname or ""):
                continue
            return url.rstrip("/")
    return None


@dataclass(frozen=True, slots=True)
class NgrokLine:
    url: str | None = None
    error: str | None = None


def parse_ngrok_line(line: str) -> NgrokLine:
    """One line of ``ngrok --log stdout --log-format json``: a tunnel URL, an error, or neither."""
    try:
        doc = json.loads(line)
    except ValueError:
        text = line.strip()
        return (
            NgrokLine(error=text)
            if text.upper().startswith(("ERROR", "ERR_NGROK"))
            else NgrokLine()
        )
    if not isinstance(doc, dict):
        return NgrokLine()
    if doc.get("msg") == "started tunnel" and isinstance(doc.get("url"), str):
        return NgrokLine(url=doc["url"].rstrip("/"))
    level = str(doc.get("lvl", "")).lower()
    if level in ("eror", "error", "crit"):
        detail = doc.get("err") or doc.get("msg") or "unknown error"
        return NgrokLine(error=str(detail).strip())
    return NgrokLine()


# ----------------------------------------------------------------------------- checks


def _is_loopback_or_any(host: str) -> bool:
    return host in ("127.0.0.1", "localhost", "::1", "0.0.0.0", "::", "")


def check_public_url(url: str, settings: Settings, *, port: int | None = None) -> list[Finding]:
    """What would make Twilio's requests to ``url`` fail verification (or fail to arrive)."""
    found: list[Finding] = []
    parts = urlsplit(url)
    webhook = url.rstrip("/") + settings.serve.webhook_path
    if parts.scheme != "https":
        found.append(
            Finding(
                Level.ERROR,
                f"{url} is not https: Media Streams need wss://, and webhooks, tokens and audio "
                "would cross the internet unencrypted. Use an https tunnel.",
            )
        )
    if parts.port is not None:
        hint = (
            " (Funnel can only use 443, 8443 or 10000; 443 gives a URL without a port)"
            if (parts.hostname or "").endswith(".ts.net")
            else ""
        )
        found.append(
            Finding(
                Level.WARNING,
                f"{url} carries a port ({parts.port}): Twilio signs https webhook URLs without "
                f"the port. voicecall checks both forms, but prefer a URL without a port{hint}.",
            )
        )
    if parts.path not in ("", "/"):
        found.append(
            Finding(
                Level.ERROR,
                f"{url} has a path ({parts.path}): the tunnel strips it before forwarding, so "
                "the URL Twilio signs differs from the path the server sees and every webhook "
                "is rejected. Expose the server at the root of the public hostname.",
            )
        )
    origin = f"{parts.scheme}://{parts.netloc}"
    configured = settings.public_url
    if not configured:
        found.append(
            Finding(
                Level.ERROR,
                f'public_url is not set: set public_url = "{origin}". The tunnel terminates TLS '
                "and forwards plain http from 127.0.0.1, so without it the server would verify "
                "signatures against http://… and reject every webhook. (The alternative, "
                'trusted_proxies = ["127.0.0.1"] to honour X-Forwarded-Proto/Host, trusts every '
                "local process; prefer public_url.)",
            )
        )
    elif configured.rstrip("/") != origin:
        cur = urlsplit(configured)
        why = []
        if cur.scheme != parts.scheme:
            why.append(f"scheme {cur.scheme} ≠ {parts.scheme}")
        if (cur.hostname or "") != (parts.hostname or ""):
            why.append(f"host {cur.hostname} ≠ {parts.hostname}")
        if cur.port != parts.port:
            why.append(f"port {cur.port or 'none'} ≠ {parts.port or 'none'}")
        if cur.path not in ("", "/"):
            why.append(f"public_url has a path {cur.path}")
        found.append(
            Finding(
                Level.ERROR,
                f"public_url is {configured} but the tunnel is {origin} ({'; '.join(why)}): "
                f'set public_url = "{origin}" and restart `voicecall serve`, or Twilio will '
                "call the old URL and signatures will not match.",
            )
        )
    if settings.serve.trusted_proxies and configured:
        found.append(
            Finding(
                Level.INFO,
                "serve.trusted_proxies is set but public_url takes precedence for signature "
                "checks; the forwarded headers are not needed with this tunnel.",
            )
        )
    bind = settings.serve.bind
    if not _is_loopback_or_any(bind):
        found.append(
            Finding(
                Level.ERROR,
                f"serve.bind is {bind}: the tunnel forwards to "
                f"127.0.0.1:{port or settings.serve.port}, where the server is not listening. "
                "Bind to 127.0.0.1.",
            )
        )
    if port is not None and port != settings.serve.port:
        found.append(
            Finding(
                Level.WARNING,
                f"the tunnel forwards to port {port} but serve.port is {settings.serve.port}.",
            )
        )
    if (parts.hostname or "").endswith((".ngrok-free.app", ".ngrok.io", ".ngrok.app")) and (
        "-" in (parts.hostname or "").split(".")[0]
    ):
        found.append(
            Finding(
                Level.INFO,
                "this ngrok URL is random and changes whenever ngrok restarts; reserve a domain "
                "(ngrok http --url=<domain>) or update public_url each time.",
            )
        )
    found.append(
        Finding(
            Level.INFO,
            f"inbound calls: set the Twilio number's voice webhook (HTTP POST) to {webhook}",
        )
    )
    return found


# ----------------------------------------------------------------------------- tunnels


async def _run(argv: list[str], timeout: float) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
        raise ExposeError(
            f"`{' '.join(argv)}` did not finish within {timeout:.0f} s (is it waiting for you to "
            "approve something in the browser? run it by hand once)"
        ) from None
    code = proc.returncode if proc.returncode is not None else -1
    return code, out.decode(errors="replace"), err.decode(errors="replace")


async def tailscale_funnel(
    port: int, *, binary: str = "tailscale", timeout: float = COMMAND_TIMEOUT_SECONDS
) -> Tunnel:
    """Start (or refresh) a background Funnel to ``127.0.0.1:port``; return its public URL."""
    code, out, err = await _run([binary, "status", "--json"], timeout)
    try:
        status = parse_tailscale_status(out)
    except ExposeError:
        first = (err or out).strip().splitlines()[:1]
        raise ExposeError(
            "tailscale is not running"
            + (f" ({first[0]})" if first else f" (exit status {code})")
            + ": start tailscaled and run `tailscale up`"
        ) from None
    if status.backend_state != "Running":
        raise ExposeError(
            f"tailscale is not connected (state {status.backend_state}): run `tailscale up`"
        )
    code, out, err = await _run([binary, "funnel", "--bg", str(port)], timeout)
    text = out + "\n" + err
    if code != 0:
        lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
        detail = " ".join(lines[:3]) or f"exit status {code}"
        raise ExposeError(
            f"`tailscale funnel --bg {port}` failed: {detail} (Funnel must be enabled for the "
            "tailnet and this node: https://tailscale.com/kb/1223/funnel)"
        )
    url = parse_funnel_output(text)
    if url is None:
        if status.dns_name is None:
            raise ExposeError("tailscale did not report this node's DNS name (enable MagicDNS)")
        url = f"https://{status.dns_name}"
    return Tunnel(
        tool="tailscale",
        url=url,
        stop_hint="tailscale funnel --https=443 off",
        notes=["the funnel keeps running in tailscaled after this command exits"],
    )


async def start_ngrok(
    port: int, *, binary: str = "ngrok", timeout: float = NGROK_START_TIMEOUT_SECONDS
) -> Tunnel:
    """Start ``ngrok http <port>`` and return the tunnel (its process keeps it open)."""
    proc = await asyncio.create_subprocess_exec(
        binary,
        "http",
        str(port),
        "--log",
        "stdout",
        "--log-format",
        "json",
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    assert proc.stdout is not None
    errors: list[str] = []

    async def first_url() -> str | None:
        assert proc.stdout is not None
        while True:
            raw = await proc.stdout.readline()
            if not raw:
                return None
            line = parse_ngrok_line(raw.decode(errors="replace"))
            if line.url:
                return line.url
            if line.error:
                errors.append(line.error)

    try:
        url = await asyncio.wait_for(first_url(), timeout)
    except TimeoutError:
        url = None
        errors.append(f"no tunnel within {timeout:.0f} s")
    if url is None:
        await stop_process(proc)
        detail = "; ".join(dict.fromkeys(errors)) or f"ngrok exited (status {proc.returncode})"
        hint = ""
        if "ERR_NGROK_4018" in detail or "authtoken" in detail.lower():
            hint = " (add your authtoken: `ngrok config add-authtoken <token>`)"
        raise ExposeError(f"ngrok did not start a tunnel: {detail}{hint}")
    return Tunnel(tool="ngrok", url=url, process=proc, stop_hint="Ctrl-C")


async def stop_process(proc: asyncio.subprocess.Process, grace: float = 5.0) -> None:
    if proc.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        proc.terminate()
    try:
        await asyncio.wait_for(proc.wait(), grace)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()


def available_tools() -> list[str]:
    return [name for name in ("tailscale", "ngrok") if shutil.which(name)]


async def start_tunnel(tool: Literal["auto", "tailscale", "ngrok"], port: int) -> Tunnel:
    if tool == "auto":
        found = available_tools()
        if not found:
            raise ExposeError(
                "neither tailscale nor ngrok is installed: install one "
                "(https://tailscale.com/download or https://ngrok.com/download), or put "
                "voicecall behind any https reverse proxy and set public_url yourself"
            )
        tool = "tailscale" if "tailscale" in found else "ngrok"
    binary = shutil.which(tool)
    if binary is None:
        raise ExposeError(f"`{tool}` is not on PATH: install it first")
    if tool == "tailscale":
        return await tailscale_funnel(port, binary=binary)
    return await start_ngrok(port, binary=binary)


async def server_answers(port: int, timeout: float = 2.0) -> bool:
    try:
        async with httpx.AsyncClient(timeout=timeout) as http:
            response = await http.get(f"http://127.0.0.1:{port}/healthz")
        return response.status_code == 200
    except httpx.HTTPError:
        return False


async def expose_and_check(
    settings: Settings,
    *,
    tool: Literal["auto", "tailscale", "ngrok"],
    port: int | None,
    out: Console,
    err: Console,
    wait: bool,
) -> int:
    """Start the tunnel, print the URL and the findings; keep ngrok running when ``wait``.

    Returns the exit status: 0, or 1 when a finding is an error or ngrok stopped by itself.
    """
    from rich.markup import escape

    local_port = port or settings.serve.port
    tunnel = await start_tunnel(tool, local_port)
    try:
        out.print(
            f"[bold]{tunnel.tool}[/bold]: {escape(tunnel.url)} → http://127.0.0.1:{local_port}",
            highlight=False,
            soft_wrap=True,
        )
        origin = tunnel.url.rstrip("/")
        out.print(
            f'put this in voicecall.toml:  public_url = "{escape(origin)}"',
            highlight=False,
            soft_wrap=True,
        )
        findings = check_public_url(tunnel.url, settings, port=local_port)
        if not await server_answers(local_port):
            findings.insert(
                0,
                Finding(
                    Level.WARNING,
                    f"nothing answers on http://127.0.0.1:{local_port}/healthz yet: "
                    "start `voicecall serve` (the tunnel forwards there)",
                ),
            )
        colours = {Level.ERROR: "red", Level.WARNING: "yellow", Level.INFO: "cyan"}
        for f in findings:
            console = out if f.level is Level.INFO else err
            console.print(
                f"[{colours[f.level]}]{f.level.value}:[/{colours[f.level]}] {escape(f.text)}",
                highlight=False,
                soft_wrap=True,
            )
        for note in tunnel.notes:
            out.print(escape(note), highlight=False, soft_wrap=True)
        status = 1 if any(f.level is Level.ERROR for f in findings) else 0
        if tunnel.process is not None and wait:
            out.print(
                f"tunnel open; {tunnel.stop_hint} to close it", highlight=False, soft_wrap=True
            )
            code = await tunnel.process.wait()
            err.print(
                f"[red]error:[/red] {tunnel.tool} exited (status {code}); the tunnel is closed",
                soft_wrap=True,
            )
            return 1
        if tunnel.stop_hint and tunnel.process is None:
            out.print(f"to close it: {escape(tunnel.stop_hint)}", highlight=False, soft_wrap=True)
        return status
    finally:
        if tunnel.process is not None:
            await stop_process(tunnel.process)
