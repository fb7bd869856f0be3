"""Build and load the C++ extension of the ``cpu`` backend, once, at first use.

The sources in ``csrc/`` are compiled with :func:`torch.utils.cpp_extension.load` (ninja and a
C++ compiler) into torch's extension cache (``$TORCH_EXTENSIONS_DIR``, by default
``~/.cache/torch_extensions``), one build per torch version and vector ISA, and reused by every
later process on the machine. When no compiler is found or the build fails, a single warning is
emitted and :func:`error` explains why; the backend then reports itself unsupported and
``backend="auto"`` falls back to the others.

Environment:

- ``RNNLAB_CPU_ENGINE=0`` switches the engine off (silently);
- ``RNNLAB_REQUIRE_CPU_ENGINE=1`` makes an unavailable engine an error instead: the first use
  (and every later one) raises ``RuntimeError`` with the compiler's output, with no fallback
  (what CI sets, so that a build broken on some torch version fails the run instead of
  skipping the engine's tests);
- ``RNNLAB_CPU_ENGINE_VERBOSE=1`` shows the compiler's output;
- ``RNNLAB_CPU_GEMM=aten`` sends all the products over all steps to ATen's BLAS and
  ``RNNLAB_CPU_GEMM=packed`` sends the weight gradients to the packed kernel too (for
  comparisons; the default is the measured best).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import threading
import warnings
from pathlib import Path

import torch

CSRC = Path(__file__).with_name("csrc")
SOURCES = ("lstm.cpp", "gru.cpp", "rnn.cpp", "sru.cpp", "activations.cpp", "layernorm_lstm.cpp",
           "layernorm_gru.cpp", "ops.cpp")

_lock = threading.Lock()
_module = None
_error: str | None = None
_failure: BaseException | None = None  # the build's exception, with the compiler's output
_tried = False


def _isa_flags() -> tuple[str, list[str]]:
    """Vector-ISA flags matching the instruction set torch itself dispatches to here."""
    try:
        capability = torch.backends.cpu.get_cpu_capability()
    except AttributeError:  # pragma: no cover - very old torch
        capability = "DEFAULT"
    flags = {
        "AVX512": ["-mavx2", "-mfma", "-mf16c", "-mavx512f", "-mavx512dq", "-mavx512vl",
                   "-mavx512bw"],
        "AVX2": ["-mavx2", "-mfma", "-mf16c"],
    }.get(capability, [])
    return capability.lower(), flags


def _build():
    from torch.utils import cpp_extension

    compiler = os.environ.get("CXX", "c++")
    if shutil.which(compiler) is None:
        raise RuntimeError(f"no C++ compiler ({compiler!r} not found on PATH)")
    cpp_extension.verify_ninja_availability()
    isa, isa_flags = _isa_flags()
    cflags = ["-O3", "-fopenmp", "-fno-math-errno", "-fno-trapping-math", *isa_flags]
    # one build per torch version: the engine compiles against ATen's C++ API, which has no
    # stable ABI across versions, and venvs with different torch share the extension cache
    name = f"rnnlab_cpu_{isa}_torch_{re.sub(r'[^0-9A-Za-z]', '_', torch.__version__)}"
    sources = [str(CSRC / s) for s in SOURCES if (CSRC / s).exists()]
    build_dir = Path(cpp_extension._get_build_directory(name, verbose=False))
    built = sorted(build_dir.glob(f"{name}*.so"))
    newest_source = max(p.stat().st_mtime for p in CSRC.iterdir())
    if not built or max(p.stat().st_mtime for p in built) < newest_source:
        print(f"rnnlab: compiling rnnlab's CPU engine (once, about a minute) into {build_dir} …",
              file=sys.stderr, flush=True)
    cpp_extension.load(name=name, sources=sources, extra_cflags=cflags,
                       extra_include_paths=[str(CSRC)], extra_ldflags=["-fopenmp"],
                       is_python_module=False,
                       verbose=os.environ.get("RNNLAB_CPU_ENGINE_VERBOSE") == "1")
    return torch.ops.rnnlab_cpu


def required() -> bool:
    """Whether ``RNNLAB_REQUIRE_CPU_ENGINE`` asks for the engine to be an error when unavailable."""
    return os.environ.get("RNNLAB_REQUIRE_CPU_ENGINE", "") not in ("", "0")


def _summary(exc: BaseException) -> str:
    """One line for the warning and :func:`error`: the exception's first line and, for a failed
    build, the compiler's first error."""
    lines = str(exc).strip().splitlines()
    summary = f"{type(exc).__name__}: {lines[0] if lines else ''}"[:200]
    first_error = next((ln.strip() for ln in lines[1:] if re.search(r"\berror\b", ln)), None)
    if first_error:
        summary += f" … {first_error[:300]}"
    return summary


def load():
    """The compiled operators (``torch.ops.rnnlab_cpu``), or None when they cannot be built
    (see :func:`error`). With ``RNNLAB_REQUIRE_CPU_ENGINE=1``, raises ``RuntimeError`` (with the
    compiler's output) instead of returning None."""
    global _module, _error, _failure, _tried
    if not _tried:
        with _lock:
            if not _tried and os.environ.get("RNNLAB_CPU_ENGINE", "1") == "0":  # no warning
                _error, _tried = "switched off by RNNLAB_CPU_ENGINE=0", True
            if not _tried:
                try:
                    _module = _build()
                except (OSError, RuntimeError, ImportError, ValueError,
                        subprocess.SubprocessError) as exc:  # no compiler/ninja, build/load error
                    _error, _failure = _summary(exc), exc
                    if not required():
                        warnings.warn(f"rnnlab: the C++ CPU engine is unavailable ({_error}); the "
                                      "'cpu' backend is off and backend='auto' uses the others "
                                      "(RNNLAB_REQUIRE_CPU_ENGINE=1 makes this an error showing "
                                      "the compiler's output)", RuntimeWarning, stacklevel=3)
                _tried = True
    if _module is None and required():
        detail = str(_failure).strip() if _failure is not None else _error
        # from None: the message already holds the compiler's output (chaining would print it
        # twice); the build's own exception stays in _failure
        raise RuntimeError("rnnlab: RNNLAB_REQUIRE_CPU_ENGINE=1 but the C++ CPU engine is "
                           f"unavailable:\n{detail}") from None
    return _module


def error() -> str | None:
    """Why the extension is unavailable (after :func:`load`), or None. Raises instead where
    :func:`load` does (``RNNLAB_REQUIRE_CPU_ENGINE=1``)."""
    load()
    return _error
