"""What a model is: the latent-code spec, the networks and the checkpoint format."""

from models.checkpoint import (
    Checkpoint,
    CheckpointError,
    TrainingState,
    build_networks,
    load_checkpoint,
    read_metadata,
    save_checkpoint,
)
from models.latent import CategoricalCode, ContinuousCode, LatentBatch, LatentSpec
from models.networks import ArchConfig, Discriminator, Generator

__all__ = [
    "ArchConfig",
    "CategoricalCode",
    "Checkpoint",
    "CheckpointError",
    "ContinuousCode",
    "Discriminator",
    "Generator",
    "LatentBatch",
    "LatentSpec",
    "TrainingState",
    "build_networks",
    "load_checkpoint",
    "read_metadata",
    "save_checkpoint",
]
