"""Sample figures from a checkpoint, in the layout of the InfoGAN paper's figure 2.

    python -m models.sample models/pretrained/mnist.safetensors --out samples

writes `categories.png` (a row per category of the first categorical code, a column per noise
seed) and `traverse_<code>.png` for each continuous code (a row per category, a column per code
value from -2 to 2, noise fixed): what the explorer page shows, as files.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from models.checkpoint import CheckpointError, load_checkpoint
from models.latent import LatentBatch, LatentSpec
from models.render import png_bytes, tile, to_uint8


def traversal_codes(
    latent: LatentSpec, *, seeds: list[int], values: list[float] | None = None, code: int | None = None
) -> LatentBatch:
    """Codes for a grid of rows x columns: rows are the categories of the first categorical code;
    columns are `seeds` (noise) or, with `code`, `values` of that continuous code at one seed."""
    rows = latent.categorical[0].categories if latent.categorical else 1
    columns = len(values) if code is not None else len(seeds)
    count = rows * columns
    if code is None:
        z = torch.cat([latent.noise(seed) for seed in seeds]).repeat(rows, 1)  # (rows * columns, noise_dim)
    else:
        z = latent.noise(seeds[0]).repeat(count, 1)
    c_cat = torch.zeros(count, len(latent.categorical), dtype=torch.long)
    if latent.categorical:
        c_cat[:, 0] = torch.arange(rows).repeat_interleave(columns)
    c_cont = torch.zeros(count, len(latent.continuous))
    if code is not None:
        c_cont[:, code] = torch.tensor(values).repeat(rows)
    return LatentBatch(z, c_cat, c_cont)


@torch.no_grad()
def render_grid(generator: torch.nn.Module, latent: LatentSpec, codes: LatentBatch, *, rows: int, scale: int) -> bytes:
    device = next(generator.parameters()).device
    images = generator(latent.build_input(codes).to(device))  # (rows * columns, C, H, W)
    return png_bytes(tile(to_uint8(images), rows=rows, cols=len(images) // rows), scale=scale)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m models.sample", description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("--out", type=Path, default=Path("samples"))
    parser.add_argument("--seed", type=int, default=0, help="first noise seed")
    parser.add_argument("--scale", type=int, default=2, choices=range(1, 9), metavar="1..8")
    args = parser.parse_args(argv)
    try:
        checkpoint = load_checkpoint(args.checkpoint)
    except CheckpointError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    latent = checkpoint.latent
    rows = latent.categorical[0].categories if latent.categorical else 1
    seeds = list(range(args.seed, args.seed + 10))
    figures = {"categories.png": traversal_codes(latent, seeds=seeds)}
    values = [v / 2 for v in range(-4, 5)]  # -2 .. 2, past the training range as in the paper
    for index, code in enumerate(latent.continuous):
        name = code.name or f"c{index + 1}"
        figures[f"traverse_{name}.png"] = traversal_codes(latent, seeds=seeds, values=values, code=index)
    args.out.mkdir(parents=True, exist_ok=True)
    for filename, codes in figures.items():
        (args.out / filename).write_bytes(render_grid(checkpoint.generator, latent, codes, rows=rows, scale=args.scale))
        print(args.out / filename)
    return 0


if __name__ == "__main__":
    sys.exit(main())
