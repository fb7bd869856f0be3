"""The API reference covers the public API: every name in ``rnnlab.__all__`` and every public
name of the public modules of layers, cells, backends, lab, convert, onnx and tbptt has a
docstring and a page that renders it (mkdocstrings over the packages, ``docs/reference/``).
With ``RNNLAB_DOCS_SITE`` pointing at a built site (CI sets it after ``mkdocs build``), each
name must also have its anchor in the built HTML."""

from __future__ import annotations

import importlib
import inspect
import os
import pkgutil
from pathlib import Path

import pytest

import rnnlab

ROOT = Path(__file__).parents[2]
REFERENCE = ROOT / "docs" / "reference"
PACKAGES = ["rnnlab.layers", "rnnlab.cells", "rnnlab.backends", "rnnlab.lab", "rnnlab.convert",
            "rnnlab.onnx"]
MODULES = ["rnnlab.tbptt", "rnnlab.init", "rnnlab.packing"]


def public_modules() -> list[str]:
    names = list(MODULES)
    for package in PACKAGES:
        names.append(package)
        module = importlib.import_module(package)
        for info in pkgutil.walk_packages(module.__path__, package + "."):
            if not any(part.startswith("_") for part in info.name.split(".")):
                names.append(info.name)
    return names


def public_names(module) -> list[str]:
    """``__all__``, or the classes and functions a module defines without a leading _."""
    if hasattr(module, "__all__"):
        return list(module.__all__)
    return [name for name, value in vars(module).items()
            if not name.startswith("_") and (inspect.isclass(value) or callable(value))
            and getattr(value, "__module__", None) == module.__name__]


def documented_path(module_name: str, name: str) -> tuple[str, object]:
    """The path mkdocstrings renders the name under: where it is defined."""
    value = getattr(importlib.import_module(module_name), name)
    owner = getattr(value, "__module__", None)
    qualname = getattr(value, "__qualname__", None)
    private = owner is not None and any(part.startswith("_") for part in owner.split("."))
    if owner and qualname and owner.startswith("rnnlab") and "<" not in qualname \
            and not private:  # a name re-exported from a private module is rendered where exported
        return f"{owner}.{qualname}", value
    return f"{module_name}.{name}", value


def covered(path: str) -> bool:
    """A reference page renders ``path``: a ``::: module`` directive on it or on a package
    above it (the package pages render their submodules)."""
    text = "\n".join(p.read_text(encoding="utf-8") for p in REFERENCE.glob("*.md"))
    parts = path.split(".")
    return any(f"::: {'.'.join(parts[:i])}\n" in text for i in range(2, len(parts) + 1))


ALL = [("rnnlab", name) for name in rnnlab.__all__]
ALL += [(module, name) for module in public_modules()
        for name in public_names(importlib.import_module(module))]


@pytest.mark.parametrize("module, name", ALL, ids=[f"{m}.{n}" for m, n in ALL])
def test_public_name_documented(module, name):
    path, value = documented_path(module, name)
    doc = inspect.getdoc(value) if (inspect.isclass(value) or callable(value)) else "data"
    if not (inspect.isclass(value) or inspect.isfunction(value) or inspect.ismethod(value)):
        doc = "data"  # constants, registries: documented by their module's docstring
    assert doc and doc.strip(), f"{path} has no docstring"
    assert covered(path), f"{path} is on no page of docs/reference/"


def test_top_level_names_listed():
    text = (REFERENCE / "index.md").read_text(encoding="utf-8")
    for name in rnnlab.__all__:
        assert f"`rnnlab.{name}`" in text, name


@pytest.mark.skipif(not os.environ.get("RNNLAB_DOCS_SITE"), reason="no built site given")
def test_names_in_built_site():
    site = Path(os.environ["RNNLAB_DOCS_SITE"])
    if not site.is_absolute():
        site = ROOT / site
    html = "\n".join(p.read_text(encoding="utf-8")
                     for p in (site / "reference").rglob("index.html"))
    missing = []
    for module, name in ALL:
        path, _ = documented_path(module, name)
        if f'id="{path}"' not in html:
            missing.append(path)
    assert not missing, f"not in the built reference: {missing[:20]} ({len(missing)})"
