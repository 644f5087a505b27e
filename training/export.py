"""Turn a training checkpoint into a serving one: networks only, optionally in half precision.

python -m training.export runs/mnist/checkpoint.safetensors models/pretrained/mnist.safetensors
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from models.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from training.options import DefaultsHelpFormatter

DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": None}


def export(source: Path, target: Path, *, dtype: torch.dtype | None = torch.float16) -> Path:
    """Drop the optimizer state and cast the weights; metadata (metrics, labels) is kept."""
    checkpoint = load_checkpoint(source)
    return save_checkpoint(target, checkpoint, dtype=dtype)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="infogan export", description=__doc__.splitlines()[0], formatter_class=DefaultsHelpFormatter
    )
    parser.add_argument("source", type=Path, help="a training checkpoint")
    parser.add_argument("target", type=Path, help="where to write the serving checkpoint")
    parser.add_argument("--dtype", choices=DTYPES, default="fp16", help="weight precision")
    args = parser.parse_args(argv)
    try:
        path = export(args.source, args.target, dtype=DTYPES[args.dtype])
    except (CheckpointError, OSError) as error:
        print(f"infogan export: error: {error}", file=sys.stderr)
        return 2
    print(f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
