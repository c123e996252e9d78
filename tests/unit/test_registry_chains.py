"""Responsible parties and chains (包保), as given / when / then.

The place tree in these tests: 普阳 district → 普阳街道 → 一社区 → 阳光小区 → 3号楼, and a
second district outside it. The 六级 chain runs on 官仓街道 down to a household and a person.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import pytest

from services.registry.config import DEFAULT_NODE_KINDS
from services.registry.domain.chains import (
    BAOBAO_4,
    BAOBAO_6,
    BUILTIN_TEMPLATES,
    Assignment,
    AssignmentFacts,
    AssignParty,
    ChainInstance,
    ChainTemplate,
    DefineTemplate,
    EndPeriod,
    NodeFacts,
    Party,
    PersonFacts,
    RegisterParty,
    StartInstance,
    decide_assign,
    decide_define_template,
    decide_end_assignment,
    decide_end_instance,
    decide_register_party,
    decide_start_instance,
    duplicate_of,
    evolve_assignment,
    evolve_instance,
    evolve_party,
    evolve_template,
)
from shared.contracts import EventPayload
from shared.contracts.registry import (
    AssignmentEnded,
    ChainInstanceEnded,
    ChainInstanceStarted,
    ChainTemplateDefined,
    ChainTier,
    PartyAssigned,
    PartyRegistered,
)
from shared.errors import DomainError, Refusal

D1, D2, D3 = date(2020, 1, 27), date(2020, 2, 10), date(2020, 3, 31)

DISTRICT = NodeFacts("puyang", "district", "puyang")
STREET = NodeFacts("puyang-st", "street", "puyang.puyang_st")
COMMUNITY = NodeFacts("c-1", "community", "puyang.puyang_st.c_1")
COMPOUND = NodeFacts("yangguang", "compound", "puyang.puyang_st.c_1.yangguang")
BUILDING = NodeFacts("b-3", "building", "puyang.puyang_st.c_1.yangguang.b_3")
ELSEWHERE = NodeFacts("b-9", "building", "other.st.c.b_9")
GUANCANG = NodeFacts("guancang", "street", "jt.guancang")


def template(cmd: DefineTemplate) -> ChainTemplate:
    [event] = decide_define_template(None, cmd, DEFAULT_NODE_KINDS)
    state = evolve_template(None, event, 1)
    assert state is not None
    return state


def instance(root: NodeFacts = DISTRICT, template_id: str = "baobao-4") -> ChainInstance:
    return ChainInstance("puyang-2020", template_id, root.id, D1, None, None, False, None, 1)


def party(party_id: str = "p-community", role: str = "community") -> Party:
    return Party(party_id, "unit", "一社区居委会", role, "c-1", None, 1)


def assign(
    assignment_id: str = "a-1",
    level: int = 4,
    party_id: str = "p-community",
    target_id: str = "b-3",
    target_type: str = "node",
    valid_from: date = D1,
    valid_to: date | None = None,
) -> AssignParty:
    return AssignParty(
        assignment_id,
        "puyang-2020",
        level,
        party_id,
        target_type,  # type: ignore[arg-type]
        target_id,
        valid_from,
        valid_to,
    )


def facts(
    target: NodeFacts | None = BUILDING,
    *,
    chain: DefineTemplate = BAOBAO_4,
    root: NodeFacts = DISTRICT,
    the_party: Party | None = None,
    person: PersonFacts | None = None,
    others: tuple[Assignment, ...] = (),
    the_instance: ChainInstance | None = None,
) -> AssignmentFacts:
    return AssignmentFacts(
        instance=the_instance or instance(root, chain.template_id),
        template=template(chain),
        root=root,
        party=the_party or party(),
        target_node=target,
        target_person=person,
        others=others,
    )


def assigned(cmd: AssignParty, version: int = 1) -> Assignment:
    [event] = decide_assign(None, cmd, facts())
    state = evolve_assignment(None, event, version)
    assert state is not None
    return state


def refused(call: object, *args: object) -> DomainError:
    with pytest.raises(DomainError) as info:
        call(*args)  # type: ignore[operator]
    return info.value


# -- templates ---------------------------------------------------------------------------------


def test_the_builtin_chains_are_the_four_and_six_level_ones_of_the_seeds() -> None:
    assert [(t.template_id, t.name, len(t.tiers)) for t in BUILTIN_TEMPLATES] == [
        ("baobao-4", "四级包保", 4),
        ("baobao-6", "六级包保", 6),
    ]
    assert [t.name for t in BAOBAO_4.tiers] == [
        "区级包街道",
        "班子和部门包社区",
        "科室包小区",
        "社区包楼栋",
    ]
    medics = BAOBAO_6.tiers[-1]
    assert (medics.name, medics.party_role, medics.covers, medics.node_kinds) == (
        "医护人员包人",
        "medic",
        "person",
        [],
    )


@pytest.mark.parametrize("cmd", BUILTIN_TEMPLATES, ids=lambda c: c.template_id)
def test_the_builtin_chains_pass_the_rules_with_the_default_kinds(cmd: DefineTemplate) -> None:
    [event] = decide_define_template(None, cmd, DEFAULT_NODE_KINDS)
    assert isinstance(event, ChainTemplateDefined) and event.tiers == list(cmd.tiers)


def test_tiers_are_stored_top_down_whatever_order_they_came_in() -> None:
    shuffled = DefineTemplate("x", "x", tuple(reversed(BAOBAO_4.tiers)))
    [event] = decide_define_template(None, shuffled, DEFAULT_NODE_KINDS)
    assert isinstance(event, ChainTemplateDefined)
    assert [t.level for t in event.tiers] == [1, 2, 3, 4]


def test_defining_the_same_template_again_changes_nothing_and_another_is_a_conflict() -> None:
    existing = template(BAOBAO_4)
    assert decide_define_template(existing, BAOBAO_4, DEFAULT_NODE_KINDS) == []
    other = replace(BAOBAO_4, name="别的")
    error = refused(decide_define_template, existing, other, DEFAULT_NODE_KINDS)
    assert error.refusal is Refusal.CONFLICT


def tier(level: int, covers: str = "node", *kinds: str) -> ChainTier:
    return ChainTier(
        level=level,
        name=f"t{level}",
        party_role="r",
        covers=covers,
        node_kinds=list(kinds),
    )


@pytest.mark.parametrize(
    ("tiers", "code"),
    [
        ((), "empty-chain"),
        ((tier(1, "node", "street"), tier(3, "node", "compound")), "tier-levels"),
        ((tier(1, "node", "street"), tier(1, "node", "compound")), "tier-levels"),
        ((tier(2, "node", "street"),), "tier-levels"),
        ((tier(1, "node"),), "tier-without-kinds"),
        ((tier(1, "person", "household"),), "person-tier-with-kinds"),
        ((tier(1, "node", "planet"),), "unknown-kind"),
    ],
    ids=["no tiers", "gap", "twice", "not from 1", "no kinds", "person kinds", "unknown kind"],
)
def test_malformed_chains_are_refused_naming_the_tiers(
    tiers: tuple[ChainTier, ...], code: str
) -> None:
    error = refused(
        decide_define_template, None, DefineTemplate("x", "x", tiers), DEFAULT_NODE_KINDS
    )
    assert (error.code, error.field, error.refusal) == (code, "tiers", Refusal.INVALID)


# -- parties -----------------------------------------------------------------------------------


def register(node: NodeFacts | None = COMMUNITY, node_id: str | None = "c-1") -> RegisterParty:
    return RegisterParty("p-community", "unit", "一社区居委会", "community", node_id, None, node)


def test_a_party_is_registered_where_it_belongs() -> None:
    [event] = decide_register_party(None, register())
    assert event == PartyRegistered(
        party_id="p-community", kind="unit", name="一社区居委会", role="community", node_id="c-1"
    )
    assert evolve_party(None, event, 1) == party()


@pytest.mark.parametrize(
    ("given", "cmd", "code", "field"),
    [
        (None, register(node=None), "unknown-node", "node_id"),
        (None, register(node=replace(COMMUNITY, retired=True)), "node-retired", "node_id"),
        (None, replace(register(), name=" "), "blank", "name"),
        (party(), replace(register(), role="section"), "party-exists", "id"),
    ],
    ids=["unknown node", "retired node", "blank name", "id reused"],
)
def test_bad_parties_are_refused(
    given: Party | None, cmd: RegisterParty, code: str, field: str
) -> None:
    error = refused(decide_register_party, given, cmd)
    assert (error.code, error.field) == (code, field)


def test_registering_the_same_party_again_changes_nothing() -> None:
    assert decide_register_party(party(), register()) == []


# -- instances ---------------------------------------------------------------------------------


def start(
    template_: ChainTemplate | None = None,
    root: NodeFacts | None = DISTRICT,
    valid_to: date | None = None,
) -> StartInstance:
    return StartInstance(
        "puyang-2020",
        "baobao-4",
        "puyang",
        D1,
        valid_to,
        template_ or template(BAOBAO_4),
        root,
    )


def test_a_chain_starts_on_its_root() -> None:
    [event] = decide_start_instance(None, start())
    assert event == ChainInstanceStarted(
        instance_id="puyang-2020", template_id="baobao-4", root_node_id="puyang", valid_from=D1
    )
    assert evolve_instance(None, event, 1) == instance()


@pytest.mark.parametrize(
    ("cmd", "code", "field"),
    [
        (replace(start(), template=None), "unknown-template", "template_id"),
        (start(root=None), "unknown-node", "root_node_id"),
        (start(valid_to=date(2020, 1, 1)), "invalid-period", "valid_to"),
    ],
)
def test_bad_instances_are_refused(cmd: StartInstance, code: str, field: str) -> None:
    error = refused(decide_start_instance, None, cmd)
    assert (error.code, error.field, error.refusal) == (code, field, Refusal.INVALID)


def test_starting_the_same_instance_again_changes_nothing() -> None:
    assert decide_start_instance(instance(), start()) == []
    assert refused(decide_start_instance, instance(), start(valid_to=D3)).refusal is (
        Refusal.CONFLICT
    )


def test_ending_a_chain_twice_on_the_same_day_is_one_ending() -> None:
    [event] = decide_end_instance(instance(), EndPeriod(D3, "疫情解除"))
    assert event == ChainInstanceEnded(instance_id="puyang-2020", valid_to=D3, reason="疫情解除")
    ended = evolve_instance(instance(), event, 2)
    assert ended is not None and (ended.ended, ended.valid_to, ended.version) == (True, D3, 2)
    assert decide_end_instance(ended, EndPeriod(D3, "重复提交")) == []
    assert refused(decide_end_instance, ended, EndPeriod(D2, "x")).refusal is Refusal.CONFLICT


@pytest.mark.parametrize(
    ("given", "end", "code"),
    [
        (None, EndPeriod(D3, "x"), "unknown-instance"),
        (instance(), EndPeriod(date(2020, 1, 1), "x"), "end-before-start"),
        (
            replace(instance(), planned_to=D2, valid_to=D2),
            EndPeriod(D3, "x"),
            "end-after-planned-end",
        ),
    ],
)
def test_bad_endings_of_a_chain_are_refused(
    given: ChainInstance | None, end: EndPeriod, code: str
) -> None:
    assert refused(decide_end_instance, given, end).code == code


# -- assignments -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("level", "target", "role"),
    [
        (1, STREET, "district_leader"),  # 区级包街道
        (2, COMMUNITY, "street_cadre"),  # 班子和部门包社区
        (3, COMPOUND, "section"),  # 科室包小区
        (4, BUILDING, "community"),  # 社区包楼栋
    ],
)
def test_each_tier_of_the_four_level_chain_covers_its_kind_of_place(
    level: int, target: NodeFacts, role: str
) -> None:
    cmd = assign(level=level, party_id=f"p-{role}", target_id=target.id)
    given = facts(target, the_party=party(f"p-{role}", role))
    assert decide_assign(None, cmd, given) == [
        PartyAssigned(
            assignment_id="a-1",
            instance_id="puyang-2020",
            level=level,
            party_id=f"p-{role}",
            target_type="node",
            target_id=target.id,
            valid_from=D1,
        )
    ]


def test_several_parties_may_cover_one_building() -> None:
    """多对一: the community and a second party both answer for 3号楼 at tier 4."""
    first = assigned(assign("a-1", party_id="p-community"))
    second = assign("a-2", party_id="p-volunteers")
    given = facts(the_party=party("p-volunteers"), others=(first,))
    [event] = decide_assign(None, second, given)
    assert isinstance(event, PartyAssigned) and event.party_id == "p-volunteers"
    assert first.target_id == event.target_id == "b-3" and first.level == event.level


def test_the_same_binding_under_another_id_is_the_same_fact() -> None:
    first = assigned(assign("a-1"))
    again = assign("a-2")
    assert decide_assign(None, again, facts(others=(first,))) == []
    assert duplicate_of(again, (first,)) == first


def test_retrying_an_assignment_with_its_id_changes_nothing() -> None:
    first = assigned(assign("a-1"))
    assert decide_assign(first, assign("a-1"), facts()) == []
    error = refused(decide_assign, first, assign("a-1", level=3, target_id="yangguang"), facts())
    assert (error.code, error.refusal) == ("assignment-exists", Refusal.CONFLICT)


@pytest.mark.parametrize(
    ("existing", "new", "conflict"),
    [
        ((D1, None), (D2, None), True),
        ((D1, D2), (D2, D3), True),
        ((D1, D2), (date(2020, 2, 11), None), False),
        ((D2, D3), (D1, date(2020, 2, 9)), False),
    ],
    ids=["open overlaps later", "shared day", "after the end", "before the start"],
)
def test_the_same_party_on_the_same_target_and_tier_may_not_overlap(
    existing: tuple[date, date | None], new: tuple[date, date | None], conflict: bool
) -> None:
    first = assigned(assign("a-1", valid_from=existing[0], valid_to=existing[1]))
    cmd = assign("a-2", valid_from=new[0], valid_to=new[1])
    if conflict:
        error = refused(decide_assign, None, cmd, facts(others=(first,)))
        assert (error.code, error.refusal) == ("overlapping-assignment", Refusal.CONFLICT)
    else:
        assert len(decide_assign(None, cmd, facts(others=(first,)))) == 1


def test_an_ended_assignment_no_longer_overlaps_after_its_end() -> None:
    first = assigned(assign("a-1"))
    [ended] = decide_end_assignment(first, EndPeriod(D2, "调岗"))
    first = evolve_assignment(first, ended, 2)  # type: ignore[assignment]
    later = assign("a-2", valid_from=date(2020, 2, 11))
    assert len(decide_assign(None, later, facts(others=(first,)))) == 1


@pytest.mark.parametrize(
    ("cmd", "given", "code", "field"),
    [
        (assign(), replace(facts(), instance=None), "unknown-instance", "instance_id"),
        (assign(valid_from=date(2020, 1, 1)), facts(), "outside-instance-period", "valid_from"),
        (
            assign(valid_from=D3),
            facts(the_instance=replace(instance(), valid_to=D2, ended=True)),
            "outside-instance-period",
            "valid_from",
        ),
        (assign(valid_to=date(2020, 1, 1)), facts(), "invalid-period", "valid_to"),
        (assign(level=5), facts(), "unknown-level", "level"),
        (assign(), replace(facts(), party=None), "unknown-party", "party_id"),
        (assign(target_type="person"), facts(), "wrong-target-type", "target_type"),
        (assign(), facts(None), "unknown-node", "target_id"),
        (assign(target_id="c-1"), facts(COMMUNITY), "wrong-kind-for-tier", "target_id"),
        (assign(target_id="b-9"), facts(ELSEWHERE), "target-outside-root", "target_id"),
        (
            assign(target_id="b-3"),
            facts(BUILDING, root=GUANCANG, the_instance=instance(GUANCANG)),
            "target-outside-root",
            "target_id",
        ),
        (assign(), facts(replace(BUILDING, retired=True)), "node-retired", "target_id"),
    ],
    ids=[
        "instance missing",
        "before the chain",
        "after the chain ended",
        "ends before it starts",
        "level missing",
        "party missing",
        "person at a node tier",
        "target missing",
        "wrong kind for tier",
        "outside the root",
        "root elsewhere",
        "retired target",
    ],
)
def test_bad_assignments_are_refused_naming_the_field(
    cmd: AssignParty, given: AssignmentFacts, code: str, field: str
) -> None:
    error = refused(decide_assign, None, cmd, given)
    assert (error.code, error.field, error.refusal) == (code, field, Refusal.INVALID)


def test_the_root_itself_is_inside_its_chain() -> None:
    """baobao-4's tier 1 covers a street: a chain rooted at that street may cover it."""
    cmd = assign(level=1, party_id="p-leader", target_id="puyang-st")
    given = facts(STREET, root=STREET, the_instance=instance(STREET))
    assert len(decide_assign(None, cmd, given)) == 1


