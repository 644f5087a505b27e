"""Training steps captured as CUDA graphs: one member's whole D and G step replayed by one call.

On a GPU a member of this size is bound by the host, not the device: a step dispatches about 422
tensor operations (bench/ops.py) at some 30 µs of Python and launch overhead each, while its
kernels are small. A CUDA graph records the kernels of one step once; replaying it costs one
call, so a step costs the GPU's time instead (docs/research.md, "On a GPU: CUDA graphs").
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Generic, Protocol, TypeVar

import torch
from torch import nn

WARMUP_STEPS = 3  # PyTorch's advice: a few eager iterations on a side stream before capturing


class StepInputs(Protocol):
    """What a step reads, as tensors the graph can copy new values into."""

    def tensors(self) -> list[torch.Tensor]: ...


Inputs = TypeVar("Inputs", bound=StepInputs)
Outputs = TypeVar("Outputs")


class GraphedStep(Generic[Inputs, Outputs]):
    """`step(inputs)` captured on `example` as a CUDA graph. Calling it with new inputs of the
    same shapes copies them into the captured ones and replays: the same kernels, the same
    weights and optimiser states updated in place, and the captured outputs (the losses)
    overwritten. The warm-up steps that capturing needs are undone, so the member trains exactly
    as many steps as it is asked to.

    Graphs replayed at once on several streams are each captured on the stream they replay on:
    cuBLAS keeps a scratch workspace per stream, and a graph keeps the address of its capture
    stream's, so two graphs captured on one stream and replayed side by side would share it."""

    def __init__(
        self,
        step: Callable[[Inputs], Outputs],
        example: Inputs,
        modules: Sequence[nn.Module],
        optimizers: Sequence[torch.optim.Optimizer],
        stream: torch.cuda.Stream | None = None,
    ) -> None:
        self.inputs = copy.deepcopy(example)  # the addresses the graph reads from
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side), undone(modules, optimizers):
            for _ in range(WARMUP_STEPS):
                step(self.inputs)
        torch.cuda.current_stream().wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph, stream=stream):
            self.outputs = step(self.inputs)

    def __call__(self, inputs: Inputs) -> Outputs:
        for captured, new in zip(self.inputs.tensors(), inputs.tensors(), strict=True):
            captured.copy_(new)
        self.graph.replay()
        return self.outputs


@contextmanager
def undone(modules: Sequence[nn.Module], optimizers: Sequence[torch.optim.Optimizer]) -> Iterator[None]:
    """Whatever trains inside leaves the modules' weights and buffers and the optimisers' states
    as they were, in the same tensors. A state an optimiser first creates inside (a fresh Adam's
    moments and step count) is zeroed after, which is what Adam creates it as; it stays allocated,
    so a graph captured next does not create it (and reset it) on every replay."""
    tensors = [t for module in modules for t in (*module.parameters(), *module.buffers())]
    saved = [t.detach().clone() for t in tensors]
    saved_states = [{p: _tensors_of(state) for p, state in opt.state.items()} for opt in optimizers]
    try:
        yield
    finally:
        with torch.no_grad():
            for tensor, value in zip(tensors, saved, strict=True):
                tensor.copy_(value)
            for opt, before in zip(optimizers, saved_states, strict=True):
                for p, state in opt.state.items():
                    for key, value in state.items():
                        if torch.is_tensor(value):
                            value.copy_(before[p][key]) if p in before else value.zero_()


def _tensors_of(state: dict) -> dict[str, torch.Tensor]:
    return {key: value.clone() for key, value in state.items() if torch.is_tensor(value)}
