"""The tables of docs/statistics.md from the JSON rows ``detection.py --json`` writes.

.venv/bin/python benchmarks/detection_tables.py /tmp/bench/*.json
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

from scipy import stats

Row = dict[str, Any]


def interval(k: int, n: int) -> str:
    low = 0.0 if k == 0 else float(stats.beta.ppf(0.025, k, n - k + 1))
    high = 1.0 if k == n else float(stats.beta.ppf(0.975, k + 1, n - k))
    return f"{k / n:.2%} [{low:.2%}, {high:.2%}]"


def minutes(value: float) -> str:
    if not math.isfinite(value):
        return ">4h"
    return f"{value / 60:.1f}m" if value < 3600 else f"{value / 3600:.2f}h"


def split(cell: str) -> tuple[str, str, str]:
    """('errors/base', 'x2', '1%') from 'errors/base x2 @1%'."""
    body, share = cell.rsplit(" @", 1)
    name, effect = body.rsplit(" ", 1)
    return name, effect, share


def healthy(rows: list[Row]) -> str:
    out = [
        "| scenario | share | judge | runs | false FAIL % [95 % CI] | PASS % [95 % CI] |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        name, effect, share = split(row["cell"])
        if effect != "healthy":
            continue
        out.append(
            f"| {name} | {share} | {row['judge']} | {row['runs']:,} | "
            f"{interval(row['fail'], row['runs'])} | {interval(row['pass'], row['runs'])} |"
        )
    return "\n".join(out)


def detection(rows: list[Row]) -> str:
    out = [
        "| scenario | regression | share | judge | runs | detected in 4 h | median / p90 "
        "| oracle median / p90 | median ÷ oracle | fail-only PASS at 1 h / 4 h [95 % CI] "
        "| false PASS [95 % CI] |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        name, effect, share = split(row["cell"])
        if effect == "healthy":
            continue
        runs = row["runs"]
        ratio = (
            f"{row['median'] / row['oracle_median']:.2f}"
            if math.isfinite(row["median"]) and math.isfinite(row["oracle_median"])
            else "—"
        )
        out.append(
            f"| {name} | {effect} | {share} | {row['judge']} | {runs:,} | "
            f"{row['fail'] / runs:.1%} | {minutes(row['median'])} / {minutes(row['p90'])} | "
            f"{minutes(row['oracle_median'])} / {minutes(row['oracle_p90'])} | {ratio} | "
            f"{interval(runs - row['fail_1h'], runs)} / {interval(runs - row['fail'], runs)} | "
            f"{interval(row['pass'], runs)} |"
        )
    return "\n".join(out)


def main(paths: list[str]) -> int:
    rows: list[Row] = []
    for path in paths:
        rows += json.loads(Path(path).read_text(encoding="utf-8"))
    print("### Healthy canaries\n")
    print(healthy(rows))
    print("\n### Regressions\n")
    print(detection(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
