"""Load a small demo tree through the public API (idempotent: fixed ids).

金堂县 → 三溪镇 → 三溪社区 → 网格 1..3, and 官仓街道 beside it.
"""

from __future__ import annotations

import os
import sys

import httpx

from shared.auth import ALL_NODES, issue_token
from shared.settings import ServiceSettings

TREE = [
    ("jintang", None, "district", "金堂县"),
    ("sanxi", "jintang", "township", "三溪镇"),
    ("sanxi-community", "sanxi", "community", "三溪社区"),
    ("sanxi-grid-1", "sanxi-community", "grid", "第一网格"),
    ("sanxi-grid-2", "sanxi-community", "grid", "第二网格"),
    ("sanxi-grid-3", "sanxi-community", "grid", "第三网格"),
    ("guancang", "jintang", "street", "官仓街道"),
]


def main() -> None:
    base = f"http://127.0.0.1:{os.environ.get('REGISTRY_PORT', '8001')}"
    token = issue_token(ServiceSettings(), sub="demo-loader", roles=["admin"], scope=[ALL_NODES])
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=base, headers=headers, timeout=10) as client:
        for node_id, parent, kind, name in TREE:
            r = client.post(
                "/v1/nodes", json={"id": node_id, "parent_id": parent, "kind": kind, "name": name}
            )
            if r.status_code != 201:
                sys.exit(f"demo: {node_id}: {r.status_code} {r.text}")
    print(f"demo: {len(TREE)} places loaded under jintang")


if __name__ == "__main__":
    main()
