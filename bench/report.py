"""Benchmark results: each bench merges its entry into `bench/results.json` (`record`), and
`python -m bench.report` renders them as `docs/benchmarks.md`.

An entry (one per benchmark key, "B1" ... "B4"):

    {
      "title": "end-to-end ingest",
      "command": "python -m bench.ingest",
      "measured_at": "2026-11-30T16:20:00+00:00",      # set by `record`
      "machine": {"cores": 2, "memory_gib": 23.4, ...}, # set by `record`
      "setup": "one line: what was run, at what scale",
      "checks": [                                        # one table row each
        {"what": "throughput at max rate", "unit": "events/s", "measured": 21000.0,
         "target": ">= 20,000 events/s", "met": true,
         "baseline": 90000.0, "baseline_name": "raw asyncpg COPY of the same rows",
         "ratio": 0.23}
      ],
      "figures": {"side figure": "text or number", ...},
      "notes": ["free text", ...]
    }

`met` is decided by the bench (it knows its target); the report only shows it. Entries of
other shapes are rendered as far as they go (title, checks, figures, notes).

    python -m bench.report [--results bench/results.json] [--out docs/benchmarks.md]
"""

from __future__ import annotations

import argparse
import os
import platform
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results.json"
DOC = ROOT / "docs" / "benchmarks.md"
PROFILES = ROOT / "bench" / "profiles.md"
ORDER = ["B1", "B2", "B3", "B4"]
TITLES = {
    "B1": "end-to-end ingest",
    "B2": "report query",
    "B3": "rebuild",
    "B4": "event-store append",
}


# -- the machine -----------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    """Cores, memory and CPU model of this machine, from os and /proc."""
    info: dict[str, Any] = {"cores": os.cpu_count(), "python": platform.python_version()}
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                info["memory_gib"] = round(int(line.split()[1]) / 1024**2, 1)
                break
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return info


# -- writing results --------------------------------------------------------------------------


def load(path: Path = RESULTS) -> dict[str, Any]:
    if not path.exists():
        return {}
    loaded: dict[str, Any] = orjson.loads(path.read_bytes())
    return loaded


def record(key: str, entry: dict[str, Any], path: Path = RESULTS) -> None:
    """Merge one benchmark's entry into the results file, stamped with date and machine.

    Read-modify-write of one small file: benches run one after the other (`make bench`).
    """
    results = load(path)
    results[key] = {
        **entry,
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
    }
    ordered = {k: results[k] for k in sorted(results, key=_order)}
    path.write_bytes(orjson.dumps(ordered, option=orjson.OPT_INDENT_2) + b"\n")


def check(
    what: str,
    unit: str,
    measured: float,
    *,
    target: str,
    met: bool,
    baseline: float | None = None,
    baseline_name: str | None = None,
    ratio: float | None = None,
) -> dict[str, Any]:
    """One row of the table; `ratio` defaults to measured / baseline."""
    if ratio is None and baseline:
        ratio = measured / baseline
    return {
        "what": what,
        "unit": unit,
        "measured": measured,
        "target": target,
        "met": met,
        "baseline": baseline,
        "baseline_name": baseline_name,
        "ratio": ratio,
    }


def print_checks(checks: list[dict[str, Any]]) -> None:
    """The console form of the rows: figure, baseline, ratio, target, met."""
    for c in checks:
        base = ""
        if c.get("baseline") is not None:
            base = f"   baseline {_num(c['baseline'])} ({c.get('baseline_name', '')})"
        ratio = f"   ratio {_ratio(c.get('ratio'))}" if c.get("ratio") is not None else ""
        verdict = "met" if c.get("met") else "MISSED"
        print(
            f"{c['what']}: {_num(c['measured'])} {c['unit']}{base}{ratio}"
            f"   target {c['target']}: {verdict}"
        )


# -- rendering ------------------------------------------------------------------------------


def _order(key: str) -> tuple[int, str]:
    return (ORDER.index(key) if key in ORDER else len(ORDER), key)


