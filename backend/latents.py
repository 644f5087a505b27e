"""From a validated request and its checkpoint to generator inputs.

Here live the checks that depend on the chosen model (list lengths, category ranges) and on the
settings (value cap, scale, grid and frame limits). Errors answer 422 in FastAPI's format, one
entry per field, each message naming the field and its allowed range. A `Picture` also carries a
canonical description of everything its bytes depend on, which names it in the ETag.
"""

from __future__ import annotations

import json
from typing import Any, Literal

import torch
from fastapi.exceptions import RequestValidationError

from backend.registry import Model, Registry
from backend.render import Picture
from backend.schemas import (
    CodeRef,
    FixedCodes,
    GenerateRequest,
    GifRequest,
    GridRequest,
    InterpolationRequest,
    Noise,
    Sweep,
)
from backend.settings import Settings
from models import LatentBatch, LatentSpec
from models.metadata import UNMATCHED
from models.render import GRID_PAD


class NoModel(Exception):
    """No checkpoint is loaded at all: a 503, since the fix is on the server side."""


class _Errors:
    """Collects field errors so one answer lists every bad field."""

    def __init__(self, where: str) -> None:
        self.where = where  # "body" or "query"
        self.items: list[dict[str, Any]] = []

    def add(self, loc: tuple[str | int, ...], msg: str) -> None:
        self.items.append({"type": "value_error", "loc": (self.where, *loc), "msg": msg})

    def raise_any(self) -> None:
        if self.items:
            raise RequestValidationError(self.items)


def choose_model(registry: Registry, name: str | None, where: str = "body") -> Model:
    if not registry.models:
        raise NoModel("no checkpoint is loaded; GET /healthz tells why")
    if name is None:
        name = next(iter(registry.models))
    if name not in registry.models:
        errors = _Errors(where)
        errors.add(("checkpoint",), f"unknown checkpoint; loaded: {', '.join(registry.models)}")
        errors.raise_any()
    registry.touch(name)
    return registry.models[name]


def image_picture(request: GenerateRequest, model: Model, settings: Settings, where: str = "body") -> Picture:
    errors = _Errors(where)
    spec = model.checkpoint.latent
    z, noise_key = _noise(request, spec, settings, errors)
    categorical, continuous = _fixed_codes(request, model, settings, errors)
    _check_scale(request.scale, 1, 1, model, settings, errors, pad=0)
    errors.raise_any()
    latent = LatentBatch(z, torch.tensor([categorical], dtype=torch.long), torch.tensor([continuous]))
    key = {"kind": "image", **noise_key, "categorical": categorical, "continuous": continuous}
    return _picture("image", model, spec.build_input(latent), 1, 1, request.scale, key)


def grid_picture(request: GridRequest, model: Model, settings: Settings) -> Picture:
    errors = _Errors("body")
    spec = model.checkpoint.latent
    seeds = request.seeds if request.seeds is not None else list(range(request.rows or 10))
    if len(seeds) > settings.max_grid:
        field = "seeds" if request.seeds is not None else "rows"
        errors.add((field,), f"a grid has 1..{settings.max_grid} rows, got {len(seeds)}")
    categorical, continuous = _fixed_codes(request, model, settings, errors)
    values = _sweep_values(request, spec, settings, errors, limit=settings.max_grid, what="columns")
    if not errors.items:  # the scale limit depends on the grid's size, so that must be right first
        _check_scale(request.scale, len(seeds), len(values), model, settings, errors, pad=GRID_PAD)
    errors.raise_any()
    z = torch.cat([spec.noise(seed) for seed in seeds])  # (rows, noise_dim)
    inputs = _sweep_inputs(spec, z, categorical, continuous, request.vary, values)
    key = {"kind": "grid", "seeds": seeds, "categorical": categorical, "continuous": continuous}
    key |= {"vary": request.vary.model_dump(), "values": values}
    return _picture("grid", model, inputs, len(seeds), len(values), request.scale, key)


def gif_picture(request: GifRequest, model: Model, settings: Settings) -> Picture:
    errors = _Errors("body")
    spec = model.checkpoint.latent
    if request.seeds is None:
        z, noise_key = _noise(request, spec, settings, errors)
    else:
        if len(request.seeds) > settings.max_grid:
            errors.add(("seeds",), f"a GIF shows 1..{settings.max_grid} seeds side by side, got {len(request.seeds)}")
        z, noise_key = torch.cat([spec.noise(seed) for seed in request.seeds]), {"seeds": request.seeds}
    categorical, continuous = _fixed_codes(request, model, settings, errors)
    values = _sweep_values(request, spec, settings, errors, limit=settings.max_frames, what="frames")
    if not errors.items:
        _check_scale(request.scale, 1, len(z), model, settings, errors, pad=GRID_PAD if len(z) > 1 else 0)
    errors.raise_any()
    inputs = _sweep_inputs(spec, z, categorical, continuous, request.vary, values)
    key = {"kind": "gif", **noise_key, "categorical": categorical, "continuous": continuous}
    key |= {"vary": request.vary.model_dump(), "values": values, "ms": request.duration_ms, "bounce": request.bounce}
    return _picture("gif", model, inputs, len(z), len(values), request.scale, key, request.duration_ms, request.bounce)


