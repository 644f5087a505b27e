"""`POST /encode`: an uploaded image, decoded with care and laid out like MNIST, and Q's estimate.

The image comes as the raw request body (Content-Type image/png, jpeg, gif, webp or bmp), which
a page sends straight from `canvas.toBlob`. Ink is found like this: a picture with transparent
pixels is ink where it is opaque, whatever the colour (strokes on a clear canvas); otherwise
ink is bright, and a picture whose border is mostly light is inverted (dark ink on paper).
For single-channel models the ink is then laid out as MNIST's digits were: the bounding box
scaled to fit 20x20 of 28x28, the centre of mass at the centre. Colour models get the image
padded to a square and resized.
"""

from __future__ import annotations

import io

import numpy as np
import torch
from PIL import Image, ImageOps

from backend.schemas import CategoricalEstimate, ContinuousEstimate, EncodeResponse
from models import Checkpoint
from models.metadata import q_predicts_std

CONTENT_TYPES = {"image/png": "PNG", "image/jpeg": "JPEG", "image/gif": "GIF", "image/webp": "WEBP", "image/bmp": "BMP"}
DIGIT_BOX = 20 / 28  # MNIST fits each digit's bounding box into 20x20 pixels of 28x28


class BadImage(Exception):
    """An upload that is not a usable image; `status` is the HTTP status that says why."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def prepare(data: bytes, content_type: str, *, channels: int, size: int, max_pixels: int) -> torch.Tensor:
    """The body of a request to /encode as Q's input (1, channels, size, size) in [-1, 1]."""
    return model_input(decode(data, content_type, max_pixels=max_pixels), channels=channels, size=size)


def decode(data: bytes, content_type: str, *, max_pixels: int) -> Image.Image:
    """The first frame of an uploaded image, refusing what is not an image or is too large."""
    media_type = content_type.split(";")[0].strip().lower()
    if media_type not in CONTENT_TYPES:
        raise BadImage(415, f"Content-Type must be one of {', '.join(CONTENT_TYPES)}, with the image as the body")
    if not data:
        raise BadImage(400, "the body is empty: send the image's bytes")
    try:
        image = Image.open(io.BytesIO(data), formats=list(CONTENT_TYPES.values()))
    except Image.DecompressionBombError as error:
        raise BadImage(413, f"image: {error}") from error
    except Exception as error:  # Pillow raises many types for hostile bytes; all mean "not an image"
        raise BadImage(400, f"image: not a readable {'/'.join(CONTENT_TYPES.values())} file") from error
    width, height = image.size
    if width * height > max_pixels:
        raise BadImage(413, f"image: {width}x{height} is {width * height} pixels, at most {max_pixels}")
    try:
        image.load()  # the header was fine; now the pixels, which may be truncated
        return ImageOps.exif_transpose(image)  # a phone photo stands the way it was taken
    except Exception as error:
        raise BadImage(400, f"image: cannot decode the pixels ({error})") from error


def model_input(image: Image.Image, *, channels: int, size: int) -> torch.Tensor:
    """(1, channels, size, size) in [-1, 1], ink bright as the generator draws it."""
    if channels == 1:
        pixels = _mnist_layout(_ink(image), size)[:, :, None]  # (size, size, 1)
    else:
        background = Image.new("RGBA", image.size, "black")
        rgb = Image.alpha_composite(background, image.convert("RGBA")).convert("RGB")
        pixels = np.asarray(ImageOps.pad(rgb, (size, size), color="black"), dtype=np.float32) / 255
    return torch.from_numpy(pixels * 2 - 1).permute(2, 0, 1).unsqueeze(0).float()


def estimate(name: str, checkpoint: Checkpoint, q_out: torch.Tensor) -> EncodeResponse:
    """Q's output (1, q_output_dim) as probabilities per categorical code and mean/std per continuous one."""
    logits, mean, log_std = checkpoint.latent.split_q_output(q_out)
    labels = checkpoint.meta.get("category_labels")
    learn_std = q_predicts_std(checkpoint.meta)
    categorical = []
    for i, (code, code_logits) in enumerate(zip(checkpoint.latent.categorical, logits, strict=True)):
        probabilities = torch.softmax(code_logits[0], dim=0)
        best = int(probabilities.argmax())
        label = labels[best] if i == 0 and isinstance(labels, list) and best < len(labels) else None
        rounded = [round(p, 6) for p in probabilities.tolist()]
        categorical.append(CategoricalEstimate(name=code.name, probabilities=rounded, argmax=best, label=label))
    continuous = [
        ContinuousEstimate(
            name=code.name,
            mean=round(float(mean[0, i]), 6),
            std=round(float(log_std[0, i].exp()), 6) if learn_std else None,
        )
        for i, code in enumerate(checkpoint.latent.continuous)
    ]
    return EncodeResponse(checkpoint=name, categorical=categorical, continuous=continuous)


def _ink(image: Image.Image) -> np.ndarray:
    """(H, W) float32 in [0, 1], 1 where the ink is."""
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        alpha = np.asarray(image.convert("RGBA"))[:, :, 3]
        if alpha.min() < 255:
            return alpha.astype(np.float32) / 255
    grey = np.asarray(image.convert("L"), dtype=np.float32) / 255
    border = np.concatenate([grey[0], grey[-1], grey[:, 0], grey[:, -1]])
    return 1 - grey if border.mean() > 0.5 else grey


def _mnist_layout(ink: np.ndarray, size: int) -> np.ndarray:
    """MNIST's preprocessing: bounding box fitted into the digit box, centre of mass at the centre."""
    canvas = np.zeros((size, size), dtype=np.float32)
    rows, cols = np.nonzero(ink > 0.1 * ink.max()) if ink.max() > 0 else ((), ())
    if not len(rows):
        return canvas  # a blank picture stays blank
    crop = ink[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
    factor = round(size * DIGIT_BOX) / max(crop.shape)
    height, width = (max(1, round(side * factor)) for side in crop.shape)
    digit = np.asarray(Image.fromarray(crop).resize((width, height), Image.Resampling.LANCZOS)).clip(0, 1)
    mass = digit.sum()
    centre_y = (digit.sum(axis=1) @ np.arange(height)) / mass if mass > 0 else height / 2
    centre_x = (digit.sum(axis=0) @ np.arange(width)) / mass if mass > 0 else width / 2
    top = int(np.clip(round(size / 2 - 0.5 - centre_y), 0, size - height))
    left = int(np.clip(round(size / 2 - 0.5 - centre_x), 0, size - width))
    canvas[top : top + height, left : left + width] = digit
    return canvas
