"""Time the linearizability checker on the Jepsen etcd histories.

Usage: python benchmarks/check_jepsen.py [DATA_DIR]

DATA_DIR holds the ``etcd_*.log`` files and ``expected.tsv`` (default: the
project's ``tests/data/jepsen-etcd``). Prints every verdict that differs from
the expected one, the five slowest histories, and the total and slowest times.
Exits with status 1 if any verdict differs.
"""

from __future__ import annotations

import csv
import sys
import time
from pathlib import Path

from cluster_actors.testing.linearizability import (
    RegisterModel,
    Verdict,
    check_operations,
    parse_jepsen_log,
)

_DEFAULT_DIR = Path(__file__).resolve().parent.parent / "tests" / "data" / "jepsen-etcd"
_VERDICTS = {"linearizable": Verdict.LINEARIZABLE, "not-linearizable": Verdict.NOT_LINEARIZABLE}


def main(argv: list[str]) -> int:
    data_dir = Path(argv[0]) if argv else _DEFAULT_DIR
    with (data_dir / "expected.tsv").open() as f:
        expected = {row["file"]: _VERDICTS[row["expected"]]
                    for row in csv.DictReader(f, delimiter="\t")}
    model = RegisterModel()
    timings: list[tuple[float, str, int]] = []
    wrong = 0
    for name, verdict in sorted(expected.items()):
        ops = parse_jepsen_log(data_dir / name)
        started = time.perf_counter()
        result = check_operations(model, ops)
        timings.append((time.perf_counter() - started, name, result.steps))
        if result.verdict is not verdict:
            wrong += 1
            print(f"{name}: expected {verdict.name}, got {result.verdict.name}")
    timings.sort(reverse=True)
    for seconds, name, steps in timings[:5]:
        print(f"{name}: {seconds * 1000:8.1f} ms  {steps:>8} configurations")
    total = sum(seconds for seconds, _, _ in timings)
    print(f"{len(timings)} histories, {len(timings) - wrong} verdicts as expected; "
          f"total {total:.3f} s, slowest {timings[0][0]:.3f} s ({timings[0][1]})")
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
