"""One table decides who may do what; the alarm service and the command pipeline read it."""

from __future__ import annotations

import itertools

import pytest

from alarms.service import ACTION_ROLES
from controlcenter.automation import AlarmAction
from controlcenter.commands.authorisation import COMMANDING_ROLE
from controlcenter.model import Role, User
from controlcenter.permissions import (
    PERMISSION_ROLES,
    Permission,
    PermissionDeniedError,
    allows,
    permissions_of,
    require,
)

EXPECTED = {
    Role.VIEWER: {Permission.VIEW},
    Role.OPERATOR: {
        Permission.VIEW,
        Permission.COMMAND,
        Permission.ACKNOWLEDGE_ALARMS,
        Permission.SHELVE_ALARMS,
        Permission.VIEW_JOURNAL,
    },
}


def test_every_permission_has_a_least_role() -> None:
    assert set(PERMISSION_ROLES) == set(Permission)


@pytest.mark.parametrize("role", list(EXPECTED))
def test_viewers_only_look_and_operators_command_and_handle_alarms(role: Role) -> None:
    assert permissions_of(role) == EXPECTED[role]


def test_each_role_includes_the_rights_of_the_ones_before_it() -> None:
    roles = list(Role)
    for lower, higher in itertools.pairwise(roles):
        assert permissions_of(lower) < permissions_of(higher)
    assert permissions_of(Role.ADMIN) == set(Permission)
    assert Permission.REMOVE_ALARMS_FROM_SERVICE in permissions_of(Role.MAINTENANCE)
    assert Permission.VIEW_DIAGNOSTICS in permissions_of(Role.MAINTENANCE)
    assert Permission.APPLY_RULES not in permissions_of(Role.MAINTENANCE)
    assert Permission.ADMINISTER_USERS not in permissions_of(Role.ENGINEER)


def test_require_names_the_permission_the_role_and_the_user() -> None:
    viewer = User("vera", Role.VIEWER)
    assert require(User("olga", Role.OPERATOR), Permission.COMMAND).name == "olga"
    with pytest.raises(PermissionDeniedError, match=r"command needs the operator role.*vera"):
        require(viewer, Permission.COMMAND)
    with pytest.raises(PermissionDeniedError, match="nobody logged in"):
        require(None, Permission.VIEW)
    assert not allows(None, Permission.VIEW)


def test_the_alarm_service_and_the_pipeline_follow_the_table() -> None:
    assert COMMANDING_ROLE is PERMISSION_ROLES[Permission.COMMAND]
    assert ACTION_ROLES[AlarmAction.ACKNOWLEDGE] is PERMISSION_ROLES[Permission.ACKNOWLEDGE_ALARMS]
    assert ACTION_ROLES[AlarmAction.SHELVE] is PERMISSION_ROLES[Permission.SHELVE_ALARMS]
    assert (
        ACTION_ROLES[AlarmAction.REMOVE_FROM_SERVICE]
        is PERMISSION_ROLES[Permission.REMOVE_ALARMS_FROM_SERVICE]
    )
