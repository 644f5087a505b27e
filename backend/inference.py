"""Inference off the event loop: one micro-batcher per checkpoint, one inference thread.

Requests that arrive together run as one generator call. A worker takes the first queued
request, then whatever else is queued (waiting up to `max_wait_ms` for more) up to `max_batch`
rows, runs the generator once on the inference thread and hands each request its own rows.
While one batch runs the next one gathers, so under load batches fill without any waiting.
The queue is bounded: a full queue answers 503 with Retry-After.

Batched and unbatched answers are byte-identical, which CPUs do not give for free. MKL picks
its matrix-multiply kernel by shape: a row computed in a batch of 1-3 rows differs in the last
float bits from the same row in a batch of 4 or more (torch 2.13 on AMD EPYC; with 2 threads
also at 5-7 and 9-11 rows), enough to flip a pixel of one image in a few dozen. So every call is
padded to a multiple of ROW_ALIGN rows, and at start-up each checkpoint is checked: every row
of a probe batch alone must equal that row in each batch size the batcher can form. Kernels
do not look at the numbers, so one probe speaks for every input. A checkpoint that fails the
check (another CPU or BLAS, a GPU) is served unbatched: slower, still exact.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import Executor
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from models.render import to_uint8

log = logging.getLogger(__name__)

ROW_ALIGN = 4  # the smallest padding that made every batch size agree, with 1 and 2 threads


class Overloaded(Exception):
    """The queue is full: the client should retry shortly."""


def generate_pixels(generator: nn.Module, inputs: torch.Tensor, device: torch.device) -> np.ndarray:
    """(rows, input_dim) -> (rows, H, W, C) uint8."""
    return to_uint8(_generate(generator, inputs, device))


def is_batch_invariant(generator: nn.Module, input_dim: int, max_rows: int, device: torch.device) -> bool:
    """Whether each row comes out bit-identical alone and at any place in any batch the batcher forms.

    Compares floats, not pixels: a kernel difference shows in the floats of almost any input but
    flips a pixel only now and then."""
    probe = torch.randn(_aligned(max_rows), input_dim, generator=torch.Generator().manual_seed(0))
    alone = torch.cat([_generate(generator, row, device) for row in probe.split(1)])
    return all(
        torch.equal(_generate(generator, probe[:rows], device), alone[:rows])
        for rows in range(ROW_ALIGN, len(probe) + 1, ROW_ALIGN)  # every shape a batch is padded to
    )


def _generate(generator: nn.Module, inputs: torch.Tensor, device: torch.device) -> torch.Tensor:
    """(rows, input_dim) -> (rows, C, H, W) float, run as a multiple of ROW_ALIGN rows."""
    rows = inputs.shape[0]
    padded = torch.zeros(_aligned(rows), inputs.shape[1])
    padded[:rows] = inputs
    with torch.inference_mode():
        return generator(padded.to(device))[:rows].float().cpu()


def _aligned(rows: int) -> int:
    return -(-rows // ROW_ALIGN) * ROW_ALIGN


def encode_images(discriminator: nn.Module, images: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Q's parameters (B, q_output_dim) for images (B, C, H, W) in [-1, 1]."""
    with torch.inference_mode():
        return discriminator.encode(images.to(device)).float().cpu()


@dataclass
class _Job:
    inputs: torch.Tensor  # (rows, input_dim)
    future: asyncio.Future[np.ndarray]


class Batcher:
    """Runs one generator on batches of queued requests, one batch at a time."""

    def __init__(
        self,
        generator: nn.Module,
        device: torch.device,
        executor: Executor,
        *,
        max_rows: int,
        max_wait_s: float,
        queue_limit: int,
    ) -> None:
        self.generator, self.device, self.executor = generator, device, executor
        self.max_rows, self.max_wait_s = max_rows, max_wait_s
        self.queue: asyncio.Queue[_Job] = asyncio.Queue(maxsize=queue_limit)
        self.requests = 0  # answered, for /healthz and the tests that check batching happens
        self.batches = 0
        self._worker: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._worker = asyncio.create_task(self._work())

    async def stop(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            await asyncio.gather(self._worker, return_exceptions=True)

    async def run(self, inputs: torch.Tensor) -> np.ndarray:
        """The (rows, H, W, C) uint8 images for generator inputs (rows, input_dim)."""
        job = _Job(inputs, asyncio.get_running_loop().create_future())
        try:
            self.queue.put_nowait(job)
        except asyncio.QueueFull:
            raise Overloaded(f"{self.queue.maxsize} requests are already waiting") from None
        return await job.future

    async def _work(self) -> None:
        carried: _Job | None = None  # a job that did not fit the last batch opens the next
        while True:
            batch = [carried or await self.queue.get()]
            carried = None
            rows = len(batch[0].inputs)
            deadline = asyncio.get_running_loop().time() + self.max_wait_s
            while rows < self.max_rows and (job := await self._next(deadline)) is not None:
                if rows + len(job.inputs) > self.max_rows:
                    carried = job
                    break
                batch.append(job)
                rows += len(job.inputs)
            await self._run_batch([job for job in batch if not job.future.done()])

    async def _next(self, deadline: float) -> _Job | None:
        """The next queued job, waiting until `deadline` at most."""
        if not self.queue.empty():
            return self.queue.get_nowait()
        timeout = deadline - asyncio.get_running_loop().time()
        if timeout <= 0:
            return None
        try:
            return await asyncio.wait_for(self.queue.get(), timeout)
        except TimeoutError:
            return None

    async def _run_batch(self, batch: list[_Job]) -> None:
        if not batch:  # every client of this batch went away
            return
        inputs = torch.cat([job.inputs for job in batch])
        loop = asyncio.get_running_loop()
        try:
            pixels = await loop.run_in_executor(self.executor, generate_pixels, self.generator, inputs, self.device)
        except Exception as error:  # the requests fail; the worker lives on for the next batch
            log.exception("generator failed on a batch of %d rows", len(inputs))
            for job in batch:
                if not job.future.done():
                    job.future.set_exception(error)
            return
        self.batches += 1
        offset = 0
        for job in batch:
            self.requests += 1
            if not job.future.done():
                job.future.set_result(pixels[offset : offset + len(job.inputs)])
            offset += len(job.inputs)
