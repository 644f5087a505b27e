"""A recipe screen read off the logs: each group's test accuracy at every epoch, over its seeds.

    python bench/screen.py runs/screen/default runs/screen/rinfo1
    python bench/screen.py runs/gpu/bf16 runs/gpu/fp32          # populations: every member a seed

Each argument is one recipe: a folder of lone runs (one subfolder per seed) or a population's
run folder (every member), all evaluated once per epoch (the default). For each group and
epoch: every seed's categorical accuracy, then the mean, the spread (standard deviation) and
the worst; each seed's label-free information (and, where logged, jitter flips) at its last
evaluation; how many seeds have a slant code and a width code at each epoch (where evaluations
logged the codes) and which finished seeds have them. Runs still training count up to the epoch they have reached.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run as a script from anywhere
sys.path.insert(0, str(Path(__file__).parent))

from seeds import read_log  # noqa: E402

from training.select import shows_slant_and_width  # noqa: E402


@dataclass
class Member:
    """One member of a run (a lone run has one), read off its log."""

    evaluations: dict[int, tuple[float, float]] = field(default_factory=dict)  # epoch -> (accuracy, information)
    jitter_flips: dict[int, float] = field(default_factory=dict)  # epoch -> share flipped, where logged
    codes: dict[str, dict[str, float]] | None = None  # what its continuous codes do at the end; None if stopped
    # what its codes do at each epoch, where the evaluations logged it
    codes_by_epoch: dict[int, dict[str, dict[str, float]]] = field(default_factory=dict)


def members(run: Path) -> dict[str, Member]:
    """Each member of a run that was evaluated, named by its seed."""
    seed = json.loads((run / "config.json").read_text())["seed"]
    found: dict[str, Member] = {}
    for r in read_log(run / "log.jsonl"):
        evaluated = "categorical_accuracy" in r and "information" in r
        if evaluated or r.get("continuous") is not None:  # halving logs `continuous: null` for a stopped member
            member = found.setdefault(f"s{seed + r.get('member', 0)}", Member())
            if evaluated:
                member.evaluations[round(r["epoch"])] = (r["categorical_accuracy"], r["information"])
                if "jitter_flips" in r:
                    member.jitter_flips[round(r["epoch"])] = r["jitter_flips"]
                if r.get("continuous") is not None:
                    member.codes_by_epoch[round(r["epoch"])] = r["continuous"]
            else:
                member.codes = r["continuous"]
    return {name: member for name, member in found.items() if member.evaluations}


def group_members(group: Path) -> dict[str, Member]:
    """Every member of a group: a folder of lone runs (one subfolder per seed) or one run's folder."""
    if not group.is_dir():
        raise SystemExit(f"{group}: not a folder; pass a run's folder or a folder of runs")
    folders = [group] if (group / "log.jsonl").is_file() else sorted(group.iterdir())
    found: dict[str, Member] = {}
    for run in folders:
        if (run / "log.jsonl").is_file():
            for name, member in members(run).items():  # a seed trained twice logs the same figures
                if name in found and found[name].evaluations != member.evaluations:
                    raise SystemExit(f"{group}: two different runs of seed {name[1:]}; pass each run folder on its own")
                found.setdefault(name, member)
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("groups", type=Path, nargs="+", help="folders of seed runs, one recipe each")
    args = parser.parse_args(argv)
    print(f"command: python bench/screen.py {' '.join(map(str, args.groups))}")
    for group in args.groups:
        runs = group_members(group)
        epochs = sorted({epoch for member in runs.values() for epoch in member.evaluations})
        print(f"\n## {group} ({len(runs)} runs: {', '.join(runs)})")
        print("| epoch | " + " | ".join(runs) + " | mean | spread | worst |")
        print("| ---: |" + " ---: |" * (len(runs) + 3))
        for epoch in epochs:
            tables = [member.evaluations for member in runs.values()]
            values = [table[epoch][0] for table in tables if epoch in table]
            cells = [f"{table[epoch][0]:.4f}" if epoch in table else "-" for table in tables]
            spread = statistics.stdev(values) if len(values) > 1 else 0.0
            print(
                f"| {epoch} | {' | '.join(cells)} | {statistics.mean(values):.4f} | {spread:.4f} | {min(values):.4f} |"
            )
        last = {name: member.evaluations[max(member.evaluations)][1] for name, member in runs.items()}
        print("information at the last evaluation: " + ", ".join(f"{n} {v:.4f}" for n, v in last.items()))
        flips = {
            name: member.jitter_flips[max(member.jitter_flips)] for name, member in runs.items() if member.jitter_flips
        }
        if flips:
            print("jitter flips at the last evaluation: " + ", ".join(f"{n} {v:.3f}" for n, v in flips.items()))
        by_epoch = [
            f"{epoch}: {sum(shows_slant_and_width(m.codes_by_epoch[epoch]) for m in measured)} of {len(measured)}"
            for epoch in epochs
            if (measured := [m for m in runs.values() if epoch in m.codes_by_epoch])
        ]
        if by_epoch:
            print("a slant code and a width code (|rho| >= 0.9) by epoch: " + ", ".join(by_epoch))
        finished = {name: member.codes for name, member in runs.items() if member.codes is not None}
        if finished:
            both = [name for name, codes in finished.items() if shows_slant_and_width(codes)]
            print(
                f"a slant code and a width code (|rho| >= 0.9) at the end: {len(both)} of {len(finished)} "
                f"finished: {', '.join(both)}"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
