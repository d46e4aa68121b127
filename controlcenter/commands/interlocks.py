"""Stage 3 of the command pipeline: does an interlock block this command now?

Interlocks are defined in the site file and evaluated on the latest values by an
``InterlockChecker``; the pipeline only asks, and names the blocking interlock in the refusal
and the journal. A checker that fails is treated as blocking: a command is not let through
because its safety check could not be made.
"""

from __future__ import annotations

import logging

from controlcenter.model import Value
from controlcenter.ports import InterlockChecker

log = logging.getLogger(__name__)


def blocking_interlock(checker: InterlockChecker | None, tag: str, value: Value) -> str | None:
    """The interlock blocking ``tag := value`` (name and message), or None.

    Without a checker nothing blocks; a checker that raises blocks, with its error as reason.
    """
    if checker is None:
        return None
    try:
        return checker.blocking(tag, value)
    except Exception as err:  # any failure of the check must block the command
        log.warning("interlock check of %s := %r failed: %s", tag, value, err, exc_info=err)
        return f"check failure ({type(err).__name__}: {err})"


def interlock_refusal(finding: str) -> str:
    """The rejection reason for a command blocked by the interlock ``finding``."""
    return f"blocked by interlock {finding}"
