"""What to draw (a `Picture`), its generator pixels as answer bytes (PNG, grid PNG, GIF), and the
ETag that names them.

Pure functions: the same picture gives the same bytes, which is what lets the ETag be computed
from the request alone, before any inference. Never imports FastAPI: drawing does not depend
on the web layer.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from backend.registry import Model
from models.render import GRID_PAD, png_bytes, tile, to_image

RENDER_VERSION = 2  # bump when the same request would give different bytes
MEDIA_TYPES = {"image": "image/png", "grid": "image/png", "gif": "image/gif"}


@dataclass(frozen=True)
class Picture:
    """What to draw: generator inputs, how their images are laid out, and the picture's identity."""

    kind: Literal["image", "grid", "gif"]
    model: Model
    inputs: torch.Tensor  # (rows * cols, input_dim), row-major
    rows: int
    cols: int
    scale: int
    key: str  # canonical JSON of everything the bytes depend on
    duration_ms: int = 0
    bounce: bool = False


def etag(picture: Picture, kernels: str) -> str:
    """A strong validator: the picture's canonical request (checkpoint sha256 included), plus what
    else decides its bits: this module's version, torch's, and the generator's `kernels` (device
    type, precision, padding)."""
    text = f"{RENDER_VERSION}|{torch.__version__}|{kernels}|{picture.key}"
    return '"' + hashlib.sha256(text.encode()).hexdigest()[:32] + '"'


def render(picture: Picture, pixels: np.ndarray) -> bytes:
    """Bytes for `pixels` (rows * cols, H, W, C) uint8, laid out as `picture` says."""
    if picture.kind == "image":
        return png_bytes(pixels[0], scale=picture.scale)
    if picture.kind == "grid":
        return png_bytes(tile(pixels, rows=picture.rows, cols=picture.cols, pad=GRID_PAD), scale=picture.scale)
    frames = pixels  # (frames, H, W, C): one picture swept
    if picture.rows > 1:  # several seeds: each frame shows them side by side, at the frame's value
        by_frame = pixels.reshape(picture.rows, picture.cols, *pixels.shape[1:]).swapaxes(0, 1)
        frames = np.stack([tile(frame, rows=1, cols=picture.rows, pad=GRID_PAD) for frame in by_frame])
    return gif_bytes(frames, scale=picture.scale, duration_ms=picture.duration_ms, bounce=picture.bounce)


def gif_bytes(pixels: np.ndarray, *, scale: int, duration_ms: int, bounce: bool) -> bytes:
    """(frames, H, W, C) uint8 -> a looping GIF; `bounce` plays the frames forward then back."""
    frames = [to_image(frame, scale=scale) for frame in pixels]
    if bounce:
        frames += frames[-2:0:-1]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:], duration=duration_ms, loop=0)
    return buffer.getvalue()
