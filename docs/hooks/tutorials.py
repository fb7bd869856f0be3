"""MkDocs hook: execute the tutorials and write one page per tutorial and language.

Each tutorial is a jupytext percent-format script, ``docs/tutorials/NN-name.py``. Its code
cells are shared by every language; each markdown cell carries ``lang="en"`` or ``lang="ko"``
(a cell without ``lang`` goes to every language). The script is executed once per build with
nbclient (an IPython kernel, so figures are captured), and the code, its outputs and the
figures are written to ``docs/tutorials/NN-name.md`` (English) and ``NN-name.ko.md``
(Korean) plus ``docs/tutorials/figures/NN-name/*.png``; these are build outputs, ignored by git.

Executed notebooks are cached in ``build/docs-cache/`` under the hash of the script and of the
``RNNLAB_DOCS_TINY`` setting, so ``mkdocs serve`` does not re-run unchanged tutorials. A cell
that raises fails the build.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import re
from pathlib import Path

log = logging.getLogger("mkdocs.hooks.tutorials")

LANGUAGES = ("en", "ko")
RUN_LABEL = {
    "en": "Run this tutorial yourself: `python docs/tutorials/{name}.py` (about {seconds:.0f} s "
          "on the machine that built this page{tiny}).",
    "ko": "직접 실행해 보세요: `python docs/tutorials/{name}.py` (이 페이지를 만든 컴퓨터에서 "
          "약 {seconds:.0f}초{tiny}).",
}
# the repr of an object with its memory address (``<torch._C.Generator at 0x…>``, what a
# cell ending in ``torch.manual_seed(0)`` displays): left out of the pages
ADDRESS_REPR = re.compile(r"^<[^<>]* at 0x[0-9a-f]+>$")
# tqdm's notice that the kernel has no ipywidgets (the scripts print no progress bars)
TQDM_NOTICE = re.compile(r"^.*TqdmWarning: IProgress not found.*\n(  from \.autonotebook.*\n)?", re.M)
TINY_LABEL = {"en": ", tiny setting `RNNLAB_DOCS_TINY=1`", "ko": ", 작은 설정 `RNNLAB_DOCS_TINY=1`"}


def tutorial_scripts(docs_dir: Path) -> list[Path]:
    """The tutorial scripts, in order."""
    return sorted((docs_dir / "tutorials").glob("[0-9][0-9]-*.py"))


def execute(script: Path, cache_dir: Path):
    """The executed notebook of ``script`` (from the cache when unchanged)."""
    import time

    import jupytext
    import nbformat
    from nbclient import NotebookClient

    tiny = os.environ.get("RNNLAB_DOCS_TINY", "") not in ("", "0")
    key = hashlib.sha256(script.read_bytes() + (b"tiny" if tiny else b"full")).hexdigest()[:16]
    cached = cache_dir / f"{script.stem}-{key}.ipynb"
    if cached.exists():
        return nbformat.read(cached, as_version=4)
    nb = jupytext.read(script)
    log.info("executing %s%s", script.name, " (tiny)" if tiny else "")
    start = time.perf_counter()
    workdir = cache_dir / f"run-{script.stem}"
    workdir.mkdir(parents=True, exist_ok=True)
    client = NotebookClient(nb, timeout=900, kernel_name="python3",
                            resources={"metadata": {"path": str(workdir)}})
    client.execute()  # raises CellExecutionError on the first failing cell
    nb.metadata["rnnlab_seconds"] = time.perf_counter() - start
    nb.metadata["rnnlab_tiny"] = tiny
    cache_dir.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, cached)
    return nb


def _fence(text: str, lang: str = "") -> str:
    ticks = "````" if "```" in text else "```"
    return f"{ticks}{lang}\n{text.rstrip()}\n{ticks}\n"


def render(nb, name: str, lang: str, figure_dir: Path) -> str:
    """Markdown of the executed notebook in one language; figures written to figure_dir."""
    parts: list[str] = []
    figure = 0
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            cell_lang = cell.metadata.get("lang")
            if cell_lang in (None, lang):
                parts.append(cell.source.strip() + "\n")
                if not parts[:-1]:  # after the title: how to run it
                    tiny = TINY_LABEL[lang] if nb.metadata.get("rnnlab_tiny") else ""
                    parts.append(RUN_LABEL[lang].format(
                        name=name, seconds=nb.metadata.get("rnnlab_seconds", 0), tiny=tiny)
                        + "\n")
            continue
        if cell.cell_type != "code" or not cell.source.strip():
            continue
        parts.append(_fence(cell.source, "python"))
        stream = ""  # consecutive prints shown as one block
        for out in cell.get("outputs", []):
            if out.output_type == "stream":
                stream += TQDM_NOTICE.sub("", out.text)
                continue
            if stream:
                parts.append(_fence(stream, "text"))
                stream = ""
            if out.output_type in ("execute_result", "display_data"):
                data = out.get("data", {})
                if "image/png" in data:
                    figure += 1
                    figure_dir.mkdir(parents=True, exist_ok=True)
                    png = figure_dir / f"figure-{figure}.png"
                    image = base64.b64decode(data["image/png"])
                    if not png.exists() or png.read_bytes() != image:  # mkdocs serve watches
                        png.write_bytes(image)
                    parts.append(f"![figure {figure}](figures/{name}/{png.name})\n")
                elif "text/plain" in data and not ADDRESS_REPR.match(data["text/plain"]):
                    parts.append(_fence(data["text/plain"], "text"))
            elif out.output_type == "error":
                raise RuntimeError(f"{name}: {out.ename}: {out.evalue}")
        if stream:
            parts.append(_fence(stream, "text"))
    return "\n".join(parts)


def _write_if_changed(path: Path, text: str) -> None:
    if not path.exists() or path.read_text(encoding="utf-8") != text:
        path.write_text(text, encoding="utf-8")


def on_config(config, **kwargs):
    docs_dir = Path(config["docs_dir"])
    cache_dir = Path(config["config_file_path"]).parent / "build" / "docs-cache"
    for script in tutorial_scripts(docs_dir):
        nb = execute(script, cache_dir)
        name = script.stem
        for lang in LANGUAGES:
            suffix = "" if lang == "en" else f".{lang}"
            page = render(nb, name, lang, docs_dir / "tutorials" / "figures" / name)
            _write_if_changed(docs_dir / "tutorials" / f"{name}{suffix}.md", page)
    return config
