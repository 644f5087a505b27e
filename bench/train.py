"""Training speed and time to quality: the eager baseline against this project's fast path.

    .venv/bin/python bench/train.py                      # throughput, then 3 seeds x 10 minutes
    .venv/bin/python bench/train.py --no-accuracy        # throughput only, about two minutes
    .venv/bin/python bench/train.py --quick              # a smoke run of a few seconds

Throughput: (a) a plain eager fp32 step written the way the public InfoGAN implementations write
it (a DataLoader over the data set at batch 128, a fresh label tensor per loss, `.item()` on every
loss every step) and (b) `training.loop.train` itself, one after the other in this process on the
same device and the same networks, as images per second and their ratio. Model FLOPs per image
are counted by torch's FlopCounterMode over one training step; the fraction of peak is against the
best dense matmul measured here on the same device (bf16 and fp32), not a data sheet.

Time to quality: `training.loop.train` from scratch for each seed with a time limit, categorical test
accuracy evaluated every few hundred steps off the clock; prints the training seconds to 0.90
and 0.95 (median over seeds) and the final accuracy. Figures, never pass/fail.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset
from torch.utils.flop_counter import FlopCounterMode

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run as a script from anywhere

from seeds import THRESHOLDS, read_log, time_to_accuracy  # noqa: E402
from serve import print_header  # noqa: E402

from models import ArchConfig, LatentBatch, LatentSpec, build_networks  # noqa: E402
from models.networks import compute_dtype  # noqa: E402
from training.data import load_dataset  # noqa: E402
from training.loop import TrainConfig, frozen, train  # noqa: E402
from training.options import resolve_device  # noqa: E402


class DigitImages(Dataset):
    """One image per __getitem__, normalised there, as torchvision's MNIST + ToTensor + Normalize."""

    def __init__(self, pixels: torch.Tensor) -> None:
        self.pixels = pixels  # (N, 1, 28, 28) uint8

    def __len__(self) -> int:
        return len(self.pixels)

    def __getitem__(self, index: int) -> torch.Tensor:
        return (self.pixels[index].float() / 255 - 0.5) / 0.5


def information(latent: LatentSpec, q: torch.Tensor, codes: LatentBatch) -> torch.Tensor:
    """L_I as the public implementations write it: cross-entropy plus a fixed-std Gaussian term."""
    (logits,), mean, _ = latent.split_q_output(q)
    return F.cross_entropy(logits, codes.c_cat[:, 0]) + 0.5 * F.mse_loss(mean, codes.c_cont)


