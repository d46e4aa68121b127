"""--log-format json: one JSON object per line with time, level, logger and message."""

from __future__ import annotations

import json
import logging
import subprocess
import sys

from controlcenter.runtime.logformat import JsonLogFormatter, log_formatter


def test_a_record_is_one_line_of_json_with_its_exception() -> None:
    try:
        raise ValueError("bad\nvalue")
    except ValueError:
        record = logging.LogRecord(
            "controlcenter.x", logging.ERROR, __file__, 1, "device %s: %s", ("rtu1", "é"), None
        )
        record.exc_info = sys.exc_info()
    line = JsonLogFormatter().format(record)
    assert "\n" not in line and line.isascii()
    parsed = json.loads(line)
    assert parsed["level"] == "ERROR" and parsed["logger"] == "controlcenter.x"
    assert parsed["message"] == "device rtu1: é"
    assert parsed["time"].endswith("Z") and "T" in parsed["time"]
    assert "ValueError: bad" in parsed["exception"]


def test_the_text_format_stays_the_default_one() -> None:
    formatter = log_formatter("text")
    assert not isinstance(formatter, JsonLogFormatter)
    record = logging.LogRecord("controlcenter", logging.INFO, __file__, 1, "hello", (), None)
    assert formatter.format(record).endswith("INFO    controlcenter: hello")


def test_the_command_line_logs_json_lines() -> None:
    code = (
        "import logging; from controlcenter.runtime.runner import configure_logging; "
        "configure_logging(False, 'json'); logging.getLogger('controlcenter').info('up %d', 1)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    (line,) = done.stderr.splitlines()
    assert json.loads(line)["message"] == "up 1"
