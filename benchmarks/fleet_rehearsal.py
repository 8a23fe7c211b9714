"""How long rehearsing the eight-region example takes, as a process (what a person
waits for): ``python -c`` loading the fleet and rehearsing it, timed from outside.

Run: .venv/bin/python benchmarks/fleet_rehearsal.py [--repeat 10]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

EXAMPLE = Path(__file__).parent.parent / "examples" / "multi-region"
SCRIPT = """
import sys
from gatekeeper._fleet import load_fleet, rehearse_fleet
result = rehearse_fleet(load_fleet(sys.argv[1]), sys.argv[2])
sys.exit(result.exit_code)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=10)
    args = parser.parse_args()
    for recording, expected in (("healthy.csv", 0), ("third-wave-fails.csv", 1)):
        times = []
        for _ in range(args.repeat):
            began = time.perf_counter()
            done = subprocess.run(  # noqa: S603 - our own interpreter and example files
                [
                    sys.executable,
                    "-c",
                    SCRIPT,
                    str(EXAMPLE / "fleet.toml"),
                    str(EXAMPLE / recording),
                ],
                capture_output=True,
                check=False,
                timeout=60,
            )
            times.append(time.perf_counter() - began)
            if done.returncode != expected:
                raise SystemExit(f"{recording}: exit {done.returncode}: {done.stderr.decode()}")
        print(
            f"{recording}: median {statistics.median(times):.2f} s, "
            f"max {max(times):.2f} s over {args.repeat} processes (limit 2 s)"
        )


if __name__ == "__main__":
    main()
