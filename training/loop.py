"""The InfoGAN training loop: `train(config)` trains as a TrainConfig says.

The command line (training/train.py) parses and validates, then calls `train`; so do the tests
and benchmarks. Under torchrun every process runs `train` and DistributedDataParallel keeps the
replicas equal. A run folder holds `config.json`, `log.jsonl` (losses and metrics), `samples/` (PNG grids,
one row per category) and `checkpoint.safetensors` (the latest training checkpoint, replaced
atomically). `--resume` continues from that checkpoint and ends with the same weights as an
uninterrupted run of the same length.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from models.checkpoint import Checkpoint, TrainingState, build_networks, load_checkpoint, save_checkpoint
from models.latent import LatentBatch, LatentSpec
from models.metadata import CheckpointMeta, category_labels
from models.networks import ArchConfig, compute_dtype, evaluating
from models.sample import render_grid, traversal_codes
from training.data import load_dataset
from training.evaluate import categorical_accuracy
from training.losses import discriminator_loss, generator_loss, information_loss

CHECKPOINT_NAME = "checkpoint.safetensors"
COMPILE_SETTINGS = ("auto", "on", "off")


@dataclass(frozen=True)
class TrainConfig:
    dataset: str = "mnist"
    out_dir: str = "runs/mnist"
    epochs: int = 8  # the shipped model's length; accuracy plateaus after about 5 on MNIST
    steps: int | None = None  # overrides epochs when set; a step is one D update and one G update
    batch_size: int = 128  # per process
    lr_g: float = 1e-3  # the paper's rates: G learns faster than D
    lr_d: float = 2e-4
    beta1: float = 0.5  # DCGAN's Adam momentum, also the paper's
    beta2: float = 0.999
    lambda_cat: float = 1.0  # paper: 1 for discrete codes
    lambda_cont: float = 1.0  # with a fixed std this is half the squared error, already small
    learn_std: bool = False  # fixed unit std, as the authors' code; True: Q also predicts a std
    info_trains_body: bool = True  # L_I also updates D's shared body, not only the Q head
    seed: int = 0
    device: str = "auto"  # auto: cuda, then mps, then cpu
    precision: str = "auto"  # auto: bf16 autocast where native (see models.networks.compute_dtype); "fp32"; "bf16"
    compile: str = "auto"  # torch.compile the networks: "on", "off"; auto: on CUDA only (no gain on our CPU)
    minutes: float | None = None  # stop after this much training time (evaluation and saving not counted)
    log_every: int = 50
    sample_every: int = 500
    checkpoint_every: int = 1000
    eval_every: int | None = None  # categorical accuracy on the test split; default once per epoch
    latent: LatentSpec = field(default_factory=LatentSpec)
    arch: ArchConfig = field(default_factory=ArchConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        return cls(
            **{**data, "latent": LatentSpec.from_dict(data["latent"]), "arch": ArchConfig.from_dict(data["arch"])}
        )


@dataclass(frozen=True)
class Distributed:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def train(config: TrainConfig, *, resume: bool = False) -> Path:
    """Train InfoGAN as configured; returns the path of the final training checkpoint."""
    ddp = _init_distributed(config.device)
    try:
        return _train(config, ddp, resume=resume)
    finally:
        if ddp.world_size > 1:
            dist.destroy_process_group()


def _train(config: TrainConfig, ddp: Distributed, *, resume: bool) -> Path:
    device = resolve_device(config.device, ddp.local_rank)
    autocast_dtype = compute_dtype(config.precision, device)
    out_dir = Path(config.out_dir)
    checkpoint_path = out_dir / CHECKPOINT_NAME
    latent = config.latent

    # Data: the whole training set on the device, so a batch is one index lookup
    data = load_dataset(config.dataset, "train")
    images = data.images.to(device)
    test = load_dataset(config.dataset, "test") if ddp.is_main else None
    steps_per_epoch = len(data) // (config.batch_size * ddp.world_size)
    if steps_per_epoch == 0:
        raise ValueError(f"batch size {config.batch_size} x {ddp.world_size} processes exceeds the data set")
    total_steps = config.steps if config.steps is not None else config.epochs * steps_per_epoch
    eval_every = config.eval_every or steps_per_epoch

    # Networks: the same initial weights on every process
    torch.manual_seed(config.seed)
    generator, discriminator = build_networks(latent, config.arch)
    generator.to(device)
    discriminator.to(device)

    # Optimisers
    fused = device.type in ("cuda", "cpu")  # one kernel for the whole update: 1.12x a CPU step
    opt_g = torch.optim.Adam(generator.parameters(), config.lr_g, betas=(config.beta1, config.beta2), fused=fused)
    opt_d = torch.optim.Adam(discriminator.parameters(), config.lr_d, betas=(config.beta1, config.beta2), fused=fused)

    # Resume: weights, optimiser states, step, clock and latest evaluation from the checkpoint
    step, trained_before = 0, 0.0
    evaluation: CheckpointMeta = {}  # latest categorical accuracy, kept in every checkpoint
    if resume:
        state = load_checkpoint(checkpoint_path, device=device, with_training_state=True)
        generator.load_state_dict(state.generator.state_dict())
        discriminator.load_state_dict(state.discriminator.state_dict())
        opt_g.load_state_dict(state.training.optimizers["g"])
        opt_d.load_state_dict(state.training.optimizers["d"])
        step = int(state.meta["step"])
        evaluation = {k: state.meta[k] for k in ("metrics", "category_labels") if k in state.meta}
        trained_before = float(state.meta.get("train_seconds", 0.0))

    # Training mode, and the compiled and (under torchrun) DDP-wrapped views of the networks
    generator.train()
    discriminator.train()

    maybe_compile = torch.compile if use_compile(config.compile, device) else lambda module: module
    # G's step runs D with D's weights frozen: their gradients would be thrown away, so skipping
    # them saves a twelfth of the FLOPs of a step, and (under DDP) a gradient all-reduce
    d_frozen = maybe_compile(discriminator)
    g_model, d_model = maybe_compile(generator), d_frozen
    if ddp.world_size > 1:
        device_ids = [device.index] if device.type == "cuda" else None
        g_model = maybe_compile(DistributedDataParallel(generator, device_ids=device_ids))
        d_model = maybe_compile(DistributedDataParallel(discriminator, device_ids=device_ids))

    if ddp.is_main:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "config.json").write_text(json.dumps(config.to_dict(), indent=2))
    log = RunLog(out_dir / "log.jsonl", enabled=ddp.is_main)
    fixed_codes = traversal_codes(latent, seeds=list(range(10)))
    progress = tqdm(total=total_steps, initial=step, disable=not ddp.is_main, dynamic_ncols=True, unit="step")
    clock = TrainingClock(device, trained_before)
    started_step = step
    bookkeeping = (config.log_every, eval_every, config.sample_every, config.checkpoint_every)
    order = None
    out_of_time = False
    shown: dict[str, str] = {}  # the progress bar's latest losses and accuracy

    # Loop: one D step and one G step per batch, bookkeeping every so many steps
    while step < total_steps and not out_of_time:
        epoch, index = divmod(step, steps_per_epoch)
        if order is None or index == 0:
            order = epoch_order(len(data), seed=config.seed, epoch=epoch).to(device)
        real = real_batch(images, order, index, config.batch_size, ddp)
        codes = latent.sample(config.batch_size, batch_rng(config.seed, ddp.rank, step), device)

        with torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype != torch.float32):
            fake = g_model(latent.build_input(codes))

            # (1) Update D and Q: maximize log D(x) + log(1 - D(G(z, c))) + lambda * L_I(G, Q)
            # real and fake in one pass (batch norms still see them apart): bigger, faster matmuls
            both = torch.cat([real, fake.detach()])
            logits, q_both = d_model(both, detach_q=not config.info_trains_body, groups=2)
            (real_logits, fake_logits), q_fake = logits.chunk(2), q_both[len(real) :]
            info_d = information_loss(latent, q_fake, codes, learn_std=config.learn_std)
            loss_d = discriminator_loss(real_logits.float(), fake_logits.float())
        opt_d.zero_grad(set_to_none=True)
        (loss_d + info_d.weighted(config.lambda_cat, config.lambda_cont)).backward()
        opt_d.step()

        with torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype != torch.float32):
            # (2) Update G: maximize log D(G(z, c)) + lambda * L_I(G, Q), the information term
            # pushing G to make its codes recoverable from the image
            with frozen(discriminator):
                fake_logits, q_fake = d_frozen(fake)
            info_g = information_loss(latent, q_fake, codes, learn_std=config.learn_std)
            loss_g = generator_loss(fake_logits.float())
        opt_g.zero_grad(set_to_none=True)
        (loss_g + info_g.weighted(config.lambda_cat, config.lambda_cont)).backward()
        opt_g.step()
        step += 1
        progress.update(1)
        if config.minutes is not None and step % config.log_every == 0:
            out_of_time = _agree(clock.seconds() >= config.minutes * 60, ddp, device)
        done = step == total_steps or out_of_time
        if ddp.world_size > 1 and (step % config.checkpoint_every == 0 or done):
            average_buffers(generator, discriminator)

        # (3) Bookkeeping, on the main process only (losses are fetched every log_every steps
        # so the device is not synchronised every step), off the training clock
        if not ddp.is_main or not (done or any(step % n == 0 for n in bookkeeping)):
            continue
        with clock.paused():
            seconds = clock.seconds()
            if step % config.log_every == 0 or done:
                images_seen = (step - started_step) * config.batch_size * ddp.world_size
                rate = images_seen / max(seconds - trained_before, 1e-9)
                losses = {
                    "loss_d": loss_d.item(),
                    "loss_g": loss_g.item(),
                    "info_cat": info_g.categorical.item(),
                    "info_cont": info_g.continuous.item(),
                }
                record = {"step": step, "epoch": step / steps_per_epoch, "train_s": seconds, **losses}
                log.write({**record, "images_per_s": rate})
                shown.update({k: f"{v:.3f}" for k, v in losses.items()})
                progress.set_postfix(shown, refresh=False)
            if step % eval_every == 0 or done:
                accuracy, mapping = categorical_accuracy(discriminator, latent, test)
                evaluation = {
                    "metrics": {"categorical_accuracy": accuracy},
                    "category_labels": category_labels(mapping),
                }
                record = {"step": step, "epoch": step / steps_per_epoch, "train_s": seconds}
                log.write({**record, "categorical_accuracy": accuracy})
                progress.write(
                    f"step {step} ({seconds:.0f} s of training): categorical accuracy {accuracy:.4f}", file=sys.stderr
                )
                shown["acc"] = f"{accuracy:.3f}"
                progress.set_postfix(shown, refresh=False)
            if step % config.sample_every == 0 or done:
                write_sample_grid(generator, latent, fixed_codes, out_dir / "samples" / f"step_{step:07d}.png")
            if step % config.checkpoint_every == 0 or done:
                save_checkpoint(
                    checkpoint_path,
                    Checkpoint(
                        latent,
                        config.arch,
                        generator,
                        discriminator,
                        meta={**run_metadata(config, step), **evaluation, "train_seconds": seconds},
                        training=TrainingState({"g": opt_g.state_dict(), "d": opt_d.state_dict()}),
                    ),
                )
    progress.close()
    return checkpoint_path


@contextmanager
def frozen(module: torch.nn.Module) -> Iterator[None]:
    """Run `module` without recording gradients for its weights; gradients still flow through it."""
    module.requires_grad_(False)
    try:
        yield
    finally:
        module.requires_grad_(True)


class TrainingClock:
    """Seconds of training, bookkeeping excluded, carried over from the runs this one resumes.

    On CUDA the device is synchronised when the clock is read or paused (every log_every steps),
    so queued work counts where it was queued."""

    def __init__(self, device: torch.device, seconds_before: float = 0.0) -> None:
        self.device, self.seconds_before = device, seconds_before
        self.started, self.paused_for = time.perf_counter(), 0.0

    def seconds(self) -> float:
        self._sync()
        return self.seconds_before + time.perf_counter() - self.started - self.paused_for

    @contextmanager
    def paused(self) -> Iterator[None]:
        self._sync()
        pause = time.perf_counter()
        try:
            yield
        finally:
            self.paused_for += time.perf_counter() - pause

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)


def use_compile(setting: str, device: torch.device) -> bool:
    """Whether to torch.compile the networks: on CUDA it fuses the small per-layer kernels; on our
    CPU a compiled step was no faster (596 against 675 images/s) and compiling took 12-34 s."""
    if setting not in COMPILE_SETTINGS:
        raise ValueError(f"compile must be one of {', '.join(COMPILE_SETTINGS)}; got {setting!r}")
    return setting == "on" or (setting == "auto" and device.type == "cuda")


def _agree(flag: bool, ddp: Distributed, device: torch.device) -> bool:
    """True on every process when it is true on any, so all stop at the same step."""
    if ddp.world_size == 1:
        return flag
    value = torch.tensor(float(flag), device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())


def average_buffers(*modules: torch.nn.Module) -> None:
    """Average BatchNorm running statistics over the replicas. DDP keeps the parameters equal,
    but each process updates its own running statistics on its own shard after the last
    broadcast; averaging makes every replica (and the checkpoint) the same model."""
    for module in modules:
        for buffer in module.buffers():
            if buffer.is_floating_point():
                dist.all_reduce(buffer)
                buffer /= dist.get_world_size()


def run_metadata(config: TrainConfig, step: int) -> CheckpointMeta:
    image = {"channels": config.arch.image_channels, "height": config.arch.image_size, "width": config.arch.image_size}
    return {
        "dataset": config.dataset,
        "image": image,
        "step": step,
        "train_config": config.to_dict(),
        "q_predicts_std": config.learn_std,
    }


def batch_rng(seed: int, rank: int, step: int) -> torch.Generator:
    """The generator for one step's noise and codes: a function of (seed, rank, step) alone, so
    a resumed run draws exactly what the uninterrupted run would have, with no state to save."""
    return torch.Generator().manual_seed(((seed * 1_000_003 + rank) * 1_000_000_007 + step) % 2**63)


def epoch_order(size: int, *, seed: int, epoch: int) -> torch.Tensor:
    """The shuffled order of an epoch, a function of (seed, epoch) alone so that every process
    agrees on it and a resumed run needs no saved sampler state."""
    return torch.randperm(size, generator=torch.Generator().manual_seed(seed * 100_003 + epoch))


def real_batch(
    images: torch.Tensor, order: torch.Tensor, index: int, batch_size: int, ddp: Distributed
) -> torch.Tensor:
    """This process's share of the epoch's `index`-th batch: the processes take consecutive
    slices of the epoch's order, so together they see each image once per epoch."""
    start = (index * ddp.world_size + ddp.rank) * batch_size
    return images[order[start : start + batch_size]]


