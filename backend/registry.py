"""The checkpoints a service serves, kept in step with their files while it runs.

Sources: every *.safetensors in the checkpoint folders, named by file stem (on a clash the first
folder wins), and the latest training checkpoint of each run under the runs folder, named
`run:NAME` (the member the run chose, or member 0 while it trains). `refresh` compares each
file's stamp (size, modification time, inode: a checkpoint is replaced by a rename) with the one
it last read; a new or changed file is loaded in a worker thread and swapped in whole, with its
own batcher, and a removed one is dropped. A file that fails to load is reported and never
replaces a good model of the same name. At most `max_models` are loaded: past that, the run
checkpoints used least recently are let go (folder checkpoints stay). The folders' checkpoints
load before the runs', and `folders_loaded` says when they are in: start-up waits for that, not
for a busy runs folder.

Names are only ever looked up in the loaded dict, so no request can turn a name into a path.
Reports name a file by its folder's name and its own (`pretrained/mnist.safetensors`): a public
service shows no more of its file system than that; the log has full paths.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from concurrent.futures import Executor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import torch

from backend.inference import Batcher, serve_generator
from backend.runs import find_runs
from backend.schemas import CheckpointInfo, CodeEffect
from backend.settings import Settings
from models import Checkpoint, CheckpointError
from models.checkpoint import load_population
from models.metadata import ATTRIBUTES, clear_effect, has_numbers, rank_correlations
from models.networks import compute_dtype

log = logging.getLogger(__name__)
RUN_PREFIX = "run:"


@dataclass(frozen=True)
class Model:
    name: str
    path: Path
    checkpoint: Checkpoint
    sha256: str  # of the file: part of every ETag, so a replaced file never matches old caches
    info: CheckpointInfo  # its /api/checkpoints entry
    batcher: Batcher  # runs its generator; a replaced model's requests finish on the old one


@dataclass(frozen=True)
class Source:
    path: Path
    file: str  # as reports show it
    run: str | None  # the run whose checkpoint it is


class Registry:
    def __init__(self, settings: Settings, device: torch.device, executor: Executor) -> None:
        self.settings, self.device, self.executor = settings, device, executor
        self.models: dict[str, Model] = {}  # in the order of /api/checkpoints: the first is the default
        self.errors: list[dict[str, str]] = []  # {"file", "error"} per file not served
        self.evicted: list[str] = []  # run checkpoints let go under the max_models cap
        self._stamps: dict[str, tuple[int, int, int]] = {}  # name -> stamp of the file last read for it
        self._failed: dict[str, dict[str, str]] = {}  # name -> its file's latest load error
        self._used: dict[str, float] = {}  # name -> when a request last chose it
        self.folders_loaded = asyncio.Event()  # set when a first refresh is past the checkpoint folders

    def touch(self, name: str) -> None:
        self._used[name] = time.monotonic()

    async def refresh(self) -> None:
        """Brings the loaded models in step with the files, the checkpoint folders' first."""
        try:
            await self._refresh()
        finally:  # even a failed refresh ends start-up's wait: the service answers, /healthz says what is wrong
            self.folders_loaded.set()

    async def _refresh(self) -> None:
        sources, problems = await asyncio.to_thread(self._scan)
        for name in [name for name in self._stamps if name not in sources]:
            del self._stamps[name]
            self._failed.pop(name, None)
            self.evicted = [other for other in self.evicted if other != name]
            if name in self.models:
                await self._replace(name, None)
                log.info("dropped checkpoint %r: its file is gone", name)
        for name, source in sources.items():
            if source.run is not None and not self.folders_loaded.is_set():
                self.errors = problems + list(self._failed.values())  # the folders' own, while the runs load
                self.folders_loaded.set()
            stamp = await asyncio.to_thread(_stamp, source.path)
            if stamp is None or self._stamps.get(name) == stamp:
                continue
            self._stamps[name] = stamp
            try:
                model = await self._load(name, source)
            except Exception as error:  # any broken file is reported, whatever the library raised
                log.warning("not serving %s: %s", source.path, error, exc_info=not isinstance(error, CheckpointError))
                message = (str(error) or type(error).__name__).replace(str(source.path), source.file)
                self._failed[name] = {"file": source.file, "error": message}
                continue
            self._failed.pop(name, None)
            self.evicted = [other for other in self.evicted if other != name]
            await self._replace(name, model)
            log.info("loaded checkpoint %r from %s", name, source.path)
            await self._evict()  # before the next await, so no request sees more than the cap
        self.models = {name: self.models[name] for name in sources if name in self.models}
        self.errors = problems + list(self._failed.values())

    async def watch(self) -> None:
        """Refreshes now and then every `poll_s` seconds until cancelled."""
        while True:
            try:
                await self.refresh()
            except Exception:  # a refresh that fails leaves the models as they were; the next one tries again
                log.exception("refreshing the checkpoints failed")
            await asyncio.sleep(self.settings.poll_s)

    async def close(self) -> None:
        for model in self.models.values():
            await model.batcher.stop()
        self.models = {}

    def _scan(self) -> tuple[dict[str, Source], list[dict[str, str]]]:
        """Every checkpoint file by name, and the problems of finding them (missing folders, names
        taken twice)."""
        sources: dict[str, Source] = {}
        problems = []
        for folder in self.settings.checkpoint_dir:
            if not folder.is_dir():
                problems.append({"file": shown(folder), "error": "no such folder"})
                continue
            for path in sorted(folder.glob("*.safetensors")):
                file = shown(folder, path.name)
                if path.stem in sources:
                    message = f"name {path.stem!r} is taken by {sources[path.stem].file}"
                    problems.append({"file": file, "error": message})
                    continue
                sources[path.stem] = Source(path, file, None)
        for run, folder in find_runs(self.settings.runs_dir).items():
            path = folder / "checkpoint.safetensors"
            if path.is_file():
                sources[RUN_PREFIX + run] = Source(path, f"{run}/{path.name}", run)
        return sources, problems

    async def _load(self, name: str, source: Source) -> Model:
        """The model of a file, read on a worker thread and probed on the inference thread."""
        checkpoint, sha256 = await asyncio.to_thread(_read, source.path, self.device)
        info = describe(name, checkpoint, sha256, run=source.run)  # odd metadata fails here, not in a request
        settings, loop = self.settings, asyncio.get_running_loop()
        dtype = compute_dtype(settings.precision, self.device)
        serve = partial(serve_generator, checkpoint.generator, checkpoint.latent.input_dim, self.device, dtype)
        generator = await loop.run_in_executor(
            self.executor, partial(serve, max_rows=settings.max_batch, threads=settings.threads)
        )
        if generator.max_rows < settings.max_batch:
            log.warning("%s: rows differ between batch sizes on this machine; serving it unbatched", name)
        batcher = Batcher(
            generator, self.executor, max_wait_s=settings.max_wait_ms / 1000, queue_limit=settings.queue_limit
        )
        batcher.start()
        return Model(name, source.path, checkpoint, sha256, info, batcher)

    async def _replace(self, name: str, model: Model | None) -> None:
        """Swaps `model` in for `name` (None: drops it); the old one's queued requests finish first."""
        old = self.models.pop(name, None)
        if model is not None:
            self.models[name] = model
        if old is not None:
            await old.batcher.drain_and_stop()

    async def _evict(self) -> None:
        """Lets go of the run checkpoints used least recently while more than max_models are loaded."""
        runs = sorted((name for name in self.models if name.startswith(RUN_PREFIX)), key=lambda n: self._used.get(n, 0))
        while len(self.models) > self.settings.max_models and runs:
            name = runs.pop(0)
            await self._replace(name, None)
            self.evicted.append(name)
            log.info("let go of %r: more than %d checkpoints loaded", name, self.settings.max_models)


