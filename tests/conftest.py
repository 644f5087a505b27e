"""Shared test setup."""

import torch

# The suite's networks are tiny: one thread is faster than two, and immune to a busy machine.
torch.set_num_threads(1)
