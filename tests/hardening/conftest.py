"""The hardening campaign's check of one malformed call, and the count of calls tried per
category, reported at the end of the run (per process: under ``-n`` each worker counts its own).
"""

import re
from collections import Counter

import pytest

TRIED: Counter = Counter()


def expect_error(category: str, call, exc: type[Exception], *names: str) -> None:
    """``call()`` raises ``exc`` (ValueError or TypeError) whose message starts with one of the
    argument ``names`` followed by ``:``, the library's convention for naming the culprit."""
    TRIED[category] += 1
    with pytest.raises(Exception) as info:
        call()
    error = info.value
    assert isinstance(error, exc), f"expected {exc.__name__}, got {type(error).__name__}: {error}"
    pattern = "|".join(map(re.escape, names))
    assert re.match(rf"({pattern}): ", str(error)), \
        f"the message does not name {names}: {type(error).__name__}: {error}"


@pytest.fixture(scope="session")
def malformed():
    return expect_error


def pytest_terminal_summary(terminalreporter):
    if TRIED:
        terminalreporter.write_sep("-", "hardening: malformed calls tried")
        for category, count in sorted(TRIED.items()):
            terminalreporter.write_line(f"{category:<12} {count}")
        terminalreporter.write_line(f"{'total':<12} {sum(TRIED.values())}")
