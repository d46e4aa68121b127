"""Webhook notifications: a signed JSON POST per receiver, retried with exponential backoff."""

from __future__ import annotations

import hashlib
import hmac
import os

import httpx

from alarms.notify.messages import Notification, json_body
from controlcenter.automation import WebhookSettings
from controlcenter.ports import Clock

SIGNATURE_HEADER = "X-Signature-SHA256"
"""Hex HMAC-SHA256 of the exact body bytes under the shared secret."""
EVENT_ID_HEADER = "X-Alarm-Event-Id"
MAX_BACKOFF_S = 300.0


class WebhookDeliveryError(Exception):
    """A receiver did not take the notification; ``reason`` says why, for the journal."""

    def __init__(self, reason: str, attempts: int, status: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.attempts = attempts
        self.status = status


def sign(secret: bytes, body: bytes) -> str:
    """The signature header's value for ``body``."""
    return hmac.new(secret, body, hashlib.sha256).hexdigest()


def verify(secret: bytes, body: bytes, signature: str) -> bool:
    """Whether ``signature`` is the signature of ``body`` (constant-time comparison)."""
    return hmac.compare_digest(sign(secret, body), signature.strip().lower())


class WebhookSender:
    """Posts notifications to webhook receivers with one shared HTTP client."""

    def __init__(
        self, settings: WebhookSettings, clock: Clock, client: httpx.AsyncClient | None = None
    ) -> None:
        self._settings = settings
        self._clock = clock
        self._client = client
        self._owns_client = client is None

    def _secret(self) -> bytes:
        name = self._settings.secret_env
        secret = os.environ.get(name) if name else None
        if not secret:
            # Never post unsigned: a receiver could not tell a forged alarm from a real one.
            raise WebhookDeliveryError(
                f"webhook secret environment variable {name or '(none configured)'} is not set",
                0,
            )
        return secret.encode("utf-8")

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(
                timeout=self._settings.timeout_s, follow_redirects=False
            )
        return self._client

    async def post(self, url: str, notification: Notification) -> int:
        """Deliver to ``url``; returns the number of tries, raises WebhookDeliveryError.

        Connection errors, timeouts and 5xx answers are retried (the receiver may be
        restarting); any other answer outside 2xx is final (the receiver refuses this body,
        and the same body would be refused again)."""
        return await self.post_body(
            url, json_body(notification), "application/json", notification.event_id
        )

    async def post_body(self, url: str, body: bytes, content_type: str, event_id: str) -> int:
        """Deliver ``body`` (already encoded, e.g. a CAP document) to ``url``, signed and retried
        as notifications are; returns the number of tries, raises WebhookDeliveryError."""
        headers = {
            "Content-Type": content_type,
            SIGNATURE_HEADER: sign(self._secret(), body),
            EVENT_ID_HEADER: event_id,
        }
        attempts = max(1, self._settings.attempts)
        for attempt in range(1, attempts + 1):
            try:
                # Streamed and closed unread: a receiver cannot make the center buffer its answer.
                async with self._http().stream("POST", url, content=body, headers=headers) as r:
                    status = r.status_code
            except httpx.TransportError as err:
                reason = f"{type(err).__name__}: {err}" if str(err) else type(err).__name__
                if attempt == attempts:
                    raise WebhookDeliveryError(
                        f"{reason} after {attempt} attempts", attempt
                    ) from err
            except httpx.InvalidURL as err:
                raise WebhookDeliveryError(f"invalid URL: {err}", attempt) from err
            else:
                if 200 <= status < 300:
                    return attempt
                if status < 500:
                    raise WebhookDeliveryError(f"HTTP {status} (not retried)", attempt, status)
                if attempt == attempts:
                    raise WebhookDeliveryError(
                        f"HTTP {status} after {attempt} attempts", attempt, status
                    )
            await self._clock.sleep(
                min(MAX_BACKOFF_S, self._settings.backoff_s * 2 ** (attempt - 1))
            )
        raise AssertionError("unreachable: the loop returns or raises")  # pragma: no cover

    async def aclose(self) -> None:
        """Close the HTTP client if this sender made it."""
        if self._client is not None and self._owns_client:
            await self._client.aclose()
            self._client = None