def test_a_sibling_with_a_longer_label_is_not_inside() -> None:
    sibling = NodeFacts("b-33", "building", "puyang.puyang_st.c_1.yangguang.b_3x")
    cmd = assign(target_id="b-33")
    given = facts(sibling, root=replace(BUILDING, kind="compound"))
    assert refused(decide_assign, None, cmd, given).code == "target-outside-root"


# -- the six-level chain down to persons (医护人员包人) --------------------------------------


def person_assign(person: str = "per-1") -> AssignParty:
    return assign(level=6, party_id="p-medic", target_id=person, target_type="person")


def six(person: PersonFacts | None) -> AssignmentFacts:
    return facts(
        None,
        chain=BAOBAO_6,
        root=GUANCANG,
        the_party=party("p-medic", "medic"),
        person=person,
        the_instance=instance(GUANCANG, "baobao-6"),
    )


def test_a_medic_covers_a_registered_person() -> None:
    person = PersonFacts("per-1", "hh-1", "jt.guancang.v.g.hh_1")
    [event] = decide_assign(None, person_assign(), six(person))
    assert isinstance(event, PartyAssigned)
    assert (event.target_type, event.target_id, event.level) == ("person", "per-1", 6)


def test_several_medics_may_answer_for_one_person() -> None:
    """多对一 at the person tier: another medic for the same person is another binding."""
    person = PersonFacts("per-1", "hh-1", "jt.guancang.v.g.hh_1")
    [first] = decide_assign(None, person_assign(), six(person))
    other = replace(person_assign(), assignment_id="a-2", party_id="p-medic-2")
    given = replace(six(person), party=party("p-medic-2", "medic"))
    assert len(decide_assign(None, other, given)) == 1


