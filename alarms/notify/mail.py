"""E-mail notifications over SMTP (aiosmtplib), plain text, one message per on-call group."""

from __future__ import annotations

import os
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from zoneinfo import ZoneInfo

import aiosmtplib

from alarms.notify.messages import Notification, header_text, plain_text, subject
from controlcenter.automation import EmailSettings
from controlcenter.ports import Clock

MAX_BACKOFF_S = 300.0


class EmailDeliveryError(Exception):
    """A message could not be handed to the relay; ``reason`` says why, for the journal."""

    def __init__(self, reason: str, attempts: int) -> None:
        super().__init__(reason)
        self.reason = reason
        self.attempts = attempts


def _transient(err: Exception) -> bool:
    if isinstance(err, aiosmtplib.SMTPRecipientsRefused):
        return all(400 <= refusal.code < 500 for refusal in err.recipients)
    if isinstance(err, aiosmtplib.SMTPResponseException):
        return 400 <= err.code < 500
    # Connection refused, timeouts, a relay hanging up: worth another try.
    return isinstance(
        err,
        aiosmtplib.SMTPServerDisconnected
        | aiosmtplib.SMTPTimeoutError
        | aiosmtplib.SMTPConnectError
        | OSError,
    )


class EmailSender:
    """Sends notifications as plain-text mail through the configured relay."""

    def __init__(self, settings: EmailSettings, clock: Clock, zone: ZoneInfo) -> None:
        self._settings = settings
        self._clock = clock
        self._zone = zone

    def compose(self, notification: Notification, recipients: tuple[str, ...]) -> EmailMessage:
        """The message for ``recipients``; every header value is stripped of line breaks."""
        message = EmailMessage()
        message["From"] = header_text(self._settings.sender)
        message["To"] = ", ".join(header_text(address) for address in recipients)
        message["Subject"] = subject(notification)
        message["Date"] = format_datetime(notification.created)
        domain = self._settings.sender.rpartition("@")[2] or "localhost"
        message["Message-ID"] = make_msgid(idstring=notification.event_id, domain=domain)
        message["X-Alarm-Event-Id"] = notification.event_id
        message.set_content(plain_text(notification, self._zone), charset="utf-8")
        return message

    def _password(self) -> str | None:
        if not self._settings.username:
            return None
        name = self._settings.password_env
        password = os.environ.get(name) if name else None
        if password is None:
            raise EmailDeliveryError(
                f"SMTP user {self._settings.username!r} needs a password in the environment "
                f"variable {name or '(none configured)'}, which is not set",
                0,
            )
        return password

    async def send(self, notification: Notification, recipients: tuple[str, ...]) -> int:
        """Deliver to ``recipients``; returns the number of tries, raises EmailDeliveryError."""
        settings = self._settings
        password = self._password()
        message = self.compose(notification, recipients)
        attempts = max(1, settings.attempts)
        for attempt in range(1, attempts + 1):
            try:
                await aiosmtplib.send(
                    message,
                    sender=settings.sender,
                    recipients=list(recipients),
                    hostname=settings.host,
                    port=settings.port,
                    username=settings.username or None,
                    password=password,
                    start_tls=settings.starttls,
                    timeout=settings.timeout_s,
                )
                return attempt
            except (aiosmtplib.SMTPException, OSError) as err:
                reason = f"{type(err).__name__}: {err}"
                if not _transient(err) or attempt == attempts:
                    raise EmailDeliveryError(reason, attempt) from err
            await self._clock.sleep(min(MAX_BACKOFF_S, settings.backoff_s * 2 ** (attempt - 1)))
        raise AssertionError("unreachable: the loop returns or raises")  # pragma: no cover
