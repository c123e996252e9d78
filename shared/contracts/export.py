"""Write the JSON Schema of every published event: `python -m shared.contracts.export DIR`."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from shared.contracts.published import CATALOGS


def schemas() -> dict[str, Any]:
    return {c.topic: c.json_schemas() for c in CATALOGS}


def main(argv: list[str]) -> None:
    out = Path(argv[0] if argv else "docs/contracts")
    out.mkdir(parents=True, exist_ok=True)
    for topic, events in schemas().items():
        (out / f"{topic}.json").write_text(
            json.dumps(events, indent=2, ensure_ascii=False, sort_keys=True) + "\n"
        )


if __name__ == "__main__":
    main(sys.argv[1:])
