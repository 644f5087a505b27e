"""How many tensor operations one training step dispatches: on a GPU each costs the host time
whatever its size, so this count bounds how fast one member's step can go there.

    python bench/ops.py                  # the default recipe on synthetic images, about 2 minutes
    python bench/ops.py --top 10

Counts every aten operation `training.loop.train` dispatches (a TorchDispatchMode), in a run of
5 steps and one of 15 with evaluation, samples and checkpoints pushed past the end; the
difference over 10 steps is one step's, the set-up and the final selection cancelling out.
Runs on the CPU; the CUDA step adds the autocast casts.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import io
import sys
import tempfile
from pathlib import Path
from typing import Any

from torch.utils._python_dispatch import TorchDispatchMode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).parent))

from serve import print_header  # noqa: E402

from training.loop import TrainConfig, train  # noqa: E402


class OpCounter(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.counts: collections.Counter[str] = collections.Counter()

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        self.counts[func.overloadpacket.__name__] += 1
        return func(*args, **(kwargs or {}))


def count_ops(steps: int, dataset: str) -> collections.Counter[str]:
    never = 10**9
    quiet = contextlib.redirect_stdout(io.StringIO())  # the run's selection report
    with tempfile.TemporaryDirectory() as out, quiet, OpCounter() as counter:
        intervals = {"log_every": never, "eval_every": never, "sample_every": never, "checkpoint_every": never}
        train(TrainConfig(dataset=dataset, steps=steps, out_dir=out, device="cpu", **intervals))
    return counter.counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="synthetic", help="the step's operations do not depend on it")
    parser.add_argument("--top", type=int, default=8, help="how many operations to list")
    args = parser.parse_args(argv)
    print_header()
    short, long = count_ops(5, args.dataset), count_ops(15, args.dataset)
    per_step = {name: (long[name] - short[name]) / 10 for name in long if long[name] != short[name]}
    print(f"aten operations dispatched per training step: {sum(per_step.values()):.0f}")
    for name, count in sorted(per_step.items(), key=lambda item: -item[1])[: args.top]:
        print(f"{count:8.1f}  {name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
