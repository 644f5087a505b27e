"""The shipped model: what serving relies on, and what the README's model card states."""

from pathlib import Path

import pytest
import torch

from models.checkpoint import load_checkpoint
from models.latent import LatentSpec

SHIPPED = Path(__file__).resolve().parents[1] / "models" / "pretrained" / "mnist.safetensors"


@pytest.fixture(scope="module")
def shipped():
    return load_checkpoint(SHIPPED)


def test_the_shipped_model_is_a_small_fp16_serving_checkpoint(shipped):
    assert SHIPPED.stat().st_size < 30e6
    assert shipped.stored_dtype == torch.float16
    with pytest.raises(Exception, match="no training state"):
        load_checkpoint(SHIPPED, with_training_state=True)


def test_the_shipped_model_has_the_papers_mnist_spec(shipped):
    assert shipped.latent == LatentSpec()
    assert shipped.meta["dataset"] == "mnist"
    assert shipped.meta["image"] == {"channels": 1, "height": 28, "width": 28}


def test_the_shipped_model_carries_its_metrics_and_a_digit_for_each_category(shipped):
    metrics = shipped.meta["metrics"]
    assert 0.1 < metrics["categorical_accuracy"] <= 1
    assert {"fid", "continuous"} <= metrics.keys()
    assert sorted(shipped.meta["category_labels"]) == [str(digit) for digit in range(10)]


@torch.no_grad()
def test_the_shipped_generator_draws_digits_in_range(shipped):
    codes = shipped.latent.sample(16, torch.Generator().manual_seed(0))
    images = shipped.generator(shipped.latent.build_input(codes))
    assert images.shape == (16, 1, 28, 28)
    assert images.min() >= -1 and images.max() <= 1
    assert images.std() > 0.3  # ink on a black background, not a flat field
