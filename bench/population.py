"""A population in one process against the same members as separate runs on the same cores.

    python bench/population.py                  # 2 members, 300 steps each, MNIST
    python bench/population.py --members 4 --steps 200

(a) one `infogan train --population K` process using every core; (b) K `infogan train` processes
at once, one per seed, the cores shared out among them. Both train the same K members for the
same steps; the figure is member-images per second of training clock (each log's `train_s`,
evaluation and saving excluded), summed over processes in (b). Run it on an idle machine.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).parent))

from seeds import read_log  # noqa: E402
from serve import print_header  # noqa: E402


def command(out: Path, steps: int, *options: str) -> list[str]:
    never = str(10**9)  # no evaluation, samples or checkpoints inside the timed stretch
    bookkeeping = ["--eval-every", never, "--sample-every", never, "--checkpoint-every", never, "--log-every", "50"]
    run = [sys.executable, "-m", "training.train", "--steps", str(steps), "--out", str(out), *bookkeeping]
    return [*run, "--population", "1", *options]  # one member unless the options say otherwise (the last wins)


def run_all(commands: list[list[str]], threads: int) -> None:
    """Start every command at once with `threads` torch threads each and wait for all."""
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    processes = [
        subprocess.Popen(c, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for c in commands
    ]
    for process in processes:
        _, errors = process.communicate()
        if process.returncode != 0:
            raise SystemExit(f"a training run failed:\n{errors.decode()[-2000:]}")


def member_steps_per_s(records: list[dict]) -> float:
    """Member-steps per second of training clock between the first and the last loss record,
    counting the members that logged losses."""
    losses = [r for r in records if "loss_d" in r]
    members = len({r.get("member", 0) for r in losses})
    first, last = losses[0], losses[-1]
    return members * (last["step"] - first["step"]) / (last["train_s"] - first["train_s"])


def member_images_per_s(run: Path, batch_size: int) -> float:
    return member_steps_per_s(read_log(run / "log.jsonl")) * batch_size


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=2)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--cores", type=int, default=os.cpu_count(), help="cores the runs may use in all")
    parser.add_argument("--dataset", default="mnist", help="synthetic: a quick check that the bench runs")
    args = parser.parse_args(argv)
    batch = 128
    print_header()
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        data = ["--dataset", args.dataset]
        run_all([command(folder / "population", args.steps, *data, "--population", str(args.members))], args.cores)
        together = member_images_per_s(folder / "population", batch)
        separate = [command(folder / f"seed{k}", args.steps, *data, "--seed", str(k)) for k in range(args.members)]
        run_all(separate, max(args.cores // args.members, 1))
        apart = sum(member_images_per_s(folder / f"seed{k}", batch) for k in range(args.members))
    print(f"\n| {args.members} members, {args.steps} steps, batch {batch} | member-images/s | ratio |")
    print("| --- | ---: | ---: |")
    print(
        f"| one process, --population {args.members}, {args.cores} threads | {together:.0f} | {together / apart:.2f} |"
    )
    threads = max(args.cores // args.members, 1)
    print(f"| {args.members} processes at once, {threads} thread(s) each | {apart:.0f} | 1.00 |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
