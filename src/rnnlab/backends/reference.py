"""The reference engine: each family's time loop with its hand-derived BPTT backward."""

from rnnlab.layers.stack import run_stacked

name = "reference"


def unsupported(layer, batch) -> None:
    return None


def run(layer, batch, states):
    return run_stacked(layer, batch, states, layer.sequence)
