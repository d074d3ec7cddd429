"""``voicecall expose`` with FAKE ``tailscale`` / ``ngrok`` binaries on PATH (small Python
scripts printing what the real tools print); never the network."""

from __future__ import annotations

import io
import json
import stat
import sys
import textwrap
from pathlib import Path

import pytest
import typer
from rich.console import Console
from typer.testing import CliRunner
from voicecall_server import RunningServer

from voicecall.agent.expose import (
    ExposeError,
    Level,
    check_public_url,
    expose_and_check,
    parse_funnel_output,
    parse_ngrok_line,
    parse_tailscale_status,
    start_ngrok,
    start_tunnel,
)
from voicecall.cli.agent_commands import register
from voicecall.config import Settings, load_config

TS_HOST = "voicebox.tail1234.ts.net"
NGROK_URL = "https://1a2b-203-0-113-5.ngrok-free.app"

STATUS_RUNNING = {
    "Version": "1.76.1-t4e0b56c5b-g5e6e5bd1a",
    "TUN": True,
    "BackendState": "Running",
    "AuthURL": "",
    "TailscaleIPs": ["100.101.102.103", "fd7a:115c:a1e0::1"],
    "Self": {
        "ID": "nXYZ123CNTRL",
        "HostName": "voicebox",
        "DNSName": f"{TS_HOST}.",
        "OS": "linux",
        "Online": True,
    },
    "MagicDNSSuffix": "tail1234.ts.net",
    "CurrentTailnet": {
        "Name": "user@example.com",
        "MagicDNSSuffix": "tail1234.ts.net",
        "MagicDNSEnabled": True,
    },
}

FUNNEL_OK = f"""Available on the internet:

https://{TS_HOST}/
|-- proxy http://127.0.0.1:{{port}}

Funnel started and running in the background.
To disable the proxy, run: tailscale funnel --https=443 off
"""

FUNNEL_DISABLED = """Funnel is not enabled on your tailnet.
To enable, visit:

         https://login.tailscale.com/f/funnel?node=nXYZ123CNTRL
"""

NGROK_OK = [
    {"lvl": "info", "msg": "no configuration paths supplied", "t": "2026-01-01T10:00:00Z"},
    {
        "lvl": "info",
        "msg": "using configuration at default config path",
        "path": "/home/u/.config/ngrok/ngrok.yml",
        "t": "2026-01-01T10:00:00Z",
    },
    {
        "lvl": "info",
        "msg": "open config file",
        "path": "/home/u/.config/ngrok/ngrok.yml",
        "err": None,
    },
    {"lvl": "info", "msg": "client session established", "obj": "tunnels.session"},
    {
        "addr": "http://localhost:{port}",
        "lvl": "info",
        "msg": "started tunnel",
        "name": "command_line",
        "obj": "tunnels",
        "t": "2026-01-01T10:00:01Z",
        "url": NGROK_URL,
    },
]

NGROK_AUTH_FAIL = [
    {
        "lvl": "info",
        "msg": "open config file",
        "path": "/home/u/.config/ngrok/ngrok.yml",
        "err": None,
    },
    {
        "lvl": "eror",
        "msg": "failed to reconnect session",
        "obj": "tunnels.session",
        "err": "authentication failed: Usage of ngrok requires a verified account and authtoken."
        "\n\nERR_NGROK_4018\r\n",
    },
    {"lvl": "crit", "msg": "command failed", "err": "authentication failed ERR_NGROK_4018"},
]


def _script(bin_dir: Path, name: str, body: str) -> Path:
    path = bin_dir / name
    path.write_text(f"#!{sys.executable}\n" + textwrap.dedent(body))
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def fake_tailscale(
    bin_dir: Path,
    *,
    status: object,
    status_code: int = 0,
    funnel: str = FUNNEL_OK,
    funnel_code: int = 0,
    stderr: str = "",
) -> Path:
    return _script(
        bin_dir,
        "tailscale",
        f"""
        import json, sys
        with open({str(bin_dir / "tailscale.log")!r}, "a") as log:
            log.write(json.dumps(sys.argv[1:]) + "\\n")
        args = sys.argv[1:]
        if args[:2] == ["status", "--json"]:
            if {stderr!r}:
                sys.stderr.write({stderr!r})
            if {status!r} is not None:
                print(json.dumps({status!r}, indent=2))
            sys.exit({status_code})
        if args[:2] == ["funnel", "--bg"]:
            print({funnel!r}.replace("{{port}}", args[2]), end="")
            sys.exit({funnel_code})
        sys.stderr.write("unknown command\\n")
        sys.exit(2)
        """,
    )


def fake_ngrok(bin_dir: Path, lines: list[dict[str, object]], *, then: str = "wait") -> Path:
    return _script(
        bin_dir,
        "ngrok",
        f"""
        import json, sys, time
        with open({str(bin_dir / "ngrok.log")!r}, "a") as log:
            log.write(json.dumps(sys.argv[1:]) + "\\n")
        port = sys.argv[2]
        for doc in {lines!r}:
            line = json.dumps(doc).replace("{{port}}", port)
            print(line, flush=True)
        if {then!r} == "wait":
            time.sleep(600)
        sys.exit(1 if {then!r} == "fail" else 0)
        """,
    )


