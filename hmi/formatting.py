"""How values, qualities, times and tag names are shown in the HMI."""

from __future__ import annotations

from datetime import UTC, datetime

from controlcenter.model import Quality, Severity, Value

NO_VALUE = "—"
"""Shown where a tag has no value (for instance a Bad sample that never delivered one)."""


def element_id(tag: str) -> str:
    """The DOM id fragment of a tag: dots become '-' (Dash reserves '.' in ids for properties)."""
    return tag.replace(".", "-")


def format_value(value: Value | None) -> str:
    """Format a value for display: floats with 2 decimals, booleans as ON/OFF, dates and times
    in UTC to the second (as every time in the HMI)."""
    # bool before int/float: bool is a subclass of int in Python.
    if value is None:
        return NO_VALUE
    if isinstance(value, bool):
        return "ON" if value else "OFF"
    if isinstance(value, float):
        return f"{value:.2f}"
    if isinstance(value, datetime):
        return format_time(value)
    return str(value)


def quality_class(quality: Quality) -> str:
    """CSS class of a quality severity: quality-good, quality-uncertain or quality-bad."""
    return {
        Severity.GOOD: "quality-good",
        Severity.UNCERTAIN: "quality-uncertain",
        Severity.BAD: "quality-bad",
    }[quality.severity]


def quality_text(quality: Quality) -> str:
    """The quality label with its reason, e.g. ``bad:comm_failure (no answer from RTU 3)``."""
    if quality.reason:
        return f"{quality.label()} ({quality.reason})"
    return quality.label()


def format_time(moment: datetime) -> str:
    """Format a timestamp in UTC to the second, e.g. ``2030-01-01 12:00:03Z``."""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
