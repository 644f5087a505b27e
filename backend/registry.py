"""The checkpoints a service serves: every *.safetensors in its folders, loaded through models/.

Names are file stems and are only ever looked up in the loaded dict, so no request can turn a
name into a path. A file that fails to load is logged and reported, never fatal for the others.
Reports name a file by its folder's name and its own (`pretrained/mnist.safetensors`): a public
service shows no more of its file system than that; the log has full paths.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from backend.schemas import CheckpointInfo, CodeEffect
from models import Checkpoint, CheckpointError, load_checkpoint
from models.metadata import clear_effect

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Model:
    name: str
    path: Path
    checkpoint: Checkpoint
    sha256: str  # of the file: part of every ETag, so a replaced file never matches old caches
    info: CheckpointInfo  # its /api/checkpoints entry


@dataclass
class Registry:
    models: dict[str, Model] = field(default_factory=dict)
    errors: list[dict[str, str]] = field(default_factory=list)  # {"file", "error"} per skipped file


def load_registry(folders: tuple[Path, ...], device: torch.device) -> Registry:
    registry = Registry()
    for folder in folders:
        if not folder.is_dir():
            registry.errors.append({"file": shown(folder), "error": "no such folder"})
            continue
        for path in sorted(folder.glob("*.safetensors")):
            file = shown(folder, path.name)
            if path.stem in registry.models:
                taken = registry.models[path.stem].path
                message = f"name {path.stem!r} is taken by {shown(taken.parent, taken.name)}"
                registry.errors.append({"file": file, "error": message})
                continue
            try:
                checkpoint = load_checkpoint(path, device=device)
                sha256 = hashlib.sha256(path.read_bytes()).hexdigest()
                info = describe(path.stem, checkpoint, sha256)  # odd metadata fails here, not in a request
            except Exception as error:  # any broken file is skipped, whatever the library raised
                log.warning("skipping %s: %s", path, error, exc_info=not isinstance(error, CheckpointError))
                message = (str(error) or type(error).__name__).replace(str(path), file)
                registry.errors.append({"file": file, "error": message})
                continue
            registry.models[path.stem] = Model(path.stem, path, checkpoint, sha256, info)
            log.info("loaded checkpoint %r from %s", path.stem, path)
    return registry


def shown(folder: Path, file: str | None = None) -> str:
    """How reports name a checkpoint folder, or a file in it: from the folder's own name down."""
    name = folder.resolve().name
    return f"{name}/{file}" if file else name


def describe(name: str, checkpoint: Checkpoint, sha256: str) -> CheckpointInfo:
    """The /api/checkpoints entry (docs/design.md, "REST API"), plus fields the page may use."""
    meta, arch = checkpoint.meta, checkpoint.arch
    labels = meta.get("category_labels")
    metrics = meta.get("metrics", {})
    measured = metrics.get("continuous") if isinstance(metrics.get("continuous"), dict) else {}
    names = [code.name or f"c{j + 1}" for j, code in enumerate(checkpoint.latent.continuous)]
    return CheckpointInfo(
        name=name,
        dataset=meta.get("dataset"),
        image={"channels": arch.image_channels, "height": arch.image_size, "width": arch.image_size},
        latent=checkpoint.latent.to_dict(),
        metrics=metrics,
        category_labels=labels if isinstance(labels, list) else None,  # a list for the first code
        continuous_effects=[code_effect(name, measured.get(name)) for name in names],
        step=meta.get("step"),
        sha256=sha256,
    )


WHAT_IT_DOES = {  # (effect, sign of its rank correlation) -> what growing the code does
    ("slant", 1): "leans the digit to the right",
    ("slant", -1): "leans the digit to the left",
    ("width", 1): "thickens the strokes",
    ("width", -1): "thins the strokes",
}


def code_effect(name: str, measured: Any) -> CodeEffect:
    """One continuous code's effect in words, from its measured rank correlations."""
    if not isinstance(measured, dict) or not all(
        isinstance(measured.get(key), int | float) for key in ("slant_spearman", "width_spearman", "identity_kept")
    ):
        return CodeEffect(name=name, effect="unmeasured", description="not measured (infogan evaluate measures it)")
    figures = {key: round(float(measured[key]), 4) for key in ("slant_spearman", "width_spearman", "identity_kept")}
    kept = f"keeps the digit in {figures['identity_kept']:.0%} of sweeps from -2 to 2"
    clear = clear_effect(measured)
    if clear is None:
        rhos = f"slant {figures['slant_spearman']:+.2f}, width {figures['width_spearman']:+.2f}"
        return CodeEffect(
            name=name,
            effect="mixed",
            description=f"no single clear effect (rank correlation: {rhos}); {kept}",
            **figures,
        )
    effect, rho = clear
    what = WHAT_IT_DOES[effect, 1 if rho > 0 else -1]
    return CodeEffect(
        name=name,
        effect=effect,
        description=f"{what} as it grows ({effect} rank correlation {rho:+.2f}); {kept}",
        **figures,
    )
