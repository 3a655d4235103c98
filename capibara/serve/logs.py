"""Log lines as the plan says: JSON with ``structured_logging``, one audit record
per request with ``audit_logging`` (logger ``capibara.audit``), at ``log_level``.

Audit records name the caller by key ID (never the key) and carry the prompt
text only when ``sensitive_data_masking`` is off.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any, TextIO

__all__ = ["JsonFormatter", "configure_logging", "server_logger", "audit_logger"]

#: Record attributes that are not extras (uvicorn adds a terminal-coloured copy of each message).
_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message", "color_message"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, and the record's extras."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
                    + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update({k: v for k, v in record.__dict__.items() if k not in _STANDARD})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=True)


class _TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        extras = {k: v for k, v in record.__dict__.items() if k not in _STANDARD}
        line = super().format(record)
        if extras:
            line += " " + " ".join(f"{k}={json.dumps(v, default=str)}" for k, v in extras.items())
        return line


def server_logger() -> logging.Logger:
    return logging.getLogger("capibara.serve")


def audit_logger() -> logging.Logger:
    return logging.getLogger("capibara.audit")


def configure_logging(*, structured: bool, level: str, stream: TextIO | None = None) -> None:
    """Send the server's and uvicorn's logs to ``stream`` (stderr) in the plan's format."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if structured else
                         _TextFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    for name in ("capibara.serve", "capibara.audit", "uvicorn", "uvicorn.error", "mcp"):
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(level)
        logger.propagate = False
    # uvicorn's access log would repeat every request without the audit's care for
    # secrets; the audit record is the one line per request.
    logging.getLogger("uvicorn.access").disabled = True


def set_level(level: str) -> None:
    """Apply a new ``log_level`` (a runtime update)."""
    for name in ("capibara.serve", "capibara.audit", "uvicorn", "uvicorn.error", "mcp"):
        logging.getLogger(name).setLevel(level)
