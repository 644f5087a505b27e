"""Inference off the event loop: one micro-batcher per checkpoint, one inference thread.

Requests that arrive together run as one generator call. A worker takes the first queued
request, then whatever else is queued (waiting up to `max_wait_ms` for more) up to `max_batch`
rows, runs the generator once on the inference thread and hands each request its own rows.
While one batch runs the next one gathers, so under load batches fill without any waiting.
The queue is bounded: a full queue answers 503 with Retry-After.

The generator is served with its batch norms folded, in bf16 where the hardware computes it
natively (2x faster than fp32 on our CPUs, where MKL's fp32 kernels for a few rows are slow;
pixels move by a few levels out of 255 in about one in ten), else in fp32.

Batched and unbatched answers are byte-identical, which kernels do not promise. They may pick
their code by shape: with fp32 MKL a row computed in a batch of 1-3 rows differs in the last
float bits from the same row in a batch of 4 or more (torch 2.13 on AMD EPYC), enough to flip a
pixel in a few dozen images; the bf16 kernels agree at every size. So at start-up each
checkpoint is probed: every row of a probe batch alone must equal that row in each batch size
the batcher can form, first without padding, then with every call padded to a multiple of
ROW_ALIGN rows. Kernels do not look at the numbers, so one probe speaks for every input. A
checkpoint that fails both (another CPU or BLAS, a GPU) is served unbatched: slower, still exact.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from concurrent.futures import Executor
from contextlib import contextmanager
from dataclasses import dataclass, replace
from functools import partial

import numpy as np
import torch
from torch import nn

from models import Generator
from models.render import to_uint8

log = logging.getLogger(__name__)

ROW_ALIGN = 4  # the smallest padding that made every fp32 batch size agree, with 1 and 2 threads


class Overloaded(Exception):
    """The queue is full: the client should retry shortly."""


@dataclass(frozen=True)
class ServedGenerator:
    """A generator as the service runs it: folded, cast, and padded so batches agree with rows."""

    module: nn.Module
    input_dim: int
    device: torch.device
    dtype: torch.dtype
    row_align: int = 1  # every call runs a multiple of this many rows
    max_rows: int = 1  # the largest batch; 1 serves unbatched
    threads: int = 1  # the most torch threads a call may use; calls use 1 or this many

    @property
    def kernels(self) -> str:
        """What besides the request decides the bits, for the ETag."""
        return f"{self.device.type}|{self.dtype}|{self.row_align}"

    def pixels(self, inputs: torch.Tensor, *, threads: int = 1) -> np.ndarray:
        """(rows, input_dim) -> (rows, H, W, C) uint8."""
        return to_uint8(self.floats(inputs, threads=threads))

    def floats(self, inputs: torch.Tensor, *, threads: int = 1) -> torch.Tensor:
        """(rows, input_dim) -> (rows, C, H, W) float32, run as a multiple of `row_align` rows."""
        rows = inputs.shape[0]
        padded = torch.zeros(-(-rows // self.row_align) * self.row_align, self.input_dim)
        padded[:rows] = inputs
        with torch.inference_mode(), torch_threads(threads):
            return self.module(padded.to(self.device, self.dtype))[:rows].float().cpu()

    def batches_agree(self) -> bool:
        """Whether each row comes out bit-identical alone and at any place in any batch it can
        form, on one thread or on `threads`.

        Compares floats, not pixels: a kernel difference shows in the floats of almost any input
        but flips a pixel only now and then."""
        sizes = range(self.row_align, self.max_rows + self.row_align, self.row_align)
        probe = torch.randn(sizes[-1], self.input_dim, generator=torch.Generator().manual_seed(0))
        alone = torch.cat([self.floats(row) for row in probe.split(1)])
        return all(
            torch.equal(self.floats(probe[:rows], threads=threads), alone[:rows])
            for threads in {1, self.threads}
            for rows in {1, *sizes}
        )


def serve_generator(
    generator: Generator, input_dim: int, device: torch.device, dtype: torch.dtype, *, max_rows: int, threads: int
) -> ServedGenerator:
    """The generator ready to serve batches of up to `max_rows` on 1 or `threads` threads, with the
    least padding that keeps every answer the same, or unbatched on one thread when none does."""
    module = generator.for_inference().to(device, dtype)
    served = ServedGenerator(module, input_dim, device, dtype)
    for row_align in (1, ROW_ALIGN):
        if (candidate := replace(served, row_align=row_align, max_rows=max_rows, threads=threads)).batches_agree():
            return candidate
    return served


@contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    """Run torch on `threads` intra-op threads for a while (switching costs microseconds)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def encode_images(discriminator: nn.Module, images: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Q's parameters (B, q_output_dim) for images (B, C, H, W) in [-1, 1]."""
    with torch.inference_mode(), torch_threads(1):
        return discriminator.encode(images.to(device)).float().cpu()


@dataclass
class _Job:
    inputs: torch.Tensor  # (rows, input_dim)
    future: asyncio.Future[np.ndarray]


class Batcher:
    """Runs one generator on batches of queued requests, one batch at a time."""

    def __init__(self, generator: ServedGenerator, executor: Executor, *, max_wait_s: float, queue_limit: int) -> None:
        self.generator, self.executor, self.max_wait_s = generator, executor, max_wait_s
        self.queue: asyncio.Queue[_Job] = asyncio.Queue(maxsize=queue_limit)
        self.requests = 0  # answered, for /healthz and the tests that check batching happens
        self.batches = 0
        self._worker: asyncio.Task[None] | None = None
        self._running_batch = False
        self._closed = False

    def start(self) -> None:
        self._worker = asyncio.create_task(self._work())

    async def stop(self) -> None:
        self._closed = True
        if self._worker is not None:
            self._worker.cancel()
            await asyncio.gather(self._worker, return_exceptions=True)

    async def drain_and_stop(self) -> None:
        """Stops once the requests already queued are answered (its checkpoint was replaced)."""
        self._closed = True
        while not self.queue.empty() or self._running_batch:
            await asyncio.sleep(0.01)
        await self.stop()

    async def run(self, inputs: torch.Tensor) -> np.ndarray:
        """The (rows, H, W, C) uint8 images for generator inputs (rows, input_dim)."""
        if self._closed:
            raise Overloaded("the checkpoint was just replaced or removed")
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
            while rows < self.generator.max_rows and (job := await self._next(deadline)) is not None:
                if rows + len(job.inputs) > self.generator.max_rows:
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
        # Alone, a request may use every inference thread; under load one thread leaves the other
        # cores to HTTP and PNG encoding, which is where a busy server spends its time.
        threads = self.generator.threads if len(batch) == 1 and self.queue.empty() else 1
        loop = asyncio.get_running_loop()
        self._running_batch = True
        try:
            pixels = await loop.run_in_executor(self.executor, partial(self.generator.pixels, inputs, threads=threads))
        except Exception as error:  # the requests fail; the worker lives on for the next batch
            log.exception("generator failed on a batch of %d rows", len(inputs))
            for job in batch:
                if not job.future.done():
                    job.future.set_exception(error)
            return
        finally:
            self._running_batch = False
        self.batches += 1
        offset = 0
        for job in batch:
            self.requests += 1
            if not job.future.done():
                job.future.set_result(pixels[offset : offset + len(job.inputs)])
            offset += len(job.inputs)
