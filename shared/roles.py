"""The role table: which roles may call each group of routes, in every service (DESIGN.md §6).

Every route names one group from the domain (`places.write`, `crossings.read`) with
`allow(group)`; the group grants a set of roles and, for what concerns the whole system, asks
for a token scoped to `*`. A service that serves data another service owns uses the owner's
group (reporting's key-persons ledger is `key_persons.read`, its crossings ledger
`crossings.read`), so two services cannot disagree about who sees the same facts.

Deny by default: a route whose dependencies name no group fails
`tests/unit/test_roles.py`, and an unknown group name fails at import. Jurisdiction (the node
a request concerns lying in the caller's scope) stays with each handler (`check_scope`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request, routing
from fastapi.routing import APIRoute

from shared.auth import Principal, Role, check_root_scope, current_principal
from shared.problems import Problem

ADMIN, REGISTRAR, GRID_WORKER, MEDIC = Role.ADMIN, Role.REGISTRAR, Role.GRID_WORKER, Role.MEDIC
GATEKEEPER, COMMAND, AUDITOR, INTEGRATOR = (
    Role.GATEKEEPER,
    Role.COMMAND,
    Role.AUDITOR,
    Role.INTEGRATOR,
)
EVERYONE = frozenset(Role)
# who reads what field work produced: everyone but the registry clerk and the gate
FIELD_READERS = frozenset({ADMIN, GRID_WORKER, MEDIC, COMMAND, AUDITOR, INTEGRATOR})


@dataclass(frozen=True)
class Grant:
    roles: frozenset[Role]
    about: str
    root: bool = False  # the whole system: a token scoped to `*` as well


def _grant(about: str, *roles: Role, root: bool = False) -> Grant:
    return Grant(frozenset(roles), about, root)


def _everyone(about: str) -> Grant:
    return Grant(EVERYONE, about)


def _field_readers(about: str) -> Grant:
    return Grant(FIELD_READERS, about)


GRANTS: Mapping[str, Grant] = {
    # registry
    "places.read": _everyone("the place tree"),
    "places.write": _grant("create, rename, move and retire places", ADMIN, REGISTRAR),
    "places.root": _grant("create a root place (one with no parent)", ADMIN, root=True),
    "people.read": _everyone("households (户) and their persons, masked"),
    "people.write": _grant(
        "register households, persons and vehicles; import rosters", ADMIN, REGISTRAR
    ),
    "people.lookup": _grant(
        "find a person by document number", ADMIN, REGISTRAR, GRID_WORKER, MEDIC, INTEGRATOR
    ),
    "people.reveal": _grant(
        "a person's clear PII, with a reason, logged", ADMIN, REGISTRAR, GRID_WORKER, MEDIC
    ),
    "pii_log.read": _grant("the PII access log", ADMIN, AUDITOR),
    "chain_templates.read": _everyone("chain templates (reference data, no place, no person)"),
    "chain_templates.write": _grant("define a chain template", ADMIN, REGISTRAR, root=True),
    "chains.read": _everyone("chain instances, parties and assignments (包保)"),
    "chains.write": _grant("start and end chains, register parties, assign them", ADMIN, REGISTRAR),
    # screening
    "visits.write": _grant("campaigns and door-to-door visits (排查)", ADMIN, GRID_WORKER),
    "visits.read": _field_readers("campaign coverage, visits, the screening ledger"),
    "visits.audit": _grant("audit and void visits", ADMIN, AUDITOR),
    "daily_reports.write": _grant("submit a daily report (日报)", ADMIN, GRID_WORKER),
    "daily_reports.read": _grant(
        "daily reports and their completeness", ADMIN, GRID_WORKER, COMMAND, AUDITOR, INTEGRATOR
    ),
    "risk_areas.read": _everyone("risk areas"),
    "risk_areas.write": _grant("declare and lift risk areas", ADMIN, COMMAND, root=True),
    "key_person_rules.read": _everyone("the rules that flag key persons"),
    "key_person_rules.write": _grant("change the rules that flag key persons", ADMIN, root=True),
    "inquiries.write": _grant("record travel and contact inquiries", ADMIN, GRID_WORKER, MEDIC),
    "key_persons.read": _field_readers(
        "inquiries, key persons (重点人员), their ledger and the chains' blind spots"
    ),
    "key_persons.clear": _grant("clear a key person", ADMIN, MEDIC),
    "testing.write": _grant("test rounds, samples, results and vaccinations", ADMIN, MEDIC),
    "testing.read": _field_readers("test rounds, samples, their coverage and unsampled doors"),
    "watch.observe": _grant("put a subject under observation", ADMIN, MEDIC, GRID_WORKER),
    "watch.write": _grant(
        "quarantines, releases, transfers and temperature readings (隔离)", ADMIN, MEDIC
    ),
    "watch.read": _field_readers("quarantines, watches, follow-ups and the care given"),
    "care.write": _grant("care tasks and place care plans", ADMIN, MEDIC, GRID_WORKER),
    # checkpoint
    "checkpoints.write": _grant("set up, staff and close checkpoints (卡口)", ADMIN),
    "checkpoints.read": _grant(
        "a checkpoint's set-up and staffing", ADMIN, GATEKEEPER, COMMAND, AUDITOR, INTEGRATOR
    ),
    "crossings.write": _grant(
        "record crossings (a gatekeeper only at a gate and time of their shift)",
        ADMIN,
        GATEKEEPER,
    ),
    "crossings.any_gate": _grant("record crossings at any gate, holding no shift", ADMIN),
    "crossings.read": _grant("crossings and their ledgers", ADMIN, COMMAND, AUDITOR, INTEGRATOR),
    # reporting
    "figures.read": _everyone("counts per place, trends, vaccination and chain figures"),
    # every service
    "ops.observe": _grant("relay backlog and consumer lag", ADMIN, AUDITOR, INTEGRATOR, root=True),
    "ops.operate": _grant("dead letters and read-model rebuilds", ADMIN, root=True),
}

Dependency = Callable[..., Awaitable[Principal]]
_GROUPS_OF: dict[Dependency, tuple[str, ...]] = {}


def holds(principal: Principal, group: str) -> bool:
    grant = GRANTS[group]
    return principal.has_any(grant.roles) and (principal.everywhere or not grant.root)


def check(principal: Principal, group: str) -> None:
    """403 unless the caller holds `group`: one of its roles, and scope `*` for a root group.

    Handlers call it for a variant of a route that needs more than the route's group (a root
    place, clear PII)."""
    grant = GRANTS[group]
    if not principal.has_any(grant.roles):
        raise Problem(
            403,
            f"{group}: role required: one of {sorted(r.value for r in grant.roles)}",
            slug="forbidden-role",
        )
    if grant.root:
        check_root_scope(principal, grant.about)


@cache
def allow(group: str) -> Dependency:
    """The dependency that admits callers holding `group` (one object per group, so FastAPI
    resolves it once per request however many parameters use it)."""
    GRANTS[group]  # an unknown group fails when the router is imported

    async def dependency(principal: Annotated[Principal, Depends(current_principal)]) -> Principal:
        check(principal, group)
        return principal

    _GROUPS_OF[dependency] = (group,)
    return dependency


def allow_by(param: str, groups: Mapping[str, str]) -> Dependency:
    """A route serving several kinds of data picks the group by a path parameter (a reporting
    ledger is read with the group of the service that owns its rows)."""
    for group in groups.values():
        GRANTS[group]

    async def dependency(
        request: Request, principal: Annotated[Principal, Depends(current_principal)]
    ) -> Principal:
        value = request.path_params.get(param, "")
        if value not in groups:
            raise Problem(
                422,
                f"path.{param}: one of {sorted(groups)}",
                slug="validation-error",
                errors=[{"field": f"path.{param}", "reason": f"one of {sorted(groups)}"}],
            )
        check(principal, groups[value])
        return principal

    _GROUPS_OF[dependency] = tuple(groups.values())
    return dependency


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    groups: tuple[str, ...]  # none: the route would admit anyone


def operations(app: FastAPI) -> Iterator[Operation]:
    """Each operation of an app (hidden from OpenAPI or not) with the groups it names."""
    for route in routing.iter_route_contexts(app.routes):
        if not isinstance(route.original_route, APIRoute):
            continue
        found: list[str] = []
        pending: list[Any] = [route.dependant]
        while pending:
            dependant = pending.pop()
            found.extend(_GROUPS_OF.get(dependant.call, ()))
            pending.extend(dependant.dependencies)
        for method in sorted(route.methods or ()):
            yield Operation(method, str(route.path), tuple(dict.fromkeys(found)))
