"""Specification of backend.inference: batches form, answers do not depend on them, queues are bounded."""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch
from service_helpers import TINY, serve, settings_for, write_checkpoint

from backend.inference import ROW_ALIGN, Batcher, Overloaded, ServedGenerator, serve_generator
from models import ArchConfig, LatentSpec, build_networks

pytestmark = pytest.mark.anyio
SPEC = LatentSpec()
CPU = torch.device("cpu")


def served(arch: ArchConfig = TINY, *, max_rows: int = 64, dtype: torch.dtype = torch.float32) -> ServedGenerator:
    torch.manual_seed(0)
    return serve_generator(
        build_networks(SPEC, arch)[0].eval(), SPEC.input_dim, CPU, dtype, max_rows=max_rows, threads=2
    )


def inputs(rows: int, seed: int = 0) -> torch.Tensor:
    return SPEC.build_input(SPEC.sample(rows, generator=torch.Generator().manual_seed(seed)))


def slowed(monkeypatch: pytest.MonkeyPatch, seconds: float, threads_used: list[int] | None = None) -> list[int]:
    """Make every generator call take `seconds`; returns the row counts of the calls and appends
    their thread counts to `threads_used`."""
    calls: list[int] = []

    pixels = ServedGenerator.pixels

    def slow(self: ServedGenerator, inputs: torch.Tensor, *, threads: int = 1) -> np.ndarray:
        calls.append(len(inputs))
        if threads_used is not None:
            threads_used.append(threads)
        time.sleep(seconds)
        return pixels(self, inputs, threads=threads)

    monkeypatch.setattr(ServedGenerator, "pixels", slow)
    return calls


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("arch", [TINY, ArchConfig()], ids=["tiny", "paper"])
def test_this_machine_serves_every_generator_batched(arch: ArchConfig, dtype: torch.dtype) -> None:
    generator = served(arch, dtype=dtype)
    assert generator.max_rows == 64 and generator.row_align in (1, ROW_ALIGN) and generator.batches_agree()


def test_a_row_alone_gives_the_pixels_it_gives_in_a_batch() -> None:
    generator, x = served(), inputs(23)
    alone = np.concatenate([generator.pixels(row) for row in x.split(1)])
    assert np.array_equal(generator.pixels(x), alone)


def test_the_served_generator_computes_what_the_trained_one_does() -> None:
    torch.manual_seed(0)
    generator = build_networks(SPEC, ArchConfig())[0]
    generator.train()(inputs(256, seed=1))  # BatchNorm statistics that are not the identity
    generator.eval()
    x = inputs(16, seed=2)
    with torch.inference_mode():
        expected = generator(x)
    fp32 = serve_generator(generator, SPEC.input_dim, CPU, torch.float32, max_rows=16, threads=1).floats(x)
    bf16 = serve_generator(generator, SPEC.input_dim, CPU, torch.bfloat16, max_rows=16, threads=1).floats(x)
    assert torch.allclose(fp32, expected, atol=1e-5) and not torch.equal(bf16, fp32)
    assert torch.allclose(bf16, expected, atol=0.1) and (bf16 - expected).abs().mean() < 0.01


async def test_requests_that_arrive_together_share_one_generator_call(monkeypatch: pytest.MonkeyPatch) -> None:
    threads: list[int] = []
    calls = slowed(monkeypatch, 0.2, threads)
    with ThreadPoolExecutor(1) as executor:
        batcher = Batcher(served(max_rows=64), executor, max_wait_s=0, queue_limit=100)
        batcher.start()
        first = asyncio.create_task(batcher.run(inputs(1)))
        await asyncio.sleep(0.05)  # the first request is on the inference thread now
        rest = await asyncio.gather(*(batcher.run(inputs(1, seed)) for seed in range(1, 11)))
        await first
        await batcher.stop()
    assert calls == [1, 10] and (batcher.requests, batcher.batches) == (11, 2)
    assert all(pixels.shape == (1, 28, 28, 1) for pixels in rest)
    assert threads == [2, 1]  # a request alone may use every thread; a batch leaves cores to HTTP


