"""Alarm notifications: routing to on-call groups, e-mail and signed webhooks, escalation,
quiet hours and flood summaries."""

from alarms.notify.mail import EmailDeliveryError, EmailSender
from alarms.notify.messages import AlarmNotice, FloodSummary, Notification
from alarms.notify.notifier import SOURCE, Notifier
from alarms.notify.routing import FloodGate, NotificationConfigError, QuietHours
from alarms.notify.webhook import (
    SIGNATURE_HEADER,
    WebhookDeliveryError,
    WebhookSender,
    sign,
    verify,
)
from controlcenter.automation import EmailSettings, WebhookSettings

__all__ = [
    "SIGNATURE_HEADER",
    "SOURCE",
    "AlarmNotice",
    "EmailDeliveryError",
    "EmailSender",
    "EmailSettings",
    "FloodGate",
    "FloodSummary",
    "Notification",
    "NotificationConfigError",
    "Notifier",
    "QuietHours",
    "WebhookDeliveryError",
    "WebhookSender",
    "WebhookSettings",
    "sign",
    "verify",
]
