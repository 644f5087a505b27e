"""Helpers for the service tests: tiny checkpoints on disk, the app in-process, uvicorn as a process."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import httpx
import torch
import yaml

from backend.app import create_app
from backend.settings import Settings
from models import ArchConfig, Checkpoint, LatentSpec, build_networks, save_checkpoint

REPO = Path(__file__).resolve().parents[1]
TINY = ArchConfig(name="tiny", g_fc=32, g_conv=16, d_conv=8, d_fc=32, q_fc=16)
MNIST = LatentSpec()  # the paper's: 62 noise, one 10-way code, two continuous codes
LABELS = ["7", "2", "1", "0", "4", "9", "5", "6", "3", "8"]  # the digit each category learned
META = {
    "dataset": "mnist",
    "image": {"channels": 1, "height": 28, "width": 28},
    "category_labels": LABELS,
    "metrics": {"categorical_accuracy": 0.5},
    "step": 7,
}


def write_checkpoint(
    path: Path, *, seed: int = 0, latent: LatentSpec = MNIST, arch: ArchConfig = TINY, meta: dict = META
) -> Path:
    """A randomly initialised checkpoint; BatchNorm statistics moved off their defaults so the
    eval-mode generator draws something with structure."""
    torch.manual_seed(seed)
    generator, discriminator = build_networks(latent, arch)
    with torch.no_grad():
        generator(latent.build_input(latent.sample(16)))
        discriminator(torch.rand(16, arch.image_channels, arch.image_size, arch.image_size) * 2 - 1)
    generator.eval()
    discriminator.eval()
    return save_checkpoint(path, Checkpoint(latent, arch, generator, discriminator, dict(meta)), dtype=torch.float16)


def settings_for(folder: Path, **overrides: Any) -> Settings:
    overrides = {"frontend_dir": folder / "no-frontend", "runs_dir": folder / "no-runs", **overrides}
    return Settings(checkpoint_dir=(folder,), **overrides)


@asynccontextmanager
async def serve(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """The app in this process, start-up and shut-down included, behind an httpx client."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://explorer") as client:
            yield client


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def uvicorn_process(command: list[str], env: dict[str, str], port: int, log: Path) -> Iterator[str]:
    """Run `command` (a uvicorn command line) from the repository root until /healthz answers;
    yields the base URL and stops the process afterwards."""
    url = f"http://127.0.0.1:{port}"
    with log.open("wb") as output:
        process = subprocess.Popen(command, cwd=REPO, env={**os.environ, **env}, stdout=output, stderr=output)
        try:
            deadline = time.monotonic() + 60
            while True:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{command} did not start:\n{log.read_text()}")
                try:
                    httpx.get(f"{url}/healthz", timeout=1)  # 200 or 503: either way it is up
                    break
                except httpx.TransportError:
                    time.sleep(0.1)
            yield url
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def venv_executable(name: str) -> str:
    """A console script installed beside this Python (the venv's uvicorn, say)."""
    return str(Path(sys.executable).parent / name)


def dockerfile_command() -> list[str]:
    """The image's CMD, which compose's explorer service runs too."""
    (line,) = [line for line in (REPO / "Dockerfile").read_text().splitlines() if line.startswith("CMD ")]
    return json.loads(line.removeprefix("CMD "))


def compose() -> dict[str, Any]:
    return yaml.safe_load((REPO / "docker-compose.yml").read_text())


def on_loopback(command: list[str], port: int) -> list[str]:
    """`command` with its --host and --port values moved to 127.0.0.1 and `port`, and its program
    taken from this venv; everything else exactly as the container runs it."""
    replaced = {"--host": "127.0.0.1", "--port": str(port)}
    moved = [replaced.get(previous, arg) for previous, arg in zip(["", *command], command, strict=False)]
    return [venv_executable(moved[0]), *moved[1:]]
