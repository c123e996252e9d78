"""Responsible parties and chains (包保责任链). Pure decide/evolve.

A *chain template* is an ordered list of tiers, each naming the party role and the kind of
node (or person) it covers. An *instance* applies a template to a root node for a period. An
*assignment* binds a party to a node or a person at one tier of an instance; several parties
may answer for one target ("多对一").

Stream ids carry the aggregate's type (`party:<id>`, `assignment:<id>`, ...): ids are chosen
by clients, and consumers dedupe by (stream_id, version), so a party and a place that happen
to share an id must never share a stream.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date
from typing import Literal, TypeVar

from services.registry.domain.places import NODE_ID
from shared.contracts import EventPayload
from shared.contracts.registry import (
    AssignmentEnded,
    ChainInstanceEnded,
    ChainInstanceStarted,
    ChainTemplateDefined,
    ChainTier,
    CoverKind,
    PartyAssigned,
    PartyRegistered,
)
from shared.errors import DomainError, Refusal

PartyKind = Literal["person", "unit"]

PARTY = "party"
CHAIN_TEMPLATE = "chain_template"
CHAIN_INSTANCE = "chain_instance"
ASSIGNMENT = "assignment"


def party_stream(party_id: str) -> str:
    return f"{PARTY}:{party_id}"


def template_stream(template_id: str) -> str:
    return f"{CHAIN_TEMPLATE}:{template_id}"


def instance_stream(instance_id: str) -> str:
    return f"{CHAIN_INSTANCE}:{instance_id}"


def assignment_stream(assignment_id: str) -> str:
    return f"{ASSIGNMENT}:{assignment_id}"


# -- state -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Party:
    """Someone who answers for places or people (a cadre, a department, a medic)."""

    id: str
    kind: PartyKind
    name: str
    role: str
    node_id: str | None
    sub: str | None
    version: int
    phone_masked: str | None = None


@dataclass(frozen=True)
class ChainTemplate:
    id: str
    name: str
    tiers: tuple[ChainTier, ...]
    version: int

    def tier(self, level: int) -> ChainTier | None:
        return next((t for t in self.tiers if t.level == level), None)


@dataclass(frozen=True)
class ChainInstance:
    """A template applied to a root node. `valid_to` is the last valid day (the end date once
    ended); `planned_to` is the end given when it started."""

    id: str
    template_id: str
    root_node_id: str
    valid_from: date
    planned_to: date | None
    valid_to: date | None
    ended: bool
    end_reason: str | None
    version: int

    def active_on(self, day: date) -> bool:
        return _within(day, self.valid_from, self.valid_to)


@dataclass(frozen=True)
class Assignment:
    """A party answering for one target at one tier of an instance, for a period."""

    id: str
    instance_id: str
    level: int
    party_id: str
    target_type: CoverKind
    target_id: str
    valid_from: date
    planned_to: date | None
    valid_to: date | None
    ended: bool
    end_reason: str | None
    version: int


@dataclass(frozen=True)
class NodeFacts:
    """A place as the registry knows it now."""

    id: str
    kind: str
    path: str
    retired: bool = False


@dataclass(frozen=True)
class PersonFacts:
    """A registered, non-voided person; their household places them in the tree if known."""

    id: str
    household_id: str | None = None
    household_path: str | None = None


# -- commands ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class RegisterParty:
    party_id: str
    kind: PartyKind
    name: str
    role: str
    node_id: str | None
    sub: str | None
    node: NodeFacts | None  # the party's node, looked up by the handler
    phone_masked: str | None = None


@dataclass(frozen=True)
class DefineTemplate:
    template_id: str
    name: str
    tiers: tuple[ChainTier, ...]


@dataclass(frozen=True)
class StartInstance:
    instance_id: str
    template_id: str
    root_node_id: str
    valid_from: date
    valid_to: date | None
    template: ChainTemplate | None  # looked up by the handler
    root: NodeFacts | None


@dataclass(frozen=True)
class EndPeriod:
    """Ends an instance or an assignment: `valid_to` is its last valid day."""

    valid_to: date
    reason: str


@dataclass(frozen=True)
class AssignParty:
    assignment_id: str
    instance_id: str
    level: int
    party_id: str
    target_type: CoverKind
    target_id: str
    valid_from: date
    valid_to: date | None


@dataclass(frozen=True)
class AssignmentFacts:
    """What an assignment decision needs, looked up by the handler."""

    instance: ChainInstance | None
    template: ChainTemplate | None
    root: NodeFacts | None
    party: Party | None
    target_node: NodeFacts | None = None
    target_person: PersonFacts | None = None
    others: Sequence[Assignment] = ()  # the party's assignments to the same target and tier


# -- built-in templates ------------------------------------------------------------------------


def _tier(level: int, name: str, role: str, *kinds: str) -> ChainTier:
    if not kinds:
        return ChainTier(level=level, name=name, party_role=role, covers="person")
    return ChainTier(level=level, name=name, party_role=role, node_kinds=list(kinds))


BAOBAO_4 = DefineTemplate(
    "baobao-4",
    "四级包保",  # 普阳街道
    (
        _tier(1, "区级包街道", "district_leader", "street", "township"),
        _tier(2, "班子和部门包社区", "street_cadre", "community", "village"),
        _tier(3, "科室包小区", "section", "compound"),
        _tier(4, "社区包楼栋", "community", "building"),
    ),
)
BAOBAO_6 = DefineTemplate(
    "baobao-6",
    "六级包保",  # 官仓街道
    (
        _tier(1, "领导包片", "leader", "area"),
        _tier(2, "驻村干部包村", "resident_cadre", "village"),
        _tier(3, "派出所包段", "police_station", "segment"),
        _tier(4, "村包组", "village", "villager_group"),
        _tier(5, "组包户", "group", "household"),
        _tier(6, "医护人员包人", "medic"),
    ),
)
BUILTIN_TEMPLATES: tuple[DefineTemplate, ...] = (BAOBAO_4, BAOBAO_6)


# -- decisions ---------------------------------------------------------------------------------


def decide_register_party(state: Party | None, cmd: RegisterParty) -> list[EventPayload]:
    if state is not None:
        same = (state.kind, state.name, state.role, state.node_id, state.sub, state.phone_masked)
        if same == (cmd.kind, cmd.name, cmd.role, cmd.node_id, cmd.sub, cmd.phone_masked):
            return []
        raise _exists("party", cmd.party_id)
    _check_id(cmd.party_id)
    _require_text(name=cmd.name, role=cmd.role)
    if cmd.node_id is not None:
        _check_node(cmd.node_id, cmd.node, "node_id")
    return [
        PartyRegistered(
            party_id=cmd.party_id,
            kind=cmd.kind,
            name=cmd.name,
            role=cmd.role,
            node_id=cmd.node_id,
            sub=cmd.sub,
            phone_masked=cmd.phone_masked,
        )
    ]


def decide_define_template(
    state: ChainTemplate | None, cmd: DefineTemplate, kinds: tuple[str, ...] | None
) -> list[EventPayload]:
    """`kinds` are the configured node kinds a tier may name (None: do not check)."""
    tiers = tuple(sorted(cmd.tiers, key=lambda t: t.level))
    if state is not None:
        if (state.name, state.tiers) == (cmd.name, tiers):
            return []
        raise _exists("chain template", cmd.template_id)
    _check_id(cmd.template_id)
    _require_text(name=cmd.name)
    _check_tiers(tiers, kinds)
    return [ChainTemplateDefined(template_id=cmd.template_id, name=cmd.name, tiers=list(tiers))]


def _check_tiers(tiers: tuple[ChainTier, ...], kinds: tuple[str, ...] | None) -> None:
    if not tiers:
        raise DomainError("empty-chain", "a chain needs at least one tier", field="tiers")
    if [t.level for t in tiers] != list(range(1, len(tiers) + 1)):
        raise DomainError(
            "tier-levels",
            f"tier levels must be 1..{len(tiers)}, each once",
            field="tiers",
        )
    for t in tiers:
        if not t.name.strip() or not t.party_role.strip():
            raise DomainError(
                "blank-tier", f"tier {t.level} needs a name and a party_role", field="tiers"
            )
        if t.covers == "node" and not t.node_kinds:
            raise DomainError(
                "tier-without-kinds",
                f"tier {t.level} covers nodes: name their kinds",
                field="tiers",
            )
        if t.covers == "person" and t.node_kinds:
            raise DomainError(
                "person-tier-with-kinds",
                f"tier {t.level} covers persons: node_kinds must be empty",
                field="tiers",
            )
        unknown = sorted(set(t.node_kinds) - set(kinds)) if kinds is not None else []
        if unknown:
            raise DomainError(
                "unknown-kind",
                f"tier {t.level}: unknown node kinds {', '.join(unknown)}",
                field="tiers",
            )


def decide_start_instance(state: ChainInstance | None, cmd: StartInstance) -> list[EventPayload]:
    if state is not None:
        started = (state.template_id, state.root_node_id, state.valid_from, state.planned_to)
        if started == (cmd.template_id, cmd.root_node_id, cmd.valid_from, cmd.valid_to):
            return []
        raise _exists("chain instance", cmd.instance_id)
    _check_id(cmd.instance_id)
    if cmd.template is None:
        raise DomainError(
            "unknown-template",
            f"chain template {cmd.template_id} does not exist",
            field="template_id",
        )
    _check_node(cmd.root_node_id, cmd.root, "root_node_id")
    _check_period(cmd.valid_from, cmd.valid_to)
    return [
        ChainInstanceStarted(
            instance_id=cmd.instance_id,
            template_id=cmd.template_id,
            root_node_id=cmd.root_node_id,
            valid_from=cmd.valid_from,
            valid_to=cmd.valid_to,
        )
    ]


def decide_end_instance(state: ChainInstance | None, cmd: EndPeriod) -> list[EventPayload]:
    if state is None:
        raise DomainError(
            "unknown-instance", "chain instance does not exist", refusal=Refusal.NOT_FOUND
        )
    if _already_ended(state.ended, state.valid_to, cmd):
        return []
    _check_end(state.valid_from, state.planned_to, cmd)
    return [ChainInstanceEnded(instance_id=state.id, valid_to=cmd.valid_to, reason=cmd.reason)]


def decide_assign(
    state: Assignment | None, cmd: AssignParty, facts: AssignmentFacts
) -> list[EventPayload]:
    """Bind a party to a target at a tier. The same binding under another id is the same fact
    recorded twice (nothing new); another overlapping binding of the pair is a conflict."""
    if state is not None:
        if _binding(state) == _binding_of(cmd):
            return []
        raise _exists("assignment", cmd.assignment_id)
    _check_id(cmd.assignment_id)
    _check_period(cmd.valid_from, cmd.valid_to)
    instance = facts.instance
    if instance is None:
        raise DomainError(
            "unknown-instance",
            f"chain instance {cmd.instance_id} does not exist",
            field="instance_id",
        )
    if not instance.active_on(cmd.valid_from):
        raise DomainError(
            "outside-instance-period",
            f"chain instance {instance.id} is not active on {cmd.valid_from}",
            field="valid_from",
        )
    tier = facts.template.tier(cmd.level) if facts.template is not None else None
    if tier is None:
        raise DomainError(
            "unknown-level", f"the chain has no tier at level {cmd.level}", field="level"
        )
    if facts.party is None:
        raise DomainError("unknown-party", f"party {cmd.party_id} does not exist", field="party_id")
    if cmd.target_type != tier.covers:
        raise DomainError(
            "wrong-target-type",
            f"tier {tier.level} ({tier.name}) covers {tier.covers}s",
            field="target_type",
        )
    root_path = facts.root.path if facts.root is not None else None
    if tier.covers == "node":
        _check_node_target(cmd.target_id, facts.target_node, tier, root_path)
    else:
        _check_person_target(cmd.target_id, facts.target_person, root_path)
    if duplicate_of(cmd, facts.others) is not None:
        return []
    for other in facts.others:
        if _same_pair(other, cmd) and _overlap(other.valid_from, other.valid_to, cmd):
            raise DomainError(
                "overlapping-assignment",
                f"party {cmd.party_id} already answers for {cmd.target_id} at tier {cmd.level}"
                f" from {other.valid_from} (assignment {other.id})",
                refusal=Refusal.CONFLICT,
                field="valid_from",
            )
    return [
        PartyAssigned(
            assignment_id=cmd.assignment_id,
            instance_id=cmd.instance_id,
            level=cmd.level,
            party_id=cmd.party_id,
            target_type=cmd.target_type,
            target_id=cmd.target_id,
            valid_from=cmd.valid_from,
            valid_to=cmd.valid_to,
        )
    ]


def duplicate_of(cmd: AssignParty, others: Sequence[Assignment]) -> Assignment | None:
    """The assignment recording this very binding under another id, if any."""
    return next(
        (o for o in others if o.id != cmd.assignment_id and _binding(o) == _binding_of(cmd)),
        None,
    )


def decide_end_assignment(state: Assignment | None, cmd: EndPeriod) -> list[EventPayload]:
    if state is None:
        raise DomainError(
            "unknown-assignment", "assignment does not exist", refusal=Refusal.NOT_FOUND
        )
    if _already_ended(state.ended, state.valid_to, cmd):
        return []
    _check_end(state.valid_from, state.planned_to, cmd)
    return [AssignmentEnded(assignment_id=state.id, valid_to=cmd.valid_to, reason=cmd.reason)]


# -- rules -------------------------------------------------------------------------------------


def inside(path: str, root_path: str) -> bool:
    """Is `path` the root itself or below it (ltree `<@`)?"""
    return path == root_path or path.startswith(root_path + ".")


def _check_node_target(
    target_id: str, node: NodeFacts | None, tier: ChainTier, root_path: str | None
) -> None:
    node = _check_node(target_id, node, "target_id")
    if root_path is None or not inside(node.path, root_path):
        raise DomainError(
            "target-outside-root",
            f"node {target_id} is outside the chain instance's root",
            field="target_id",
        )
    if node.kind not in tier.node_kinds:
        raise DomainError(
            "wrong-kind-for-tier",
            f"tier {tier.level} ({tier.name}) covers {', '.join(tier.node_kinds)}, not {node.kind}",
            field="target_id",
        )


def _check_person_target(target_id: str, person: PersonFacts | None, root_path: str | None) -> None:
    if person is None:
        raise DomainError(
            "unknown-person", f"person {target_id} is not registered", field="target_id"
        )
    if person.household_path is not None and (
        root_path is None or not inside(person.household_path, root_path)
    ):
        raise DomainError(
            "target-outside-root",
            f"person {target_id} lives outside the chain instance's root",
            field="target_id",
        )


def _check_node(node_id: str, node: NodeFacts | None, field: str) -> NodeFacts:
    if node is None:
        raise DomainError("unknown-node", f"node {node_id} does not exist", field=field)
    if node.retired:
        raise DomainError("node-retired", f"node {node_id} is retired", field=field)
    return node


def _check_id(value: str) -> None:
    if not NODE_ID.match(value):
        raise DomainError("invalid-id", "id must be 1-63 letters, digits or dashes", field="id")


def _require_text(**values: str) -> None:
    for field, value in values.items():
        if not value.strip():
            raise DomainError("blank", f"{field} must not be blank", field=field)


def _check_period(valid_from: date, valid_to: date | None) -> None:
    if valid_to is not None and valid_to < valid_from:
        raise DomainError(
            "invalid-period", f"valid_to {valid_to} is before valid_from", field="valid_to"
        )


def _already_ended(ended: bool, valid_to: date | None, cmd: EndPeriod) -> bool:
    """Ending again on the same day changes nothing; on another day it is a conflict."""
    if not ended:
        return False
    if valid_to == cmd.valid_to:
        return True
    raise DomainError(
        "already-ended", f"already ended on {valid_to}", refusal=Refusal.CONFLICT, field="valid_to"
    )


def _check_end(valid_from: date, planned_to: date | None, cmd: EndPeriod) -> None:
    if cmd.valid_to < valid_from:
        raise DomainError(
            "end-before-start", f"cannot end before it started ({valid_from})", field="valid_to"
        )
    if planned_to is not None and cmd.valid_to > planned_to:
        raise DomainError(
            "end-after-planned-end",
            f"ending can only shorten the period, which ends on {planned_to}",
            field="valid_to",
        )
    _require_text(reason=cmd.reason)


def _within(day: date, valid_from: date, valid_to: date | None) -> bool:
    return valid_from <= day and (valid_to is None or day <= valid_to)


def _overlap(valid_from: date, valid_to: date | None, cmd: AssignParty) -> bool:
    return (cmd.valid_to is None or valid_from <= cmd.valid_to) and (
        valid_to is None or cmd.valid_from <= valid_to
    )


def _same_pair(other: Assignment, cmd: AssignParty) -> bool:
    return (other.instance_id, other.level, other.party_id, other.target_type, other.target_id) == (
        cmd.instance_id,
        cmd.level,
        cmd.party_id,
        cmd.target_type,
        cmd.target_id,
    )


Binding = tuple[str, int, str, str, str, date, date | None]


def _binding(a: Assignment) -> Binding:
    return (
        a.instance_id,
        a.level,
        a.party_id,
        a.target_type,
        a.target_id,
        a.valid_from,
        a.planned_to,
    )


def _binding_of(c: AssignParty) -> Binding:
    return (
        c.instance_id,
        c.level,
        c.party_id,
        c.target_type,
        c.target_id,
        c.valid_from,
        c.valid_to,
    )


def _exists(what: str, ident: str) -> DomainError:
    return DomainError(
        f"{what.replace(' ', '-')}-exists",
        f"{what} {ident} already exists with other content",
        refusal=Refusal.CONFLICT,
        field="id",
    )


# -- evolution ---------------------------------------------------------------------------------

Ended = TypeVar("Ended", ChainInstance, Assignment)


def evolve_party(state: Party | None, event: EventPayload, version: int) -> Party | None:
    match event:
        case PartyRegistered():
            return Party(
                event.party_id,
                event.kind,
                event.name,
                event.role,
                event.node_id,
                event.sub,
                version,
                event.phone_masked,
            )
    return state


def evolve_template(
    state: ChainTemplate | None, event: EventPayload, version: int
) -> ChainTemplate | None:
    match event:
        case ChainTemplateDefined():
            return ChainTemplate(event.template_id, event.name, tuple(event.tiers), version)
    return state


def evolve_instance(
    state: ChainInstance | None, event: EventPayload, version: int
) -> ChainInstance | None:
    match event:
        case ChainInstanceStarted():
            return ChainInstance(
                event.instance_id,
                event.template_id,
                event.root_node_id,
                event.valid_from,
                event.valid_to,
                event.valid_to,
                False,
                None,
                version,
            )
        case ChainInstanceEnded() if state is not None:
            return _ended(state, event.valid_to, event.reason, version)
    return state


def evolve_assignment(
    state: Assignment | None, event: EventPayload, version: int
) -> Assignment | None:
    match event:
        case PartyAssigned():
            return Assignment(
                event.assignment_id,
                event.instance_id,
                event.level,
                event.party_id,
                event.target_type,
                event.target_id,
                event.valid_from,
                event.valid_to,
                event.valid_to,
                False,
                None,
                version,
            )
        case AssignmentEnded() if state is not None:
            return _ended(state, event.valid_to, event.reason, version)
    return state


def _ended(state: Ended, valid_to: date, reason: str, version: int) -> Ended:
    return replace(state, valid_to=valid_to, ended=True, end_reason=reason, version=version)
