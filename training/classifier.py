"""A small MNIST classifier: the feature space for FID and the judge of digit identity.

Inception weights cannot be downloaded here, and Inception features are a poor fit for 28x28
digits anyway, so the project trains its own classifier (as the MNIST GAN literature usually
does) and ships the weights in `training/assets/`. It is never part of a model; only the
metrics in `training/evaluate.py` use it. Train it with `python -m training.classifier`.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from models.files import TaggedFormat
from training.data import DataError, ImageDataset, load_dataset

DEFAULT_PATH = Path(__file__).parent / "assets" / "mnist_classifier.safetensors"


class ClassifierError(Exception):
    """Classifier weights that cannot be used; the message names the file and what to do."""


CLASSIFIER_FORMAT = TaggedFormat(
    kind="classifier",
    label="classifier",
    key="classifier",
    tag="infogan-explorer/mnist-classifier/1",
    error=ClassifierError,
    missing="no classifier weights; train them with `python -m training.classifier`",
)


@dataclass(frozen=True)
class ClassifierConfig:
    conv1: int = 32
    conv2: int = 64
    features: int = 128  # width of the feature layer FID is computed in
    classes: int = 10


class MnistClassifier(nn.Module):
    """conv 3x3 -> pool -> conv 3x3 -> pool -> FC `features` -> FC `classes`, for (B, 1, 28, 28)
    images in [-1, 1]. No batch norm or dropout: train and eval mode compute the same thing, and
    the features of one image never depend on the rest of its batch."""

    def __init__(self, config: ClassifierConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or ClassifierConfig()
        self.body = nn.Sequential(
            nn.Conv2d(1, config.conv1, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),  # (B, conv1, 14, 14)
            nn.Conv2d(config.conv1, config.conv2, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),  # (B, conv2, 7, 7)
            nn.Flatten(),
            nn.Linear(config.conv2 * 7 * 7, config.features),
            nn.ReLU(),
        )
        self.head = nn.Linear(config.features, config.classes)

    def features(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 1, 28, 28) in [-1, 1] -> (B, features), the penultimate activations."""
        return self.body(images)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(images))  # (B, classes) logits


def random_shift(images: torch.Tensor, max_shift: int, generator: torch.Generator) -> torch.Tensor:
    """Shift each image by its own random whole-pixel offset in [-max_shift, max_shift],
    filling with background (-1): the augmentation that takes a small CNN past 99%."""
    batch, _, height, width = images.shape
    padded = F.pad(images, (max_shift,) * 4, value=-1.0)  # (B, 1, H + 2s, W + 2s)
    offsets = torch.randint(0, 2 * max_shift + 1, (batch, 2), generator=generator)
    rows = offsets[:, :1] + torch.arange(height)  # (B, H)
    cols = offsets[:, 1:] + torch.arange(width)  # (B, W)
    index = torch.arange(batch)[:, None, None]
    return padded[index, 0, rows[:, :, None], cols[:, None, :]].unsqueeze(1)  # (B, 1, H, W)


def train_classifier(
    train: ImageDataset,
    *,
    epochs: int,
    seed: int,
    batch_size: int = 128,
    lr: float = 1e-3,
    max_shift: int = 2,
    config: ClassifierConfig | None = None,
    progress: bool = False,
) -> MnistClassifier:
    """Adam with a cosine schedule and random shifts; seeded, and the global RNG is left as it was."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = MnistClassifier(config)
        generator = torch.Generator().manual_seed(seed)
        optimizer = torch.optim.Adam(model.parameters(), lr=lr)
        steps = epochs * -(-len(train) // batch_size)
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps)
        model.train()
        for epoch in range(epochs):
            started, total_loss = time.perf_counter(), 0.0
            order = torch.randperm(len(train), generator=generator)
            for start in range(0, len(train), batch_size):
                batch = order[start : start + batch_size]
                images = train.images[batch]  # (B, 1, 28, 28)
                if max_shift:
                    images = random_shift(images, max_shift, generator)
                loss = F.cross_entropy(model(images), train.labels[batch])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                schedule.step()
                total_loss += loss.item() * len(batch)
            if progress:
                print(
                    f"epoch {epoch + 1}/{epochs}: loss {total_loss / len(train):.4f} "
                    f"({time.perf_counter() - started:.0f} s)",
                    flush=True,
                )
    return model.eval()


@torch.no_grad()
def accuracy(model: MnistClassifier, data: ImageDataset, *, batch_size: int = 1000) -> float:
    """Share of correctly classified images (the model has no batch norm or dropout, so its mode
    does not matter)."""
    correct = 0
    for start in range(0, len(data), batch_size):
        logits = model(data.images[start : start + batch_size])  # (B, classes)
        correct += int((logits.argmax(1) == data.labels[start : start + batch_size]).sum())
    return correct / len(data)


def save_classifier(
    model: MnistClassifier, path: str | os.PathLike[str], *, info: dict[str, Any] | None = None
) -> Path:
    """Write the weights, the config and `info` (e.g. the test accuracy) atomically."""
    tensors = {key: value.detach().cpu().contiguous() for key, value in model.state_dict().items()}
    return CLASSIFIER_FORMAT.write(path, tensors, {"config": asdict(model.config), **(info or {})})


def read_classifier_metadata(path: str | os.PathLike[str] = DEFAULT_PATH) -> dict[str, Any]:
    """The JSON metadata (format, config, test accuracy, ...) without the weights."""
    meta, _ = CLASSIFIER_FORMAT.read(path, with_tensors=False)
    return meta


def load_classifier(path: str | os.PathLike[str] = DEFAULT_PATH) -> MnistClassifier:
    """The classifier in eval mode on CPU; a missing or broken file raises ClassifierError."""
    meta, tensors = CLASSIFIER_FORMAT.read(path)
    try:
        model = MnistClassifier(ClassifierConfig(**meta["config"]))
        model.load_state_dict(tensors)
    except (KeyError, TypeError, RuntimeError) as error:
        raise ClassifierError(f"{path}: weights do not match the classifier config: {error}") from error
    return model.eval()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Train the MNIST classifier used by the FID and code metrics.")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", type=Path, default=DEFAULT_PATH)
    parser.add_argument("--min-accuracy", type=float, default=0.99, help="refuse to write weights below this")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # a background chore: leave the cores to training runs

    try:
        train, test = load_dataset("mnist", "train"), load_dataset("mnist", "test")
    except DataError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    started = time.perf_counter()
    model = train_classifier(train, epochs=args.epochs, seed=args.seed, progress=True)
    seconds = time.perf_counter() - started
    test_accuracy = accuracy(model, test)
    print(f"test accuracy {test_accuracy:.4f} after {args.epochs} epochs in {seconds:.0f} s")
    if test_accuracy < args.min_accuracy:
        print(f"error: test accuracy below {args.min_accuracy}; weights not written", file=sys.stderr)
        return 1
    info = {"test_accuracy": round(test_accuracy, 4), "epochs": args.epochs, "seed": args.seed}
    print(f"wrote {save_classifier(model, args.output, info=info)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