@pytest.fixture
def bin_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "bin"
    path.mkdir()
    monkeypatch.setenv("PATH", str(path))
    return path


def settings(**over: object) -> Settings:
    return load_config(env={}, overrides={"serve": {"port": 3334}, **over})


def calls(bin_dir: Path, tool: str) -> list[list[str]]:
    log = bin_dir / f"{tool}.log"
    return [json.loads(x) for x in log.read_text().splitlines()] if log.exists() else []


def consoles() -> tuple[Console, Console, io.StringIO]:
    buf = io.StringIO()
    return Console(file=buf, width=300), Console(file=buf, width=300), buf


# ----------------------------------------------------------------------------- parsers


def test_parsers() -> None:
    st = parse_tailscale_status(json.dumps(STATUS_RUNNING))
    assert st.backend_state == "Running" and st.dns_name == TS_HOST
    logged_out = parse_tailscale_status(
        json.dumps({"BackendState": "NeedsLogin", "Self": {"DNSName": ""}})
    )
    assert logged_out.backend_state == "NeedsLogin" and logged_out.dns_name is None
    with pytest.raises(ExposeError):
        parse_tailscale_status("failed to connect")
    assert parse_funnel_output(FUNNEL_OK.replace("{port}", "3334")) == f"https://{TS_HOST}"
    assert parse_funnel_output(FUNNEL_DISABLED) is None
    assert parse_funnel_output(f"https://{TS_HOST}:8443/\n|-- proxy") == f"https://{TS_HOST}:8443"
    assert parse_ngrok_line(json.dumps(NGROK_OK[-1])).url == NGROK_URL
    assert parse_ngrok_line(json.dumps(NGROK_OK[2])).error is None  # "err": null on info lines
    assert "ERR_NGROK_4018" in (parse_ngrok_line(json.dumps(NGROK_AUTH_FAIL[1])).error or "")
    assert parse_ngrok_line("not json at all") == parse_ngrok_line("[1, 2]")


# ----------------------------------------------------------------------------- checks


def levels(url: str, s: Settings, port: int | None = None) -> dict[Level, list[str]]:
    out: dict[Level, list[str]] = {lv: [] for lv in Level}
    for f in check_public_url(url, s, port=port):
        out[f.level].append(f.text)
    return out


def test_matching_https_root_url_has_no_errors() -> None:
    found = levels(f"https://{TS_HOST}", settings(public_url=f"https://{TS_HOST}"), 3334)
    assert found[Level.ERROR] == [] and found[Level.WARNING] == []
    assert any(f"https://{TS_HOST}/voice/webhook" in t for t in found[Level.INFO])


def test_missing_or_different_public_url_is_an_error() -> None:
    missing = levels(f"https://{TS_HOST}", settings())
    assert any(f'public_url = "https://{TS_HOST}"' in t for t in missing[Level.ERROR])
    assert any("trusted_proxies" in t for t in missing[Level.ERROR])
    stale = levels(NGROK_URL, settings(public_url="https://old-1-2-3-4.ngrok-free.app"))
    assert any("host old-1-2-3-4.ngrok-free.app" in t for t in stale[Level.ERROR])
    scheme = levels(f"https://{TS_HOST}", settings(public_url=f"http://{TS_HOST}"))
    assert any("scheme http ≠ https" in t for t in scheme[Level.ERROR])
    assert any("changes whenever ngrok restarts" in t for t in stale[Level.INFO])


def test_http_port_path_bind_and_port_mismatch() -> None:
    plain = levels("http://example.test", settings(public_url="http://example.test"))
    assert any("not https" in t for t in plain[Level.ERROR])
    ported = f"https://{TS_HOST}:8443"
    with_port = levels(ported, settings(public_url=ported))
    assert any("without the port" in t and "443" in t for t in with_port[Level.WARNING])
    pathed = levels(f"https://{TS_HOST}/voicecall", settings(public_url=f"https://{TS_HOST}"))
    assert any("has a path (/voicecall)" in t for t in pathed[Level.ERROR])
    lan = levels(
        f"https://{TS_HOST}",
        settings(public_url=f"https://{TS_HOST}", serve={"bind": "192.168.1.5", "port": 3334}),
    )
    assert any("serve.bind is 192.168.1.5" in t for t in lan[Level.ERROR])
    other = levels(f"https://{TS_HOST}", settings(public_url=f"https://{TS_HOST}"), port=9999)
    assert any("serve.port is 3334" in t for t in other[Level.WARNING])


# ----------------------------------------------------------------------------- tailscale


def cli() -> typer.Typer:
    app = typer.Typer()
    register(app)
    return app


