"""How often a verdict says the data are burstier than the test assumes ("… varies N× a
binomial over B blocks where the test assumes M×: declare ``dispersion`` or
``bursts``"): healthy canaries over 4 h with a look every 5 s, through
``gatekeeper._judge.judge_counts`` itself on the streams of ``detection_sim``, with
nothing declared and with what the data need declared.

A warning on binomial data is a false one; on bursty data with nothing declared, the
one a plan author needs. Printed: the share of runs warned by 1 h and by 4 h (95 %
Clopper-Pearson) and the median time of the first warning.

    nice .venv/bin/python benchmarks/burst_warning.py --runs 500      # ~30 min
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
from detection_sim import BURST_LASTING, BURST_SD, HORIZON, Scenario, draw
from detection_tables import interval

from gatekeeper import _judge

ALPHA = 1e-12  # the phase runs its 4 hours: what is measured is the warning


def first_warning(
    rows: np.ndarray, look: float, dispersion: float, bursts: _judge.Bursts | None
) -> float:
    """Seconds to the first look whose verdict says the data are burstier (inf: none)."""
    state: _judge.CountsState | None = None
    for index, (ce, ct, be, bt) in enumerate(rows):
        elapsed = (index + 1) * look
        state, result = _judge.judge_counts(
            state,
            ce,
            ct,
            be,
            bt,
            alpha=ALPHA,
            elapsed_s=elapsed,
            dispersion=dispersion,
            bursts=bursts,
        )
        if result.burstier is not None:
            return elapsed
    return math.inf


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=500)
    parser.add_argument("--seed", type=int, default=20261209)
    args = parser.parse_args(argv)
    bursts = _judge.Bursts(size=BURST_SD, lasting_s=BURST_LASTING)
    cells: list[tuple[str, Scenario, str, float, _judge.Bursts | None]] = []
    for share in (0.01, 0.10):
        base = Scenario("errors", "base", share)
        cells.append(("binomial", base, "nothing declared", 1.0, None))
        for k in (4.0, 1.0):
            nb = Scenario("errors", f"nb k={k:g}", share, knob="nb", param=k)
            cells.append((f"negative binomial k = {k:g}", nb, "nothing declared", 1.0, None))
            cells.append((f"negative binomial k = {k:g}", nb, "dispersion = 2", 2.0, None))
        burst = Scenario("errors", "bursts", share, knob="bursts")
        cells.append(("per-arm bursts", burst, "nothing declared", 1.0, None))
        cells.append(("per-arm bursts", burst, "bursts 30% / 17m", 1.0, bursts))
    print(
        "| data | share | declared | runs | warned by 1 h [95 % CI] | by 4 h [95 % CI] "
        "| median first warning |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- |")
    started = time.perf_counter()
    for index, (label, scenario, name, dispersion, declared) in enumerate(cells):
        streams = draw(scenario, args.runs, HORIZON, np.random.default_rng([args.seed, index]))
        times = [
            first_warning(streams.cum[:, run, :], streams.look, dispersion, declared)
            for run in range(args.runs)
        ]
        hour = sum(t <= 3600 for t in times)
        ever = sum(math.isfinite(t) for t in times)
        median = float(np.median(times))
        when = f"{median / 60:.0f}m" if math.isfinite(median) else "—"
        print(
            f"| {label} | {scenario.share:.0%} | {name} | {args.runs:,} | "
            f"{interval(hour, args.runs)} | {interval(ever, args.runs)} | {when} |",
            flush=True,
        )
    print(f"\n{time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
