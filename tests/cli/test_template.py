"""`voicecall init`: the template documents every section and key of Settings, and loads."""

from __future__ import annotations

import re
import stat
import tomllib
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel
from typer.testing import CliRunner

from voicecall.cli.main import app
from voicecall.cli.template import (
    BLOCKS,
    CONFIG_TEMPLATE,
    Note,
    TemplateError,
    local_values,
    render,
    render_local,
)
from voicecall.config import Settings, load_config
from voicecall.emulator.__main__ import DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN

runner = CliRunner()


def _sections(model: type[BaseModel], prefix: str = "") -> dict[str, list[str]]:
    """Every table of ``model`` (``""``: top level) with its plain keys."""
    tables: dict[str, list[str]] = {prefix: []}
    for name, field in model.model_fields.items():
        kind = field.annotation
        if isinstance(kind, type) and issubclass(kind, BaseModel):
            tables.update(_sections(kind, f"{prefix}.{name}" if prefix else name))
        else:
            tables[prefix].append(name)
    return tables


def _template_tables(text: str) -> dict[str, set[str]]:
    """Tables in the text (``[x]`` headers) with the keys shown in each, commented or not."""
    tables: dict[str, set[str]] = {"": set()}
    current = ""
    for line in text.splitlines():
        header = re.match(r"^\[([A-Za-z0-9_.]+)\]", line)
        if header:
            current = header.group(1)
            tables.setdefault(current, set())
            continue
        key = re.match(r"^(?:#\s?)?([A-Za-z_][A-Za-z0-9_]*)\s*=", line)
        if key:
            tables[current].add(key.group(1))
    return tables


def test_every_settings_section_is_in_the_template() -> None:
    """Fails when a section is added to Settings (or a sub-section to a section) without a
    block in cli/template.py: add one Block with the section's keys, commented."""
    shown = _template_tables(CONFIG_TEMPLATE)
    missing = [f"[{t}]" for t in _sections(Settings) if t and t not in shown]
    assert not missing, f"add these sections to cli/template.py BLOCKS: {missing}"


def test_every_settings_key_is_in_the_template() -> None:
    shown = _template_tables(CONFIG_TEMPLATE)
    missing = [
        f"{table}.{key}" if table else key
        for table, keys in _sections(Settings).items()
        for key in keys
        if key not in shown.get(table, set())
    ]
    assert not missing, f"show these keys (commented is fine) in cli/template.py: {missing}"


def test_the_template_has_no_unknown_tables_or_keys() -> None:
    known = _sections(Settings)
    for table, keys in _template_tables(CONFIG_TEMPLATE).items():
        assert table in known, table
        assert keys <= set(known[table]), (table, keys - set(known[table]))


def test_blocks_are_in_toml_order_and_each_has_its_header() -> None:
    assert BLOCKS[0].table == ""
    for block in BLOCKS[1:]:
        assert f"[{block.table}]" in block.text


def test_plain_template_loads(tmp_path: Path) -> None:
    settings = load_config(_write(tmp_path, CONFIG_TEMPLATE), env={})
    assert settings.from_number == "+14155550100"
    assert settings.streaming.enabled is False
    assert settings.responder.kind == "none"


@pytest.mark.parametrize("speech", [None, ("piper", "whisper"), ("espeak", "whisper")])
def test_local_template_loads_with_the_emulator_settings(
    speech: tuple[str, str] | None, tmp_path: Path
) -> None:
    values = local_values(
        port=4001, emulator_port=4002, project_dir=tmp_path, speech=speech, env={}
    )
    settings = load_config(_write(tmp_path, render_local(values)), env={})
    assert settings.public_url == "http://127.0.0.1:4001"
    assert settings.serve.port == 4001
    assert settings.twilio.api_base_url == "http://127.0.0.1:4002"
    assert settings.twilio.account_sid == DEFAULT_ACCOUNT_SID
    assert settings.twilio.auth_token is not None
    assert settings.twilio.auth_token.get_secret_value() == DEFAULT_AUTH_TOKEN
    assert settings.store.url == f"sqlite:///{tmp_path.resolve() / '.voicecall' / 'voicecall.db'}"
    assert settings.responder.kind == "scripted"
    assert settings.streaming.enabled is (speech is not None)
    if speech is not None:
        assert (settings.tts.provider, settings.stt.provider) == speech


