"""Specification of models.checkpoint: round trips, training state, corrupt files, atomic writes."""

import json
import os
import random
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file, save_file

import models.files as files_module
from models.checkpoint import (
    CHECKPOINT_FORMAT,
    Checkpoint,
    CheckpointError,
    TrainingState,
    build_networks,
    load_checkpoint,
    load_population,
    read_metadata,
    save_checkpoint,
)
from models.latent import LatentSpec
from models.metadata import UNMATCHED, category_labels, q_predicts_std
from models.networks import ArchConfig

SPEC = LatentSpec()
TINY = ArchConfig(name="tiny", g_fc=32, g_conv=16, d_conv=8, d_fc=32, q_fc=16)
META = {"dataset": "mnist", "step": 123, "metrics": {"categorical_accuracy": 0.5}, "labels": {"c1": "slant"}}


def latent_input(batch_size: int = 8, seed: int = 0) -> torch.Tensor:
    return SPEC.build_input(SPEC.sample(batch_size, generator=torch.Generator().manual_seed(seed)))


def images(batch_size: int = 8) -> torch.Tensor:
    shape = (batch_size, TINY.image_channels, TINY.image_size, TINY.image_size)
    return torch.rand(shape, generator=torch.Generator().manual_seed(1)) * 2 - 1


def make_checkpoint(meta: dict[str, Any] = META) -> Checkpoint:
    torch.manual_seed(0)
    generator, discriminator = build_networks(SPEC, TINY)
    # One training-mode pass so the BatchNorm running statistics differ from their defaults
    # and a round trip has to carry them.
    with torch.no_grad():
        generator(latent_input())
        discriminator(images())
    generator.eval()
    discriminator.eval()
    return Checkpoint(SPEC, TINY, generator, discriminator, dict(meta))


@pytest.fixture
def saved(tmp_path: Path) -> tuple[Checkpoint, Path]:
    checkpoint = make_checkpoint()
    return checkpoint, save_checkpoint(tmp_path / "model.safetensors", checkpoint)


# --- round trip -------------------------------------------------------------------------------


def test_round_trip_gives_identical_generator_outputs(saved: tuple[Checkpoint, Path]) -> None:
    original, path = saved

    loaded = load_checkpoint(path)

    with torch.no_grad():
        assert torch.equal(loaded.generator(latent_input()), original.generator(latent_input()))


def test_round_trip_gives_identical_q_outputs(saved: tuple[Checkpoint, Path]) -> None:
    original, path = saved

    loaded = load_checkpoint(path)

    with torch.no_grad():
        assert torch.equal(loaded.discriminator.encode(images()), original.discriminator.encode(images()))


def test_round_trip_keeps_latent_spec_arch_and_metadata(saved: tuple[Checkpoint, Path]) -> None:
    _, path = saved

    loaded = load_checkpoint(path)

    assert loaded.latent == SPEC
    assert loaded.arch == TINY
    assert loaded.meta == META


def test_a_checkpoint_saved_before_q_layers_existed_loads_with_the_papers_one_layer(
    saved: tuple[Checkpoint, Path],
) -> None:
    original, path = saved
    resave(path, meta=lambda meta: {**meta, "arch": {k: v for k, v in meta["arch"].items() if k != "q_layers"}})

    loaded = load_checkpoint(path)

    assert loaded.arch.q_layers == 1
    with torch.no_grad():
        assert torch.equal(loaded.discriminator.encode(images()), original.discriminator.encode(images()))


def test_loaded_networks_are_in_eval_mode(saved: tuple[Checkpoint, Path]) -> None:
    _, path = saved

    loaded = load_checkpoint(path)

    assert not loaded.generator.training
    assert not loaded.discriminator.training


def test_serving_load_has_no_training_state(saved: tuple[Checkpoint, Path]) -> None:
    _, path = saved

    assert load_checkpoint(path).training is None


def test_read_metadata_returns_format_spec_arch_and_extra_fields(saved: tuple[Checkpoint, Path]) -> None:
    _, path = saved

    meta = read_metadata(path)

    assert meta["format"] == CHECKPOINT_FORMAT.tag
    assert LatentSpec.from_dict(meta["latent"]) == SPEC
    assert ArchConfig.from_dict(meta["arch"]) == TINY
    assert {key: meta[key] for key in META} == META


