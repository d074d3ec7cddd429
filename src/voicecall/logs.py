"""Structured logging: JSON lines for machines, readable lines for people.

``configure(level, fmt)`` installs one stderr handler on the root logger: ``fmt="json"`` writes
one JSON object per line (``ts``, ``level``, ``logger``, ``msg`` and every ``extra`` field, such
as ``call_id``), ``fmt="human"`` writes ``HH:MM:SS level logger: message`` with the call id and
any ``details`` mapping shown under it, and ``fmt="auto"`` picks human on a terminal, JSON
otherwise.

Secrets never reach a record: settings hold them as ``SecretStr`` (masked in every repr) and
every formatted line, including tracebacks, is passed through :func:`redact`, which masks any
value registered with :func:`register_secret`.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Mapping
from typing import Any, Final, Literal

__all__ = [
    "LOG_FORMATS",
    "JsonFormatter",
    "LogFormat",
    "RedactingFilter",
    "TextFormatter",
    "configure",
    "redact",
    "register_secret",
    "resolve_format",
]

LogFormat = Literal["auto", "human", "json"]
LOG_FORMATS: Final = ("auto", "human", "json")

_SECRETS: set[str] = set()

# Attributes every LogRecord has; anything else on a record came from ``extra=``.
_STANDARD: Final = frozenset(
    vars(logging.LogRecord("x", logging.INFO, "x", 0, "x", None, None))
) | {"message", "asctime", "color_message", "taskName"}


def register_secret(value: str | None) -> None:
    """Mask ``value`` wherever it would appear in a log line."""
    if value and len(value) >= 6:
        _SECRETS.add(value)


def redact(text: str) -> str:
    for secret in _SECRETS:
        if secret in text:
            text = text.replace(secret, "***")
    return text


class RedactingFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if _SECRETS:
            record.msg = redact(record.getMessage())
            record.args = None
        return True


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")}


def _plain(value: Any) -> Any:
    """A JSON-serializable form of an ``extra`` value."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_plain(v) for v in value]
    return str(value)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in _extras(record).items():
            doc.setdefault(key, _plain(value))
        if record.exc_info and record.exc_info[0] is not None:
            doc["error"] = f"{record.exc_info[0].__name__}: {record.exc_info[1]}"
            doc["traceback"] = self.formatException(record.exc_info)
        return redact(json.dumps(doc, ensure_ascii=False))


class TextFormatter(logging.Formatter):
    """``HH:MM:SS level   logger: message``; a ``details`` mapping follows as indented lines."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%H:%M:%S", time.localtime(record.created))
        line = f"{stamp} {record.levelname.lower():7} {record.name}: {record.getMessage()}"
        details = getattr(record, "details", None)
        if isinstance(details, Mapping) and details:
            width = max(len(str(k)) for k in details)
            for key, value in details.items():
                line += f"\n    {key!s:{width}}  {value}"
        if record.exc_info and record.exc_info[0] is not None:
            line += "\n" + self.formatException(record.exc_info)
        return redact(line)


def resolve_format(fmt: str, stream: Any = None) -> Literal["human", "json"]:
    """``auto`` → ``human`` when ``stream`` (default stderr) is a terminal, else ``json``."""
    if fmt == "human":
        return "human"
    if fmt == "json":
        return "json"
    if fmt != "auto":
        raise ValueError(f"log format {fmt!r} is not one of {', '.join(LOG_FORMATS)}")
    stream = sys.stderr if stream is None else stream
    isatty = getattr(stream, "isatty", None)
    return "human" if isatty is not None and isatty() else "json"


def configure(
    level: str = "info", fmt: str = "auto", *, json_lines: bool | None = None
) -> Literal["human", "json"]:
    """Send every log record to stderr in ``fmt``; returns the format chosen.

    ``json_lines`` is the older spelling (``True``: json, ``False``: human).
    """
    if json_lines is not None:
        fmt = "json" if json_lines else "human"
    chosen = resolve_format(fmt)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if chosen == "json" else TextFormatter())
    handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        lg = logging.getLogger(name)
        lg.handlers[:] = []
        lg.propagate = True
    logging.getLogger("uvicorn.access").setLevel("WARNING")
    logging.getLogger("httpx").setLevel("WARNING")
    logging.getLogger("faster_whisper").setLevel("WARNING")  # a line per utterance otherwise
    return chosen
