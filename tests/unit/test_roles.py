"""The role table: every route of every service names a group, and a service re-serving
another's data grants exactly what the owner grants."""

from __future__ import annotations

from functools import cache

import pytest
from fastapi import FastAPI

from services.checkpoint.main import create_app as checkpoint_app
from services.registry.main import create_app as registry_app
from services.reporting.api.ledgers import LEDGER_GROUPS
from services.reporting.main import create_app as reporting_app
from services.screening.main import create_app as screening_app
from shared.auth import ALL_NODES, Principal, Role
from shared.problems import Problem
from shared.roles import GRANTS, check, holds, operations

APPS = {
    "registry": registry_app,
    "screening": screening_app,
    "checkpoint": checkpoint_app,
    "reporting": reporting_app,
}
OPEN = {("GET", "/healthz"), ("GET", "/readyz"), ("GET", "/metrics")}


@cache
def app(service: str) -> FastAPI:
    return APPS[service]()


def groups(service: str, method: str, path: str) -> tuple[str, ...]:
    [found] = [o.groups for o in operations(app(service)) if (o.method, o.path) == (method, path)]
    return found


def caller(*roles: Role, scope: tuple[str, ...] = (ALL_NODES,)) -> Principal:
    return Principal(sub="someone", roles=frozenset(roles), scope=scope)


@pytest.mark.parametrize("service", APPS)
def test_every_route_names_a_group_of_the_table(service: str) -> None:
    ops = list(operations(app(service)))
    assert len(ops) > len(OPEN)
    ungrouped = {(o.method, o.path) for o in ops if not o.groups} - OPEN
    assert ungrouped == set()
    assert {g for o in ops for g in o.groups} <= set(GRANTS)


def test_only_health_and_metrics_are_open() -> None:
    for service in APPS:
        assert {(o.method, o.path) for o in operations(app(service)) if not o.groups} == OPEN


@pytest.mark.parametrize(
    ("ledger", "service", "method", "path"),
    [
        ("key-persons", "screening", "GET", "/v1/key-persons"),
        ("crossings", "checkpoint", "GET", "/v1/checkpoints/{checkpoint_id}/crossings"),
        ("screening", "screening", "GET", "/v1/visits/{visit_id}"),
    ],
)
def test_a_ledger_is_read_with_the_group_of_the_service_owning_its_rows(
    ledger: str, service: str, method: str, path: str
) -> None:
    assert (LEDGER_GROUPS[ledger],) == groups(service, method, path)
    assert set(LEDGER_GROUPS.values()) == set(
        groups("reporting", "GET", "/v1/ledgers/{name}.{fmt}")
    )


@pytest.mark.parametrize(
    ("reporting_path", "service", "owner_path"),
    [
        ("/v1/daily-reports/completeness", "screening", "/v1/daily-reports/completeness"),
        ("/v1/testing-rounds/{round_id}/coverage", "screening", "/v1/test-rounds/{round_id}"),
        ("/v1/testing-rounds/{round_id}/children", "screening", "/v1/test-rounds/{round_id}"),
        ("/v1/testing-rounds/{round_id}/unsampled", "screening", "/v1/test-rounds/{round_id}"),
        ("/v1/blind-spots", "screening", "/v1/key-persons"),
    ],
)
def test_reporting_lists_grant_what_the_owning_service_grants(
    reporting_path: str, service: str, owner_path: str
) -> None:
    assert groups("reporting", "GET", reporting_path) == groups(service, "GET", owner_path)


def test_a_root_group_needs_scope_star_besides_the_role() -> None:
    assert GRANTS["places.root"].root
    assert holds(caller(Role.ADMIN), "places.root")
    assert not holds(caller(Role.ADMIN, scope=("comm",)), "places.root")
    assert not holds(caller(Role.REGISTRAR), "places.root")
    with pytest.raises(Problem) as refused:
        check(caller(Role.ADMIN, scope=("comm",)), "ops.operate")
    assert (refused.value.status, refused.value.slug) == (403, "out-of-scope")
    with pytest.raises(Problem) as refused:
        check(caller(Role.AUDITOR), "ops.operate")
    assert (refused.value.status, refused.value.slug) == (403, "forbidden-role")


def test_a_scoped_group_admits_its_roles_in_any_scope() -> None:
    assert holds(caller(Role.GATEKEEPER, scope=("comm",)), "crossings.write")
    assert not holds(caller(Role.GATEKEEPER), "crossings.read")
    assert not holds(caller(scope=("comm",)), "places.read")  # a token with no known role
