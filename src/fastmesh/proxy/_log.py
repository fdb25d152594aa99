"""Envoy-style log lines on stderr: `[2026-11-24 21:30:51.123][4242][info][config] text`."""

from __future__ import annotations

import logging
import os
import sys
import time
from typing import TextIO

__all__ = ["LEVELS", "configure_logging"]

#: Envoy's `-l` levels mapped to stdlib levels (`off` silences everything).
LEVELS: dict[str, int] = {
    "trace": 5,
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "warn": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
    "off": logging.CRITICAL + 10,
}

_NAMES = {5: "trace", logging.DEBUG: "debug", logging.INFO: "info", logging.WARNING: "warning"}
_NAMES |= {logging.ERROR: "error", logging.CRITICAL: "critical"}


class EnvoyFormatter(logging.Formatter):
    """Formats like Envoy's default `[%Y-%m-%d %T.%e][%t][%l][%n] %v` (no source location).

    The component (`%n`) is the last part of the logger name: `fastmesh.proxy.admin` -> `admin`.
    """

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(record.created))
        millis = int(record.msecs)
        level = _NAMES.get(record.levelno, record.levelname.lower())
        component = record.name.rsplit(".", 1)[-1]
        line = f"[{stamp}.{millis:03d}][{os.getpid()}][{level}][{component}] {record.getMessage()}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def configure_logging(level: str = "info", path: str | None = None) -> None:
    """Send every `fastmesh.*` logger to stderr (or `path`) in Envoy's format at `level`."""
    logging.addLevelName(5, "TRACE")
    stream: TextIO = sys.stderr if path is None else open(path, "a", buffering=1)  # noqa: SIM115
    handler = logging.StreamHandler(stream)
    handler.setFormatter(EnvoyFormatter())
    root = logging.getLogger("fastmesh")
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(LEVELS[level])
    root.propagate = False