def interpolation_picture(request: InterpolationRequest, model: Model, settings: Settings) -> Picture:
    errors = _Errors("body")
    spec = model.checkpoint.latent
    if request.steps > settings.max_grid:
        errors.add(("steps",), f"an interpolation has 2..{settings.max_grid} steps, got {request.steps}")
    categorical, continuous = _fixed_codes(request, model, settings, errors)
    if not errors.items:
        _check_scale(request.scale, 1, request.steps, model, settings, errors, pad=GRID_PAD)
    errors.raise_any()
    z = _between(spec.noise(request.seeds[0]), spec.noise(request.seeds[1]), request.steps, spec.noise_prior)
    c_cat = torch.tensor([categorical], dtype=torch.long).repeat(request.steps, 1)
    c_cont = torch.tensor([continuous]).repeat(request.steps, 1)
    inputs = spec.build_input(LatentBatch(z, c_cat, c_cont))
    key = {"kind": "interpolation", "seeds": request.seeds, "steps": request.steps}
    key |= {"categorical": categorical, "continuous": continuous}
    return _picture("grid", model, inputs, 1, request.steps, request.scale, key)


def _between(start: torch.Tensor, end: torch.Tensor, steps: int, prior: str) -> torch.Tensor:
    """(steps, noise_dim) noises from `start` to `end` (each (1, noise_dim)), both included: in a
    straight line for a uniform prior (the box is convex), along the great circle for a normal
    one, which keeps the norms that the prior makes typical."""
    t = torch.linspace(0, 1, steps)[:, None]  # (steps, 1)
    angle = torch.arccos((start @ end.T / (start.norm() * end.norm()).clamp_min(1e-12)).clamp(-1, 1))  # (1, 1)
    if prior == "uniform" or angle.item() < 1e-6:
        noises = start + t * (end - start)
    else:
        noises = (torch.sin((1 - t) * angle) * start + torch.sin(t * angle) * end) / torch.sin(angle)
    noises[0], noises[-1] = start[0], end[0]  # the ends are the seeds' own noise, bit for bit
    return noises


def _picture(
    kind: Literal["image", "grid", "gif"],
    model: Model,
    inputs: torch.Tensor,
    rows: int,
    cols: int,
    scale: int,
    key: dict[str, Any],
    duration_ms: int = 0,
    bounce: bool = False,
) -> Picture:
    canonical = json.dumps({**key, "model": model.sha256, "scale": scale}, sort_keys=True)
    return Picture(kind, model, inputs, rows, cols, scale, canonical, duration_ms, bounce)


def _noise(
    request: Noise, spec: LatentSpec, settings: Settings, errors: _Errors
) -> tuple[torch.Tensor, dict[str, Any]]:
    """z (1, noise_dim) from the explicit vector or the seed (default 0)."""
    if request.noise is None:
        seed = request.seed or 0
        return spec.noise(seed), {"seed": seed}
    if len(request.noise) != spec.noise_dim:
        errors.add(("noise",), f"noise must hold noise_dim={spec.noise_dim} values, got {len(request.noise)}")
    _check_values("noise", request.noise, settings.value_cap, errors)
    return torch.tensor([request.noise]), {"noise": request.noise}


def _fixed_codes(
    request: FixedCodes, model: Model, settings: Settings, errors: _Errors
) -> tuple[list[int], list[float]]:
    spec = model.checkpoint.latent
    categorical = request.categorical if request.categorical is not None else [0] * len(spec.categorical)
    if request.label is not None:
        categorical[:1] = [_category_of(request.label, model.info.category_labels, errors)]
    continuous = request.continuous if request.continuous is not None else [0.0] * len(spec.continuous)
    if len(categorical) != len(spec.categorical):
        errors.add(("categorical",), f"categorical must hold {len(spec.categorical)} values, one per code")
    for i, (value, code) in enumerate(zip(categorical, spec.categorical, strict=False)):
        if value >= code.categories:
            errors.add(("categorical", i), f"categorical[{i}] must be in 0..{code.categories - 1}")
    if len(continuous) != len(spec.continuous):
        errors.add(("continuous",), f"continuous must hold {len(spec.continuous)} values, one per code")
    _check_values("continuous", continuous, settings.value_cap, errors)
    return categorical, [float(v) for v in continuous]


