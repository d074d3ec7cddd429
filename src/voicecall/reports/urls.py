"""Which report URLs may be used: http(s) only, and never (unless allowed) an address inside the
server's own networks — the SSRF guard.

The check runs on the *resolved* addresses, both when a call asks for a ``report_url`` and again
before every delivery attempt, and the delivery connects to the address that was checked (the
host name still goes in ``Host`` and TLS SNI, so certificates are verified against it). A name
that resolves to a public address at request time and to 127.0.0.1 at delivery time (DNS
rebinding) is therefore refused at delivery time too.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from voicecall.errors import InvalidRequest

MAX_URL_CHARS = 2000

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
#: host, port -> the addresses it resolves to (tests give their own)
Resolver = Callable[[str, int], Awaitable[list[str]]]


class UrlRefused(InvalidRequest):
    """A report URL that may not be used (its field and the reason are in the message)."""


@dataclass(frozen=True, slots=True)
class Target:
    """Where one delivery attempt connects: ``url`` with the checked address as its host."""

    url: str
    host_header: str
    sni_hostname: str | None
    address: str


def check_syntax(url: str, *, field: str = "report_url") -> str:
    """``url`` if it is an absolute http(s) URL without credentials; :class:`UrlRefused` else."""
    if not isinstance(url, str) or not url.strip():
        raise UrlRefused(f"{field}: must be an http(s) URL")
    url = url.strip()
    if len(url) > MAX_URL_CHARS:
        raise UrlRefused(f"{field}: longer than {MAX_URL_CHARS} characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise UrlRefused(f"{field}: not a valid URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UrlRefused(f"{field}: must be an http(s) URL such as https://hooks.example.com/x")
    if parts.username is not None or parts.password is not None:
        raise UrlRefused(f"{field}: must not carry credentials (user:password@)")
    if port == 0:
        raise UrlRefused(f"{field}: port 0 is not a valid port")
    if any(ch.isspace() or ord(ch) < 0x20 for ch in url):
        raise UrlRefused(f"{field}: must not contain spaces or control characters")
    return url


def refusal(address: str) -> str | None:
    """Why an address may not receive reports (``None``: it is a public address)."""
    try:
        ip: IPAddress = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return f"{address!r} is not an IP address"
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_unspecified or ip.is_multicast:
        return f"{ip} is not a unicast public address"
    if ip.is_loopback:
        return f"{ip} is a loopback address"
    if ip.is_link_local:
        return f"{ip} is a link-local address"
    if ip.is_private:
        return f"{ip} is a private address"
    if ip.is_reserved:
        return f"{ip} is not a unicast public address"
    if not ip.is_global:
        return f"{ip} is not a public address"
    return None


async def system_resolver(host: str, port: int) -> list[str]:
    """The addresses ``host`` resolves to (the system resolver, off the event loop)."""
    infos = await asyncio.get_running_loop().getaddrinfo(
        host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
    )
    seen: list[str] = []
    for info in infos:
        addr = str(info[4][0])
        if addr not in seen:
            seen.append(addr)
    return seen


async def resolve(
    url: str,
    *,
    allow_private: bool,
    field: str = "report_url",
    resolver: Resolver = system_resolver,
) -> Target:
    """Check ``url`` and resolve it to the address a delivery connects to.

    Every address the host resolves to must be public (unless ``allow_private``): one private
    answer among public ones is refused too. Raises :class:`UrlRefused`.
    """
    url = check_syntax(url, field=field)
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        literal: IPAddress | None = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    if literal is not None:
        addresses = [str(literal)]
    else:
        try:
            addresses = await resolver(host, port)
        except (OSError, UnicodeError) as exc:
            raise UrlRefused(f"{field}: {host} does not resolve ({type(exc).__name__})") from None
        if not addresses:
            raise UrlRefused(f"{field}: {host} does not resolve")
    if not allow_private:
        for address in addresses:
            why = refusal(address)
            if why is not None:
                raise UrlRefused(
                    f"{field}: {host} resolves to {why}; reports go to public addresses only "
                    "(set reports.allow_private_urls to allow it)"
                )
    address = addresses[0]
    shown = f"[{address}]" if ":" in address else address
    netloc = f"{shown}:{parts.port}" if parts.port else shown
    pinned = urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, ""))
    host_header = parts.netloc.rsplit("@", 1)[-1]
    return Target(
        url=pinned,
        host_header=host_header,
        sni_hostname=host if parts.scheme == "https" and literal is None else None,
        address=address,
    )
