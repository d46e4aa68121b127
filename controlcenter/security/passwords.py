"""The password policy: the one place that decides whether a new password may be set.

A password must have at least 12 characters, must not contain the user's name, and must not be
guessable: zxcvbn (Dropbox's estimator, with its lists of common passwords, words, keyboard
patterns, sequences and repeats) must rate it at least 3 of 4, "safely unguessable" against an
online attack. NIST SP 800-63B 5.1.1.2 asks verifiers to refuse passwords from lists of
commonly used or compromised values and context-specific words such as the user name.
"""

from __future__ import annotations

from zxcvbn import zxcvbn

MIN_PASSWORD_LENGTH = 12
"""Shortest password accepted: a control room's accounts can write to the field."""

MAX_PASSWORD_LENGTH = 1024
"""Longest password accepted; bounds the work an anonymous login attempt can cause."""

MIN_STRENGTH = 3
"""Lowest zxcvbn score accepted (0 to 4; 3: about 10^8 guesses or more)."""

_ESTIMATED_PREFIX = 72
"""zxcvbn rates at most this many characters; a longer password is at least as strong."""

_CONTEXT_WORDS = ("controlcenter", "control", "center", "scada", "hmi", "operator", "admin")
"""Words of this product that an attacker tries first."""

_MIN_NAME_IN_PASSWORD = 3
"""User names shorter than this are not looked for inside the password (too many false hits)."""


class WeakPasswordError(ValueError):
    """A new password breaks the password policy; the message says why."""


def check_new_password(password: str, *, user_name: str) -> None:
    """Raise WeakPasswordError unless ``password`` may be set for ``user_name``."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise WeakPasswordError(f"password must have at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise WeakPasswordError(f"password must have at most {MAX_PASSWORD_LENGTH} characters")
    if len(user_name) >= _MIN_NAME_IN_PASSWORD and user_name.lower() in password.lower():
        raise WeakPasswordError("password must not contain the user name")
    rating = zxcvbn(
        password[:_ESTIMATED_PREFIX],
        user_inputs=[user_name, *_CONTEXT_WORDS],
        max_length=_ESTIMATED_PREFIX,
    )
    if int(rating["score"]) < MIN_STRENGTH:
        feedback = rating.get("feedback", {})
        reason = str(feedback.get("warning") or "").rstrip(".")
        hint = " ".join(str(s) for s in feedback.get("suggestions", []))
        detail = f": {reason}" if reason else ""
        raise WeakPasswordError(
            f"password is too easy to guess{detail}. {hint}".strip()
            or "password is too easy to guess"
        )