@pytest.mark.parametrize(
    ("person", "cmd", "code", "field"),
    [
        (None, person_assign(), "unknown-person", "target_id"),
        (
            PersonFacts("per-1", "hh-9", "elsewhere.hh_9"),
            person_assign(),
            "target-outside-root",
            "target_id",
        ),
        (
            PersonFacts("per-1"),
            replace(person_assign(), target_type="node"),
            "wrong-target-type",
            "target_type",
        ),
    ],
    ids=["not registered or voided", "lives outside the root", "node at the person tier"],
)
def test_bad_person_assignments_are_refused(
    person: PersonFacts | None, cmd: AssignParty, code: str, field: str
) -> None:
    error = refused(decide_assign, None, cmd, six(person))
    assert (error.code, error.field) == (code, field)


def test_a_household_is_covered_at_the_group_tier_not_the_person_tier() -> None:
    household = NodeFacts("hh-1", "household", "jt.guancang.v.g.hh_1")
    cmd = assign(level=5, party_id="p-group", target_id="hh-1")
    given = replace(six(None), target_node=household, party=party("p-group", "group"))
    assert len(decide_assign(None, cmd, given)) == 1


# -- ending assignments ------------------------------------------------------------------------


def test_ending_an_assignment_twice_on_the_same_day_is_one_ending() -> None:
    first = assigned(assign())
    [event] = decide_end_assignment(first, EndPeriod(D2, "调岗"))
    assert event == AssignmentEnded(assignment_id="a-1", valid_to=D2, reason="调岗")
    ended = evolve_assignment(first, event, 2)
    assert ended is not None and (ended.valid_to, ended.planned_to, ended.ended) == (D2, None, True)
    assert decide_end_assignment(ended, EndPeriod(D2, "重复")) == []
    error = refused(decide_end_assignment, ended, EndPeriod(D3, "x"))
    assert (error.code, error.refusal) == ("already-ended", Refusal.CONFLICT)


