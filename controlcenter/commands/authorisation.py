"""Stage 1 of the command pipeline: who is asking, and may they command this tag?

Every command names its requester (``Command.requested_by``): an operator, an API client, or the
service identity the rules command as. The name is resolved through the center's user directory;
the user must hold the operator role or above (a viewer only watches), and a user bound to areas
may command only the tags of those areas. The same check guards selecting a point and releasing
an override, so every face of the center (HMI, API, command line, rules) meets one rule.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase

from controlcenter.automation import AreaDef
from controlcenter.model import User
from controlcenter.permissions import PERMISSION_ROLES, Permission

UserDirectory = Callable[[str], User]
"""Resolves a user name to the user; raises KeyError for an unknown name."""

COMMANDING_ROLE = PERMISSION_ROLES[Permission.COMMAND]
"""The least role that may command the field, select a point or release an override."""


class AuthorisationError(PermissionError):
    """A user may not command a tag (unknown user, role too low, tag outside their areas)."""


@dataclass(frozen=True, slots=True)
class Authorisation:
    """The outcome of the authorisation stage: the resolved user, or why they are refused."""

    user: User | None
    refusal: str | None

    @property
    def granted(self) -> bool:
        """Whether the user may command the tag."""
        return self.refusal is None


class Authoriser:
    """Decides whether a named user may command a tag (stage 1 of the pipeline)."""

    def __init__(self, users: UserDirectory | None, areas: Sequence[AreaDef] = ()) -> None:
        self._users = users
        self._areas = {area.name: area for area in areas}

    def authorise(self, user_name: str, tag: str) -> Authorisation:
        """Resolve ``user_name`` and check their role and areas against ``tag``."""
        if self._users is None:
            # Fail closed: a pipeline built without a user directory writes nothing.
            return Authorisation(None, "no user directory: nobody is authorised to command")
        try:
            user = self._users(user_name)
        except KeyError:
            return Authorisation(None, f"unknown user '{user_name}'")
        return Authorisation(user, self.refusal(user, tag))

    def refusal(self, user: User, tag: str) -> str | None:
        """Why ``user`` may not command ``tag``, or None when they may."""
        if not user.role.includes(COMMANDING_ROLE):
            return (
                f"user '{user.name}' has role {user.role.value}; commanding needs "
                f"{COMMANDING_ROLE.value} or above"
            )
        if user.areas and not self.in_areas(tag, user.areas):
            return (
                f"tag '{tag}' is outside the areas of user '{user.name}' ({', '.join(user.areas)})"
            )
        return None

    def in_areas(self, tag: str, area_names: Sequence[str]) -> bool:
        """Whether ``tag`` belongs to one of the named areas.

        An area name the site does not define covers no tag: a user bound to areas is refused
        rather than let loose when the site file and the user file disagree.
        """
        for name in area_names:
            area = self._areas.get(name)
            if area is not None and any(fnmatchcase(tag, pattern) for pattern in area.tags):
                return True
        return False

    def areas_of(self, tag: str) -> tuple[str, ...]:
        """The names of the site's areas that contain ``tag``, sorted."""
        return tuple(
            sorted(
                name
                for name, area in self._areas.items()
                if any(fnmatchcase(tag, pattern) for pattern in area.tags)
            )
        )