def test_local_keeps_a_responder_the_user_configured(tmp_path: Path) -> None:
    mine = {"kind": "chat", "model": "llama3", "base_url": "http://127.0.0.1:11434/v1"}
    values = local_values(project_dir=tmp_path, responder=mine, env={})
    settings = load_config(_write(tmp_path, render_local(values)), env={})
    assert (settings.responder.kind, settings.responder.model) == ("chat", "llama3")
    # a responder named in the environment is left to the environment
    values = local_values(project_dir=tmp_path, env={"VOICECALL_RESPONDER__KIND": "hook"})
    assert "responder" not in values


def test_render_refuses_keys_the_template_does_not_show() -> None:
    with pytest.raises(TemplateError, match="nonsense"):
        render({"serve": {"nonsense": 1}})
    with pytest.raises(TemplateError, match="nope"):
        render({"nope": {"x": 1}})


def test_render_keeps_or_replaces_the_comment() -> None:
    text = render({"serve": {"port": 4000}, "": {"public_url": Note("http://x:1", "mine")}})
    assert "\nport = 4000\n" in text  # a key without a comment stays bare
    assert re.search(r'^public_url = "http://x:1"\s+# mine$', text, re.M)


def test_init_writes_both_variants_and_refuses_to_overwrite(tmp_path: Path) -> None:
    target = tmp_path / "voicecall.toml"
    result = runner.invoke(app, ["init", str(target)])
    assert result.exit_code == 0, result.output
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert target.read_text() == CONFIG_TEMPLATE
    result = runner.invoke(app, ["init", "--local", str(target)])
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        f"error: {target} exists (use --force to overwrite)"
    ]
    assert target.read_text() == CONFIG_TEMPLATE  # unchanged
    result = runner.invoke(
        app,
        ["init", "--local", "--port", "5001", "--emulator-port", "5002", "--force", str(target)],
    )
    assert result.exit_code == 0, result.output
    settings = load_config(target, env={})
    assert settings.public_url == "http://127.0.0.1:5001"
    assert settings.twilio.api_base_url == "http://127.0.0.1:5002"
    assert settings.store.url.startswith(f"sqlite:///{tmp_path.resolve()}")
    result = runner.invoke(
        app,
        ["init", "--local", "--force", "--port", "5001", "--emulator-port", "5001", str(target)],
    )
    assert result.exit_code == 2 and "different ports" in result.output


def test_init_local_force_keeps_the_configured_responder(tmp_path: Path) -> None:
    target = tmp_path / "voicecall.toml"
    target.write_text('[responder]\nkind = "chat"\nmodel = "my-model"\n')
    result = runner.invoke(app, ["init", "--local", "--force", str(target)])
    assert result.exit_code == 0, result.output
    data: dict[str, Any] = tomllib.loads(target.read_text())
    assert data["responder"]["kind"] == "chat" and data["responder"]["model"] == "my-model"


def _write(directory: Path, text: str) -> Path:
    path = directory / "written.toml"
    path.write_text(text)
    return path


def test_dev_builtin_defaults_are_what_init_local_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from voicecall.cli.dev import builtin_settings

    monkeypatch.chdir(tmp_path)
    assert runner.invoke(app, ["init", "--local"]).exit_code == 0
    written = load_config(tmp_path / "voicecall.toml", env={})
    builtin = builtin_settings(env={})
    assert builtin.model_dump(mode="json") == written.model_dump(mode="json")
    assert builtin.twilio.auth_token is not None and written.twilio.auth_token is not None
    assert builtin.twilio.auth_token.get_secret_value() == DEFAULT_AUTH_TOKEN