def _stamp(path: Path) -> tuple[int, int, int] | None:
    try:
        status = path.stat()
    except OSError:  # gone between listing and looking
        return None
    return status.st_size, status.st_mtime_ns, status.st_ino


def _read(path: Path, device: torch.device) -> tuple[Checkpoint, str]:
    """A checkpoint file's networks (of a population: the chosen member, else member 0) and sha256."""
    data = path.read_bytes()
    members = load_population(path, device=device, data=data)  # the bytes hashed, not a second read
    chosen = members[0].meta.get("chosen_member", 0)
    member = members[chosen if isinstance(chosen, int) and 0 <= chosen < len(members) else 0]
    return member, hashlib.sha256(data).hexdigest()


def shown(folder: Path, file: str | None = None) -> str:
    """How reports name a checkpoint folder, or a file in it: from the folder's own name down."""
    name = folder.resolve().name
    return f"{name}/{file}" if file else name


def describe(name: str, checkpoint: Checkpoint, sha256: str, run: str | None = None) -> CheckpointInfo:
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
        run=run,
    )


WHAT_IT_DOES = {  # (attribute that showed the effect, sign of its rank correlation) -> what growing the code does
    ("slant", 1): "leans the digit to the right",
    ("slant", -1): "leans the digit to the left",
    ("width", 1): "thickens the strokes",
    ("width", -1): "thins the strokes",
    ("breadth", 1): "broadens the digit",
    ("breadth", -1): "narrows the digit",
}


def code_effect(name: str, measured: Any) -> CodeEffect:
    """One continuous code's effect in words, from its measured rank correlations."""
    if not has_numbers(measured, ("slant_spearman", "width_spearman", "identity_kept")):
        return CodeEffect(name=name, effect="unmeasured", description="not measured (infogan evaluate measures it)")
    keys = ["identity_kept", *(f"{a}_{figure}" for a in ATTRIBUTES for figure in ("spearman", "swing"))]
    figures = {key: round(float(measured[key]), 4) for key in keys if has_numbers(measured, (key,))}
    kept = f"keeps the digit in {figures['identity_kept']:.0%} of sweeps from -2 to 2"
    clear = clear_effect(measured)
    if clear is None:
        rhos = rank_correlations(measured)
        return CodeEffect(
            name=name,
            effect="mixed",
            description=f"no single clear effect (rank correlation: {rhos}); {kept}",
            **figures,
        )
    what = WHAT_IT_DOES[clear.attribute, 1 if clear.rho > 0 else -1]
    return CodeEffect(
        name=name,
        effect=clear.name,
        description=f"{what} as it grows ({ATTRIBUTES[clear.attribute]} rank correlation {clear.rho:+.2f}); {kept}",
        **figures,
    )
