"""What `--halve-after E` would have kept, replayed on the logs of finished lone runs.

    python bench/halving.py runs/consistency/s11 ... runs/explorer/s18 --k 2 3 4 --after 2 3 4 5

Each argument is the folder of a lone run of one recipe, all trained to the same length with an
evaluation every epoch. A member of a population trains exactly as a lone run of its seed (a test
checks the weights), and the log's `information` at each evaluation is the score `halve` reads (the
same function on the same images), so for every K-subset of the runs this replays the population
run exactly: after epoch E keep the ceil(K/2) members with the highest information, at the end
pick the kept member with the highest information. It prints the share of subsets whose pick
reaches the threshold in accuracy, the mean and worst accuracy picked, and the training cost in
member-epochs against K full runs. No labels go into a pick; accuracy only scores it.
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run as a script from anywhere
sys.path.insert(0, str(Path(__file__).parent))

from seeds import read_log  # noqa: E402


def evaluations(run: Path) -> dict[int, tuple[float, float]]:
    """(accuracy, information) at the end of each epoch of a lone run, from its log."""
    return {
        round(r["epoch"]): (r["categorical_accuracy"], r["information"])
        for r in read_log(run / "log.jsonl")
        if r.get("categorical_accuracy") is not None and "information" in r
    }


def replay(runs: list[dict[int, tuple[float, float]]], k: int, after: int | None, threshold: float) -> dict:
    """Over every k-subset: halve after epoch `after` (None: never), pick by information at the
    last epoch; the share of picks reaching `threshold`, their mean and worst accuracy, the cost."""
    last = min(max(run) for run in runs)
    keep = k - k // 2  # halve drops the lower half, rounded down
    picked = []
    for subset in itertools.combinations(runs, k):
        kept = sorted(subset, key=lambda run: run[after][1], reverse=True)[:keep] if after else subset
        picked.append(max(kept, key=lambda run: run[last][1])[last][0])
    cost = (after * k + (last - after) * keep) / (last * k) if after else 1.0
    return {
        "share": sum(accuracy >= threshold for accuracy in picked) / len(picked),
        "mean": statistics.mean(picked),
        "worst": min(picked),
        "cost": cost,
        "subsets": len(picked),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="lone run folders, each with a log.jsonl")
    parser.add_argument("--k", type=int, nargs="+", default=[2, 3, 4], help="population sizes to replay")
    parser.add_argument("--after", type=int, nargs="+", default=[2, 3, 4], help="epochs after which to halve")
    parser.add_argument("--threshold", type=float, default=0.95)
    args = parser.parse_args(argv)
    runs = [evaluations(run) for run in args.runs]
    finals = ", ".join(f"{path} {run[max(run)][0]:.3f}" for path, run in zip(args.runs, runs, strict=True))
    print(f"final accuracy of the {len(runs)} runs: {finals}")
    print(f"| K | halve after | cost (of K full runs) | pick >= {args.threshold} | mean picked | worst | subsets |")
    print("| ---: | --- | ---: | ---: | ---: | ---: | ---: |")
    for k in args.k:
        for after in [None, *args.after]:
            row = replay(runs, k, after, args.threshold)
            print(
                f"| {k} | {f'epoch {after}' if after else 'never'} | {row['cost']:.2f} | {row['share']:.2f} | "
                f"{row['mean']:.4f} | {row['worst']:.4f} | {row['subsets']} |"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
