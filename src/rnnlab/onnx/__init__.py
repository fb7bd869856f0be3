"""ONNX interoperability: :func:`export` an rnnlab layer as standard ONNX ``LSTM`` / ``GRU`` /
``RNN`` operators (or a Scan over the cell where ONNX has no operator), and :func:`load_layer`
to build an rnnlab layer from an ONNX model's recurrent node (a ``direction="reverse"`` node
as a :class:`Reverse` layer). Needs ``pip install onnx``
(and ``onnxruntime`` for :func:`run_onnxruntime` and ``verify=True``)."""

try:
    import onnx as _onnx  # noqa: F401
except ImportError as exc:  # pragma: no cover
    raise ImportError("rnnlab.onnx needs the onnx package: pip install onnx onnxruntime") from exc

from rnnlab.onnx._runtime import run_onnxruntime
from rnnlab.onnx._support import operator_unsupported
from rnnlab.onnx._weights import onnx_weights
from rnnlab.onnx.export import ExportInfo, ScanExportWarning, export
from rnnlab.onnx.load import load_layer
from rnnlab.onnx.reverse import Reverse

__all__ = [
    "ExportInfo",
    "Reverse",
    "ScanExportWarning",
    "export",
    "load_layer",
    "onnx_weights",
    "operator_unsupported",
    "run_onnxruntime",
]
