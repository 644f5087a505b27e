"""The service as a real process: the image's command line, over loopback HTTP."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from service_helpers import (
    compose,
    dockerfile_command,
    free_port,
    on_loopback,
    uvicorn_process,
    write_checkpoint,
)


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("checkpoints")
    write_checkpoint(folder / "mnist.safetensors")
    port = free_port()
    env = {"INFOGAN_CHECKPOINT_DIR": str(folder), "INFOGAN_RUNS_DIR": str(folder / "runs"), "INFOGAN_MAX_WAIT_MS": "2"}
    with uvicorn_process(on_loopback(dockerfile_command(), port), env, port, folder / "uvicorn.log") as url:
        yield url


def healthcheck(port: str) -> subprocess.CompletedProcess:
    """Compose's healthcheck, pointed at `port`, run with this Python."""
    _, program, *args = compose()["services"]["explorer"]["healthcheck"]["test"]
    assert program == "python"
    args = [arg.replace("127.0.0.1:8000", f"127.0.0.1:{port}") for arg in args]
    return subprocess.run([sys.executable, *args], capture_output=True, timeout=30)


def test_the_image_command_serves_over_http(url: str) -> None:
    assert httpx.get(f"{url}/healthz").json()["checkpoints"]["mnist"]["batching"] is True
    response = httpx.post(f"{url}/generate", json={"seed": 7, "categorical": [3], "scale": 8})
    assert response.status_code == 200 and response.content.startswith(b"\x89PNG")
    assert [entry["name"] for entry in httpx.get(f"{url}/api/checkpoints").json()] == ["mnist"]


def test_the_compose_healthcheck_passes(url: str) -> None:
    assert healthcheck(url.rsplit(":", 1)[1]).returncode == 0


def test_without_checkpoints_the_service_starts_but_is_unhealthy(tmp_path: Path) -> None:
    port = free_port()
    env = {"INFOGAN_CHECKPOINT_DIR": str(tmp_path), "INFOGAN_RUNS_DIR": str(tmp_path / "runs")}
    with uvicorn_process(on_loopback(dockerfile_command(), port), env, port, tmp_path / "uvicorn.log") as url:
        response = httpx.get(f"{url}/healthz")
        assert response.status_code == 503 and "no valid checkpoint" in response.json()["detail"]
        assert healthcheck(str(port)).returncode != 0


@pytest.mark.anyio
async def test_200_concurrent_requests_match_the_same_requests_one_at_a_time(url: str) -> None:
    bodies = [
        {"seed": i, "categorical": [i % 10], "continuous": [(i % 9) / 2 - 2, (i % 5) - 2], "scale": 1 + i % 4}
        for i in range(200)
    ]
    limits = httpx.Limits(max_connections=200)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as client:
        one_at_a_time = [await client.post("/generate", json=body) for body in bodies]
        before = (await client.get("/healthz")).json()["checkpoints"]["mnist"]
        together = await asyncio.gather(*(client.post("/generate", json=body) for body in bodies))
        after = (await client.get("/healthz")).json()["checkpoints"]["mnist"]
    assert all(r.status_code == 200 for r in one_at_a_time + together)
    assert [r.content for r in together] == [r.content for r in one_at_a_time]
    assert len({r.content for r in together}) == len(bodies)  # 200 different pictures, not one
    assert after["requests"] - before["requests"] == len(bodies)
    assert after["batches"] - before["batches"] < len(bodies)  # they were batched
