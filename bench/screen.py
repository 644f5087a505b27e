"""A recipe screen read off the logs: each group's test accuracy at every epoch, over its seeds.

    python bench/screen.py runs/screen/default runs/screen/rinfo1

Each argument is a folder of lone runs of one recipe (one subfolder per seed), all evaluated
once per epoch (the default). For each group and epoch: every seed's categorical accuracy, then
the mean, the spread (standard deviation) and the worst; and each run's label-free information
at its last evaluation. Runs still training count up to the epoch they have reached.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from seeds import read_log  # noqa: E402


def accuracies(run: Path) -> dict[int, tuple[float, float]]:
    """Epoch -> (accuracy, information) from a run's log."""
    records = [r for r in read_log(run / "log.jsonl") if "categorical_accuracy" in r and "information" in r]
    return {round(r["epoch"]): (r["categorical_accuracy"], r["information"]) for r in records}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("groups", type=Path, nargs="+", help="folders of seed runs, one recipe each")
    args = parser.parse_args(argv)
    print(f"command: python bench/screen.py {' '.join(map(str, args.groups))}")
    for group in args.groups:
        runs = {run.name: accuracies(run) for run in sorted(group.iterdir()) if (run / "log.jsonl").is_file()}
        epochs = sorted({epoch for table in runs.values() for epoch in table})
        print(f"\n## {group} ({len(runs)} runs: {', '.join(runs)})")
        print("| epoch | " + " | ".join(runs) + " | mean | spread | worst |")
        print("| ---: |" + " ---: |" * (len(runs) + 3))
        for epoch in epochs:
            values = [table[epoch][0] for table in runs.values() if epoch in table]
            cells = [f"{table[epoch][0]:.4f}" if epoch in table else "-" for table in runs.values()]
            spread = statistics.stdev(values) if len(values) > 1 else 0.0
            print(
                f"| {epoch} | {' | '.join(cells)} | {statistics.mean(values):.4f} | {spread:.4f} | {min(values):.4f} |"
            )
        last = {name: table[max(table)][1] for name, table in runs.items() if table}
        print("information at the last evaluation: " + ", ".join(f"{n} {v:.4f}" for n, v in last.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