def _category_of(label: str, labels: list[str] | None, errors: _Errors) -> int:
    """The category of the first categorical code that learned `label` (0 after an error)."""
    known = [name for name in labels or [] if name != UNMATCHED and labels.count(name) == 1]
    if label in known:
        return labels.index(label)
    if known:
        errors.add(("label",), f"label must be one of {', '.join(sorted(known))} (this checkpoint's digits)")
    else:
        errors.add(("label",), "this checkpoint's categories have no labels; give categorical (category indices)")
    return 0


def _check_values(field: str, values: list[float], cap: float, errors: _Errors) -> None:
    """Reports the first value past the cap only, so a long bad vector gives a short answer."""
    for i, value in enumerate(values):
        if abs(value) > cap:
            errors.add((field, i), f"{field}[{i}] must be in -{cap:g}..{cap:g}")
            return


def _sweep_values(
    request: Sweep, spec: LatentSpec, settings: Settings, errors: _Errors, *, limit: int, what: str
) -> list[float]:
    """The swept code's values: category indices for a categorical code, floats for a continuous one."""
    codes = spec.categorical if request.vary.kind == "categorical" else spec.continuous
    if request.vary.index >= len(codes):
        allowed = f"0..{len(codes) - 1}" if codes else "none (this checkpoint has no such code)"
        errors.add(("vary", "index"), f"vary.index for a {request.vary.kind} code must be in {allowed}")
        return []
    if request.vary.kind == "categorical":
        values = _category_values(request, spec.categorical[request.vary.index].categories, errors)
    elif request.values is not None:
        values = [float(v) for v in request.values]
        _check_values("values", values, settings.value_cap, errors)
    else:
        for field in ("start", "stop"):
            if abs(getattr(request, field)) > settings.value_cap:
                errors.add((field,), f"{field} must be in -{settings.value_cap:g}..{settings.value_cap:g}")
        step = (request.stop - request.start) / max(request.steps - 1, 1)
        values = [request.start + step * i for i in range(request.steps)]
    if not 1 <= len(values) <= limit:
        field = "values" if request.values is not None else "steps"
        errors.add((field,), f"{field} gives {len(values)} {what}; 1..{limit} are allowed")
    return values


def _category_values(request: Sweep, categories: int, errors: _Errors) -> list[float]:
    ignored = {"start", "stop", "steps"} & request.model_fields_set
    if ignored:
        errors.add((min(ignored),), "start, stop and steps sweep a continuous code; give values instead")
    if request.values is None:
        return [float(c) for c in range(categories)]
    for i, value in enumerate(request.values):
        if value != int(value) or not 0 <= value < categories:
            errors.add(("values", i), f"values[{i}] must be a category index in 0..{categories - 1}")
    return [float(v) for v in request.values]


def _check_scale(
    scale: int, rows: int, cols: int, model: Model, settings: Settings, errors: _Errors, *, pad: int
) -> None:
    side = model.checkpoint.arch.image_size
    largest = max(rows, cols) * (side + pad) + pad  # the longer side of the picture at scale 1
    allowed = min(settings.max_scale, settings.max_side // largest)
    if scale > allowed:
        msg = f"scale must be in 1..{allowed}"
        if allowed < settings.max_scale:
            msg += f" for {rows}x{cols} {side}px images (answers are at most {settings.max_side} px on a side)"
        errors.add(("scale",), msg)


def _sweep_inputs(
    spec: LatentSpec, z: torch.Tensor, categorical: list[int], continuous: list[float], vary: CodeRef, values: list
) -> torch.Tensor:
    """Generator inputs for rows of noise x columns of the swept code's values, row-major."""
    rows, cols = z.shape[0], len(values)
    c_cat = torch.tensor([categorical], dtype=torch.long).repeat(rows * cols, 1)  # (rows * cols, n_categorical)
    c_cont = torch.tensor([continuous]).repeat(rows * cols, 1)  # (rows * cols, n_continuous)
    swept = torch.tensor(values).repeat(rows)  # the column's value, for every row
    if vary.kind == "categorical":
        c_cat[:, vary.index] = swept.long()
    else:
        c_cont[:, vary.index] = swept
    return spec.build_input(LatentBatch(z.repeat_interleave(cols, dim=0), c_cat, c_cont))
