"""How a member splits digits, and how much the consistency term's own jitter moves its reading.

    python bench/consistency.py runs/consistency/s11 runs/consistency/s12

For each run folder (every member of a population): the categories that hold a large share of
two digits at once (a merge, usually split by style), and, on the 10,000 MNIST test images, the
share whose category changes under `training.losses.jitter` (the term's rotation and shift) and
the term's KL. A member that learned the digits reads a jittered digit as the same digit; a
member that split 4s and 9s by slant flips those near its boundary, and pays the term for it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run as a script from anywhere
sys.path.insert(0, str(Path(__file__).parent))

from serve import print_header  # noqa: E402

from models.checkpoint import load_population  # noqa: E402
from training.data import load_dataset  # noqa: E402
from training.evaluate import category_logits  # noqa: E402
from training.loop import CHECKPOINT_NAME, TrainConfig  # noqa: E402
from training.losses import jitter  # noqa: E402

MERGED = 0.2  # a category holding at least this share of two digits' test images merges them


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="run folders, each with a checkpoint.safetensors")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    print_header()
    test = load_dataset("mnist", "test")
    print("| member | categories holding two digits | jitter flips: all digits | KL | flips: merged digits |")
    print("| --- | --- | ---: | ---: | ---: |")
    for run in args.runs:
        members = load_population(run / CHECKPOINT_NAME)
        size = TrainConfig.from_dict(members[0].meta["train_config"])  # the jitter this run trained with
        jittered = jitter(test.images, torch.Generator().manual_seed(0), size)
        for k, member in enumerate(members):
            before = F.log_softmax(category_logits(member.discriminator, member.latent, test.images), 1)
            after = F.log_softmax(category_logits(member.discriminator, member.latent, jittered), 1)
            category = before.argmax(1)
            flipped = after.argmax(1) != category
            merges, merged_digits = [], torch.zeros_like(flipped)
            for c in range(before.shape[1]):
                share = torch.bincount(test.labels[category == c], minlength=10) / torch.bincount(test.labels)
                digits = (share >= MERGED).nonzero().flatten().tolist()
                if len(digits) >= 2:
                    merges.append(f"{c}: " + " ".join(f"{d} ({share[d]:.0%})" for d in digits))
                    merged_digits |= torch.isin(test.labels, torch.tensor(digits))
            kl = F.kl_div(after, before, log_target=True, reduction="batchmean")
            on_merged = f"{flipped[merged_digits].float().mean():.3f}" if merges else "-"
            print(
                f"| {run.parent.name}/{run.name}/{k} | {'; '.join(merges) or 'none'} | "
                f"{flipped.float().mean():.3f} | {kl:.3f} | {on_merged} |"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