def test_tailscale_funnel_through_the_cli(bin_dir: Path, tmp_path: Path) -> None:
    fake_tailscale(bin_dir, status=STATUS_RUNNING)
    config = tmp_path / "voicecall.toml"
    config.write_text(f'public_url = "https://{TS_HOST}"\n[serve]\nport = 3999\n')
    result = CliRunner().invoke(cli(), ["expose", "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert f'public_url = "https://{TS_HOST}"' in result.output
    assert "nothing answers on http://127.0.0.1:3999/healthz" in result.output  # a warning only
    assert "tailscale funnel --https=443 off" in result.output
    assert calls(bin_dir, "tailscale") == [["status", "--json"], ["funnel", "--bg", "3999"]]


def test_tailscale_without_public_url_exits_non_zero(
    bin_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_tailscale(bin_dir, status=STATUS_RUNNING)
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli(), ["expose", "--tool", "tailscale-funnel", "--port", "4000"])
    assert result.exit_code == 1
    assert "public_url is not set" in result.output
    assert calls(bin_dir, "tailscale")[-1] == ["funnel", "--bg", "4000"]


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        (
            {"status": {"BackendState": "NeedsLogin", "Self": {"DNSName": ""}}},
            "not connected (state NeedsLogin): run `tailscale up`",
        ),
        (
            {
                "status": None,
                "status_code": 1,
                "stderr": "failed to connect to local tailscaled; "
                "it doesn't appear to be running\n",
            },
            "tailscale is not running (failed to connect to local tailscaled",
        ),
        (
            {"status": STATUS_RUNNING, "funnel": FUNNEL_DISABLED, "funnel_code": 1},
            "Funnel is not enabled on your tailnet",
        ),
    ],
)
async def test_tailscale_failures_say_what_to_do(
    bin_dir: Path, kwargs: dict[str, object], needle: str
) -> None:
    fake_tailscale(bin_dir, **kwargs)  # type: ignore[arg-type]
    with pytest.raises(ExposeError) as info:
        await start_tunnel("tailscale", 3334)
    assert needle in str(info.value)


# ----------------------------------------------------------------------------- ngrok


async def test_ngrok_url_from_its_json_log_and_process_stopped(bin_dir: Path) -> None:
    fake_ngrok(bin_dir, NGROK_OK)
    out, err, buf = consoles()
    code = await expose_and_check(
        settings(public_url=NGROK_URL), tool="ngrok", port=None, out=out, err=err, wait=False
    )
    text = buf.getvalue()
    assert code == 0, text
    assert f'public_url = "{NGROK_URL}"' in text
    assert calls(bin_dir, "ngrok") == [["http", "3334", "--log", "stdout", "--log-format", "json"]]


async def test_ngrok_tunnel_process_lives_until_stopped(bin_dir: Path) -> None:
    fake_ngrok(bin_dir, NGROK_OK)
    tunnel = await start_ngrok(3334, binary=str(bin_dir / "ngrok"))
    assert tunnel.url == NGROK_URL and tunnel.process is not None
    assert tunnel.process.returncode is None  # still running: it holds the tunnel
    from voicecall.agent.expose import stop_process

    await stop_process(tunnel.process)
    assert tunnel.process.returncode is not None


async def test_ngrok_auth_failure_is_explained(bin_dir: Path) -> None:
    fake_ngrok(bin_dir, NGROK_AUTH_FAIL, then="fail")
    with pytest.raises(ExposeError) as info:
        await start_tunnel("ngrok", 3334)
    assert "ERR_NGROK_4018" in str(info.value) and "add-authtoken" in str(info.value)


def test_ngrok_exiting_closes_the_tunnel_and_fails(bin_dir: Path, tmp_path: Path) -> None:
    fake_ngrok(bin_dir, NGROK_OK, then="exit")
    config = tmp_path / "voicecall.toml"
    config.write_text(f'public_url = "{NGROK_URL}"\n')
    result = CliRunner().invoke(cli(), ["expose", "--tool", "ngrok", "-c", str(config)])
    assert result.exit_code == 1
    assert "tunnel open" in result.output and "ngrok exited" in result.output


async def test_auto_prefers_tailscale_then_ngrok(bin_dir: Path) -> None:
    with pytest.raises(ExposeError, match="neither tailscale nor ngrok"):
        await start_tunnel("auto", 3334)
    fake_ngrok(bin_dir, NGROK_OK)
    tunnel = await start_tunnel("auto", 3334)
    assert tunnel.tool == "ngrok"
    assert tunnel.process is not None
    tunnel.process.terminate()
    await tunnel.process.wait()
    fake_tailscale(bin_dir, status=STATUS_RUNNING)
    assert (await start_tunnel("auto", 3334)).tool == "tailscale"
    with pytest.raises(ExposeError, match="not on PATH"):
        (bin_dir / "ngrok").unlink()
        await start_tunnel("ngrok", 3334)


async def test_running_server_is_detected(bin_dir: Path, server: RunningServer) -> None:
    port = int(server.url.rsplit(":", 1)[1])
    fake_tailscale(bin_dir, status=STATUS_RUNNING)
    out, err, buf = consoles()
    s = settings(public_url=f"https://{TS_HOST}", serve={"port": port})
    assert await expose_and_check(s, tool="auto", port=None, out=out, err=err, wait=False) == 0
    assert "nothing answers" not in buf.getvalue()
