"""Turn a training checkpoint into a serving one: networks only, optionally in half precision.

python -m training.export runs/mnist/checkpoint.safetensors models/pretrained/mnist.safetensors

A population's checkpoint holds every member: export writes the one the run chose, or --member N.
Continuous codes are turned to line up with slant and width where that makes them cleaner
(training.align; --keep-codes leaves them), and codes whose measured effect is clear get named
by it ("slant", "width"), so the page and the API can say what a slider does.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import torch

from models.checkpoint import Checkpoint, CheckpointError, load_population, read_metadata, save_checkpoint
from models.metadata import clear_effect
from training.align import aligned_codes
from training.classifier import ClassifierError, MnistClassifier, load_classifier
from training.evaluate import CLASSIFIER_IMAGE
from training.options import DefaultsHelpFormatter

DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": None}


def export(
    source: Path,
    target: Path,
    *,
    dtype: torch.dtype | None = torch.float16,
    member: int | None = None,
    align: bool = True,
) -> Path:
    """Drop the optimizer state and cast the weights; metadata (metrics, labels) is kept. From a
    population, `member` (default: the one the run chose) is written. With `align`, a model of
    MNIST-shaped images gets its codes turned where that makes them cleaner (training.align)."""
    members = load_population(source)
    if member is None:
        member = 0 if len(members) == 1 else members[0].meta.get("chosen_member")
    if member is None:
        raise CheckpointError(
            f"{source}: a population of {len(members)} that chose no member yet; pick one with --member"
        )
    if not isinstance(member, int) or not 0 <= member < len(members):
        raise CheckpointError(f"{source}: --member {member} is not one of its members 0..{len(members) - 1}")
    chosen = members[member]
    classifier = code_classifier(chosen) if align else None
    return save_checkpoint(target, serving_checkpoint(chosen, classifier=classifier), dtype=dtype)


def code_classifier(checkpoint: Checkpoint) -> MnistClassifier | None:
    """The classifier that measures a model's codes (training.evaluate), where its images are
    MNIST-shaped; else None."""
    arch = checkpoint.arch
    return load_classifier() if (arch.image_channels, arch.image_size, arch.image_size) == CLASSIFIER_IMAGE else None


def serving_checkpoint(checkpoint: Checkpoint, *, classifier: MnistClassifier | None = None) -> Checkpoint:
    """What a served model keeps of a training checkpoint: the networks and the metadata, codes
    named by what they do; no optimizer state, no note of which population member it was. With
    the `classifier` that measures codes, they are first turned towards slant and width where
    that makes them cleaner (training.align)."""
    meta = {key: value for key, value in checkpoint.meta.items() if key != "chosen_member"}
    served = dataclasses.replace(checkpoint, training=None, meta=meta)
    return named_codes(aligned_codes(served, classifier) if classifier is not None else served)


def named_codes(checkpoint: Checkpoint) -> Checkpoint:
    """The checkpoint with each continuous code named by what it measurably does, from the slant
    and width measurements in its metrics (models.metadata.clear_effect): "slant" for |rho| >= 0.9
    with slant and a slant swing at least twice the width swings, "width" likewise by stroke
    thickness or breadth; where two codes qualify, the clearer one. Other codes, and checkpoints
    without the measurements, keep their names."""
    metrics = checkpoint.meta.get("metrics")
    effects = metrics.get("continuous") if isinstance(metrics, dict) else None
    if not isinstance(effects, dict):
        return checkpoint
    old = [code.name or f"c{j + 1}" for j, code in enumerate(checkpoint.latent.continuous)]
    claims: dict[str, tuple[float, int]] = {}  # effect -> (|rho|, code index)
    for j, name in enumerate(old):
        clear = clear_effect(effects.get(name))
        if clear and abs(clear.rho) > claims.get(clear.name, (0.0, -1))[0]:
            claims[clear.name] = (abs(clear.rho), j)
    new = list(old)
    for effect, (_, j) in claims.items():
        new[j] = effect
    if new == old:
        return checkpoint
    continuous = tuple(dataclasses.replace(c, name=n) for c, n in zip(checkpoint.latent.continuous, new, strict=True))
    renamed = {n: effects[o] for o, n in zip(old, new, strict=True) if o in effects}
    return dataclasses.replace(
        checkpoint,
        latent=dataclasses.replace(checkpoint.latent, continuous=continuous),
        meta={**checkpoint.meta, "metrics": {**metrics, "continuous": renamed}},
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="infogan export", description=__doc__.splitlines()[0], formatter_class=DefaultsHelpFormatter
    )
    parser.add_argument("source", type=Path, help="a training checkpoint")
    parser.add_argument("target", type=Path, help="where to write the serving checkpoint")
    parser.add_argument("--dtype", choices=DTYPES, default="fp16", help="weight precision")
    parser.add_argument("--member", type=int, help="of a population: which member (default: the one the run chose)")
    parser.add_argument(
        "--keep-codes", action="store_true", help="keep the continuous codes as trained, not turned to slant and width"
    )
    args = parser.parse_args(argv)
    try:
        path = export(args.source, args.target, dtype=DTYPES[args.dtype], member=args.member, align=not args.keep_codes)
    except (CheckpointError, ClassifierError, OSError) as error:
        print(f"infogan export: error: {error}", file=sys.stderr)
        return 2
    turned = " with its continuous codes turned to slant and width" if "code_rotation" in read_metadata(path) else ""
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB){turned}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
