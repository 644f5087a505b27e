"""Turn a training checkpoint into a serving one: networks only, optionally in half precision.

python -m training.export runs/mnist/checkpoint.safetensors models/pretrained/mnist.safetensors

A population's checkpoint holds every member: export writes the one the run chose, or --member N.
Continuous codes whose measured effect is clear get named by it ("slant", "width"), so the page
and the API can say what a slider does.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import torch

from models.checkpoint import Checkpoint, CheckpointError, load_population, save_checkpoint
from models.metadata import clear_effect
from training.options import DefaultsHelpFormatter

DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": None}


def export(source: Path, target: Path, *, dtype: torch.dtype | None = torch.float16, member: int | None = None) -> Path:
    """Drop the optimizer state and cast the weights; metadata (metrics, labels) is kept. From a
    population, `member` (default: the one the run chose) is written."""
    members = load_population(source)
    if member is None:
        member = 0 if len(members) == 1 else members[0].meta.get("chosen_member")
    if member is None:
        raise CheckpointError(
            f"{source}: a population of {len(members)} that chose no member yet; pick one with --member"
        )
    if not isinstance(member, int) or not 0 <= member < len(members):
        raise CheckpointError(f"{source}: --member {member} is not one of its members 0..{len(members) - 1}")
    return save_checkpoint(target, serving_checkpoint(members[member]), dtype=dtype)


def serving_checkpoint(checkpoint: Checkpoint) -> Checkpoint:
    """What a served model keeps of a training checkpoint: the networks and the metadata, codes
    named by what they do; no optimizer state, no note of which population member it was."""
    meta = {key: value for key, value in checkpoint.meta.items() if key != "chosen_member"}
    return named_codes(dataclasses.replace(checkpoint, training=None, meta=meta))


def named_codes(checkpoint: Checkpoint) -> Checkpoint:
    """The checkpoint with each continuous code named by what it measurably does, from the slant
    and width measurements in its metrics (models.metadata.clear_effect): "slant" for |rho| >= 0.9
    with slant and a slant swing at least twice the width swing, "width" likewise; where two
    codes qualify, the clearer one. Other codes, and checkpoints without the measurements, keep
    their names."""
    metrics = checkpoint.meta.get("metrics")
    effects = metrics.get("continuous") if isinstance(metrics, dict) else None
    if not isinstance(effects, dict):
        return checkpoint
    old = [code.name or f"c{j + 1}" for j, code in enumerate(checkpoint.latent.continuous)]
    claims: dict[str, tuple[float, int]] = {}  # effect -> (|rho|, code index)
    for j, name in enumerate(old):
        clear = clear_effect(effects.get(name))
        if clear and abs(clear[1]) > claims.get(clear[0], (0.0, -1))[0]:
            claims[clear[0]] = (abs(clear[1]), j)
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
    args = parser.parse_args(argv)
    try:
        path = export(args.source, args.target, dtype=DTYPES[args.dtype], member=args.member)
    except (CheckpointError, OSError) as error:
        print(f"infogan export: error: {error}", file=sys.stderr)
        return 2
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
