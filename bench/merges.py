"""How a merged member splits a digit, and how often each kind of jitter flips Q's category there.

    python bench/merges.py runs/screen/qdeep/s18/checkpoint.safetensors runs/screen/flip2/s20/checkpoint.safetensors

A merged member spreads some digits over two categories by style. For every member of each
checkpoint (training or serving; halving's stopped members left out), on the 10,000 test images:
the digits it splits (no category holds 80% of them), and for each the two categories that hold
most of it and how far apart the digit's images in them are in slant, stroke thickness and
breadth (Cohen's d: the difference of the means over the pooled standard deviation; the measures
of training.evaluate). Then, for each jitter the consistency term could use (training.losses.jitter,
one draw, seed 0), the share of images whose category it changes, on the split digits and on the
rest: the consistency term's flipped weight pulls where the jitter flips, so a jitter that flips
the split digits often and the rest rarely aims that pull at the merge. Labels are used to find
the split digits only. Last, two label-free readings of each member on the first 10,000 training
images, the ones selection reads: Q's information I(c; x) and jitter flips, the share of them
whose category the default jitter changes (training.select, as training logs them); and each
one's rank correlation with accuracy over the members.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from scipy.stats import spearmanr

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run as a script from anywhere
sys.path.insert(0, str(REPO / "bench"))

from serve import print_header  # noqa: E402

from models.checkpoint import load_population  # noqa: E402
from training.data import load_dataset  # noqa: E402
from training.evaluate import breadth, category_logits, match_categories, slant, stroke_width  # noqa: E402
from training.loop import SELECTION_IMAGES, TrainConfig  # noqa: E402
from training.losses import jitter  # noqa: E402
from training.select import category_probabilities, flip_copies, information, jitter_flips  # noqa: E402

SPLIT_BELOW = 0.8  # a digit is split when no category holds this share of it
JITTERS = {  # name -> (degrees, shear); every one also shifts by up to 2 pixels, as the default does
    "rotate 15 (the default)": (15.0, 0.0),
    "rotate 30": (30.0, 0.0),
    "shear 0.3": (0.0, 0.3),
    "shear 0.5": (0.0, 0.5),
    "rotate 15, shear 0.3": (15.0, 0.3),
}


def cohens_d(a: torch.Tensor, b: torch.Tensor) -> float:
    pooled = torch.cat([a - a.mean(), b - b.mean()]).std()
    return float((a.mean() - b.mean()) / pooled)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoints", type=Path, nargs="+", help="training (population) or serving checkpoints")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    print_header(", one thread")
    test = load_dataset("mnist", "test")
    images, labels = test.images, test.labels
    measures = {"slant": slant(images), "thickness": stroke_width(images), "breadth": breadth(images)}
    spread = " ".join(f"{digit}: {measures['slant'][labels == digit].std():.2f}" for digit in range(10))
    print(f"slant's standard deviation within each digit of the test set (pixels per pixel of height): {spread}")
    copies = {
        name: jitter(images, torch.Generator().manual_seed(0), TrainConfig(jitter_degrees=d, jitter_shear=s))
        for name, (d, s) in JITTERS.items()
    }
    unlabelled = load_dataset("mnist", "train").images[:SELECTION_IMAGES]
    unlabelled_copies = flip_copies(unlabelled)
    print("\n| member | accuracy | digit: its two categories' shares; Cohen's d of " + ", ".join(measures) + " |")
    print("| --- | ---: | --- |")
    flips_rows, label_free = [], []
    for path in args.checkpoints:
        for k, member in enumerate(load_population(path)):
            if member.meta.get("dropped_at") is not None:
                continue
            discriminator = member.discriminator.eval()
            with torch.no_grad():
                category = category_logits(discriminator, member.latent, images).argmax(1)
                jittered = {n: category_logits(discriminator, member.latent, c).argmax(1) for n, c in copies.items()}
                seen = category_probabilities(discriminator, member.latent, unlabelled)
                seen_jittered = category_probabilities(discriminator, member.latent, unlabelled_copies)
            accuracy, _ = match_categories(category, labels, member.latent.categorical[0].categories)
            label_free.append((f"{path}#{k}", accuracy, information(seen), jitter_flips(seen, seen_jittered)))
            confusion = np.zeros((member.latent.categorical[0].categories, 10), int)
            np.add.at(confusion, (category.numpy(), labels.numpy()), 1)
            shares = confusion / confusion.sum(0, keepdims=True)  # (categories, digits)
            split = [digit for digit in range(10) if shares[:, digit].max() < SPLIT_BELOW]
            cells = []
            for digit in split:
                first, second = np.argsort(shares[:, digit])[::-1][:2]
                in_first, in_second = (labels == digit) & (category == first), (labels == digit) & (category == second)
                ds = [cohens_d(v[in_first], v[in_second]) for v in measures.values()]
                cells.append(
                    f"{digit}: {shares[first, digit]:.2f} / {shares[second, digit]:.2f}; "
                    + " / ".join(f"{d:+.2f}" for d in ds)
                )
            print(f"| {path}#{k} | {accuracy:.4f} | {'<br>'.join(cells) or 'none split'} |")
            in_split = torch.isin(labels, torch.tensor(split, dtype=labels.dtype))
            flipped = {n: (j != category) for n, j in jittered.items()}
            flips_rows.append(
                f"| {path}#{k} | {accuracy:.4f} | "
                + " | ".join(
                    (f"{f[in_split].float().mean():.3f} / " if split else "- / ") + f"{f[~in_split].float().mean():.3f}"
                    for f in flipped.values()
                )
                + " |"
            )
    print("\nShare of test images whose category the jitter flips: on the split digits / on the rest")
    print("\n| member | accuracy | " + " | ".join(JITTERS) + " |")
    print("| --- | ---: |" + " ---: |" * len(JITTERS))
    print("\n".join(flips_rows))
    print("\nWithout labels, on the first 10,000 training images")
    print("\n| member | accuracy | information (nats) | flipped by the default jitter |")
    print("| --- | ---: | ---: | ---: |")
    for name, accuracy, info, flip_rate in label_free:
        print(f"| {name} | {accuracy:.4f} | {info:.4f} | {flip_rate:.3f} |")
    if len(label_free) > 2:
        accuracies, infos, flip_rates = (list(column) for column in list(zip(*label_free, strict=True))[1:])
        print(
            f"\nrank correlation with accuracy over {len(label_free)} members: information "
            f"{spearmanr(infos, accuracies)[0]:+.2f}, flip rate {spearmanr(flip_rates, accuracies)[0]:+.2f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
