"""Serving benchmark: latency and throughput of the explorer over loopback HTTP (DESIGN.md, "Metrics").

    .venv/bin/python bench/serve.py            # about three minutes
    .venv/bin/python bench/serve.py --quick    # a smoke run of a few seconds

Starts `uvicorn backend.app:app` on a free loopback port, serving the shipped model or, when
there is none, a randomly initialised checkpoint of the paper's architecture (the same cost to
run), and measures with httpx over keep-alive connections: p50/p99 latency of one 28x28 image at
scale 8 and of a 10x10 grid, one request at a time; then requests per second of single images
at 1, 8, 32 and 64 concurrent clients, with batching on and then off (the server restarted with
INFOGAN_MAX_BATCH=1). Prints figures; never fails on time.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import shlex
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run as a script from anywhere

from models import ArchConfig, Checkpoint, LatentSpec, build_networks, save_checkpoint  # noqa: E402

SHIPPED = REPO / "models" / "pretrained" / "mnist.safetensors"
CLIENTS = (1, 8, 32, 64)
Body = Callable[[int], dict[str, Any]]


def single(i: int) -> dict[str, Any]:
    """A different picture per request, as slider drags make them."""
    return {"seed": i, "categorical": [i % 10], "continuous": [(i % 41) / 10 - 2, ((i * 7) % 41) / 10 - 2], "scale": 8}


def grid(i: int) -> dict[str, Any]:
    return {"seeds": list(range(i, i + 10)), "steps": 10}


@contextmanager
def checkpoint_folder() -> Iterator[tuple[Path, str]]:
    if SHIPPED.is_file():
        yield SHIPPED.parent, f"the shipped model ({SHIPPED.relative_to(REPO)})"
        return
    with tempfile.TemporaryDirectory() as folder:
        latent, arch = LatentSpec(), ArchConfig()
        generator, discriminator = build_networks(latent, arch)
        checkpoint = Checkpoint(latent, arch, generator.eval(), discriminator.eval(), {"dataset": "mnist"})
        save_checkpoint(Path(folder) / "mnist.safetensors", checkpoint, dtype=torch.float16)
        yield Path(folder), "a random checkpoint of the paper's architecture (no shipped model yet)"


def server_command(port: int | str) -> list[str]:
    uvicorn = str(Path(sys.executable).parent / "uvicorn")
    return [uvicorn, "backend.app:app", "--host", "127.0.0.1", "--port", str(port), "--no-access-log"]


@contextmanager
def server(folder: Path, *, max_batch: int) -> Iterator[str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "INFOGAN_CHECKPOINT_DIR": str(folder), "INFOGAN_MAX_BATCH": str(max_batch)}
    process = subprocess.Popen(server_command(port), cwd=REPO, env=env, stdout=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):  # up to a minute to load
            if process.poll() is not None:
                raise SystemExit(f"the server exited with {process.returncode}")
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        else:
            raise SystemExit("the server did not become healthy within a minute")
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


def latency(url: str, path: str, body: Body, requests: int) -> tuple[float, float]:
    """(p50, p99) in milliseconds, one request at a time on one keep-alive connection."""
    times = []
    with httpx.Client(base_url=url, timeout=30) as client:
        for i in range(requests + 10):
            start = time.perf_counter()
            response = client.post(path, json=body(i))
            elapsed = time.perf_counter() - start
            response.raise_for_status()
            if i >= 10:  # the first ones warm up connection, allocator and caches
                times.append(elapsed * 1000)
    p50, p99 = np.percentile(times, [50, 99])
    return float(p50), float(p99)


async def throughput(url: str, clients: int, seconds: float) -> float:
    """Requests per second of `clients` clients, each on its own keep-alive connection and sending
    its next request when the last one answers. One httpx client each, as browsers are: a shared
    pool of many connections costs httpx several times more CPU per request on this side."""
    done = 0
    start = deadline = 0.0
    ready = asyncio.Barrier(clients)

    async def client_loop(index: int) -> None:
        nonlocal done, start, deadline
        async with httpx.AsyncClient(base_url=url, timeout=60) as client:
            (await client.post("/generate", json=single(index))).raise_for_status()  # connect
            await ready.wait()
            if not start:
                start, deadline = time.perf_counter(), time.perf_counter() + seconds
            i = index * 1_000_000 + 1
            while time.perf_counter() < deadline:
                (await client.post("/generate", json=single(i))).raise_for_status()
                done += 1
                i += 1

    await asyncio.gather(*(client_loop(n) for n in range(clients)))
    return done / (time.perf_counter() - start)


def machine() -> str:
    cpu = platform.processor() or "unknown CPU"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        names = [line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines() if "model name" in line]
        cpu = names[0] if names else cpu
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return f"{platform.platform()}; {cpu}; {os.cpu_count()} CPUs; load average {load}; torch {torch.__version__}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few requests: checks the benchmark runs")
    args = parser.parse_args(argv)
    requests, grids, seconds = (20, 5, 1.0) if args.quick else (300, 60, 8.0)

    print(f"command: {shlex.join([Path(sys.executable).name, *sys.argv])}")
    print(f"machine: {machine()}")
    with checkpoint_folder() as (folder, which):
        print(f"model:   {which}")
        print(f"server:  {shlex.join(['uvicorn', *server_command('N')[1:]])}")
        with server(folder, max_batch=64) as url:
            single_p = latency(url, "/generate", single, requests)
            grid_p = latency(url, "/generate/grid", grid, grids)
            batched = {n: asyncio.run(throughput(url, n, seconds)) for n in CLIENTS}
        with server(folder, max_batch=1) as url:
            unbatched = {n: asyncio.run(throughput(url, n, seconds)) for n in CLIENTS}

    print()
    print("| one request at a time | p50 ms | p99 ms |")
    print("| --- | ---: | ---: |")
    print(f"| single 28x28 image at scale 8 (224x224 PNG) | {single_p[0]:.1f} | {single_p[1]:.1f} |")
    print(f"| 10x10 grid at scale 1 (302x302 PNG) | {grid_p[0]:.1f} | {grid_p[1]:.1f} |")
    print()
    print("| concurrent clients | batching on, req/s | batching off, req/s | on / off |")
    print("| ---: | ---: | ---: | ---: |")
    for n in CLIENTS:
        print(f"| {n} | {batched[n]:.0f} | {unbatched[n]:.0f} | {batched[n] / unbatched[n]:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
