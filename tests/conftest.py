"""Shared test setup, and the fixtures of the tests that ask the shipped model over the API."""

from collections.abc import AsyncIterator

import httpx
import pytest
import torch
from service_helpers import REPO, serve, settings_for

# The suite's networks are tiny: one thread is faster than two, and immune to a busy machine.
torch.set_num_threads(1)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def shipped() -> AsyncIterator[httpx.AsyncClient]:
    """The app in this process serving models/pretrained/, the model a user gets."""
    async with serve(settings_for(REPO / "models" / "pretrained")) as client:
        yield client
