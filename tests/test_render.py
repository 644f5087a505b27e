"""Specification of models.render: tensors to uint8, grids, and deterministic PNG bytes; and of
backend.render's place apart from the web layer."""

import io
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from models.render import png_bytes, tile, to_uint8


def decode(data: bytes) -> Image.Image:
    with Image.open(io.BytesIO(data)) as image:
        return image.copy()  # loaded, and usable after the file is closed


# --- to_uint8 ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "level"),
    [
        (-1.0, 0),  # tanh's bottom is black
        (1.0, 255),  # tanh's top is white
        (0.0, 128),  # 127.5 rounds half to even, up to 128
        (-0.5, 64),  # 63.75 rounds to the nearest level
        (0.5, 191),  # 191.25 rounds down
        (-3.0, 0),  # out of range: clamped, not wrapped
        (2.0, 255),  # out of range: clamped, not wrapped
    ],
)
def test_to_uint8_maps_minus_1_to_1_onto_0_to_255(value: float, level: int) -> None:
    pixels = to_uint8(torch.full((1, 1, 2, 2), value))

    assert pixels.dtype == np.uint8
    assert (pixels == level).all()


def test_to_uint8_moves_channels_last() -> None:
    images = torch.zeros(2, 3, 4, 5)
    images[:, 1] = 1.0  # green

    pixels = to_uint8(images)

    assert pixels.shape == (2, 4, 5, 3)
    assert (pixels[..., 0] == 128).all()
    assert (pixels[..., 1] == 255).all()


def test_to_uint8_accepts_a_tensor_that_requires_grad() -> None:
    images = torch.zeros(1, 1, 2, 2, requires_grad=True)

    assert (to_uint8(images) == 128).all()


# --- tile -------------------------------------------------------------------------------------


def numbered(count: int, height: int = 3, width: int = 4, channels: int = 1) -> np.ndarray:
    """`count` images, image i filled with the value i + 1 (so padding, 0, stands apart)."""
    return np.stack([np.full((height, width, channels), i + 1, dtype=np.uint8) for i in range(count)])


def test_tile_has_padding_around_and_between_images() -> None:
    canvas = tile(numbered(6), rows=2, cols=3, pad=2)

    assert canvas.shape == (2 * (3 + 2) + 2, 3 * (4 + 2) + 2, 1)
    assert canvas.dtype == np.uint8


def test_tile_lays_images_out_row_major() -> None:
    canvas = tile(numbered(6), rows=2, cols=3, pad=2)

    for row in range(2):
        for col in range(3):
            top, left = 2 + row * 5, 2 + col * 6
            assert (canvas[top : top + 3, left : left + 4] == row * 3 + col + 1).all(), (row, col)


def test_tile_padding_is_black() -> None:
    canvas = tile(numbered(6), rows=2, cols=3, pad=2)

    assert (canvas == 0).sum() == canvas.size - 6 * 3 * 4


def test_tile_without_padding_is_the_images_side_by_side() -> None:
    canvas = tile(numbered(2), rows=1, cols=2, pad=0)

    assert np.array_equal(canvas, np.concatenate([numbered(2)[0], numbered(2)[1]], axis=1))


def test_tile_keeps_colour_channels() -> None:
    assert tile(numbered(4, channels=3), rows=2, cols=2).shape == (2 * 5 + 2, 2 * 6 + 2, 3)


@pytest.mark.parametrize(
    "count",
    [
        5,  # one short of 2x3
        7,  # one too many
    ],
)
def test_tile_rejects_a_wrong_image_count(count: int) -> None:
    with pytest.raises(ValueError, match=f"tile needs 2x3=6 images, got {count}"):
        tile(numbered(count), rows=2, cols=3)


# --- png_bytes --------------------------------------------------------------------------------


def picture(channels: int) -> np.ndarray:
    """A 5x7 picture with a distinct value at every pixel and channel."""
    return (np.arange(5 * 7 * channels) * 7 % 256).astype(np.uint8).reshape(5, 7, channels)


def test_png_bytes_are_a_png() -> None:
    assert png_bytes(picture(1)).startswith(b"\x89PNG\r\n\x1a\n")


@pytest.mark.parametrize("scale", [1, 8])
def test_png_bytes_are_the_same_for_the_same_picture(scale: int) -> None:
    assert png_bytes(picture(3), scale=scale) == png_bytes(picture(3).copy(), scale=scale)


@pytest.mark.parametrize(
    ("channels", "mode"),
    [
        (1, "L"),  # greyscale, as the generators draw MNIST
        (3, "RGB"),
    ],
)
def test_png_mode_follows_the_channel_count(channels: int, mode: str) -> None:
    assert decode(png_bytes(picture(channels))).mode == mode


@pytest.mark.parametrize("scale", [1, 2, 8])
def test_png_size_is_the_picture_size_times_scale(scale: int) -> None:
    # PIL gives (width, height); the picture is (height 5, width 7).
    assert decode(png_bytes(picture(1), scale=scale)).size == (7 * scale, 5 * scale)


@pytest.mark.parametrize("channels", [1, 3])
def test_png_at_scale_1_holds_the_picture_exactly(channels: int) -> None:
    decoded = np.asarray(decode(png_bytes(picture(channels))))

    assert np.array_equal(decoded.reshape(5, 7, channels), picture(channels))


@pytest.mark.parametrize("channels", [1, 3])
def test_png_upscaling_is_nearest_neighbour_blocks(channels: int) -> None:
    decoded = np.asarray(decode(png_bytes(picture(channels), scale=8))).reshape(40, 56, channels)

    blocks = decoded.reshape(5, 8, 7, 8, channels)  # (row, y in block, col, x in block, C)
    assert (blocks == blocks[:, :1, :, :1]).all()  # each 8x8 block is one colour
    assert np.array_equal(blocks[:, 0, :, 0], picture(channels))  # the source pixel's colour


@pytest.mark.parametrize(
    "scale",
    [
        0,  # would give an empty image
        -1,
    ],
)
def test_png_rejects_a_scale_below_1(scale: int) -> None:
    with pytest.raises(ValueError, match="scale must be >= 1"):
        png_bytes(picture(1), scale=scale)


# --- backend.render ---------------------------------------------------------------------------


def test_backend_render_does_not_import_the_web_framework() -> None:
    # A fresh interpreter: in this one the API tests may already have imported FastAPI.
    code = "import sys, backend.render; print('fastapi' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)

    assert result.stdout.strip() == "False"
