"""Audit records: who did what to the system itself (logins, configuration and rule changes)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class AuditAction(StrEnum):
    """What an audit record is about."""

    LOGIN = "login"
    LOGIN_FAILED = "login_failed"
    LOGOUT = "logout"
    CONFIG_CHANGE = "config_change"
    RULE_CHANGE = "rule_change"
    USER_CHANGE = "user_change"


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """One audited action: when, what, by whom, on what, and whether it succeeded."""

    time: datetime
    action: AuditAction
    user: str
    target: str = ""
    detail: str = ""
    succeeded: bool = True
