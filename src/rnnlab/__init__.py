"""rnnlab: recurrent networks from the equations, exact with torch.nn, with hand-derived BPTT."""

from rnnlab.cells.gru import GRUCell
from rnnlab.cells.layernorm_lstm import LayerNormLSTMCell
from rnnlab.cells.lstm import LSTMCell
from rnnlab.cells.min_rnn import MinGRUCell, MinLSTMCell
from rnnlab.cells.rnn import RNNCell
from rnnlab.cells.sru import SRUCell
from rnnlab.init import Init
from rnnlab.layers.gru import GRU
from rnnlab.layers.lstm import LSTM
from rnnlab.layers.min_rnn import MinGRU, MinLSTM
from rnnlab.layers.rnn import RNN
from rnnlab.layers.sru import SRU
from rnnlab.packing import pack_padded_sequence

__all__ = ["LSTM", "LSTMCell", "pack_padded_sequence"]
__all__ += ["SRU", "LayerNormLSTMCell", "SRUCell"]
__all__ += ["RNN", "RNNCell", "GRU", "GRUCell"]
__all__ += ["Init"]
__all__ += ["MinGRU", "MinGRUCell", "MinLSTM", "MinLSTMCell"]
__version__ = "0.1.0"
