"""Issue 11's GPU figures in one pass: how fast one member, a population and separate runs train
on one GPU, and the time to a chosen model with the population command a GPU user would run.

    python bench/gpu.py                       # about 6 minutes on one H100 or H200
    python bench/gpu.py --quick --dataset synthetic --population 2   # checks the script on any machine

First speed: (a) one member alone, eager and replayed from a CUDA graph (the default on CUDA);
(b) K separate processes at once on the same GPU, eager and graphed; (c) one `--population K`
process, its members' graphs replayed on one CUDA stream and on four (`--streams`). Each trains `--steps`
steps; the figure is member-steps per second of training clock between the first and the last
loss record (so capturing or compiling before the first record, evaluation and saving are
excluded). Then `--population K --halve-after 2` for the full 8 epochs with the faster of (c)'s
settings, timed from start to exported model, with every member's accuracy and the chosen one.
Figures, never pass/fail.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from population import REPO, command, member_steps_per_s, run_all  # noqa: E402
from seeds import read_log  # noqa: E402
from serve import print_header  # noqa: E402


def full_run(out: Path, population: int, seed: int, dataset: str, epochs: int, options: list[str]) -> None:
    """The population a GPU user would train, timed from start to exported model; its own
    selection report is copied to stdout."""
    argv = [sys.executable, "-m", "training.train", "--dataset", dataset, "--epochs", str(epochs), *options]
    argv += ["--population", str(population), "--halve-after", "2", "--seed", str(seed), "--out", str(out)]
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    finished = subprocess.run(argv, cwd=REPO, capture_output=True, text=True)
    wall = time.perf_counter() - start
    (out / "stdout.txt").write_text(finished.stdout)
    (out / "stderr.txt").write_text(finished.stderr)
    if finished.returncode != 0:
        raise SystemExit(f"the population run failed:\n{finished.stderr[-3000:]}")
    records = read_log(out / "log.jsonl")
    halving = next(r["step"] for r in records if "dropped_members" in r)
    before = [r for r in records if "loss_d" in r and r["step"] <= halving]
    accuracy = {r["member"]: r["categorical_accuracy"] for r in records if "categorical_accuracy" in r}
    chosen = next(r["chosen_member"] for r in records if "chosen_member" in r)
    train_s = max(r["train_s"] for r in records if "train_s" in r)
    print(f"\n## --population {population} --halve-after 2 {' '.join(options)}, seeds {seed}..{seed + population - 1}")
    print(finished.stdout.strip())
    if len({r["step"] for r in before}) > 1:
        rate = member_steps_per_s(before)
        print(f"member-steps/s with {population} members (before halving): {rate:.0f}")
    print(f"wall clock, start to exported model: {wall:.0f} s (training clock {train_s:.0f} s)")
    finals = sorted(accuracy.values())
    print(f"final accuracy per member (sorted): {' '.join(f'{a:.3f}' for a in finals)}")
    print(f"chosen member {chosen}: accuracy {accuracy[chosen]:.4f}; members >= 0.97: {sum(a >= 0.97 for a in finals)}")
    sys.stdout.flush()


@dataclass(frozen=True)
class Row:
    name: str
    options: list[str]  # of every process in the row
    processes: int = 1
    rate: float = 0.0  # member-steps per second, all processes together
    wall: float = 0.0  # seconds the row took, start-up and capture included


def speed_table(k: int, steps: int, dataset: str, streams: list[int]) -> list[Row]:
    """Each row's runs at once, then the table, ratios against the first row."""
    eager = ["--cuda-graphs", "off"]
    plan = [
        Row("one member, eager (`--cuda-graphs off`)", eager),
        Row("one member, CUDA graph (the default)", []),
        Row(f"{k} processes at once, eager", eager, processes=k),
        Row(f"{k} processes at once, CUDA graphs", [], processes=k),
    ]
    plan += [
        Row(
            f"one process, `--population {k}`, graphs on {n} stream{'s' * (n > 1)}",
            ["--population", str(k), "--graph-streams", str(n)],
        )
        for n in streams
    ]
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        for number, row in enumerate(plan):
            outs = [Path(scratch) / f"row{number}" / f"seed{s}" for s in range(row.processes)]
            commands = [
                command(out, steps, "--dataset", dataset, "--seed", str(s), *row.options) for s, out in enumerate(outs)
            ]
            started = time.perf_counter()
            run_all(commands, threads=1 if row.processes > 1 else 4)
            rate = sum(member_steps_per_s(read_log(out / "log.jsonl")) for out in outs)
            rows.append(replace(row, rate=rate, wall=time.perf_counter() - started))
            print(f"{row.name}: {rate:.0f} member-steps/s", flush=True)
    print(f"\n| {steps} steps, batch 128 | member-steps/s | against one eager member | wall clock of the row |")
    print("| --- | ---: | ---: | ---: |")
    for row in rows:
        print(f"| {row.name} | {row.rate:.0f} | {row.rate / rows[0].rate:.2f} | {row.wall:.0f} s |")
    sys.stdout.flush()
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--population", type=int, default=16)
    parser.add_argument("--steps", type=int, default=300, help="steps of each speed run")
    parser.add_argument("--seed", type=int, default=100, help="first seed of the full population run")
    parser.add_argument("--dataset", default="mnist", help="synthetic: a quick check that the bench runs")
    parser.add_argument("--out", type=Path, default=REPO / "runs" / "gpu", help="where the full run is kept")
    parser.add_argument("--streams", type=int, nargs="+", default=[1, 4], help="--graph-streams of the population rows")
    parser.add_argument("--quick", action="store_true", help="few steps and 3 epochs")
    parser.add_argument("--no-full", dest="full", action="store_false", help="the speed table only")
    args = parser.parse_args(argv)
    steps, epochs = (60, 3) if args.quick else (args.steps, 8)
    k = args.population
    print_header()
    rows = speed_table(k, steps, args.dataset, args.streams)
    if args.full:
        fastest = max((row for row in rows if "--population" in row.options), key=lambda row: row.rate)
        full_run(args.out, k, args.seed, args.dataset, epochs, fastest.options[2:])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
