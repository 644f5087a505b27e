"""A recipe screen read off the logs: each group's test accuracy at every epoch, over its seeds.

    python bench/screen.py runs/screen/default runs/screen/rinfo1
    python bench/screen.py runs/gpu/bf16 runs/gpu/fp32          # populations: every member a seed

Each argument is one recipe: a folder of lone runs (one subfolder per seed) or a population's
run folder (every member), all evaluated once per epoch (the default). For each group and
epoch: every seed's categorical accuracy, then the mean, the spread (standard deviation) and
the worst; each seed's label-free information at its last evaluation; and which finished seeds
have a slant code and a width code. Runs still training count up to the epoch they have reached.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run as a script from anywhere
sys.path.insert(0, str(Path(__file__).parent))

from seeds import read_log  # noqa: E402

from training.select import shows_slant_and_width  # noqa: E402


def members(run: Path) -> dict[str, dict[int, tuple[float, float]]]:
    """Each member of a run (a lone run has one), named by its seed: epoch -> (accuracy, information)."""
    seed = json.loads((run / "config.json").read_text())["seed"]
    tables: dict[str, dict[int, tuple[float, float]]] = {}
    for r in read_log(run / "log.jsonl"):
        if "categorical_accuracy" in r and "information" in r:
            name = f"s{seed + r.get('member', 0)}"
            tables.setdefault(name, {})[round(r["epoch"])] = (r["categorical_accuracy"], r["information"])
    return tables


def run_folders(group: Path) -> list[Path]:
    """A group's runs: a folder of lone runs (one subfolder per seed) or one run's folder."""
    folders = [group] if (group / "log.jsonl").is_file() else sorted(group.iterdir())
    return [run for run in folders if (run / "log.jsonl").is_file()]


def group_members(group: Path) -> dict[str, dict[int, tuple[float, float]]]:
    """Every member of a group, named by its seed: epoch -> (accuracy, information)."""
    return {name: table for run in run_folders(group) for name, table in members(run).items()}


def final_codes(group: Path) -> dict[str, dict[str, dict[str, float]]]:
    """What each finished member's continuous codes do (the log's last `continuous` record, from
    training.evaluate.continuous_effects), named by seed."""
    codes = {}
    for run in run_folders(group):
        seed = json.loads((run / "config.json").read_text())["seed"]
        for r in read_log(run / "log.jsonl"):
            if "continuous" in r:
                codes[f"s{seed + r.get('member', 0)}"] = r["continuous"]
    return codes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("groups", type=Path, nargs="+", help="folders of seed runs, one recipe each")
    args = parser.parse_args(argv)
    print(f"command: python bench/screen.py {' '.join(map(str, args.groups))}")
    for group in args.groups:
        runs = group_members(group)
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
        codes = final_codes(group)
        if codes:
            both = [name for name, effects in codes.items() if shows_slant_and_width(effects)]
            named = ", ".join(both)
            print(f"a slant code and a width code (|rho| >= 0.9) at the end: {len(both)} of {len(codes)}: {named}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
