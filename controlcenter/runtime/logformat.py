"""Structured logs: one JSON object per line (``--log-format json``), for log collectors.

Each line holds the time (UTC, ISO 8601 with milliseconds), the level, the logger's name and the
message with its arguments merged; an exception's traceback travels in ``exception`` so that a
line never breaks in two.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Literal

LogFormat = Literal["text", "json"]
TEXT_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
"""The default format operators read on a terminal."""


class JsonLogFormatter(logging.Formatter):
    """Formats a record as one line of JSON: time, level, logger, message (+ exception)."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as a JSON object on one line."""
        moment = datetime.fromtimestamp(record.created, UTC)
        line: dict[str, object] = {
            "time": moment.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        # ensure_ascii keeps every line plain ASCII whatever a device's error text holds.
        return json.dumps(line, ensure_ascii=True, default=str)


def log_formatter(log_format: LogFormat) -> logging.Formatter:
    """The formatter of ``log_format``."""
    if log_format == "json":
        return JsonLogFormatter()
    return logging.Formatter(TEXT_FORMAT)
