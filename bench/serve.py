"""Serving benchmark: latency and throughput of the explorer over loopback HTTP (docs/design.md, "Metrics").

    .venv/bin/python bench/serve.py            # about three minutes
    .venv/bin/python bench/serve.py --quick    # a smoke run of a few seconds

Starts `uvicorn backend.app:app` on a free loopback port, serving the shipped model or, when
there is none, a randomly initialised checkpoint of the paper's architecture (the same cost to
run), and measures over keep-alive loopback connections: p50/p99 latency of one 28x28 image at
scale 8 and of a 10x10 grid, one request at a time; then requests per second of single images
at 1, 8, 32 and 64 concurrent clients, with batching on and then off (the server restarted with
INFOGAN_MAX_BATCH=1). Prints figures; never fails on time.

The client shares the server's cores, so it is a minimal HTTP/1.1 client on asyncio streams:
httpx spends 1.2-1.9 ms of CPU per request here, as much as the server, and would measure itself.
The CPU the client used per request is printed beside the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
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
def server(
    folder: Path, *, max_batch: int, runs_dir: Path | None = None, pids: list[int] | None = None
) -> Iterator[str]:
    """uvicorn serving `folder` (and `runs_dir`) on a free loopback port until the block ends;
    its process id goes into `pids` when given, for benchmarks that read its CPU time."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "INFOGAN_CHECKPOINT_DIR": str(folder), "INFOGAN_MAX_BATCH": str(max_batch)}
    env["INFOGAN_RUNS_DIR"] = str(runs_dir or folder / "no-runs")  # by default the model alone, no runs
    process = subprocess.Popen(server_command(port), cwd=REPO, env=env, stdout=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    if pids is not None:
        pids.append(process.pid)
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


class Connection:
    """One keep-alive HTTP/1.1 connection that POSTs JSON and reads answers with a Content-Length."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, url: str) -> Connection:
        host, port = url.removeprefix("http://").split(":")
        return cls(*await asyncio.open_connection(host, int(port)))

    async def post(self, path: str, body: dict[str, Any]) -> bytes:
        data = json.dumps(body).encode()
        head = f"POST {path} HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\nContent-Length: {len(data)}"
        self.writer.write(head.encode() + b"\r\n\r\n" + data)
        status_line, *header_lines = (await self.reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        headers = dict(line.lower().split(": ", 1) for line in header_lines if line)
        answer = await self.reader.readexactly(int(headers["content-length"]))
        if status_line.split()[1] != "200":
            raise SystemExit(f"POST {path} answered {status_line}: {answer[:200]!r}")
        return answer

    async def close(self) -> None:
        self.writer.close()
        await self.writer.wait_closed()


async def latency(url: str, path: str, body: Body, requests: int) -> tuple[float, float]:
    """(p50, p99) in milliseconds, one request at a time on one keep-alive connection."""
    times = []
    connection = await Connection.open(url)
    for i in range(requests + 10):
        start = time.perf_counter()
        await connection.post(path, body(i))
        if i >= 10:  # the first ones warm up connection, allocator and caches
            times.append((time.perf_counter() - start) * 1000)
    await connection.close()
    p50, p99 = np.percentile(times, [50, 99])
    return float(p50), float(p99)


async def throughput(url: str, clients: int, seconds: float) -> tuple[float, float]:
    """(requests per second, client CPU ms per request) of `clients` clients, each on its own
    keep-alive connection and sending its next request when the last one answers."""
    done = 0
    start = deadline = 0.0
    ready = asyncio.Barrier(clients)

    async def client_loop(index: int) -> None:
        nonlocal done, start, deadline
        connection = await Connection.open(url)
        await connection.post("/generate", single(index))
        await ready.wait()
        if not start:
            start, deadline = time.perf_counter(), time.perf_counter() + seconds
        i = index * 1_000_000 + 1
        while time.perf_counter() < deadline:
            await connection.post("/generate", single(i))
            done += 1
            i += 1
        await connection.close()

    cpu = time.process_time()
    await asyncio.gather(*(client_loop(n) for n in range(clients)))
    return done / (time.perf_counter() - start), (time.process_time() - cpu) * 1000 / max(done, 1)


def print_header(device_note: str = "") -> None:
    """The command and machine lines every benchmark prints first."""
    print(f"command: {shlex.join([Path(sys.executable).name, *sys.argv])}")
    print(f"machine: {machine()}{device_note}")


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

    print_header()
    with checkpoint_folder() as (folder, which):
        print(f"model:   {which}")
        print(f"server:  {shlex.join(['uvicorn', *server_command('N')[1:]])}")
        with server(folder, max_batch=64) as url:
            single_p = asyncio.run(latency(url, "/generate", single, requests))
            grid_p = asyncio.run(latency(url, "/generate/grid", grid, grids))
            batched = {n: asyncio.run(throughput(url, n, seconds)) for n in CLIENTS}
        with server(folder, max_batch=1) as url:
            unbatched = {n: asyncio.run(throughput(url, n, seconds)) for n in CLIENTS}

    print()
    print("| one request at a time | p50 ms | p99 ms |")
    print("| --- | ---: | ---: |")
    print(f"| single 28x28 image at scale 8 (224x224 PNG) | {single_p[0]:.1f} | {single_p[1]:.1f} |")
    print(f"| 10x10 grid at scale 1 (302x302 PNG) | {grid_p[0]:.1f} | {grid_p[1]:.1f} |")
    print()
    print("| concurrent clients | batching on, req/s | batching off, req/s | on / off | client CPU ms/req (on, off) |")
    print("| ---: | ---: | ---: | ---: | ---: |")
    for n in CLIENTS:
        (on, on_cpu), (off, off_cpu) = batched[n], unbatched[n]
        print(f"| {n} | {on:.0f} | {off:.0f} | {on / off:.2f} | {on_cpu:.2f}, {off_cpu:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
