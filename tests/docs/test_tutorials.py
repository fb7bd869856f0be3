"""Every tutorial under docs/tutorials/ runs end to end at its tiny setting (the documentation
build executes them at the full setting)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

TUTORIALS = sorted((Path(__file__).parents[2] / "docs" / "tutorials").glob("[0-9][0-9]-*.py"))


def test_seven_tutorials():
    assert len(TUTORIALS) == 7, [p.name for p in TUTORIALS]


@pytest.mark.parametrize("script", TUTORIALS, ids=lambda p: p.stem)
def test_tutorial_runs(script, tmp_path):
    env = {**os.environ, "RNNLAB_DOCS_TINY": "1", "MPLBACKEND": "Agg"}
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
