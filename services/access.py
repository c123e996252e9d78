"""Who may call what, across the four services, from the role table (`shared/roles.py`).

`rows()` lists every route (a ledger per name, and the variants a handler checks with a group
of its own) with its group; `render()` is the "Access control" table of docs/security.md and
`python -m services.access` rewrites it there. `tests/unit/test_access_doc.py` fails when the
document is stale, and `tests/e2e/test_auth.py` calls every row with every role.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path

from services.checkpoint.main import create_app as checkpoint_app
from services.registry.main import create_app as registry_app
from services.reporting.api.ledgers import LEDGER_GROUPS
from services.reporting.main import create_app as reporting_app
from services.screening.main import create_app as screening_app
from shared.auth import Role
from shared.roles import GRANTS, operations

APPS = {
    "registry": registry_app,
    "screening": screening_app,
    "checkpoint": checkpoint_app,
    "reporting": reporting_app,
}
OPEN = {("GET", "/healthz"), ("GET", "/readyz"), ("GET", "/metrics")}
LEDGER = "/v1/ledgers/{name}.{fmt}"
# a request that needs more than its route's group: the handler checks the variant's group
VARIANTS = [
    ("registry", "POST", "/v1/nodes", "parent_id: null", "places.root"),
    ("registry", "GET", "/v1/persons/{person_id}", "reveal=true", "people.reveal"),
    ("checkpoint", "POST", "/v1/crossings", "holding no shift", "crossings.any_gate"),
    ("checkpoint", "POST", "/v1/crossings:batch", "holding no shift", "crossings.any_gate"),
]
DOC = Path(__file__).resolve().parent.parent / "docs" / "security.md"
BEGIN, END = "<!-- access table: begin -->", "<!-- access table: end -->"


@dataclass(frozen=True)
class Row:
    service: str
    method: str
    path: str
    group: str
    condition: str = ""  # a variant of the route, or "" for the route itself


def rows() -> list[Row]:
    found: list[Row] = []
    for service, create in APPS.items():
        for op in operations(create()):
            if (op.method, op.path) in OPEN:
                continue
            if service == "reporting" and op.path == LEDGER:
                found += [
                    Row(service, op.method, op.path, group, f"name={name}")
                    for name, group in LEDGER_GROUPS.items()
                ]
                continue
            [group] = op.groups  # one group per route; a route naming none fails here
            found.append(Row(service, op.method, op.path, group))
    found += [Row(s, m, p, g, c) for s, m, p, c, g in VARIANTS]
    return found


def _marks(roles: frozenset[Role]) -> str:
    return " | ".join("✓" if r in roles else "" for r in Role)


def render() -> str:
    table = rows()
    routes = {(r.service, r.method, r.path) for r in table}
    cells = len(table) * (1 + 3 * len(Role))
    roles = " | ".join(r.value for r in Role)
    rule = "|".join(["---", "---"] + [":-:"] * len(Role) + [":-:"])
    lines = [
        BEGIN,
        "",
        f"{len(GRANTS)} groups, {len(routes)} routes in {len(table)} rows (a ledger per name"
        f" and {len(VARIANTS)} variants), {len(Role)} roles; the matrix test makes"
        f" {cells} calls ({len(table)} rows x (no token + {len(Role)} roles x in scope, sibling,"
        " parent)).",
        "",
        f"| group | grants | {roles} | `*` |",
        f"|{rule}|",
    ]
    for name, grant in GRANTS.items():
        lines.append(
            f"| `{name}` | {grant.about} | {_marks(grant.roles)} | {'✓' if grant.root else ''} |"
        )
    lines += ["", "| service | route | group |", "|---|---|---|"]
    for r in table:
        variant = f" ({r.condition})" if r.condition else ""
        lines.append(f"| {r.service} | `{r.method} {r.path}`{variant} | `{r.group}` |")
    lines += ["", END]
    return "\n".join(lines)


def current(text: str) -> str:
    """The table as the document holds it."""
    match = re.search(re.escape(BEGIN) + ".*?" + re.escape(END), text, re.S)
    return match.group(0) if match else ""


def main(argv: list[str]) -> None:
    path = Path(argv[0]) if argv else DOC
    text = path.read_text()
    old = current(text)
    if not old:
        raise SystemExit(f"{path} has no {BEGIN} ... {END} block")
    path.write_text(text.replace(old, render()))


if __name__ == "__main__":
    main(sys.argv[1:])