def baseline_images_per_s(device: torch.device, steps: int, latent: LatentSpec, arch: ArchConfig) -> float:
    """The eager fp32 loop of the common public implementations, timed after two warm-up steps."""
    torch.manual_seed(0)
    generator, discriminator = (net.to(device) for net in build_networks(latent, arch))
    opt_g = torch.optim.Adam(generator.parameters(), 1e-3, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(discriminator.parameters(), 2e-4, betas=(0.5, 0.999))
    pixels = ((load_dataset("mnist", "train").images + 1) * 127.5).round().to(torch.uint8)
    loader = DataLoader(DigitImages(pixels), batch_size=128, shuffle=True, drop_last=True)
    batches, started, seen, losses = iter(loader), 0.0, 0, []
    for step in range(steps + 2):
        if step == 2:
            started = time.perf_counter()
        real = next(batches).to(device)
        codes = latent.sample(len(real), device=device)
        fake = generator(latent.build_input(codes))
        real_logits, _ = discriminator(real)
        fake_logits, q = discriminator(fake.detach())
        loss_d = F.binary_cross_entropy_with_logits(real_logits, torch.ones(len(real), device=device))
        loss_d = loss_d + F.binary_cross_entropy_with_logits(fake_logits, torch.zeros(len(real), device=device))
        info_d = information(latent, q, codes)
        opt_d.zero_grad()
        (loss_d + info_d).backward()
        opt_d.step()
        fake_logits, q = discriminator(fake)
        loss_g = F.binary_cross_entropy_with_logits(fake_logits, torch.ones(len(real), device=device))
        info_g = information(latent, q, codes)
        opt_g.zero_grad()
        (loss_g + info_g).backward()
        opt_g.step()
        losses.append((loss_d.item(), loss_g.item()))  # what a loop that logs every step pays: a sync
        seen += len(real) if step >= 2 else 0
    return seen / (time.perf_counter() - started)


def logged_run(config: TrainConfig) -> list[dict[str, Any]]:
    """Train as configured in a scratch folder; the run's log records."""
    with tempfile.TemporaryDirectory() as folder:
        train(dataclasses.replace(config, out_dir=folder))
        return read_log(Path(folder) / "log.jsonl")


def fast_images_per_s(config: TrainConfig) -> float:
    """training.loop's own rate between its first and last loss records (compilation excluded)."""
    records = [r for r in logged_run(config) if "loss_d" in r]
    first, last = records[0], records[-1]
    return (last["step"] - first["step"]) * config.batch_size / (last["train_s"] - first["train_s"])


def flops_per_image(device: torch.device, latent: LatentSpec, arch: ArchConfig, batch: int = 64) -> float:
    """Model FLOPs of one training step (G forward, D on real and fake, D and G backward) per image:
    the work the algorithm needs, so not the gradients of D's weights in G's step, which the
    baseline computes and throws away."""
    generator, discriminator = (net.to(device) for net in build_networks(latent, arch))
    real = torch.zeros(batch, 1, 28, 28, device=device)
    with FlopCounterMode(display=False) as counter:
        fake = generator(latent.build_input(latent.sample(batch, device=device)))
        real_logits, _ = discriminator(real)
        fake_logits, q = discriminator(fake.detach())
        (real_logits.sum() + fake_logits.sum() + q.sum()).backward()
        with frozen(discriminator):
            fake_logits, q = discriminator(fake)
        (fake_logits.sum() + q.sum()).backward()
    return counter.get_total_flops() / batch


def matmul_peak(device: torch.device, dtype: torch.dtype, size: int = 2048) -> float:
    """FLOP/s of the best of a few large square matmuls: the reachable peak on this device."""
    a, b = (torch.randn(size, size, device=device, dtype=dtype) for _ in range(2))
    best = float("inf")
    for _ in range(5):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        a @ b
        if device.type == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--steps", type=int, default=60, help="timed steps of each loop (default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=128, help="the fast path's (default: %(default)s)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--minutes", type=float, default=10.0, help="training time per seed (default: %(default)s)")
    parser.add_argument("--eval-every", type=int, default=200, help="steps between evaluations")
    parser.add_argument("--no-accuracy", action="store_true", help="throughput only")
    parser.add_argument("--quick", action="store_true", help="a few steps and seconds: checks the benchmark runs")
    args = parser.parse_args(argv)
    if args.quick:
        args.steps, args.seeds, args.minutes, args.eval_every = 4, [1], 0.05, 5

    device = resolve_device(args.device)
    latent, arch = LatentSpec(), ArchConfig()
    fast = TrainConfig(
        device=args.device,
        precision="auto",  # the fastest path: bf16 where native
        batch_size=args.batch_size,
        steps=args.steps + 10,
        log_every=10,
        eval_every=10**9,
        sample_every=10**9,
        checkpoint_every=10**9,
    )
    print_header(f"; device {device}, {torch.get_num_threads()} torch threads")

    baseline = baseline_images_per_s(device, args.steps, latent, arch)
    fast_rate = fast_images_per_s(fast)
    flops = flops_per_image(device, latent, arch)
    fast_dtype = compute_dtype(fast.precision, device)
    peaks = {dtype: matmul_peak(device, dtype) for dtype in (torch.float32, fast_dtype)}
    print()
    print("| loop | batch | precision | images/s | ratio | achieved TFLOP/s | of measured matmul peak |")
    print("| --- | ---: | --- | ---: | ---: | ---: | ---: |")
    for name, batch, dtype, rate in (
        ("eager baseline (DataLoader, .item() every step)", 128, torch.float32, baseline),
        ("fast path (training.loop)", args.batch_size, fast_dtype, fast_rate),
    ):
        achieved, precision = rate * flops, str(dtype).removeprefix("torch.")
        share = f"{achieved / peaks[dtype]:.0%}"
        print(
            f"| {name} | {batch} | {precision} | {rate:.0f} | {rate / baseline:.2f} | {achieved / 1e12:.3f} | {share} |"
        )
    print(f"\nmodel FLOPs per image per training step: {flops / 1e9:.3f} GFLOP")
    print("measured matmul peak: " + ", ".join(f"{str(d)[6:]} {p / 1e12:.2f} TFLOP/s" for d, p in peaks.items()))
    if args.no_accuracy:
        return 0

    print(f"\ntime to categorical accuracy, fast path, {args.minutes:g} min of training per seed:")
    print("\n| seed | to 0.90 (s) | to 0.95 (s) | final accuracy | steps |")
    print("| ---: | ---: | ---: | ---: | ---: |")
    results = []
    for seed in args.seeds:
        run = dataclasses.replace(
            fast, seed=seed, steps=None, epochs=1000, minutes=args.minutes, eval_every=args.eval_every
        )
        records = logged_run(run)
        reached = {t: None if r is None else r[1] for t, r in time_to_accuracy(records).items()}
        last = [r for r in records if "categorical_accuracy" in r][-1]
        final = last["categorical_accuracy"]
        results.append((reached, final))
        cells = " | ".join("not reached" if reached[t] is None else f"{reached[t]:.0f}" for t in THRESHOLDS)
        print(f"| {seed} | {cells} | {final:.4f} | {last['step']} |", flush=True)
    for threshold in THRESHOLDS:
        times = [reached[threshold] if reached[threshold] is not None else float("inf") for reached, _ in results]
        median = statistics.median(times)
        text = f"{median:.0f} s" if median != float("inf") else f"not reached within {args.minutes:g} min"
        print(f"median time to {threshold:.2f}: {text}")
    print(f"median final accuracy: {statistics.median(final for _, final in results):.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
