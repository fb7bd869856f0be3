"""docs/conformance.md holds the table conformance_table.py prints from the expectations the
tests assert, and every usage of the table has its test."""

from __future__ import annotations

import inspect
from pathlib import Path

import conformance_table
import test_conf_autograd
import test_conf_compile
import test_conf_module
from conformance_common import USAGES

PAGE = Path(__file__).resolve().parents[2] / "docs" / "conformance.md"


def test_docs_page_holds_the_generated_table():
    text = PAGE.read_text(encoding="utf-8")
    assert conformance_table.table() in text, \
        "docs/conformance.md is stale: python tests/conformance/conformance_table.py " \
        "> docs/conformance.md"
    assert text.startswith(conformance_table.HEADER)


def test_every_usage_has_its_test():
    functions = {name for module in (test_conf_autograd, test_conf_compile, test_conf_module)
                 for name, f in inspect.getmembers(module, inspect.isfunction)
                 if name.startswith("test_")}
    missing = [key for key, _, _ in USAGES if f"test_{key}" not in functions]
    assert not missing, missing
    assert len({key for key, _, _ in USAGES}) == len(USAGES)
