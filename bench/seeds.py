"""Quality over several training seeds: the figures of docs/research.md, "Over seeds".

    python bench/seeds.py runs/seed1 runs/seed2 runs/seed3
    python bench/seeds.py runs/seed1/step2500.safetensors ...   # a copy taken during the run

For each run folder (each member of a population): the final checkpoint's metrics on the 10,000
MNIST test images (evaluated here, the same code as `infogan evaluate`), and from its log the
training steps and wall-clock time to reach a categorical accuracy of 0.90 and 0.95. A training
checkpoint file inside a run folder stands for the run as it was at that step. Then the mean and
spread over runs.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
from pathlib import Path
from typing import Any

import torch

from models.checkpoint import Checkpoint, load_population
from models.metadata import rank_correlations
from training.classifier import load_classifier
from training.data import load_dataset
from training.evaluate import evaluate
from training.loop import CHECKPOINT_NAME

THRESHOLDS = (0.90, 0.95)


def read_log(path: Path) -> list[dict[str, Any]]:
    """The records of a run's log.jsonl."""
    return [json.loads(line) for line in path.read_text().splitlines()]


def time_to_accuracy(records: list[dict[str, Any]]) -> dict[float, tuple[int, float] | None]:
    """First logged (step, seconds) at which accuracy reached each threshold: seconds of training
    (`train_s`) where the log has them, else wall-clock seconds since its first record."""
    start = records[0]["time"]
    reached: dict[float, tuple[int, float] | None] = dict.fromkeys(THRESHOLDS)
    for record in records:
        for threshold in THRESHOLDS:
            if reached[threshold] is None and record.get("categorical_accuracy", 0) >= threshold:
                reached[threshold] = (record["step"], record.get("train_s", record["time"] - start))
    return reached


def members_and_log(run: Path) -> tuple[list[Checkpoint], list[dict[str, Any]]]:
    """The members of a run folder's checkpoint, or of a checkpoint file in one, with the run's
    log records up to the checkpoint's step."""
    path = run / CHECKPOINT_NAME if run.is_dir() else run
    members = load_population(path)
    log = [r for r in read_log(path.parent / "log.jsonl") if r["step"] <= members[0].meta["step"]]
    return members, log


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    args = parser.parse_args(argv)
    test = load_dataset("mnist", "test")
    classifier = load_classifier()
    print(f"# {platform.node()} {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads")
    print(f"# command: python bench/seeds.py {' '.join(map(str, args.runs))}")
    codes = " | ".join(f"{name}: rank correlations, kept" for name in ("c1", "c2"))
    print(f"run | seed | steps | accuracy | to 0.90 | to 0.95 | FID | {codes}")
    rows = []
    for run in args.runs:
        members, log = members_and_log(run)
        for k, checkpoint in enumerate(members):  # every member of a population
            metrics = evaluate(checkpoint, test, classifier)
            reached = time_to_accuracy([r for r in log if r.get("member", 0) == k])
            rows.append(metrics)
            to = [f"{r[0]} steps, {r[1] / 60:.1f} min" if r else "not reached" for r in reached.values()]
            codes = [f"{rank_correlations(e)}, kept {e['identity_kept']:.2f}" for e in metrics["continuous"].values()]
            seed = checkpoint.meta.get("seed", checkpoint.meta["train_config"]["seed"] + k)
            name = run.name if run.is_dir() else f"{run.parent.name}/{run.stem}"
            print(
                f"{name} | {seed} | {checkpoint.meta['step']} | {metrics['categorical_accuracy']:.4f} | "
                f"{to[0]} | {to[1]} | {metrics['fid']:.2f} | {' | '.join(codes)}"
            )
    accuracies = [m["categorical_accuracy"] for m in rows]
    spread = statistics.stdev(accuracies) if len(accuracies) > 1 else 0.0
    print(
        f"categorical accuracy over {len(rows)} seeds: mean {statistics.mean(accuracies):.4f}, "
        f"std {spread:.4f}, min {min(accuracies):.4f}, max {max(accuracies):.4f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
