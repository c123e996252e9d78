"""The four services' OpenAPI documents as files: `python -m services.openapi [DIR]`.

An integrator (or a code generator) should not need a running service to read the API, and a
change to a route should show in review as a change to `docs/openapi/<service>.json`. Each
document is the one the service serves at `/openapi.json`, written as generated so the
files are byte-identical until the API changes; `tests/unit/test_openapi_files.py` fails
while a committed file is stale (`make contracts` rewrites them).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from services.access import APPS


def documents() -> dict[str, dict[str, Any]]:
    return {service: create().openapi() for service, create in APPS.items()}


def render(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str]) -> None:
    out = Path(argv[0] if argv else "docs/openapi")
    out.mkdir(parents=True, exist_ok=True)
    for service, document in documents().items():
        (out / f"{service}.json").write_text(render(document))


if __name__ == "__main__":
    main(sys.argv[1:])
