"""Evaluation metrics: categorical accuracy, continuous-code effects and FID (docs/design.md, "Metrics")."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from scipy.linalg import eigh, eigvalsh
from scipy.optimize import linear_sum_assignment
from scipy.stats import rankdata
from torch import nn

from models import Checkpoint, CheckpointError, LatentBatch, LatentSpec, load_checkpoint, read_metadata, save_checkpoint
from models.metadata import category_labels
from models.networks import evaluating
from training.classifier import DEFAULT_PATH, ClassifierError, MnistClassifier, load_classifier
from training.data import DATASETS, DataError, ImageDataset, load_dataset
from training.options import DefaultsHelpFormatter, device_name, resolve_device, seed_value

SWEEP_VALUES = (-2.0, -1.5, -1.0, -0.5, 0.0, 0.5, 1.0, 1.5, 2.0)  # the paper's traversal range
# The unit of a code's swing: each attribute's standard deviation over the 10,000 MNIST test
# images, as slant(), stroke_width() and breadth() measure them (tests/test_evaluate.py checks the figures).
REAL_SPREAD = {"slant": 0.2642, "width": 0.04375, "breadth": 1.1595}
CLASSIFIER_IMAGE = (1, 28, 28)  # what the FID classifier was trained on


def apply_in_chunks(
    module: nn.Module, function: Callable[[torch.Tensor], torch.Tensor], inputs: torch.Tensor, batch_size: int
) -> torch.Tensor:
    """`function(chunk)` over `inputs` in chunks of `batch_size` on `module`'s device, in eval mode
    without gradients; the results concatenated on the CPU. Bounds the memory of a 10,000-image pass."""
    device = next(module.parameters(), torch.empty(0)).device  # parameterless modules run on CPU
    with evaluating(module):
        return torch.cat(
            [function(inputs[s : s + batch_size].to(device)).cpu() for s in range(0, len(inputs), batch_size)]
        )


# --- categorical code ------------------------------------------------------------------------


def categorical_accuracy(
    discriminator: nn.Module, latent: LatentSpec, data: ImageDataset, *, code: int = 0, batch_size: int = 1000
) -> tuple[float, list[int]]:
    """Accuracy of Q's categorical head as a digit classifier, and `mapping[category] = digit`.

    Categories carry no labels, so they are matched to digits by the one-to-one assignment that
    maximises accuracy (Hungarian method); unmatched categories (more categories than digits)
    map to -1 and count as errors."""
    predicted = category_logits(discriminator, latent, data.images, code=code, batch_size=batch_size).argmax(1)
    return match_categories(predicted, data.labels, latent.categorical[code].categories)


def category_logits(
    discriminator: nn.Module, latent: LatentSpec, images: torch.Tensor, *, code: int = 0, batch_size: int = 1000
) -> torch.Tensor:
    """Q's logits for the categories of categorical code `code`, for (N, C, H, W) images: (N, categories)."""

    def logits(chunk: torch.Tensor) -> torch.Tensor:
        return latent.split_q_output(discriminator.encode(chunk))[0][code].float()

    return apply_in_chunks(discriminator, logits, images, batch_size)


def match_categories(predicted: torch.Tensor, labels: torch.Tensor, categories: int) -> tuple[float, list[int]]:
    """Best one-to-one category -> label assignment for (N,) predictions; see categorical_accuracy."""
    confusion = torch.zeros(categories, int(labels.max()) + 1, dtype=torch.long)  # (categories, labels)
    confusion.index_put_((predicted, labels), torch.ones_like(predicted), accumulate=True)
    rows, cols = linear_sum_assignment(confusion.numpy(), maximize=True)
    mapping = [-1] * categories
    for row, col in zip(rows, cols, strict=True):
        mapping[row] = int(col)
    return int(confusion[rows, cols].sum()) / len(labels), mapping


# --- image attributes ------------------------------------------------------------------------


