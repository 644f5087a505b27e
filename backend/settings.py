"""Service settings, read once from INFOGAN_* environment variables."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

import models

REPO_ROOT = Path(__file__).resolve().parents[1]
ENV_PREFIX = "INFOGAN_"


class Settings(BaseModel):
    """Each field `name` is set by the environment variable `INFOGAN_<NAME>`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # Folders of *.safetensors served by file stem; several are separated by ':' (os.pathsep) and
    # on a name clash the first folder wins. The default is the installed models package's folder,
    # which is the repository's models/pretrained/ in an editable install.
    checkpoint_dir: tuple[Path, ...] = (Path(models.__file__).parent / "pretrained",)
    frontend_dir: Path = REPO_ROOT / "frontend"  # served at / when it exists
    runs_dir: Path = Path("runs")  # training run folders (infogan train --out runs/NAME), read by /api/runs
    poll_s: float = Field(2.0, gt=0, le=3600)  # how often the checkpoint files are looked at for changes
    max_models: int = Field(8, ge=1)  # checkpoints loaded at once; past it, least recently used runs go
    device: str = "auto"  # "auto" takes CUDA when available, else the CPU
    precision: Literal["auto", "fp32", "bf16"] = "auto"  # generator's; auto: bf16 where native, else fp32
    # torch threads of a generator call while nothing else waits; under load calls use one thread,
    # leaving the other cores to HTTP and PNG encoding
    threads: int = Field(default_factory=lambda: min(2, os.cpu_count() or 1), ge=1, le=256)
    max_batch: int = Field(64, ge=1, le=1024)  # generator rows per batch; 1 turns batching off
    max_wait_ms: float = Field(0.0, ge=0, le=1000)  # how long a batch waits for company; 0: take what is queued
    queue_limit: int = Field(256, ge=1)  # queued requests per checkpoint before 503 + Retry-After
    value_cap: float = Field(5.0, gt=0)  # |continuous code| and |noise| at most this (the page uses 2)
    max_scale: int = Field(16, ge=1)  # nearest-neighbour upscaling factor
    max_grid: int = Field(16, ge=1)  # rows and columns of a grid
    max_frames: int = Field(64, ge=2)  # frames of a GIF
    max_side: int = Field(2048, ge=28)  # pixels on either side of any answer image
    max_body_bytes: int = Field(2_000_000, ge=1024)  # any request body, JSON or image
    max_image_pixels: int = Field(4096 * 4096, ge=1)  # width x height of an image sent to /encode

    @field_validator("checkpoint_dir", mode="before")
    @classmethod
    def _split_folders(cls, value: Any) -> Any:
        return tuple(part for part in value.split(os.pathsep) if part) if isinstance(value, str) else value

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> Settings:
        """Settings from the environment; a bad value fails start-up with pydantic's message."""
        names = {name: ENV_PREFIX + name.upper() for name in cls.model_fields}
        return cls.model_validate({name: environ[key] for name, key in names.items() if key in environ})
