"""The random number generators' states of a checkpoint: captured as JSON-able lists and put
back, so that a resumed run draws exactly the numbers an uninterrupted one draws."""

from __future__ import annotations

import random

import numpy as np
import torch


def capture_rng(generators: dict[str, torch.Generator] | None = None) -> dict:
    """JSON-able states of torch's global CPU generator, Python's ``random``, NumPy's global
    generator, and the named torch generators (e.g. the training data stream)."""
    version, mt, gauss = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "torch": torch.get_rng_state().tolist(),
        "python": [version, list(mt), gauss],
        "numpy": [name, keys.tolist(), int(pos), int(has_gauss), float(cached)],
        "generators": {k: g.get_state().tolist() for k, g in (generators or {}).items()},
    }


def restore_rng(state: dict, generators: dict[str, torch.Generator] | None = None) -> None:
    """Put back what :func:`capture_rng` saved (global generators and the named ones)."""
    torch.set_rng_state(torch.tensor(state["torch"], dtype=torch.uint8))
    version, mt, gauss = state["python"]
    random.setstate((version, tuple(mt), gauss))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, np.array(keys, dtype=np.uint32), pos, has_gauss, cached))
    for key, generator in (generators or {}).items():
        generator.set_state(torch.tensor(state["generators"][key], dtype=torch.uint8))