def _ink(images: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) in [-1, 1] -> (B, H, W) ink in [0, 1], 0 for background."""
    return ((images.float() + 1) / 2).clamp(0, 1).mean(1)


def _moments(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The ink's second-order central moments per unit of ink, mu20, mu11, mu02 (x to the right,
    y up, in pixels^2). (B,) each"""
    ink = _ink(images)  # (B, H, W)
    _, height, width = ink.shape
    y = -torch.arange(height, dtype=ink.dtype)[:, None]  # (H, 1), pointing up
    x = torch.arange(width, dtype=ink.dtype)[None, :]  # (1, W)
    mass = ink.sum((1, 2)).clamp_min(1e-6)  # (B,)
    dy = y - ((ink * y).sum((1, 2)) / mass)[:, None, None]  # (B, H, 1)
    dx = x - ((ink * x).sum((1, 2)) / mass)[:, None, None]  # (B, 1, W)
    mu20 = (ink * dx * dx).sum((1, 2)) / mass  # (B,)
    mu11 = (ink * dx * dy).sum((1, 2)) / mass
    mu02 = (ink * dy * dy).sum((1, 2)) / mass
    return mu20, mu11, mu02


def slant(images: torch.Tensor) -> torch.Tensor:
    """Horizontal shift per pixel of height of the ink's best-fit shear, mu11 / mu02 of the
    second-order central moments: > 0 when the top leans right (italics), 0 upright. (B,)"""
    _, mu11, mu02 = _moments(images)
    return mu11 / mu02.clamp_min(1e-6)


def breadth(images: torch.Tensor) -> torch.Tensor:
    """How broad the digit is, its slant aside: the horizontal spread of its ink (a standard
    deviation, pixels) once the best-fit shear is taken out, sqrt(mu20 - mu11^2 / mu02). (B,)

    The paper's "width" code turns a narrow digit into a broad one; stroke_width reads how thick
    its strokes are, which is not the same, and a code that does either is a width code
    (models.metadata.MEASURES). A shear moves ink sideways row by row, so taking it out keeps a
    slant code from reading as breadth."""
    mu20, mu11, mu02 = _moments(images)
    return (mu20 - mu11.square() / mu02.clamp_min(1e-6)).clamp_min(0).sqrt()


def stroke_width(images: torch.Tensor) -> torch.Tensor:
    """Ink mass: the mean ink per pixel. (B,)

    Along one sweep the digit and its strokes' length stay put, so thicker strokes mean more
    ink; mass is also robust to the blur and speckle of generated images, where a skeleton-based
    width is not. It would confuse width with size across different digits, which the per-line
    rank correlation of continuous_effects never compares."""
    return _ink(images).mean((1, 2))


# --- continuous codes ------------------------------------------------------------------------


def _generate(generator: nn.Module, latent: LatentSpec, batch: LatentBatch, batch_size: int) -> torch.Tensor:
    inputs = latent.build_input(batch)  # (N, input_dim)
    return apply_in_chunks(generator, lambda chunk: generator(chunk).float(), inputs, batch_size)  # (N, C, H, W)


def _predict(classifier: MnistClassifier, images: torch.Tensor, batch_size: int) -> torch.Tensor:
    return apply_in_chunks(classifier, lambda chunk: classifier(chunk).argmax(1), images, batch_size)  # (N,)


def _mean_spearman(values: np.ndarray, attribute: np.ndarray) -> float:
    """Mean over sweep lines of Spearman's rho between (V,) code values and each (L, V) row.

    Per line, not pooled: pooling would mix the baseline slant and width of different digits
    and noises into the ranking and dilute the code's effect. A constant row (nothing changes)
    counts as 0 rather than NaN. Rho is the Pearson correlation of the ranks (ties averaged, as
    scipy.stats.spearmanr), taken for all lines at once: every evaluation of a run measures it."""
    ranks = rankdata(attribute, axis=1)  # (L, V)
    ranks -= ranks.mean(1, keepdims=True)
    value_ranks = rankdata(values) - (len(values) + 1) / 2  # (V,)
    spread = np.sqrt((ranks**2).sum(1) * (value_ranks**2).sum())  # (L,), 0 for a constant row
    rhos = np.divide(ranks @ value_ranks, spread, out=np.zeros(len(ranks)), where=spread > 0)
    return float(rhos.mean())


