"""examples/loram.ipynb executes top to bottom against the real daemon (so it cannot rot).

Skipped only when nbclient (with nbformat and ipykernel) is not installed; CI installs them.
The kernel imports this checkout's loram_client (PYTHONPATH), not an installed copy.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def test_notebook_runs_top_to_bottom(loramd_path, monkeypatch):
    nbclient = pytest.importorskip("nbclient", reason="pip install nbclient nbformat ipykernel")
    nbformat = pytest.importorskip("nbformat")
    pytest.importorskip("ipykernel")
    package_root = str(EXAMPLES.parent)
    monkeypatch.setenv("LORAMD", loramd_path)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")])))
    notebook = nbformat.read(EXAMPLES / "loram.ipynb", as_version=4)
    nbclient.NotebookClient(notebook, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(EXAMPLES)}}).execute()
    text = "\n".join(output.get("text", "") for cell in notebook.cells if cell.cell_type == "code"
                     for output in cell.get("outputs", []) if output.get("output_type") == "stream")
    assert "loss" in text and "daemon exit code 0" in text
    assert "recovered adapter" in text and "fewer)" in text, "the notebook prunes and recovers"
    svgs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.get("outputs", [])
            if "image/svg+xml" in o.get("data", {})]
    assert svgs, "the plan and the loss plot should be displayed"
