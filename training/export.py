"""Turn a training checkpoint into a serving one: networks only, optionally in half precision.

python -m training.export runs/mnist/checkpoint.safetensors models/pretrained/mnist.safetensors

A population's checkpoint holds every member: export writes the one the run chose, or --member N.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from models.checkpoint import CheckpointError, load_population, save_checkpoint
from training.options import DefaultsHelpFormatter

DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": None}


def export(source: Path, target: Path, *, dtype: torch.dtype | None = torch.float16, member: int | None = None) -> Path:
    """Drop the optimizer state and cast the weights; metadata (metrics, labels) is kept. From a
    population, `member` (default: the one the run chose) is written."""
    members = load_population(source)
    if len(members) == 1 and member in (None, 0):
        return save_checkpoint(target, members[0], dtype=dtype)
    if member is None:
        member = members[0].meta.get("chosen_member")
        if member is None:
            raise CheckpointError(
                f"{source}: a population of {len(members)} members that chose none yet; pick one with --member"
            )
    if not 0 <= member < len(members):
        raise CheckpointError(f"{source}: --member {member} is not one of its members 0..{len(members) - 1}")
    return save_checkpoint(target, members[member], dtype=dtype)


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
