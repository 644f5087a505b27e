"""Tests for training/classifier.py: augmentation, seeded training, the weights file."""

from __future__ import annotations

import pytest
import torch

from training.classifier import (
    DEFAULT_PATH,
    ClassifierConfig,
    ClassifierError,
    MnistClassifier,
    accuracy,
    load_classifier,
    random_shift,
    read_classifier_metadata,
    save_classifier,
    train_classifier,
)
from training.data import ImageDataset

TINY = ClassifierConfig(conv1=4, conv2=8, features=16)


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny training loops: a second thread only adds synchronisation, which on a machine busy
    with other work turns a 0.5 s test into 20 s."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def blocks(size: int, seed: int) -> ImageDataset:
    """Four classes, each a bright 8x8 block in its own quadrant: learnable in a few steps."""
    labels = torch.randint(4, (size,), generator=torch.Generator().manual_seed(seed))
    images = torch.full((size, 1, 28, 28), -1.0)
    for i, k in enumerate(labels.tolist()):
        top, left = 4 + 12 * (k // 2), 4 + 12 * (k % 2)
        images[i, 0, top : top + 8, left : left + 8] = 1.0
    return ImageDataset(images, labels)


def test_shapes() -> None:
    model = MnistClassifier(TINY)
    images = torch.zeros(3, 1, 28, 28)
    assert model.features(images).shape == (3, 16)
    assert model(images).shape == (3, 10)


def test_random_shift_moves_each_image_within_the_margin() -> None:
    images = torch.full((64, 1, 28, 28), -1.0)
    images[:, 0, 14, 14] = 1.0
    shifted = random_shift(images, 2, torch.Generator().manual_seed(0))
    assert shifted.shape == images.shape
    positions = (shifted[:, 0] == 1.0).nonzero()[:, 1:]  # (64, 2): one bright pixel each
    assert len(positions) == 64
    assert positions.min() >= 12 and positions.max() <= 16
    assert len({tuple(p) for p in positions.tolist()}) > 1


def test_training_is_seeded_and_leaves_the_global_rng_alone() -> None:
    data = blocks(128, seed=0)
    torch.manual_seed(123)
    expected_draw = torch.rand(1)
    torch.manual_seed(123)
    first = train_classifier(data, epochs=1, seed=5, config=TINY)
    assert torch.equal(torch.rand(1), expected_draw)
    second = train_classifier(data, epochs=1, seed=5, config=TINY)
    pairs = zip(first.state_dict().values(), second.state_dict().values(), strict=True)
    assert all(torch.equal(a, b) for a, b in pairs)
    assert not first.training


def test_training_learns_the_classes() -> None:
    config = ClassifierConfig(conv1=4, conv2=8, features=16, classes=4)
    model = train_classifier(blocks(512, seed=0), epochs=5, seed=0, batch_size=32, lr=1e-2, config=config)
    assert accuracy(model, blocks(128, seed=1)) > 0.95


def test_save_and_load_round_trip(tmp_path) -> None:
    torch.manual_seed(0)
    model = MnistClassifier(TINY)
    path = save_classifier(model, tmp_path / "c.safetensors", info={"test_accuracy": 0.5})
    loaded = load_classifier(path)
    assert loaded.config == TINY and not loaded.training
    images = torch.rand(2, 1, 28, 28) * 2 - 1
    assert torch.equal(loaded(images), model(images))
    assert read_classifier_metadata(path)["test_accuracy"] == 0.5


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "python -m training.classifier"),  # missing: say how to make it
        (b"\x00garbage", "corrupt"),  # not safetensors
    ],
)
def test_load_rejects_a_bad_file(tmp_path, content, message) -> None:
    path = tmp_path / "c.safetensors"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ClassifierError, match=message):
        load_classifier(path)


@pytest.mark.skipif(not DEFAULT_PATH.is_file(), reason="weights not trained yet")
def test_shipped_weights_are_accurate_and_small() -> None:
    assert read_classifier_metadata()["test_accuracy"] >= 0.99
    assert DEFAULT_PATH.stat().st_size < 2 * 1024 * 1024
    assert isinstance(load_classifier(), MnistClassifier)
