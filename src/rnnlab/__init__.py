"""rnnlab: recurrent networks from the equations, exact with torch.nn, with hand-derived BPTT."""

from rnnlab.layers.lstm import LSTM

__all__ = ["LSTM"]
__version__ = "0.1.0"
