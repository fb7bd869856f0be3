"""Weight converters between rnnlab (torch's layout) and other libraries' recurrent layers.

* :mod:`rnnlab.convert.keras`: Keras 3 ``LSTM``, ``GRU`` (``reset_after`` both ways),
  ``SimpleRNN`` and ``Bidirectional`` of them.
* :mod:`rnnlab.convert.haste`: Haste (lmnt-com/haste, PyTorch API) ``LSTM``, ``GRU``,
  ``LayerNormLSTM``, ``LayerNormGRU``.

Every converter takes and returns plain arrays/tensors in dicts named after the target
library's variables (torch's short names ``weight_ih, weight_hh, bias_ih, bias_hh`` on rnnlab's
side); ``load_*_weights`` / ``*_weights`` move them into and out of one layer and direction
of an rnnlab layer.
"""
