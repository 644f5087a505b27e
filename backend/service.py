"""What a running service holds: settings, loaded checkpoints, their batchers and the inference thread."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any

import torch

from backend.inference import Batcher, serve_generator
from backend.registry import Registry, load_registry, shown
from backend.settings import Settings
from models.networks import compute_dtype

log = logging.getLogger(__name__)


@dataclass
class Service:
    settings: Settings
    device: torch.device
    registry: Registry
    executor: ThreadPoolExecutor  # the one inference thread: generator batches and /encode
    batchers: dict[str, Batcher]  # by checkpoint name

    def health(self) -> tuple[int, dict[str, Any]]:
        """(status code, body) of /healthz: 200 while at least one checkpoint is served."""
        body: dict[str, Any] = {
            "status": "ok" if self.registry.models else "unavailable",
            "device": str(self.device),
            "folders": [shown(folder) for folder in self.settings.checkpoint_dir],
            "checkpoints": {
                name: {
                    "precision": str(batcher.generator.dtype).removeprefix("torch."),
                    "batching": batcher.generator.max_rows > 1,
                    "requests": batcher.requests,
                    "batches": batcher.batches,
                }
                for name, batcher in self.batchers.items()
            },
            "errors": self.registry.errors,
        }
        if not self.registry.models:
            body["detail"] = "no valid checkpoint (*.safetensors) in " + ", ".join(body["folders"])
            return 503, body
        return 200, body


@asynccontextmanager
async def open_service(settings: Settings) -> AsyncIterator[Service]:
    """Load every checkpoint and start its batcher; stop them all on the way out."""
    device = _device(settings.device)
    executor = ThreadPoolExecutor(1, "inference")
    loop = asyncio.get_running_loop()
    batchers: dict[str, Batcher] = {}
    try:
        registry = await loop.run_in_executor(executor, load_registry, settings.checkpoint_dir, device)
        dtype = compute_dtype(settings.precision, device)
        for name, model in registry.models.items():
            checkpoint, limits = model.checkpoint, {"max_rows": settings.max_batch, "threads": settings.threads}
            serve = partial(serve_generator, checkpoint.generator, checkpoint.latent.input_dim, device, dtype, **limits)
            generator = await loop.run_in_executor(executor, serve)
            if generator.max_rows < settings.max_batch:
                log.warning("%s: rows differ between batch sizes on this machine; serving it unbatched", name)
            batchers[name] = Batcher(
                generator, executor, max_wait_s=settings.max_wait_ms / 1000, queue_limit=settings.queue_limit
            )
            batchers[name].start()
        yield Service(settings, device, registry, executor, batchers)
    finally:
        for batcher in batchers.values():
            await batcher.stop()
        executor.shutdown()


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)
