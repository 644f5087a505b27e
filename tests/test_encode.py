"""Specification of backend.encode: uploads become MNIST-like inputs for Q, whatever they look like."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw
from service_helpers import write_checkpoint

from backend.encode import BadImage, decode, estimate, model_input
from models import load_checkpoint


def stroke(size: tuple[int, int], *, ink: str | tuple, paper: str | tuple, mode: str = "RGB") -> Image.Image:
    """A thick "7"-like stroke, off-centre, drawn in `ink` on `paper`."""
    image = Image.new(mode, size, paper)
    width, height = size
    draw = ImageDraw.Draw(image)
    draw.line([(width * 0.1, height * 0.2), (width * 0.4, height * 0.2), (width * 0.2, height * 0.7)], ink, 12)
    return image


def grey(image: Image.Image) -> np.ndarray:
    return model_input(image, channels=1, size=28)[0, 0].numpy()


def encoded(image: Image.Image, format: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=format)
    return buffer.getvalue()


def test_digits_are_fitted_into_20_pixels_and_centred_by_mass() -> None:
    pixels = (grey(stroke((300, 200), ink="white", paper="black")) + 1) / 2
    rows, cols = np.nonzero(pixels > 0.05)
    assert max(np.ptp(rows), np.ptp(cols)) + 1 <= 21  # LANCZOS rings a pixel past the 20
    mass = pixels.sum()
    centre = (pixels.sum(axis=1) @ np.arange(28) / mass, pixels.sum(axis=0) @ np.arange(28) / mass)
    assert np.allclose(centre, 13.5, atol=1.0)


def test_dark_ink_on_paper_reads_like_light_ink_on_black() -> None:
    on_paper = grey(stroke((120, 120), ink="black", paper="white"))
    on_black = grey(stroke((120, 120), ink="white", paper="black"))
    assert np.abs(on_paper - on_black).max() < 1e-5


def test_strokes_on_a_transparent_canvas_are_ink_whatever_their_colour() -> None:
    clear = grey(stroke((120, 120), ink=(0, 0, 0, 255), paper=(0, 0, 0, 0), mode="RGBA"))
    assert np.abs(clear - grey(stroke((120, 120), ink="white", paper="black"))).max() < 1e-5


def test_a_blank_picture_stays_blank() -> None:
    assert (grey(Image.new("L", (50, 80))) == -1).all()


def test_colour_models_get_the_picture_padded_and_resized() -> None:
    images = model_input(stroke((90, 30), ink="red", paper="blue"), channels=3, size=28)
    assert images.shape == (1, 3, 28, 28) and images.min() >= -1 and images.max() <= 1


@pytest.mark.parametrize("format", ["PNG", "JPEG", "GIF", "WEBP", "BMP"])
def test_common_formats_decode(format: str) -> None:
    image = decode(
        encoded(stroke((64, 48), ink="white", paper="black"), format), f"image/{format.lower()}", max_pixels=10**6
    )
    assert image.size == (64, 48)


def test_the_content_type_may_carry_parameters() -> None:
    assert decode(encoded(Image.new("L", (8, 8))), "Image/PNG; charset=binary", max_pixels=64).size == (8, 8)


def test_pixels_are_limited_before_they_are_decoded() -> None:
    with pytest.raises(BadImage) as error:
        decode(encoded(Image.new("L", (100, 100))), "image/png", max_pixels=9999)
    assert error.value.status == 413 and "at most 9999" in str(error.value)


def test_a_fixed_std_model_reports_no_std(tmp_path: Path) -> None:
    meta = {"dataset": "mnist", "train_config": {"learn_std": False}, "category_labels": {"digit": ["x"]}}
    write_checkpoint(tmp_path / "fixed.safetensors", meta=meta)
    checkpoint = load_checkpoint(tmp_path / "fixed.safetensors")
    answer = estimate("fixed", checkpoint, torch.zeros(1, checkpoint.latent.q_output_dim))
    assert [c.std for c in answer.continuous] == [None, None]
    assert answer.categorical[0].label is None  # labels other than a list of strings are not guessed at
    assert answer.categorical[0].probabilities == [0.1] * 10
