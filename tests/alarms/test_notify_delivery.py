"""E-mail and webhook delivery against real receivers: content, signatures, retries, refusals,
hostile alarm text."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from email.message import EmailMessage
from zoneinfo import ZoneInfo

import pytest

from alarms.notify import (
    AlarmNotice,
    EmailDeliveryError,
    EmailSender,
    EmailSettings,
    Notification,
    WebhookDeliveryError,
    WebhookSender,
    WebhookSettings,
)
from controlcenter.automation import AlarmDisplayState, AlarmGuidance, AlarmPriority
from tests.alarms.notify_testkit import (
    SECRET,
    SECRET_ENV,
    SmtpReceiver,
    StepClock,
    WebhookReceiver,
    smtp_receiver,
    webhook_receiver,
)

__all__ = ["smtp_receiver", "webhook_receiver"]  # fixtures used by name

BERLIN = ZoneInfo("Europe/Berlin")
AT = datetime(2026, 1, 15, 21, 30, tzinfo=UTC)


@pytest.fixture(autouse=True)
def webhook_secret(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The webhook secret, from the environment as in production."""
    monkeypatch.setenv(SECRET_ENV, SECRET)
    yield


def _notification(message: str = "Tank 1 level high") -> Notification:
    notice = AlarmNotice(
        alarm="water.tank1.level.high",
        priority=AlarmPriority.HIGH,
        area="water",
        state=AlarmDisplayState.UNACKNOWLEDGED,
        time=AT,
        value=4.8,
        message=message,
        guidance=AlarmGuidance("inflow valve stuck", "overflow", "close V1 by hand"),
        tag="water.tank1.level",
        device="water.plc1",
    )
    return Notification("evt-1", "water-oncall", notice, AT)


def _mail(port: int, **overrides: object) -> EmailSettings:
    settings = {"host": "127.0.0.1", "port": port, "sender": "scada@city.example"} | overrides
    return EmailSettings(**settings)  # type: ignore[arg-type]


async def test_email_carries_alarm_priority_area_value_local_time_and_guidance(
    smtp_receiver: SmtpReceiver,
) -> None:
    sender = EmailSender(_mail(smtp_receiver.port), StepClock(), BERLIN)
    attempts = await sender.send(_notification(), ("water@city.example", "boss@city.example"))
    assert attempts == 1
    (envelope,) = smtp_receiver.envelopes
    assert envelope.mail_from == "scada@city.example"
    assert envelope.rcpt_tos == ["water@city.example", "boss@city.example"]
    (message,) = smtp_receiver.messages()
    assert message["Subject"] == "[HIGH] water.tank1.level.high: Tank 1 level high (water)"
    assert message["X-Alarm-Event-Id"] == "evt-1"
    body = message.get_content()
    assert "Time:        2026-01-15 22:30:00 CET" in body
    assert "Value:       4.8" in body
    assert "Device:      water.plc1" in body
    assert "Action:      close V1 by hand" in body


async def test_header_injection_in_an_alarm_message_adds_no_header(
    smtp_receiver: SmtpReceiver,
) -> None:
    hostile = _notification("Tank high\r\nBcc: thief@evil.example\r\nX-Injected: yes\n\nbody")
    sender = EmailSender(_mail(smtp_receiver.port), StepClock(), BERLIN)
    await sender.send(hostile, ("water@city.example",))
    (envelope,) = smtp_receiver.envelopes
    assert envelope.rcpt_tos == ["water@city.example"]
    (message,) = smtp_receiver.messages()
    assert isinstance(message, EmailMessage)
    names = {name.lower() for name in message}
    assert names == {
        "from",
        "to",
        "subject",
        "date",
        "message-id",
        "x-alarm-event-id",
        "content-type",
        "content-transfer-encoding",
        "mime-version",
    }
    assert "thief@evil.example" in message["Subject"]  # kept as text, on the one line
    assert "\nBcc:" not in message.get_content()


async def test_email_login_takes_the_password_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, smtp_receiver: SmtpReceiver
) -> None:
    settings = _mail(smtp_receiver.port, username="scada", password_env="CC_TEST_SMTP_PASSWORD")
    sender = EmailSender(settings, StepClock(), BERLIN)
    monkeypatch.delenv("CC_TEST_SMTP_PASSWORD", raising=False)
    with pytest.raises(EmailDeliveryError, match="CC_TEST_SMTP_PASSWORD"):
        await sender.send(_notification(), ("water@city.example",))
    assert smtp_receiver.envelopes == []