@pytest.mark.parametrize(
    ("given", "end", "code", "refusal"),
    [
        (None, EndPeriod(D2, "x"), "unknown-assignment", Refusal.NOT_FOUND),
        (assigned(assign(valid_from=D2)), EndPeriod(D1, "x"), "end-before-start", Refusal.INVALID),
        (
            assigned(assign(valid_to=D2)),
            EndPeriod(D3, "x"),
            "end-after-planned-end",
            Refusal.INVALID,
        ),
        (assigned(assign()), EndPeriod(D2, " "), "blank", Refusal.INVALID),
    ],
)
def test_bad_endings_of_an_assignment_are_refused(
    given: Assignment | None, end: EndPeriod, code: str, refusal: Refusal
) -> None:
    error = refused(decide_end_assignment, given, end)
    assert (error.code, error.refusal) == (code, refusal)


def test_a_one_day_assignment_ends_on_its_first_day() -> None:
    assert len(decide_end_assignment(assigned(assign()), EndPeriod(D1, "临时"))) == 1


def test_every_decision_returns_contract_payloads() -> None:
    events: list[EventPayload] = [
        *decide_define_template(None, BAOBAO_6, DEFAULT_NODE_KINDS),
        *decide_register_party(None, register()),
        *decide_start_instance(None, start()),
        *decide_assign(None, assign(), facts()),
    ]
    for event in events:
        assert type(event).model_validate(event.model_dump(mode="json")) == event
