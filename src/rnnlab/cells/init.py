"""Parameter initialisation shared by cells and layers."""

import math

import torch
from torch import nn


def uniform_like_torch(module: nn.Module, hidden_size: int) -> None:
    """torch.nn's default: every parameter ~ U(-1/sqrt(H), 1/sqrt(H))."""
    bound = 1.0 / math.sqrt(hidden_size) if hidden_size > 0 else 0.0
    with torch.no_grad():
        for p in module.parameters(recurse=False):
            p.uniform_(-bound, bound)