def _swing(values: np.ndarray, attribute: np.ndarray, unit: float) -> float:
    """Mean over sweep lines of how far an (L, V) attribute moves from the smallest code value to
    the largest, in `unit`s. Rank correlations say whether a code moves an attribute steadily,
    not how far: a code can rank both slant and width near 1 while moving one far more."""
    return float(((attribute[:, values.argmax()] - attribute[:, values.argmin()]) / unit).mean())


def continuous_effects(
    generator: nn.Module,
    latent: LatentSpec,
    classifier: MnistClassifier,
    *,
    values: Sequence[float] = SWEEP_VALUES,
    seeds: Sequence[int] = tuple(range(10)),
    batch_size: int = 1000,
) -> dict[str, dict[str, float]]:
    """What each continuous code does when swept over `values` with everything else fixed.

    A sweep line is one noise seed x one category of the first categorical code (the others at
    0), with the other continuous codes at 0. Per code: the mean per-line Spearman correlation
    of the code value with slant, with stroke width and with breadth, each attribute's swing over
    the sweep in units of real digits' spread (REAL_SPREAD), and `identity_kept`, the share of
    swept images (at values other than 0) whose predicted digit is the one predicted at value 0."""
    if len(set(values)) < 2 or not seeds:
        raise ValueError(f"a sweep needs two distinct values and a seed, got {list(values)} and {list(seeds)}")
    sweep = torch.tensor([*values, 0.0])  # (V + 1,), the last one is the reference at 0
    categories = latent.categorical[0].categories if latent.categorical else 1
    z = torch.cat([latent.noise(seed) for seed in seeds])  # (S, noise_dim)
    lines = len(z) * categories
    c_cat = torch.zeros(lines, len(latent.categorical), dtype=torch.long)  # (L, n_categorical)
    if latent.categorical:
        c_cat[:, 0] = torch.arange(categories).repeat(len(z))
    points = len(sweep)
    swept_values = sweep[:-1].numpy()  # (V,)

    effects = {}
    for j, code in enumerate(latent.continuous):
        c_cont = torch.zeros(lines, points, len(latent.continuous))  # (L, V + 1, n_continuous)
        c_cont[:, :, j] = sweep
        batch = LatentBatch(
            z=z.repeat_interleave(categories * points, 0),  # (L * (V + 1), noise_dim)
            c_cat=c_cat.repeat_interleave(points, 0),
            c_cont=c_cont.flatten(0, 1),
        )
        images = _generate(generator, latent, batch, batch_size)  # (L * (V + 1), C, H, W)
        attributes = {"slant": slant(images), "width": stroke_width(images), "breadth": breadth(images)}
        rows = {a: values.view(lines, points)[:, :-1].numpy() for a, values in attributes.items()}  # (L, V) each
        digits = _predict(classifier, images, batch_size).view(lines, points)  # (L, V + 1)
        kept = digits[:, :-1][:, swept_values != 0] == digits[:, -1:]  # (L, V'), the trivial match at 0 left out
        effects[code.name or f"c{j + 1}"] = {
            **{f"{a}_spearman": _mean_spearman(swept_values, row) for a, row in rows.items()},
            **{f"{a}_swing": _swing(swept_values, row, REAL_SPREAD[a]) for a, row in rows.items()},
            "identity_kept": float(kept.float().mean()),
        }
    return effects


# --- sample quality --------------------------------------------------------------------------


def sample_images(
    generator: nn.Module, latent: LatentSpec, n: int, seed: int, *, batch_size: int = 1000
) -> torch.Tensor:
    """`n` images from the prior, reproducible from `seed`: (n, C, H, W) on CPU."""
    return _generate(generator, latent, latent.sample(n, generator=torch.Generator().manual_seed(seed)), batch_size)


