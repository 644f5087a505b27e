"""Checkpoint files: safetensors weights with the JSON metadata in the same file's header.

One file per checkpoint, so a write is a single atomic rename and nothing can pair weights with
the wrong metadata. Loading never unpickles: tensors come from safetensors and everything else
is JSON. A training checkpoint also holds the optimizer states so `--resume` continues
exactly where a run stopped; a serving checkpoint holds the networks only, possibly in fp16.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import torch

from models.files import TaggedFormat
from models.latent import LatentSpec
from models.metadata import CheckpointMeta
from models.networks import ArchConfig, Discriminator, Generator


class CheckpointError(Exception):
    """A checkpoint file that cannot be used; the message names the file and the problem."""


CHECKPOINT_FORMAT = TaggedFormat(
    kind="checkpoint",
    label="InfoGAN",
    key="infogan",
    tag="infogan-explorer/1",
    error=CheckpointError,
    missing="no such checkpoint file",
)


@dataclass
class TrainingState:
    """What a resumed run needs beyond the networks. Random draws are a function of the seed
    and step (see training.loop.batch_rng), so there is no random-generator state to keep."""

    optimizers: dict[str, dict[str, Any]]  # name -> optimizer.state_dict()


@dataclass
class Checkpoint:
    latent: LatentSpec
    arch: ArchConfig
    generator: Generator
    discriminator: Discriminator  # body + real/fake head + Q head
    meta: CheckpointMeta = field(default_factory=CheckpointMeta)  # dataset, step, metrics, config, labels
    training: TrainingState | None = None
    stored_dtype: torch.dtype = torch.float32  # of the weights in the file; loaded ones are float32


def build_networks(latent: LatentSpec, arch: ArchConfig) -> tuple[Generator, Discriminator]:
    """Fresh networks for a spec: the one place that decides which sizes go where."""
    generator = Generator(input_dim=latent.input_dim, arch=arch)
    discriminator = Discriminator(q_output_dim=latent.q_output_dim, arch=arch)
    return generator, discriminator


def save_checkpoint(
    path: str | os.PathLike[str],
    checkpoint: Checkpoint,
    *,
    dtype: torch.dtype | None = None,
) -> Path:
    """Write `checkpoint` atomically (temporary file, fsync, rename).

    `dtype` (e.g. torch.float16) casts the network weights to shrink a serving file."""
    tensors, meta = _encode(checkpoint, "", dtype)
    return CHECKPOINT_FORMAT.write(path, tensors, {**meta, **_spec(checkpoint)})


def save_population(path: str | os.PathLike[str], members: Sequence[Checkpoint], meta: CheckpointMeta) -> Path:
    """Write the members of a population, all at the same step, as one file (one atomic rename,
    so a resumed population never mixes steps). A population of one is an ordinary checkpoint.

    `meta` is what the members share (step, dataset, training config); each member's own meta
    (its seed, metrics, labels) goes under "members"."""
    if len(members) == 1:
        return save_checkpoint(path, dataclasses.replace(members[0], meta={**members[0].meta, **meta}))
    tensors: dict[str, torch.Tensor] = {}
    member_metas = []
    for k, member in enumerate(members):
        member_tensors, member_meta = _encode(member, f"members.{k}.", None)
        tensors.update(member_tensors)
        member_metas.append(member_meta)
    return CHECKPOINT_FORMAT.write(path, tensors, {**meta, **_spec(members[0]), "members": member_metas})


def read_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The JSON metadata of a checkpoint, without reading its tensors."""
    meta, _ = CHECKPOINT_FORMAT.read(path, with_tensors=False)
    return meta


def load_checkpoint(
    path: str | os.PathLike[str], *, device: torch.device | str = "cpu", with_training_state: bool = False
) -> Checkpoint:
    """Rebuild the networks from the file alone, in float32 and eval mode."""
    path = Path(path)
    meta, tensors = CHECKPOINT_FORMAT.read(path)
    if "members" in meta:
        raise CheckpointError(
            f"{path}: holds a population of members; the member the run chose is model.safetensors beside it "
            "once the run has finished, and `infogan export --member N` writes any of them as a checkpoint of its own"
        )
    return _decode(path, meta, meta, tensors, "", device, with_training_state)


def load_population(
    path: str | os.PathLike[str],
    *,
    device: torch.device | str = "cpu",
    with_training_state: bool = False,
    data: bytes | None = None,
) -> list[Checkpoint]:
    """Every member of a population file, each with the shared metadata and its own; an ordinary
    checkpoint is a population of one. `data`: the file's bytes, when the caller has read them."""
    path = Path(path)
    meta, tensors = CHECKPOINT_FORMAT.read(path, data=data)
    if "members" not in meta:
        return [_decode(path, meta, meta, tensors, "", device, with_training_state)]
    members = meta["members"]
    if not isinstance(members, list) or not members or not all(isinstance(m, dict) for m in members):
        raise CheckpointError(f"{path}: 'members' in the metadata must be a non-empty list of objects")
    shared = {k: v for k, v in meta.items() if k != "members"}
    return [
        _decode(path, meta, {**shared, **own}, tensors, f"members.{k}.", device, with_training_state)
        for k, own in enumerate(members)
    ]


