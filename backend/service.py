"""What a running service holds: settings, the checkpoints it keeps loaded, and the inference thread."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import torch

from backend.registry import Registry, shown
from backend.settings import Settings

log = logging.getLogger(__name__)


@dataclass
class Service:
    settings: Settings
    device: torch.device
    registry: Registry  # the loaded checkpoints, each with its batcher, kept in step with the files
    executor: ThreadPoolExecutor  # the one inference thread: generator batches and /encode

    def health(self) -> tuple[int, dict[str, Any]]:
        """(status code, body) of /healthz: 200 while at least one checkpoint is served."""
        models = self.registry.models
        body: dict[str, Any] = {
            "status": "ok" if models else "unavailable",
            "device": str(self.device),
            "folders": [shown(folder) for folder in self.settings.checkpoint_dir],
            "checkpoints": {
                name: {
                    "precision": str(model.batcher.generator.dtype).removeprefix("torch."),
                    "batching": model.batcher.generator.max_rows > 1,
                    "requests": model.batcher.requests,
                    "batches": model.batcher.batches,
                }
                for name, model in models.items()
            },
            "errors": self.registry.errors,
            "evicted": self.registry.evicted,
        }
        if not models:
            body["detail"] = "no valid checkpoint (*.safetensors) in " + ", ".join(body["folders"])
            return 503, body
        return 200, body


@asynccontextmanager
async def open_service(settings: Settings) -> AsyncIterator[Service]:
    """Load the checkpoint folders' checkpoints, then serve while the runs' load and every file is
    watched; stop it all on the way out."""
    device = _device(settings.device)
    executor = ThreadPoolExecutor(1, "inference")
    registry = Registry(settings, device, executor)
    watching = None
    try:
        watching = asyncio.create_task(registry.watch())
        await registry.folders_loaded.wait()
        yield Service(settings, device, registry, executor)
    finally:
        if watching is not None:
            watching.cancel()
            await asyncio.gather(watching, return_exceptions=True)
        await registry.close()
        executor.shutdown()


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)