def _features(classifier: MnistClassifier, images: torch.Tensor, batch_size: int) -> np.ndarray:
    return apply_in_chunks(classifier, classifier.features, images, batch_size).double().numpy()  # (N, features)


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance between Gaussian fits of (N, F) and (M, F) features:
    |mu_a - mu_b|^2 + tr(C_a + C_b - 2 (C_a C_b)^1/2).

    tr (C_a C_b)^1/2 equals tr (C_a^1/2 C_b C_a^1/2)^1/2, whose argument is symmetric positive
    semi-definite: its eigenvalues are real and, clipped at 0, have real roots. So unlike the
    usual scipy.linalg.sqrtm route there is no complex part to drop and nothing breaks when a
    covariance is singular (fewer samples than features)."""
    if len(a) < 2 or len(b) < 2:
        raise ValueError(f"FID needs at least two images per set, got {len(a)} and {len(b)}")
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)  # (F, F)
    eigenvalues, vectors = eigh(cov_a)
    root_a = (vectors * np.sqrt(eigenvalues.clip(min=0))) @ vectors.T  # C_a^1/2
    middle = root_a @ cov_b @ root_a
    cross = np.sqrt(eigvalsh((middle + middle.T) / 2).clip(min=0)).sum()
    distance = np.sum((a.mean(0) - b.mean(0)) ** 2) + np.trace(cov_a) + np.trace(cov_b) - 2 * cross
    return max(float(distance), 0.0)  # rounding can leave -1e-12 for identical sets


def fid(classifier: MnistClassifier, real: torch.Tensor, fake: torch.Tensor, *, batch_size: int = 1000) -> float:
    """FID in the feature space of our MNIST classifier (not Inception: values are not
    comparable with published FIDs, only with each other at the same sample counts)."""
    return frechet_distance(_features(classifier, real, batch_size), _features(classifier, fake, batch_size))


# --- everything at once ----------------------------------------------------------------------


def evaluate(
    checkpoint: Checkpoint, test: ImageDataset, classifier: MnistClassifier, *, fid_samples: int = 10_000, seed: int = 0
) -> dict[str, Any]:
    """All metrics of a checkpoint on a test set, as a JSON-able dict.

    `fid_real_baseline` is the FID between the even- and odd-numbered test images: the floor that
    sampling noise alone gives at about this many images. (Not first half vs second half: MNIST's
    test set is ordered by writer population, and its halves differ, FID 45 against 3.)"""
    generated = (checkpoint.arch.image_channels, checkpoint.arch.image_size, checkpoint.arch.image_size)
    if tuple(test.images.shape[1:]) != generated or generated != CLASSIFIER_IMAGE:
        raise DataError(
            f"test images are {tuple(test.images.shape[1:])}, the checkpoint generates {generated}, "
            f"and the metrics' classifier needs {CLASSIFIER_IMAGE}"
        )
    metrics: dict[str, Any] = {}
    if checkpoint.latent.categorical:
        accuracy, mapping = categorical_accuracy(checkpoint.discriminator, checkpoint.latent, test)
        metrics.update(categorical_accuracy=round(accuracy, 4), category_to_digit=mapping)
    metrics["continuous"] = {
        name: {key: round(value, 4) for key, value in effect.items()}
        for name, effect in continuous_effects(checkpoint.generator, checkpoint.latent, classifier).items()
    }
    fake = sample_images(checkpoint.generator, checkpoint.latent, fid_samples, seed)
    metrics["fid"] = round(fid(classifier, test.images, fake), 4)
    metrics["fid_real_baseline"] = round(fid(classifier, test.images[::2], test.images[1::2]), 4)
    metrics["fid_samples"] = fid_samples
    return metrics


def format_metrics(metrics: dict[str, Any]) -> str:
    lines = []
    if "categorical_accuracy" in metrics:
        mapping = " ".join(f"{category}->{digit}" for category, digit in enumerate(metrics["category_to_digit"]))
        lines.append(f"categorical accuracy  {metrics['categorical_accuracy']:.4f}   (category->digit: {mapping})")
    lines.append(
        f"FID                   {metrics['fid']:.3f}   ({metrics['fid_samples']} samples; "
        f"test images, even vs odd: {metrics['fid_real_baseline']:.3f})"
    )
    lines.append(
        f"{'continuous code':<20}{'slant rho':>10}{'thickness rho':>15}{'breadth rho':>13}{'slant swing':>13}"
        f"{'thickness swing':>17}{'breadth swing':>15}{'identity kept':>15}"
    )
    for name, e in metrics["continuous"].items():
        lines.append(
            f"{name:<20}{e['slant_spearman']:>+10.3f}{e['width_spearman']:>+15.3f}{e['breadth_spearman']:>+13.3f}"
            f"{e['slant_swing']:>+13.2f}{e['width_swing']:>+17.2f}{e['breadth_swing']:>+15.2f}{e['identity_kept']:>15.3f}"
        )
    lines.append("(swing: change over the sweep from -2 to 2, in standard deviations of real test digits)")
    return "\n".join(lines)


def _version(path: Path) -> tuple[int, int, int] | None:
    """Which file `path` is now: an atomic rewrite changes the inode, any write the mtime."""
    try:
        stat = path.stat()
    except OSError:
        return None
    return stat.st_ino, stat.st_mtime_ns, stat.st_size


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="infogan evaluate",
        description="Evaluate a checkpoint and store its metrics in it.",
        formatter_class=DefaultsHelpFormatter,
    )
    parser.add_argument("checkpoint", type=Path, help="a training or serving checkpoint (.safetensors)")
    parser.add_argument("--dataset", choices=DATASETS, help="test set (default: the checkpoint's, else mnist)")
    parser.add_argument("--no-write", action="store_true", help="print the metrics, leave the file untouched")
    parser.add_argument("--fid-samples", type=int, default=10_000, help="generated images for FID (at least 2)")
    parser.add_argument("--seed", type=seed_value, default=0, help="seed of the FID samples")
    parser.add_argument("--classifier", type=Path, default=DEFAULT_PATH, help="weights of the metrics' classifier")
    parser.add_argument(
        "--device", type=device_name, default="auto", help="auto (cuda, then mps, then cpu), cpu, cuda, ..."
    )
    args = parser.parse_args(argv)
    if args.fid_samples < 2:
        parser.error("--fid-samples must be at least 2")
    try:
        device = resolve_device(args.device)
    except ValueError as error:
        parser.error(str(error))

    try:
        # A training checkpoint is loaded with its optimizer state so that writing it back keeps it resumable.
        resumable = "optimizers" in read_metadata(args.checkpoint)
        version = _version(args.checkpoint)
        checkpoint = load_checkpoint(args.checkpoint, device=device, with_training_state=resumable)
        classifier = load_classifier(args.classifier).to(device)
        test = load_dataset(args.dataset or checkpoint.meta.get("dataset", "mnist"), "test")
        metrics = evaluate(checkpoint, test, classifier, fid_samples=args.fid_samples, seed=args.seed)
    except (CheckpointError, ClassifierError, DataError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2

    print(f"{args.checkpoint} ({len(test)} test images)")
    print(format_metrics(metrics))
    if args.no_write:
        return 0
    if _version(args.checkpoint) != version:  # a run saved a newer checkpoint meanwhile: keep it
        print(f"error: {args.checkpoint}: changed while being evaluated; metrics not written", file=sys.stderr)
        return 2
    checkpoint.meta["metrics"] = {**checkpoint.meta.get("metrics", {}), **metrics}
    if "category_to_digit" in metrics:
        checkpoint.meta["category_labels"] = category_labels(metrics["category_to_digit"])
    save_checkpoint(args.checkpoint, checkpoint, dtype=checkpoint.stored_dtype)
    print(f"wrote metrics into {args.checkpoint}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