def _num(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if abs(value) >= 100:
            return f"{value:,.0f}"
        if abs(value) >= 1:
            return f"{value:,.2f}"
        return f"{value:.3g}"
    return str(value)


def _ratio(value: Any) -> str:
    if not isinstance(value, int | float):
        return "–"
    if value >= 10:
        return f"{value:.1f}×"
    return f"{value:.2f}×" if value >= 0.1 else f"{value:.2g}×"


def _cell(value: Any) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def normalised(key: str, entry: dict[str, Any]) -> dict[str, Any]:
    """An entry in the documented shape; a flat entry (rates and a target as plain keys, as
    `bench.rebuild` writes) becomes one check, its other scalars figures."""
    entry = {**entry, "title": entry.get("title") or TITLES.get(key, "")}
    if "checks" in entry:
        return entry
    numbers = {
        k: v for k, v in entry.items() if isinstance(v, int | float) and not isinstance(v, bool)
    }
    measured = next(
        (k for k in numbers if k.endswith("_per_s") and not k.startswith(("baseline", "target"))),
        None,
    )
    baseline = next((k for k in numbers if k.startswith("baseline")), None)
    target = next((k for k in numbers if k.startswith("target")), None)
    if measured is not None:
        unit = "events/s" if "events" in measured else measured.rsplit("_", 2)[-2] + "/s"
        entry["checks"] = [
            check(
                str(entry.get("what", measured)),
                unit,
                numbers[measured],
                target=f">= {numbers[target]:,} {unit}" if target else "–",
                met=bool(target) and numbers[measured] >= numbers[target],
                baseline=numbers[baseline] if baseline else None,
                baseline_name=str(entry.get("baseline", baseline or "")),
            )
        ]
    used = {measured, baseline, target, "what", "baseline", "title", "machine", "measured_at"}
    entry["figures"] = {
        k: v
        for k, v in entry.items()
        if k not in used and k not in ("checks", "figures", "notes") and not isinstance(v, dict)
    }
    return entry


def render(results: dict[str, Any], profiles: str = "") -> str:
    results = {k: normalised(k, v) for k, v in results.items() if isinstance(v, dict)}
    lines = ["# Benchmarks", ""]
    m = next((e["machine"] for e in results.values() if e.get("machine")), None) or machine()
    dates = sorted(e.get("measured_at", "") for e in results.values() if isinstance(e, dict))
    lines += [
        "Generated by `make bench` (`python -m bench.report` from `bench/results.json`); every",
        "figure is measured beside its baseline in the same run, on the same machine, with",
        "PostgreSQL, Kafka, the services and the load generator all sharing it.",
        "",
        f"* machine: {m.get('cores', '?')} cores, {m.get('memory_gib', '?')} GiB memory"
        + (f", {m['cpu']}" if m.get("cpu") else "")
        + (f", Python {m['python']}" if m.get("python") else ""),
        f"* measured: {dates[0][:16].replace('T', ' ')} to {dates[-1][:16].replace('T', ' ')} UTC"
        if dates
        else "* measured: (no results yet)",
        "",
        "`ratio` is measured / baseline, except in rows that say *times faster* (baseline /",
        "measured). Rates are per second of wall time; latencies are per request.",
        "",
        "| bench | figure | target | measured | baseline | ratio | |",
        "|---|---|---|---|---|---|---|",
    ]
    for key in sorted(results, key=_order):
        entry = results[key]
        if not isinstance(entry, dict):
            continue
        for c in entry.get("checks", []):
            base = "–"
            if c.get("baseline") is not None:
                base = f"{_num(c['baseline'])} ({c.get('baseline_name') or 'baseline'})"
            lines.append(
                "| "
                + " | ".join(
                    _cell(x)
                    for x in (
                        f"{key} {entry.get('title', '')}".strip(),
                        c.get("what", ""),
                        c.get("target", ""),
                        f"{_num(c.get('measured'))} {c.get('unit', '')}".strip(),
                        base,
                        _ratio(c.get("ratio")),
                        "met" if c.get("met") else "**missed**",
                    )
                )
                + " |"
            )
    for key in sorted(results, key=_order):
        entry = results[key]
        if not isinstance(entry, dict):
            continue
        lines += ["", f"## {key} {entry.get('title', '')}".rstrip(), ""]
        if entry.get("command"):
            lines.append(f"`{entry['command']}` — measured {entry.get('measured_at', '?')}")
            lines.append("")
        if entry.get("setup"):
            lines += [str(entry["setup"]), ""]
        for name, value in (entry.get("figures") or {}).items():
            lines.append(f"* {name}: {_num(value)}")
        if entry.get("figures"):
            lines.append("")
        for note in entry.get("notes") or []:
            lines += [str(note), ""]
    if profiles:
        lines += ["", profiles.strip(), ""]
    return "\n".join(lines).rstrip() + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--profiles", type=Path, default=PROFILES)
    parser.add_argument("--out", type=Path, default=DOC)
    args = parser.parse_args()
    profiles = args.profiles.read_text() if args.profiles.exists() else ""
    args.out.write_text(render(load(args.results), profiles))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
