"""The tables of docs/statistics.md from the JSON rows ``detection.py --json`` writes.

.venv/bin/python benchmarks/detection_tables.py a.json b.json
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from scipy import stats

Row = dict[str, Any]


def clopper_pearson(k: int, n: int) -> tuple[float, float]:
    """The exact 95 % interval of a binomial proportion."""
    low = 0.0 if k == 0 else float(stats.beta.ppf(0.025, k, n - k + 1))
    high = 1.0 if k == n else float(stats.beta.ppf(0.975, k + 1, n - k))
    return low, high


def interval(k: int, n: int) -> str:
    low, high = clopper_pearson(k, n)
    return f"{k / n:.2%} [{low:.2%}, {high:.2%}]"


def minutes(value: float) -> str:
    if not math.isfinite(value):
        return ">4h"
    return f"{value / 60:.1f}m" if value < 3600 else f"{value / 3600:.2f}h"


def times(values: Sequence[float | None], horizon: float = 4 * 3600.0) -> list[float]:
    """Seconds, ``inf`` for never (or after the horizon)."""
    return [math.inf if v is None or v > horizon else float(v) for v in values]


def quantile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)  # inf (never) sorts last; no interpolation across it
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def median_interval(values: Sequence[float]) -> tuple[float, float]:
    """A distribution-free 95 % interval of the median: the order statistics whose
    ranks a Binomial(n, 1/2) puts the median between (inf: not detected by then)."""
    ordered = sorted(values)
    n = len(ordered)
    low = int(stats.binom.ppf(0.025, n, 0.5))
    high = int(stats.binom.isf(0.025, n, 0.5)) + 1
    return ordered[max(low, 1) - 1], ordered[min(high, n) - 1]


def summary(row: Row) -> dict[str, Any]:
    """Counts and times of one row: FAILs within 4 h, FAILs by 1 h, PASSes before any
    FAIL, the medians and p90s of the judge and of the oracle."""
    fail, passed, oracle = times(row["fail"]), times(row["pass"]), times(row["oracle"])
    runs = len(fail)
    return {
        "runs": runs,
        "fail": sum(math.isfinite(t) for t in fail),
        "fail_1h": sum(t <= 3600.0 for t in fail),
        "pass": sum(p < f for p, f in zip(passed, fail, strict=True)),
        "median": quantile(fail, 0.5),
        "p90": quantile(fail, 0.9),
        "median_ci": median_interval(fail),
        "oracle_median": quantile(oracle, 0.5),
        "oracle_p90": quantile(oracle, 0.9),
        "oracle_ci": median_interval(oracle),
    }


def _where(row: Row) -> tuple[str, str]:
    name = f"{row['group']}/{row['scenario']}"
    return name, f"{row['share'] * 100:g}%"


def healthy(rows: Sequence[Row]) -> str:
    out = [
        "| scenario | share | judge | through | runs | false FAIL in 4 h [95 % CI] | ms/run |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        if row["effect"] != 1.0:
            continue
        s = summary(row)
        name, share = _where(row)
        through = "engine" if row["engine"] else "—"
        cost = f"{row['ms_per_run']:.0f}" if row["engine"] else "—"
        out.append(
            f"| {name} | {share} | {row['judge']} | {through} | {s['runs']:,} | "
            f"{interval(s['fail'], s['runs'])} | {cost} |"
        )
    return "\n".join(out)


def detection(rows: Sequence[Row]) -> str:
    out = [
        "| scenario | regression | share | judge | runs | detected in 4 h | median / p90 to "
        "detect [median's 95 % CI] | oracle median / p90 | median ÷ oracle | fail-only PASS "
        "at 1 h / 4 h [95 % CI] | false PASS [95 % CI] |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        if row["effect"] == 1.0:
            continue
        s = summary(row)
        name, share = _where(row)
        runs = s["runs"]
        ratio = (
            f"{s['median'] / s['oracle_median']:.2f}"
            if math.isfinite(s["median"]) and math.isfinite(s["oracle_median"])
            else "—"
        )
        low, high = s["median_ci"]
        effect = f"x{row['effect']:g}" if row["group"] == "errors" else f"x{row['effect']:g} scale"
        fail_only = (
            f"{interval(runs - s['fail_1h'], runs)} / {interval(runs - s['fail'], runs)}"
            if row["engine"]
            else "—"
        )
        false_pass = interval(s["pass"], runs) if row["engine"] else "—"
        out.append(
            f"| {name} | {effect} | {share} | {row['judge']} | {runs:,} | "
            f"{s['fail'] / runs:.1%} | {minutes(s['median'])} / {minutes(s['p90'])} "
            f"[{minutes(low)}, {minutes(high)}] | {minutes(s['oracle_median'])} / "
            f"{minutes(s['oracle_p90'])} | {ratio} | {fail_only} | {false_pass} |"
        )
    return "\n".join(out)


def _upper(row: Row) -> float:
    s = summary(row)
    return clopper_pearson(s["fail"], s["runs"])[1]


def healthy_summary(rows: Sequence[Row]) -> str:
    """Per scenario and judge, the false FAIL at 1 % and at 10 % side by side; ✗ where
    the interval's upper end passes 1.5 alpha (then the judge is not the one to use on
    that data)."""
    cells: dict[tuple[str, str], dict[str, str]] = {}
    for row in rows:
        if row["effect"] != 1.0 or not row["engine"]:
            continue
        s = summary(row)
        mark = " ✗" if _upper(row) > 0.015 else ""
        name, share = _where(row)
        cells.setdefault((name, row["judge"]), {})[share] = (
            f"{interval(s['fail'], s['runs'])}{mark} ({s['runs']:,})"
        )
    out = [
        "| scenario | judge | 1 % canary (runs) | 10 % canary (runs) |",
        "| --- | --- | --- | --- |",
    ]
    for (name, judge), by_share in cells.items():
        out.append(f"| {name} | {judge} | {by_share.get('1%', '—')} | {by_share.get('10%', '—')} |")
    return "\n".join(out)


def oracle_summary(rows: Sequence[Row]) -> str:
    """Median time to FAIL ÷ the oracle's, per scenario, judge, regression and share."""
    cells: dict[tuple[str, str], dict[str, str]] = {}
    columns: list[str] = []
    for row in rows:
        if row["effect"] == 1.0 or not row["engine"]:
            continue
        s = summary(row)
        name, share = _where(row)
        column = f"x{row['effect']:g} at {share}"
        if column not in columns:
            columns.append(column)
        if math.isfinite(s["median"]) and math.isfinite(s["oracle_median"]):
            text = (
                f"{s['median'] / s['oracle_median']:.2f} ({minutes(s['median'])} vs "
                f"{minutes(s['oracle_median'])})"
            )
        else:
            text = f"found in {s['fail'] / s['runs']:.0%} of runs in 4 h"
        cells.setdefault((name, row["judge"]), {})[column] = text
    columns.sort(key=lambda c: (float(c[1:].split(" ")[0]), float(c.split(" at ")[1][:-1])))
    out = [
        "| scenario | judge | " + " | ".join(columns) + " |",
        "| --- | --- | " + " | ".join("---" for _ in columns) + " |",
    ]
    for (name, judge), by_column in cells.items():
        out.append(
            f"| {name} | {judge} | " + " | ".join(by_column.get(c, "—") for c in columns) + " |"
        )
    return "\n".join(out)


def render(rows: Sequence[Row]) -> str:
    return "### Healthy canaries\n\n" + healthy(rows) + "\n\n### Regressions\n\n" + detection(rows)


def main(paths: list[str]) -> int:
    rows: list[Row] = []
    for path in paths:
        rows += json.loads(Path(path).read_text(encoding="utf-8"))
    order = {name: i for i, name in enumerate(dict.fromkeys(r["scenario"] for r in rows))}
    rows.sort(key=lambda r: (r["group"] != "errors", order[r["scenario"]], r["share"], r["effect"]))
    print("### Summary: healthy canaries\n")
    print(healthy_summary(rows))
    print("\n### Summary: time to detect ÷ the oracle's\n")
    for group in ("errors", "latency", "revenue"):
        if any(r["group"] == group and r["effect"] != 1.0 for r in rows):
            print(oracle_summary([r for r in rows if r["group"] == group]) + "\n")
    print(render(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
