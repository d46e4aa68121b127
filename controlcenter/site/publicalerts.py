"""The site file's ``public_alerts`` section: which alarms raise CAP 1.2 public alerts, for
whom, and which receivers get them.

```yaml
public_alerts:
  sender: demo-city.controlcenter     # CAP sender: no spaces, commas, < or &
  webhooks: [https://alerts.example/cap]   # signed with notifications.webhook's secret
  rules:
    - name: ozone-information
      alarms: ["air.*.o3.information"]
      audience: population            # or emergency_services (never on the open feed)
      category: Health
      event: Ozone
      urgency: Immediate
      severity: Moderate
      certainty: Observed
      response: Avoid
      instruction: Avoid strenuous activity outdoors in the afternoon
```
The value lists are CAP 1.2's; the composition root turns the rules into
``alarms.cap.PublicAlertRule``.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from controlcenter.site.fields import FiniteFloat, Name, Text

MAX_PUBLIC_ALERT_RULES = 200
CapCategory = Literal[
    "Geo", "Met", "Safety", "Security", "Rescue", "Fire", "Health", "Env", "Transport", "Infra",
    "CBRNE", "Other",
]  # fmt: skip
CapUrgency = Literal["Immediate", "Expected", "Future", "Past", "Unknown"]
CapSeverity = Literal["Extreme", "Severe", "Moderate", "Minor", "Unknown"]
CapCertainty = Literal["Observed", "Likely", "Possible", "Unlikely", "Unknown"]
CapResponse = Literal[
    "Shelter", "Evacuate", "Prepare", "Execute", "Avoid", "Monitor", "Assess", "AllClear", "None"
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PublicAlertRuleConfig(_Strict):
    """Alarms (shell patterns of their names) that raise one kind of CAP alert."""

    name: Name = Field(min_length=1)
    alarms: list[Name] = Field(min_length=1, max_length=100)
    audience: Literal["population", "emergency_services"] = "population"
    category: CapCategory
    event: Name = Field(min_length=1)
    urgency: CapUrgency
    severity: CapSeverity
    certainty: CapCertainty
    response: CapResponse = "Monitor"
    headline: Name = ""
    instruction: Text = ""
    radius_km: FiniteFloat = Field(default=2.0, ge=0.0, le=500.0)
    expires_after_h: FiniteFloat = Field(default=6.0, gt=0.0, le=168.0)


class PublicAlertsConfig(_Strict):
    """CAP 1.2 public alerts: the sender, the receivers and the rules."""

    sender: Name = Field(default="", pattern=r"^[^\s,<&]*$")
    """Default: derived from the site's name."""
    webhooks: list[Annotated[str, Field(max_length=2000, pattern=r"^https?://[^\s]+$")]] = Field(
        default_factory=list, max_length=20
    )
    rules: list[PublicAlertRuleConfig] = Field(
        default_factory=list, max_length=MAX_PUBLIC_ALERT_RULES
    )
