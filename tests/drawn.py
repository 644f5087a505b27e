"""Stand-ins with known slant and stroke width, for tests of what continuous codes do."""

from __future__ import annotations

import torch
from torch import nn


def line_image(shear: float, width: float, size: int = 28) -> torch.Tensor:
    """An anti-aliased stroke of `width` pixels whose top is `shear` pixels per row to the right
    of its bottom: (1, size, size) in [-1, 1]."""
    rows = torch.arange(size, dtype=torch.float32)[:, None]  # (H, 1)
    cols = torch.arange(size, dtype=torch.float32)[None, :]  # (1, W)
    center = (size - 1) / 2 + shear * ((size - 1) / 2 - rows)  # (H, 1)
    ink = (width / 2 + 0.5 - (cols - center).abs()).clamp(0, 1)  # (H, W)
    ink[:4] = ink[-4:] = 0  # a stroke, not a band across the frame
    return (ink * 2 - 1).unsqueeze(0)


class LineGenerator(nn.Module):
    """A stand-in generator whose first continuous code is the slant and second the width."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c1, c2 = x[:, -2], x[:, -1]  # build_input puts the continuous codes last
        return torch.stack([line_image(0.2 * float(a), 3 + float(b)) for a, b in zip(c1, c2, strict=True)])