def write_sample_grid(generator: torch.nn.Module, latent: LatentSpec, codes: LatentBatch, path: Path) -> None:
    """A progress grid from fixed codes (a row per category), so grids of different steps compare."""
    rows = latent.categorical[0].categories if latent.categorical else 1
    with evaluating(generator):  # running BatchNorm statistics, restored to training mode after
        picture = render_grid(generator, latent, codes, rows=rows, scale=2)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(picture)


class RunLog:
    """Appends one JSON object per line; flushed at once so a killed run keeps its history."""

    def __init__(self, path: Path, *, enabled: bool) -> None:
        self.path = path
        self.enabled = enabled

    def write(self, record: dict[str, Any]) -> None:
        if self.enabled:
            with self.path.open("a") as handle:
                handle.write(json.dumps({"time": time.time(), **record}) + "\n")


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    if name != "auto":
        device = torch.device(name)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError("device 'cuda' was asked for but CUDA is not available")
        return device
    if torch.cuda.is_available():
        return torch.device("cuda", local_rank)
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def _init_distributed(device: str) -> Distributed:
    """Join the process group that torchrun describes in the environment, if any."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size == 1:
        return Distributed()
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    use_nccl = device in ("auto", "cuda") and torch.cuda.is_available()
    if use_nccl:
        torch.cuda.set_device(local_rank)
    dist.init_process_group("nccl" if use_nccl else "gloo")
    return Distributed(rank=dist.get_rank(), world_size=dist.get_world_size(), local_rank=local_rank)