async def test_a_batch_holds_at_most_max_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = slowed(monkeypatch, 0.05)
    with ThreadPoolExecutor(1) as executor:
        batcher = Batcher(served(max_rows=4), executor, max_wait_s=0.01, queue_limit=100)
        batcher.start()
        await asyncio.gather(*(batcher.run(inputs(rows)) for rows in (1, 2, 3, 1, 9, 1)))
        await batcher.stop()
    assert 9 in calls and all(rows <= 4 for rows in calls if rows != 9) and sum(calls) == 17


async def test_a_full_queue_refuses_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    slowed(monkeypatch, 0.2)
    with ThreadPoolExecutor(1) as executor:
        batcher = Batcher(served(max_rows=1), executor, max_wait_s=0, queue_limit=1)
        batcher.start()
        running = asyncio.create_task(batcher.run(inputs(1)))
        await asyncio.sleep(0.05)
        queued = asyncio.create_task(batcher.run(inputs(1)))
        await asyncio.sleep(0)
        with pytest.raises(Overloaded):
            await batcher.run(inputs(1))
        await asyncio.gather(running, queued)
        await batcher.stop()


async def test_a_full_queue_answers_503_with_retry_after(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    slowed(monkeypatch, 0.2)
    write_checkpoint(tmp_path / "mnist.safetensors")
    async with serve(settings_for(tmp_path, max_batch=1, queue_limit=1)) as client:
        responses = await asyncio.gather(*(client.post("/generate", json={"seed": s}) for s in range(6)))
    refused = [r for r in responses if r.status_code == 503]
    assert refused and all(r.headers["retry-after"] == "1" and "retry" in r.json()["detail"] for r in refused)
    assert {r.status_code for r in responses} == {200, 503}


async def test_batched_and_unbatched_services_answer_the_same_bytes(tmp_path: Path) -> None:
    write_checkpoint(tmp_path / "mnist.safetensors")
    bodies = [
        {"seed": s, "categorical": [s % 10], "continuous": [s / 25 - 2, 1 - s / 50], "scale": 2} for s in range(64)
    ]
    answers = []
    for max_batch in (64, 1):
        async with serve(settings_for(tmp_path, max_batch=max_batch)) as client:
            responses = await asyncio.gather(*(client.post("/generate", json=body) for body in bodies))
            health = (await client.get("/healthz")).json()["checkpoints"]["mnist"]
        assert all(r.status_code == 200 for r in responses)
        answers.append([r.content for r in responses])
        assert health["batching"] == (max_batch > 1) and health["requests"] == len(bodies)
        assert (health["batches"] < len(bodies)) if max_batch > 1 else (health["batches"] == len(bodies))
    assert answers[0] == answers[1]


async def test_a_checkpoint_that_fails_the_check_is_served_unbatched(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ServedGenerator, "batches_agree", lambda self: False)
    write_checkpoint(tmp_path / "mnist.safetensors")
    async with serve(settings_for(tmp_path)) as client:
        assert (await client.post("/generate", json={})).status_code == 200
        assert (await client.get("/healthz")).json()["checkpoints"]["mnist"]["batching"] is False


async def test_the_etag_names_the_precision_the_bytes_came_from(tmp_path: Path) -> None:
    write_checkpoint(tmp_path / "mnist.safetensors")
    answers = []
    for precision in ("fp32", "bf16"):
        async with serve(settings_for(tmp_path, precision=precision)) as client:
            answers.append((await client.post("/generate", json={"seed": 3})).headers["etag"])
            health = (await client.get("/healthz")).json()["checkpoints"]["mnist"]
            assert health["precision"] == {"fp32": "float32", "bf16": "bfloat16"}[precision]
    assert answers[0] != answers[1]
