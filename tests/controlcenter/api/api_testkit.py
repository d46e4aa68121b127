"""A small center behind the API for its tests: fake live values, a real token store."""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

from argon2 import PasswordHasher
from argon2.profiles import CHEAPEST
from flask.testing import FlaskClient

from controlcenter.api.app import create_api
from controlcenter.api.services import ApiServices
from controlcenter.automation import AreaDef
from controlcenter.model import DataType, Event, Quality, Role, Sample, Substatus, TagDef
from controlcenter.permissions import TokenScope
from controlcenter.ports import HistoryQueryReader
from controlcenter.security.ratelimit import RatePolicy
from controlcenter.security.tokens import TokenStore
from controlcenter.security.users import UserStore

WHEN = datetime(2030, 1, 1, 12, tzinfo=UTC)
TAGS = (
    TagDef("water.tank1.level", "rtu1", "ir:0", DataType.FLOAT, "m", 0.0, 5.0),
    TagDef("water.tank1.pump_cmd", "rtu1", "coil:0", DataType.BOOL, writable=True),
    TagDef("lights.d1.c1.power", "ctrl1", "ns=2;s=p", DataType.FLOAT, "kW"),
)
AREAS = (AreaDef("water", ("water.*",)), AreaDef("lighting", ("lights.*",)))
USERS = {Role.VIEWER: "vera", Role.OPERATOR: "olga", Role.ENGINEER: "erik", Role.ADMIN: "ada"}


class FixedLive:
    """A live view of fixed samples."""

    def __init__(self) -> None:
        self.samples = {
            "water.tank1.level": Sample("water.tank1.level", 3.2, Quality.good(), WHEN, WHEN),
            "water.tank1.pump_cmd": Sample(
                "water.tank1.pump_cmd", True, Quality.good(), WHEN, WHEN
            ),
            "lights.d1.c1.power": Sample(
                "lights.d1.c1.power",
                None,
                Quality.bad(Substatus.COMM_FAILURE, "controller 1 does not answer"),
                WHEN,
                WHEN,
            ),
        }

    def tags(self) -> Sequence[TagDef]:
        """Every tag."""
        return TAGS

    def latest(self, tag: str) -> Sample:
        """The sample of ``tag``."""
        return self.samples[tag]

    def snapshot(self) -> Mapping[str, Sample]:
        """Every sample."""
        return dict(self.samples)


@dataclass
class ListJournal:
    """Events in a list."""

    events: list[Event] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, event: Event) -> None:
        """Append ``event``."""
        with self.lock:
            self.events.append(event)


@dataclass
class ApiKit:
    """The API app, its token store and its journal; ``token(role, scope)`` issues tokens."""

    client: FlaskClient
    tokens: TokenStore
    journal: ListJournal

    def token(self, role: Role, scope: TokenScope = TokenScope.READ) -> str:
        """A fresh token of the user of ``role``."""
        return self.tokens.create(USERS[role], scope, 3600, created_by="ada").secret_text

    def get(self, path: str, token: str = "", **kwargs: Any) -> Any:
        """GET with a bearer token."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return self.client.get(path, headers=headers, **kwargs)


def api_kit(tmp_path: Path, *, rate: RatePolicy | None = None, **more: Any) -> ApiKit:
    """The API over fixed values, with one user per role."""
    users = UserStore(tmp_path / "users.json", hasher=PasswordHasher.from_parameters(CHEAPEST))
    for role, name in USERS.items():
        users.add_user(name, "a long test passphrase 1", role)
    tokens = TokenStore(tmp_path / "tokens.sqlite", users)
    journal = ListJournal()
    services = ApiServices(
        live=FixedLive(),
        history=cast(HistoryQueryReader, None),
        journal=journal,
        tokens=tokens,
        site_name="Testville",
        areas=AREAS,
        rate=rate or RatePolicy(),
        **more,
    )
    return ApiKit(create_api(services).test_client(), tokens, journal)