def _spec(checkpoint: Checkpoint) -> dict[str, Any]:
    return {"latent": checkpoint.latent.to_dict(), "arch": checkpoint.arch.to_dict()}


def _encode(
    checkpoint: Checkpoint, prefix: str, dtype: torch.dtype | None
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """A model's tensors, named under `prefix`, and its own metadata (optimizer groups included)."""
    tensors: dict[str, torch.Tensor] = {}
    for name, module in (("generator", checkpoint.generator), ("discriminator", checkpoint.discriminator)):
        for key, value in module.state_dict().items():
            if dtype is not None and value.is_floating_point():
                value = value.to(dtype)
            tensors[f"{prefix}{name}.{key}"] = value.detach().cpu().contiguous()
    meta: dict[str, Any] = dict(checkpoint.meta)
    if checkpoint.training is not None:
        meta["optimizers"] = {}
        for name, state_dict in checkpoint.training.optimizers.items():
            param_groups, optimizer_tensors = _flatten_optimizer(state_dict, f"{prefix}optimizer.{name}")
            meta["optimizers"][name] = param_groups
            tensors.update(optimizer_tensors)
    return tensors, meta


def _decode(
    path: Path,
    file_meta: dict[str, Any],
    meta: dict[str, Any],
    tensors: dict[str, torch.Tensor],
    prefix: str,
    device: torch.device | str,
    with_training_state: bool,
) -> Checkpoint:
    """The model stored under `prefix`, with `meta` as its metadata."""
    try:
        latent = LatentSpec.from_dict(file_meta["latent"])
        arch = ArchConfig.from_dict(file_meta["arch"])
        generator, discriminator = build_networks(latent, arch)  # torch rejects e.g. negative widths
    except (KeyError, TypeError, ValueError, RuntimeError) as error:
        raise CheckpointError(f"{path}: invalid latent spec or architecture in metadata: {error}") from error

    for name, module in (("generator", generator), ("discriminator", discriminator)):
        start = f"{prefix}{name}."
        state = {k.removeprefix(start): v for k, v in tensors.items() if k.startswith(start)}
        _load_weights(path, name, module, state)
        module.to(device).eval()

    training = None
    if with_training_state:
        if "optimizers" not in meta:
            raise CheckpointError(f"{path}: holds no training state (a serving checkpoint cannot be resumed)")
        try:
            optimizers = {
                name: _unflatten_optimizer(groups, tensors, f"{prefix}optimizer.{name}")
                for name, groups in meta["optimizers"].items()
            }
        except (AttributeError, TypeError, ValueError) as error:
            raise CheckpointError(f"{path}: invalid optimizer state in metadata: {error}") from error
        training = TrainingState(optimizers=optimizers)

    extra = cast(CheckpointMeta, {k: v for k, v in meta.items() if k not in ("format", "latent", "arch", "optimizers")})
    weights = (v for k, v in tensors.items() if k.startswith(f"{prefix}generator.") and v.is_floating_point())
    return Checkpoint(latent, arch, generator, discriminator, extra, training, next(weights).dtype)


def _load_weights(path: Path, prefix: str, module: torch.nn.Module, state: dict[str, torch.Tensor]) -> None:
    expected = module.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise CheckpointError(
            f"{path}: {prefix} weights do not match the architecture in the metadata "
            f"(missing {missing[:3]}, unexpected {unexpected[:3]})"
        )
    for key, value in state.items():
        if value.shape != expected[key].shape:
            raise CheckpointError(
                f"{path}: {prefix}.{key} has shape {tuple(value.shape)}, "
                f"the architecture in the metadata needs {tuple(expected[key].shape)}"
            )
    module.load_state_dict({k: v.to(expected[k].dtype) for k, v in state.items()})


def _flatten_optimizer(state_dict: dict[str, Any], prefix: str) -> tuple[Any, dict[str, torch.Tensor]]:
    """Split an optimizer state_dict into JSON (param groups) and named tensors (per-param state)."""
    tensors = {}
    for index, param_state in state_dict["state"].items():
        for key, value in param_state.items():
            tensors[f"{prefix}.{index}.{key}"] = torch.as_tensor(value).contiguous()
    return state_dict["param_groups"], tensors


def _unflatten_optimizer(param_groups: Any, tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, Any]:
    if not isinstance(param_groups, list) or not all(isinstance(group, dict) for group in param_groups):
        raise ValueError(f"{prefix}: param_groups must be a list of objects")
    state: dict[int, dict[str, torch.Tensor]] = {}
    for name, value in tensors.items():
        if name.startswith(f"{prefix}."):
            index, key = name.removeprefix(f"{prefix}.").split(".", 1)
            state.setdefault(int(index), {})[key] = value
    return {"state": state, "param_groups": param_groups}
