"""What the C++ CPU engine's test modules share: their first statement,
``require_cpu_engine()``, builds the engine (once per machine and torch version, cached) and
skips the module where it cannot be built, or fails the run where a build is required
(``RNNLAB_REQUIRE_CPU_ENGINE=1``, as CI sets it)."""

import pytest

from rnnlab.backends.cpu import _build


def require_cpu_engine() -> None:
    try:
        unavailable, broken = _build.error(), None
    except RuntimeError as exc:
        unavailable, broken = None, str(exc)
    if broken is not None:  # outside the except: the compiler's output once, no chained traceback
        pytest.fail(broken, pytrace=False)
    if unavailable is not None:
        pytest.skip(f"the C++ CPU engine cannot be built here: {unavailable} (set "
                    "RNNLAB_REQUIRE_CPU_ENGINE=1 to make this an error)", allow_module_level=True)