def test_read_metadata_does_not_read_tensors(saved: tuple[Checkpoint, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    _, path = saved
    tensors_read: list[str] = []
    real_safe_open = files_module.safe_open

    class RecordingSafeOpen:
        """Forwards to safetensors' safe_open and records every tensor read."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            self._opened = real_safe_open(*args, **kwargs)

        def __enter__(self) -> "RecordingSafeOpen":
            self._handle = self._opened.__enter__()
            return self

        def __exit__(self, *exc_info: Any) -> Any:
            return self._opened.__exit__(*exc_info)

        def metadata(self) -> dict[str, str]:
            return self._handle.metadata()

        def keys(self) -> list[str]:
            return self._handle.keys()

        def get_tensor(self, key: str) -> torch.Tensor:
            tensors_read.append(key)
            return self._handle.get_tensor(key)

    monkeypatch.setattr(files_module, "safe_open", RecordingSafeOpen)

    meta = read_metadata(path)

    assert meta["step"] == META["step"]
    assert tensors_read == []


# --- fp16 -------------------------------------------------------------------------------------


def test_fp16_save_gives_a_smaller_file(tmp_path: Path) -> None:
    checkpoint = make_checkpoint()

    fp32 = save_checkpoint(tmp_path / "fp32.safetensors", checkpoint)
    fp16 = save_checkpoint(tmp_path / "fp16.safetensors", checkpoint, dtype=torch.float16)

    assert fp16.stat().st_size < 0.6 * fp32.stat().st_size


def test_fp16_save_loads_as_float32_with_outputs_close_to_fp32(tmp_path: Path) -> None:
    checkpoint = make_checkpoint()

    loaded = load_checkpoint(save_checkpoint(tmp_path / "fp16.safetensors", checkpoint, dtype=torch.float16))

    assert all(p.dtype == torch.float32 for p in loaded.generator.parameters())
    with torch.no_grad():
        torch.testing.assert_close(
            loaded.generator(latent_input()), checkpoint.generator(latent_input()), atol=1e-2, rtol=0
        )


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_a_loaded_checkpoint_remembers_the_dtype_it_was_stored_in(tmp_path: Path, dtype: torch.dtype) -> None:
    path = save_checkpoint(tmp_path / "model.safetensors", make_checkpoint(), dtype=dtype)

    assert load_checkpoint(path).stored_dtype == dtype


# --- training state ---------------------------------------------------------------------------


@pytest.fixture
def training_run(tmp_path: Path) -> tuple[Checkpoint, dict[str, torch.optim.Optimizer], Path]:
    """A tiny run after one D step and one G step, saved with its optimizer states."""
    torch.manual_seed(0)
    generator, discriminator = build_networks(SPEC, TINY)
    optimizers = {
        "g": torch.optim.Adam(generator.parameters(), lr=2e-4, betas=(0.5, 0.999)),
        "d": torch.optim.Adam(discriminator.parameters(), lr=2e-4, betas=(0.5, 0.999)),
    }
    logits, q = discriminator(generator(latent_input()).detach())
    (logits.mean() + q.square().mean()).backward()
    optimizers["d"].step()
    generator(latent_input()).square().mean().backward()
    optimizers["g"].step()

    training = TrainingState(optimizers={name: optimizer.state_dict() for name, optimizer in optimizers.items()})
    checkpoint = Checkpoint(SPEC, TINY, generator, discriminator, dict(META), training)
    return checkpoint, optimizers, save_checkpoint(tmp_path / "train.safetensors", checkpoint)


@pytest.mark.parametrize("name", ["g", "d"])
def test_training_state_restores_optimizer_state_tensors(training_run, name: str) -> None:
    _, optimizers, path = training_run
    original = optimizers[name].state_dict()["state"]

    restored = load_checkpoint(path, with_training_state=True).training.optimizers[name]["state"]

    assert restored.keys() == original.keys()
    for index, param_state in original.items():
        assert restored[index].keys() == param_state.keys()
        for key, value in param_state.items():
            assert torch.equal(restored[index][key], value), f"state[{index}][{key!r}]"


@pytest.mark.parametrize("name", ["g", "d"])
def test_training_state_restores_optimizer_param_groups(training_run, name: str) -> None:
    _, optimizers, path = training_run
    # Param groups are stored as JSON, which turns tuples (Adam's betas) into lists.
    original = json.loads(json.dumps(optimizers[name].state_dict()["param_groups"]))

    restored = load_checkpoint(path, with_training_state=True).training.optimizers[name]["param_groups"]

    assert restored == original


def test_resumed_optimizer_takes_the_same_next_step(training_run) -> None:
    original, optimizers, path = training_run
    loaded = load_checkpoint(path, with_training_state=True)
    resumed = torch.optim.Adam(loaded.generator.parameters())
    resumed.load_state_dict(loaded.training.optimizers["g"])

    for generator, optimizer in ((original.generator, optimizers["g"]), (loaded.generator, resumed)):
        optimizer.zero_grad()
        sum(p.square().sum() for p in generator.parameters()).backward()
        optimizer.step()

    for continued, restarted in zip(original.generator.parameters(), loaded.generator.parameters(), strict=True):
        assert torch.equal(continued, restarted)


def test_loading_training_state_from_a_serving_checkpoint_raises(saved: tuple[Checkpoint, Path]) -> None:
    _, path = saved

    with pytest.raises(CheckpointError, match="holds no training state") as raised:
        load_checkpoint(path, with_training_state=True)

    assert str(path) in str(raised.value)


# --- corrupt files ----------------------------------------------------------------------------


def resave(path: Path, *, meta: Callable[[dict[str, Any]], Any] | None = None, raw: str | None = None) -> None:
    """Rewrite a checkpoint's metadata with safetensors directly, keeping its tensors."""
    tensors = load_file(str(path))
    if raw is None and meta is not None:
        raw = json.dumps(meta(read_metadata(path)))
    save_file(tensors, str(path), metadata=None if raw is None else {CHECKPOINT_FORMAT.key: raw})


def missing_file(path: Path) -> Path:
    return path.with_name("absent.safetensors")


def truncated_to_half(path: Path) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def truncated_to_five_bytes(path: Path) -> Path:
    path.write_bytes(path.read_bytes()[:5])
    return path


def random_garbage(path: Path) -> Path:
    path.write_bytes(random.Random(0).randbytes(4096))
    return path


def garbage_after_a_plausible_header_length(path: Path) -> Path:
    path.write_bytes(struct.pack("<Q", 64) + random.Random(0).randbytes(64))
    return path


def without_our_metadata(path: Path) -> Path:
    resave(path)
    return path


def other_format_version(path: Path) -> Path:
    resave(path, meta=lambda meta: {**meta, "format": "other/9"})
    return path


def invalid_json_metadata(path: Path) -> Path:
    resave(path, raw='{"format": "infogan-explorer/1", "latent": ')
    return path


def arch_with_other_widths(path: Path) -> Path:
    resave(path, meta=lambda meta: {**meta, "arch": {**meta["arch"], "g_fc": 48}})
    return path


def arch_with_a_deeper_q_head(path: Path) -> Path:
    resave(path, meta=lambda meta: {**meta, "arch": {**meta["arch"], "q_layers": 2}})
    return path


def arch_torch_cannot_build(path: Path) -> Path:
    resave(path, meta=lambda meta: {**meta, "arch": {**meta["arch"], "g_fc": -3}})
    return path


def latent_spec_missing(path: Path) -> Path:
    resave(path, meta=lambda meta: {key: value for key, value in meta.items() if key != "latent"})
    return path


def weight_tensor_missing(path: Path) -> Path:
    tensors = load_file(str(path))
    del tensors["generator.fc.0.weight"]
    save_file(tensors, str(path), metadata={CHECKPOINT_FORMAT.key: json.dumps(read_metadata(path))})
    return path


# Problems visible in the file header: read_metadata and load_checkpoint both reject them.
HEADER_PROBLEMS = [
    pytest.param(missing_file, "no such checkpoint file", id="missing-file"),
    pytest.param(truncated_to_half, "not a readable safetensors file", id="truncated-to-half"),
    pytest.param(truncated_to_five_bytes, "not a readable safetensors file", id="truncated-to-5-bytes"),
    pytest.param(random_garbage, "not a readable safetensors file", id="random-garbage"),
    pytest.param(garbage_after_a_plausible_header_length, "not a readable safetensors file", id="garbage-header"),
    pytest.param(without_our_metadata, "without InfoGAN metadata", id="plain-safetensors"),
    pytest.param(other_format_version, "unsupported checkpoint format 'other/9'", id="other-format-version"),
    pytest.param(invalid_json_metadata, "metadata is not valid JSON", id="invalid-json"),
]

# Problems found only when the networks are rebuilt from the metadata and the weights loaded.
NETWORK_PROBLEMS = [
    # Metadata claims g_fc=48, the weights were saved with g_fc=32.
    pytest.param(arch_with_other_widths, "the architecture in the metadata needs", id="weights-shape-mismatch"),
    pytest.param(weight_tensor_missing, "weights do not match the architecture", id="weight-tensor-missing"),
    pytest.param(arch_with_a_deeper_q_head, "weights do not match the architecture", id="q-layers-mismatch"),
    pytest.param(arch_torch_cannot_build, "invalid latent spec or architecture", id="negative-width"),
    pytest.param(latent_spec_missing, "invalid latent spec or architecture", id="latent-spec-missing"),
]


@pytest.mark.parametrize(("corrupt", "phrase"), HEADER_PROBLEMS + NETWORK_PROBLEMS)
def test_load_rejects_unusable_file_naming_path_and_problem(
    saved: tuple[Checkpoint, Path], corrupt: Callable[[Path], Path], phrase: str
) -> None:
    bad = corrupt(saved[1])

    with pytest.raises(CheckpointError) as raised:
        load_checkpoint(bad)

    assert str(bad) in str(raised.value)
    assert phrase in str(raised.value)


@pytest.mark.parametrize(("corrupt", "phrase"), HEADER_PROBLEMS)
def test_read_metadata_rejects_unusable_file_naming_path_and_problem(
    saved: tuple[Checkpoint, Path], corrupt: Callable[[Path], Path], phrase: str
) -> None:
    bad = corrupt(saved[1])

    with pytest.raises(CheckpointError) as raised:
        read_metadata(bad)

    assert str(bad) in str(raised.value)
    assert phrase in str(raised.value)


@pytest.mark.parametrize(("corrupt", "phrase"), HEADER_PROBLEMS[1:] + NETWORK_PROBLEMS)
def test_bytes_already_read_are_checked_as_the_file_would_be(
    saved: tuple[Checkpoint, Path], corrupt: Callable[[Path], Path], phrase: str
) -> None:
    bad = corrupt(saved[1])

    with pytest.raises(CheckpointError) as raised:
        load_population(bad, data=bad.read_bytes())

    assert str(bad) in str(raised.value)
    assert phrase in str(raised.value)


def test_bytes_already_read_are_what_is_decoded_whatever_the_file_holds_now(tmp_path: Path) -> None:
    first = save_checkpoint(tmp_path / "first.safetensors", make_checkpoint())
    changed = make_checkpoint()
    with torch.no_grad():
        for weight in changed.generator.parameters():
            weight.add_(0.5)
    now = save_checkpoint(tmp_path / "now.safetensors", changed)

    (loaded,) = load_population(now, data=first.read_bytes())

    with torch.no_grad():
        assert torch.equal(loaded.generator(latent_input()), load_checkpoint(first).generator(latent_input()))
        assert not torch.equal(loaded.generator(latent_input()), load_checkpoint(now).generator(latent_input()))


# --- atomic writes ----------------------------------------------------------------------------


def test_successful_save_leaves_only_the_checkpoint_in_its_folder(tmp_path: Path) -> None:
    folder = tmp_path / "checkpoints"

    save_checkpoint(folder / "model.safetensors", make_checkpoint())

    assert [p.name for p in folder.iterdir()] == ["model.safetensors"]


def test_failed_save_keeps_the_previous_file_and_leaves_no_temp_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "checkpoints"
    path = save_checkpoint(folder / "model.safetensors", make_checkpoint())
    previous = path.read_bytes()

    def crash(*args: Any, **kwargs: Any) -> None:
        raise OSError("simulated crash before the rename")

    monkeypatch.setattr(os, "replace", crash)

    with pytest.raises(OSError, match="simulated crash"):
        save_checkpoint(path, make_checkpoint(meta={**META, "step": 999}))

    assert path.read_bytes() == previous
    assert [p.name for p in folder.iterdir()] == ["model.safetensors"]


# --- metadata contract --------------------------------------------------------------------------


def test_whether_q_predicts_a_std_is_read_from_its_key_then_from_the_training_config() -> None:
    assert q_predicts_std({"q_predicts_std": True, "train_config": {"learn_std": False}})
    assert not q_predicts_std({"q_predicts_std": False, "train_config": {"learn_std": True}})
    assert q_predicts_std({"train_config": {"learn_std": True}})  # files from before the key
    assert not q_predicts_std({})


def test_a_category_no_digit_was_matched_to_has_one_name_everywhere() -> None:
    assert category_labels([3, -1, 0]) == ["3", UNMATCHED, "0"]


@pytest.mark.parametrize("members", [[], {"0": {}}, [1, 2]], ids=["empty", "not-a-list", "not-objects"])
def test_a_population_file_with_malformed_members_is_refused(tmp_path: Path, members: Any) -> None:
    path = save_checkpoint(tmp_path / "population.safetensors", make_checkpoint())
    resave(path, meta=lambda meta: {**meta, "members": members})
    with pytest.raises(CheckpointError, match="'members' in the metadata must be a non-empty list of objects"):
        load_population(path)