async def test_email_to_an_unreachable_relay_is_retried_then_fails(closed_port: int) -> None:
    clock = StepClock()
    sender = EmailSender(_mail(closed_port, attempts=3, backoff_s=1.5), clock, BERLIN)
    with pytest.raises(EmailDeliveryError) as caught:
        await sender.send(_notification(), ("water@city.example",))
    assert caught.value.attempts == 3
    assert clock.slept == [1.5, 3.0]
    assert isinstance(caught.value.__cause__, Exception)


async def test_webhook_posts_signed_json_the_receiver_verifies(
    webhook_receiver: WebhookReceiver,
) -> None:
    sender = WebhookSender(WebhookSettings(SECRET_ENV, timeout_s=2), StepClock())
    try:
        assert await sender.post(webhook_receiver.url(), _notification()) == 1
    finally:
        await sender.aclose()
    (request,) = webhook_receiver.requests
    assert request.method == "POST" and request.path == "/hook"
    assert request.headers["content-type"] == "application/json"
    assert request.signature_valid()
    assert not request.signature_valid("wrong secret")
    document = request.json()
    assert document["alarm"] == "water.tank1.level.high"
    assert document["state"] == "unacknowledged"
    assert document["priority"] == "high"
    assert document["area"] == "water"
    assert document["value"] == 4.8
    assert document["time"] == "2026-01-15T21:30:00+00:00"
    assert document["guidance"] == {
        "cause": "inflow valve stuck",
        "consequence": "overflow",
        "action": "close V1 by hand",
    }
    assert document["event_id"] == "evt-1"


async def test_webhook_retries_503_with_exponential_backoff_then_succeeds(
    webhook_receiver: WebhookReceiver,
) -> None:
    webhook_receiver.statuses = [503, 503]
    clock = StepClock()
    sender = WebhookSender(WebhookSettings(SECRET_ENV, 2, attempts=5, backoff_s=2), clock)
    try:
        assert await sender.post(webhook_receiver.url(), _notification()) == 3
    finally:
        await sender.aclose()
    assert clock.slept == [2, 4]
    assert len(webhook_receiver.requests) == 3
    # The same event, byte for byte, each time: a receiver can deduplicate by its id.
    assert len({request.body for request in webhook_receiver.requests}) == 1


async def test_webhook_400_is_not_retried(webhook_receiver: WebhookReceiver) -> None:
    webhook_receiver.statuses = [400]
    clock = StepClock()
    sender = WebhookSender(WebhookSettings(SECRET_ENV, 2, attempts=5, backoff_s=2), clock)
    try:
        with pytest.raises(WebhookDeliveryError, match="HTTP 400") as caught:
            await sender.post(webhook_receiver.url(), _notification())
    finally:
        await sender.aclose()
    assert caught.value.status == 400 and caught.value.attempts == 1
    assert len(webhook_receiver.requests) == 1
    assert clock.slept == []


async def test_webhook_connection_refused_is_retried_a_bounded_number_of_times(
    closed_port: int,
) -> None:
    clock = StepClock()
    sender = WebhookSender(WebhookSettings(SECRET_ENV, 2, attempts=4, backoff_s=1), clock)
    try:
        with pytest.raises(WebhookDeliveryError, match="ConnectError") as caught:
            await sender.post(f"http://127.0.0.1:{closed_port}/hook", _notification())
    finally:
        await sender.aclose()
    assert caught.value.attempts == 4
    assert clock.slept == [1, 2, 4]


async def test_webhook_without_its_secret_sends_nothing(
    monkeypatch: pytest.MonkeyPatch, webhook_receiver: WebhookReceiver
) -> None:
    monkeypatch.delenv(SECRET_ENV)
    sender = WebhookSender(WebhookSettings(SECRET_ENV), StepClock())
    try:
        with pytest.raises(WebhookDeliveryError, match=SECRET_ENV):
            await sender.post(webhook_receiver.url(), _notification())
    finally:
        await sender.aclose()
    assert webhook_receiver.requests == []
