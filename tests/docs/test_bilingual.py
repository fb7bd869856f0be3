"""Each tutorial has its prose in English and Korean (markdown cells tagged ``lang``), the
code shared; the landing page exists in both languages."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOCS = Path(__file__).parents[2] / "docs"
TUTORIALS = sorted((DOCS / "tutorials").glob("[0-9][0-9]-*.py"))
CELL = re.compile(r"^# %% \[markdown\] lang=\"(\w+)\"", re.M)


@pytest.mark.parametrize("script", TUTORIALS, ids=lambda p: p.stem)
def test_prose_in_both_languages(script):
    langs = CELL.findall(script.read_text(encoding="utf-8"))
    assert langs.count("en") == langs.count("ko") > 0, langs
    assert set(langs) == {"en", "ko"}


def test_landing_page_in_both_languages():
    assert (DOCS / "index.md").is_file() and (DOCS / "index.ko.md").is_file()
    for page in ("index.md", "index.ko.md"):
        text = (DOCS / page).read_text(encoding="utf-8")
        for script in TUTORIALS:
            assert f"tutorials/{script.stem}.md" in text, (page, script.stem)
