"""The chaos suite's own arithmetic, without servers: what counts as a re-publication, as two
holders publishing one position, as a fenced holder's record, and which figures the ledger
expects where. (Not marked `chaos`: it runs with the unit tests.)"""

from __future__ import annotations

from datetime import date

from tests.chaos.checks import Record, publication
from tests.chaos.load import Ledger, comparable_flows, comparable_stocks, national_id
from tests.chaos.runner import minus

STORED = {"e1": ("100", 1), "e2": ("100", 2), "e3": ("101", 3)}


def rec(offset: int, event: str, epoch: int | None, partition: int = 0) -> Record:
    tx, pos = STORED.get(event, ("0", 0))
    position = f"{tx}:{pos}" if epoch is not None else None
    return Record("t.events", partition, offset, event, epoch, position, 0.0)


def test_one_record_per_event_under_rising_epochs_is_clean() -> None:
    out = publication([rec(0, "e1", 1), rec(1, "e2", 1), rec(3, "e3", 2)], STORED)
    assert out["republications"] == out["missing_from_kafka"] == 0
    assert out["positions_published_by_two_holders_count"] == out["zombie_records_count"] == 0
    assert out["records_without_relay_headers"] == 0 and out["header_position_mismatches"] == []
    assert out["epochs"] == [1, 2]


def test_a_new_holder_publishing_a_position_again_is_two_holders_not_a_zombie() -> None:
    out = publication([rec(0, "e1", 1), rec(1, "e2", 1), rec(2, "e2", 2), rec(3, "e3", 2)], STORED)
    assert out["republications"] == 1
    assert out["positions_published_by_two_holders_count"] == 1
    assert out["zombie_records_count"] == 0


def test_an_old_epoch_after_a_new_one_in_a_partition_is_a_zombie_record() -> None:
    records = [rec(0, "e1", 2), rec(1, "e2", 1), rec(0, "e3", 1, partition=1)]
    out = publication(records, STORED)
    assert out["zombie_records_count"] == 1
    assert out["zombie_records"][0].startswith("t.events[0]@1 epoch 1 after epoch 2")


def test_missing_events_headers_and_strangers_are_counted() -> None:
    stranger = Record("t.events", 0, 2, "e9", 1, "1:9", 0.0)
    wrong = Record("t.events", 0, 3, "e3", 1, "100:99", 0.0)
    out = publication([rec(0, "e1", None), stranger, wrong], STORED)
    assert out["missing_from_kafka"] == 1  # e2
    assert out["records_without_relay_headers"] == 1
    assert out["records_without_event_in_store"] == ["e9"]
    assert out["header_position_mismatches"] == ["e3: header 100:99, store 101:3"]


def test_republications_of_this_fault_count_only_its_records() -> None:
    records = [rec(0, "e1", 1), rec(1, "e1", 1), rec(2, "e2", 1), rec(3, "e2", 1)]
    assert publication(records, STORED, since=2)["republications_this_fault"] == 1
    assert publication(records, STORED)["republications"] == 2


def test_the_ledger_counts_flows_and_stocks_at_every_ancestor() -> None:
    ledger = Ledger(day0=date(2026, 12, 3))
    for node, parent, kind in [
        ("d", None, "district"),
        ("c", "d", "community"),
        ("b", "c", "building"),
    ]:
        ledger.parent[node], ledger.kind[node] = parent, kind
    ledger.households = {"h1": "b", "h2": "b"}
    ledger.persons = {"p1": ("h1", "resident"), "p2": ("h2", "temporary")}
    ledger.quarantined = {"p1": "home"}
    ledger.checkpoints = {"gate": "c"}
    ledger.visits = {"v1": ("h1", "door", "screened", True), "v2": ("h2", "phone", "absent", False)}
    ledger.readings = {"t1": ("p1", False), "t2": ("p1", True)}
    ledger.crossings = {"x1": ("gate", "admit"), "x2": ("gate", "refer")}
    flows, stocks = ledger.expected()["d"]
    assert dict(flows) == {
        "visits": 2,
        "visits.door": 1,
        "visits.phone": 1,
        "visits.outcome.screened": 1,
        "visits.outcome.absent": 1,
        "visits.signed": 1,
        "followups.done": 2,
        "followups.late": 1,
        "crossings": 2,
        "crossings.admit": 1,
        "crossings.refer": 1,
    }
    assert dict(stocks) == {
        "households": 2,
        "persons": 2,
        "persons.resident": 1,
        "persons.temporary": 1,
        "screened_households": 1,
        "under_quarantine": 1,
        "under_quarantine.home": 1,
    }
    b_flows, _ = ledger.expected()["b"]
    assert b_flows["crossings"] == 0 and b_flows["visits"] == 2  # the gate guards c, not b


def test_only_the_metrics_the_ledger_accounts_for_are_compared() -> None:
    assert comparable_flows({"visits": 2, "key_persons.flagged": 1, "followups.missed": 3}) == {
        "visits": 2
    }
    assert comparable_stocks({"persons": 3, "key_persons": 1, "vulnerable": 0}) == {"persons": 3}


def test_figures_of_a_window_are_differences_per_metric() -> None:
    from collections import Counter

    end = {"d": (Counter({"visits": 5}), Counter({"persons": 9}))}
    start = {"d": (Counter({"visits": 2}), Counter({"persons": 9, "households": 1}))}
    flows, stocks = minus(end, start)["d"]
    assert flows["visits"] == 3 and stocks["persons"] == 0 and stocks["households"] == -1


def test_national_ids_are_valid_and_distinct() -> None:
    from shared.identity import resident_id_check_digit

    ids = {national_id("110105", n) for n in range(5000)}
    assert len(ids) == 5000
    assert all(resident_id_check_digit(i[:17]) == i[17] for i in ids)
