"""Stage 1: who may command what: roles, areas, unknown users, no user directory."""

from __future__ import annotations

import pytest

from controlcenter.commands.authorisation import Authoriser
from controlcenter.model import CommandStatus, Role, User
from historian.store import SqlHistorian
from plc_sim.city import SimulatedCity
from tests.controlcenter.commands.support import (
    AREAS,
    PUMP,
    USERS,
    VALVE,
    PipelineFactory,
    command,
    directory,
    valve_position,
)

ALLOWED = {Role.OPERATOR, Role.MAINTENANCE, Role.ENGINEER, Role.ADMIN}


@pytest.mark.parametrize("role", list(Role))
def test_every_role_against_an_operator_command(role: Role) -> None:
    authoriser = Authoriser(lambda name: User(name, role), AREAS)
    decision = authoriser.authorise("someone", PUMP)
    assert decision.granted is (role in ALLOWED)
    if role not in ALLOWED:
        assert decision.refusal == (
            "user 'someone' has role viewer; commanding needs operator or above"
        )


def test_a_user_bound_to_areas_commands_only_their_tags() -> None:
    authoriser = Authoriser(directory, AREAS)
    assert authoriser.authorise("wanda", PUMP).granted
    refused = authoriser.authorise("luke", PUMP)
    assert refused.refusal == f"tag '{PUMP}' is outside the areas of user 'luke' (lighting)"
    assert authoriser.authorise("luke", "lights.d1.c1.mode").granted


def test_a_user_without_areas_commands_every_area() -> None:
    authoriser = Authoriser(directory, AREAS)
    assert authoriser.authorise("olga", PUMP).granted
    assert authoriser.authorise("olga", "lights.d1.c1.mode").granted


def test_an_area_the_site_does_not_define_covers_nothing() -> None:
    # The user file names an area the site file lacks: refuse rather than let loose.
    authoriser = Authoriser(lambda name: User(name, Role.ADMIN, ("heating",)), AREAS)
    assert not authoriser.authorise("hal", PUMP).granted
    assert (
        not Authoriser(lambda name: User(name, Role.ADMIN, ("water",)))
        .authorise("hal", PUMP)
        .granted
    )


def test_areas_of_a_tag() -> None:
    assert Authoriser(directory, AREAS).areas_of(PUMP) == ("water",)
    assert Authoriser(directory, AREAS).areas_of("heat.ss1.supply_temp") == ()


def test_unknown_user_and_missing_directory_are_refused() -> None:
    assert Authoriser(directory, AREAS).authorise("mallory", PUMP).refusal == (
        "unknown user 'mallory'"
    )
    assert Authoriser(None, AREAS).authorise("olga", PUMP).refusal == (
        "no user directory: nobody is authorised to command"
    )


@pytest.mark.parametrize("name", ["vera", "olga", "mike", "erin", "adam"])
async def test_every_role_commands_through_the_pipeline_to_the_rtu(
    name: str,
    tank_city: SimulatedCity,
    store: SqlHistorian,
    make_pipeline: PipelineFactory,
) -> None:
    pipeline = make_pipeline()
    result = await pipeline.submit(command(VALVE, 42.0, by=name, reason="role check"))
    valve = valve_position(tank_city)
    (journaled,) = store.read_commands()
    assert journaled.command.requested_by == name
    if USERS[name].role in ALLOWED:
        assert result.status is CommandStatus.CONFIRMED, result.reason
        assert valve == pytest.approx(42.0)
    else:
        assert result.status is CommandStatus.REJECTED
        assert result.reason == (
            "not authorised: user 'vera' has role viewer; commanding needs operator or above"
        )
        assert valve == pytest.approx(100.0)  # untouched
    assert journaled.status is result.status and journaled.reason == result.reason


async def test_forged_requester_and_foreign_area_are_rejected_and_journaled(
    store: SqlHistorian, make_pipeline: PipelineFactory
) -> None:
    pipeline = make_pipeline()
    forged = await pipeline.submit(command(PUMP, True, by="mallory"))
    foreign = await pipeline.submit(command(PUMP, True, by="luke"))
    assert forged.reason == "not authorised: unknown user 'mallory'"
    assert foreign.reason.startswith("not authorised: tag 'water.tank1.pump_cmd' is outside")
    journal = store.read_commands()
    assert [r.status for r in journal] == [CommandStatus.REJECTED, CommandStatus.REJECTED]
    assert [r.reason for r in journal] == [forged.reason, foreign.reason]
