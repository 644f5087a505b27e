"""What watching costs: a training run's speed with and without the explorer's page open on it.

    .venv/bin/python bench/watch.py               # 4 runs of 150 steps, about 6 minutes
    .venv/bin/python bench/watch.py --steps 20    # a smoke run

Starts the service (bench/serve.py's server) over a fresh runs folder, then trains in it one run
after another on one thread (`infogan train`, the paper's networks on synthetic 28x28 images,
checkpoint and sample grid every 50 steps), alternately with nobody watching and with the page
open in headless Chromium on the Training view (it asks for the runs every 3 s, the log after its
last step, the newest sample grid, and the checkpoints every 5 s; the service reloads the run's
checkpoint whenever it is rewritten, watched or not). Prints each run's training images/s (from
its own log) and the service's CPU seconds per minute meanwhile, then the watched/alone ratio.
The issue's target: watching slows training by at most 5%. Never fails on time.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "bench"))  # run as a script from anywhere
sys.path.insert(0, str(REPO / "tests"))  # the page tests' Chromium launch

from chromium import launch_chromium  # noqa: E402
from serve import checkpoint_folder, print_header, server  # noqa: E402


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def train(runs: Path, name: str, steps: int) -> float:
    """Trains a run to the end and returns its training images/s, from its log."""
    command = [sys.executable, "-m", "training.train", "--dataset", "synthetic", "--steps", str(steps)]
    command += ["--batch-size", "64", "--log-every", "10", "--sample-every", "50", "--checkpoint-every", "50"]
    command += ["--eval-every", "100000", "--population", "1", "--out", str(runs / name)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run(command, cwd=REPO, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    records = [json.loads(line) for line in (runs / name / "log.jsonl").read_text().splitlines()]
    return [r for r in records if "images_per_s" in r][-1]["images_per_s"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=150, help="steps per training run")
    parser.add_argument("--pairs", type=int, default=2, help="(alone, watched) pairs of runs")
    args = parser.parse_args(argv)
    print_header()
    from playwright.sync_api import sync_playwright

    rates: dict[str, list[float]] = {"alone": [], "watched": []}
    cpu: dict[str, list[float]] = {"alone": [], "watched": []}
    with tempfile.TemporaryDirectory() as runs_dir, checkpoint_folder() as (folder, which), sync_playwright() as pw:
        runs, pids = Path(runs_dir), []
        print(f"model:   {which}; training: {args.steps} steps per run, batch 64, one thread")
        with server(folder, max_batch=64, runs_dir=runs, pids=pids) as url:
            browser = launch_chromium(pw)
            for pair in range(args.pairs):
                for mode in ("alone", "watched"):
                    page = browser.new_page() if mode == "watched" else None
                    if page:
                        page.goto(url)
                        page.wait_for_selector("#image[data-state=ready]")
                    start, clock = cpu_seconds(pids[0]), time.monotonic()
                    rates[mode].append(train(runs, f"{mode}-{pair}", args.steps))
                    cpu[mode].append((cpu_seconds(pids[0]) - start) / (time.monotonic() - clock) * 60)
                    if page:
                        assert page.locator("#training").is_visible(), "the page did not show the Training view"
                        page.close()
                    print(
                        f"{mode:>8} run {pair}: {rates[mode][-1]:.0f} images/s; service {cpu[mode][-1]:.1f} CPU s/min"
                    )
            browser.close()
    alone, watched = statistics.mean(rates["alone"]), statistics.mean(rates["watched"])
    print()
    print("| training run | images/s (mean) | service CPU s per minute |")
    print("| --- | ---: | ---: |")
    print(f"| nobody watching | {alone:.0f} | {statistics.mean(cpu['alone']):.1f} |")
    print(f"| the page open on its Training view | {watched:.0f} | {statistics.mean(cpu['watched']):.1f} |")
    print(f"watched / alone: {watched / alone:.3f} (target >= 0.95)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
