"""Who may do what: the one table every face of the center (HMI, API, command line) and every
service checks against, on the server, for every request.

Roles are ordered (viewer < operator < maintenance < engineer < admin) and each includes the
rights of the ones before it. The table names, for each permission, the least role that holds
it. ISA-18.2 11.4 asks that the alarm philosophy say who may shelve and who may take an alarm
out of service: operators shelve, maintenance takes out of service.
"""

from __future__ import annotations

from enum import StrEnum

from controlcenter.model import Role, User


class Permission(StrEnum):
    """One thing a person may do in the center."""

    VIEW = "view"
    """See displays, values, trends and the alarm list."""
    COMMAND = "command"
    """Select and operate points, override and release (the command pipeline checks again)."""
    ACKNOWLEDGE_ALARMS = "acknowledge_alarms"
    """Acknowledge, reset and comment alarms."""
    SHELVE_ALARMS = "shelve_alarms"
    """Shelve and unshelve alarms."""
    REMOVE_ALARMS_FROM_SERVICE = "remove_alarms_from_service"
    """Take alarms out of service for maintenance and return them."""
    VIEW_DIAGNOSTICS = "view_diagnostics"
    """See device and acquisition diagnostics."""
    VIEW_JOURNAL = "view_journal"
    """Read the journal of commands, alarm transitions, logins and changes."""
    EDIT_RULES = "edit_rules"
    """Edit, validate and backtest rule sets."""
    APPLY_RULES = "apply_rules"
    """Apply a rule-set version to the running center and roll back."""
    DEFINE_ALARMS = "define_alarms"
    """Change alarm definitions."""
    ADMINISTER_USERS = "administer_users"
    """Add, disable and enable users, change their role, reset passwords."""


PERMISSION_ROLES: dict[Permission, Role] = {
    Permission.VIEW: Role.VIEWER,
    Permission.COMMAND: Role.OPERATOR,
    Permission.ACKNOWLEDGE_ALARMS: Role.OPERATOR,
    Permission.SHELVE_ALARMS: Role.OPERATOR,
    Permission.VIEW_JOURNAL: Role.OPERATOR,
    Permission.REMOVE_ALARMS_FROM_SERVICE: Role.MAINTENANCE,
    Permission.VIEW_DIAGNOSTICS: Role.MAINTENANCE,
    Permission.EDIT_RULES: Role.ENGINEER,
    Permission.APPLY_RULES: Role.ENGINEER,
    Permission.DEFINE_ALARMS: Role.ENGINEER,
    Permission.ADMINISTER_USERS: Role.ADMIN,
}
"""The least role holding each permission."""


class TokenScope(StrEnum):
    """What an API token may be used for, at most (its user's role still decides)."""

    READ = "read"
    COMMAND = "command"
    ADMINISTER = "administer"


_READING = frozenset({Permission.VIEW, Permission.VIEW_JOURNAL, Permission.VIEW_DIAGNOSTICS})
SCOPE_PERMISSIONS: dict[TokenScope, frozenset[Permission]] = {
    TokenScope.READ: _READING,
    TokenScope.COMMAND: _READING
    | {
        Permission.COMMAND,
        Permission.ACKNOWLEDGE_ALARMS,
        Permission.SHELVE_ALARMS,
        Permission.REMOVE_ALARMS_FROM_SERVICE,
    },
    TokenScope.ADMINISTER: frozenset(Permission),
}
"""The permissions a token of each scope may use (intersected with its user's role)."""


class PermissionDeniedError(PermissionError):
    """A user asked for something their role does not allow."""

    def __init__(
        self, user: User | None, permission: Permission, scope: TokenScope | None = None
    ) -> None:
        needed = PERMISSION_ROLES[permission]
        who = "nobody logged in" if user is None else f"{user.name} ({user.role.value})"
        if user is not None and user.role.includes(needed) and scope is not None:
            text = f"{permission.value} is outside the token's scope {scope.value}: {who}"
        else:
            text = f"{permission.value} needs the {needed.value} role or above: {who}"
        super().__init__(text)
        self.user = user
        self.permission = permission
        self.scope = scope


def allows(user: User | None, permission: Permission, scope: TokenScope | None = None) -> bool:
    """Whether ``user`` holds ``permission`` (nobody logged in holds none); acting through an
    API token of ``scope``, the scope must include it too."""
    if user is None or not user.role.includes(PERMISSION_ROLES[permission]):
        return False
    return scope is None or permission in SCOPE_PERMISSIONS[scope]


def require(user: User | None, permission: Permission, scope: TokenScope | None = None) -> User:
    """Return ``user`` when they hold ``permission`` (within ``scope``); raise
    PermissionDeniedError otherwise."""
    if user is None or not allows(user, permission, scope):
        raise PermissionDeniedError(user, permission, scope)
    return user


def permissions_of(role: Role) -> frozenset[Permission]:
    """Every permission ``role`` holds."""
    return frozenset(p for p, least in PERMISSION_ROLES.items() if role.includes(least))
