"""Logins as the HMI (or any other front end) sees them: throttled, with server-side sessions.

A login is checked against the throttle first: while the user name or the client address is
locked out, it is refused without verifying the password, so even the right password does not
get in and the Argon2 work is not spent. A refused login counts towards the lockouts; a good
one clears the user's count and opens a session.
"""

from __future__ import annotations

import logging

from controlcenter.model import LoginGrant, User
from controlcenter.ports import (
    AuthenticationError,
    LoginRefusedError,
    LoginThrottledError,
)
from controlcenter.security.sessions import SessionStore
from controlcenter.security.throttle import Lockout, LoginThrottle, ThrottleSubject
from controlcenter.security.users import UserStore

_log = logging.getLogger(__name__)

_MAX_KEY_LENGTH = 64
"""User names and addresses are cut to this length before they are counted."""


class LoginService:
    """Implements ``ports.LoginSessions`` over the user store, the throttle and the sessions."""

    def __init__(self, users: UserStore, sessions: SessionStore, throttle: LoginThrottle) -> None:
        self._users = users
        self._sessions = sessions
        self._throttle = throttle

    def log_in(self, name: str, password: str, address: str) -> LoginGrant:
        """Open a session for valid credentials; raise LoginThrottledError or LoginRefusedError."""
        user_key, address_key = name[:_MAX_KEY_LENGTH], address[:_MAX_KEY_LENGTH]
        lockout = self._throttle.lockout(user_key, address_key)
        if lockout is not None:
            wait = max(1, round(lockout.retry_after_s))
            raise LoginThrottledError(
                f"too many refused logins: try again in {wait} s", lockout.retry_after_s
            )
        try:
            user = self._users.authenticate(name, password)
        except AuthenticationError as err:
            started = self._throttle.record_failure(user_key, address_key)
            for one in started:
                _log.warning("login %s", describe(one))
            raise LoginRefusedError(str(err), [describe(one) for one in started]) from err
        self._throttle.record_success(user_key)
        return LoginGrant(user, self._sessions.open(user, address_key))

    def resolve(self, token: str, *, activity: bool) -> User | None:
        """The user of a live session, or None."""
        return self._sessions.resolve(token, activity=activity)

    def log_out(self, token: str) -> User | None:
        """Revoke a session on the server; return its user, or None if it was not live."""
        return self._sessions.revoke(token)


def describe(lockout: Lockout) -> str:
    """One line for the journal, e.g. ``locked for user 'olga' for 30 s after 5 refusals``."""
    if lockout.subject is ThrottleSubject.USER:
        what = f"user {lockout.key!r}"
    else:
        what = f"address {lockout.key}"
    return (
        f"locked for {what} for {round(lockout.retry_after_s)} s "
        f"after {lockout.failures} refused logins"
    )
