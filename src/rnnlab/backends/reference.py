"""The reference engine: each family's time loop with its hand-derived BPTT backward."""

from rnnlab.layers.stack import run_stacked

name = "reference"


def unsupported(layer, batch) -> None:
    """Always None: the reference engine runs every configuration."""
    return None


def run(layer, batch, states):
    """Run the layer as a time loop over its cell with the hand-derived BPTT (:mod:`rnnlab.bptt`): ``(output, final states)``."""
    return run_stacked(layer, batch, states, layer.sequence)
