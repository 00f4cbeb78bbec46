"""The examples run end to end in their quick mode."""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@pytest.mark.parametrize("name", ["quickstart.py", "real_data_template.py", "dask_cluster.py"])
def test_example_runs_quick(name, tmp_path, monkeypatch):
    import matplotlib

    matplotlib.use("Agg")
    args = [name, "--quick"]
    if name == "quickstart.py":
        args += ["--out", str(tmp_path / "map.png")]
    if name == "dask_cluster.py":
        args += ["--tile", "32"]
    monkeypatch.setattr(sys, "argv", args)
    monkeypatch.chdir(tmp_path)
    runpy.run_path(str(EXAMPLES / name), run_name="__main__")
