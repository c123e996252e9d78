"""Print a development token: `python -m shared.devtoken --role admin [--scope NODE ...]`.

It signs with the current HS256 key (`GRID_JWT_SECRET`, kid `GRID_JWT_KEY_ID`): the built-in
development key unless the environment holds another, so it turns development mode on for
itself (with the warning). Only services holding the same key accept what it prints, and they
refuse the development key outside development mode.
"""

from __future__ import annotations

import argparse
import os

from shared.auth import ALL_NODES, Role, issue_token
from shared.settings import ServiceSettings


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--role", action="append", choices=[r.value for r in Role], required=True)
    parser.add_argument("--scope", action="append", help="node id (default: whole system)")
    parser.add_argument("--sub", default="dev-user")
    parser.add_argument("--party-id")
    parser.add_argument("--ttl", type=int, default=12 * 3600, help="seconds")
    args = parser.parse_args(argv)
    os.environ.setdefault("GRID_DEV_MODE", "1")
    print(
        issue_token(
            ServiceSettings(),
            sub=args.sub,
            roles=args.role,
            scope=args.scope or [ALL_NODES],
            party_id=args.party_id,
            ttl_seconds=args.ttl,
        )
    )


if __name__ == "__main__":
    main()
