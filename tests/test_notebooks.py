"""Every generated notebook runs top to bottom in a real Jupyter kernel (nbclient + ipykernel).

The kernel imports this source tree's `checker` and talks to libvirt through
LIBVIRT_DEFAULT_URI: the test sandbox's daemon, or a socket that does not exist (a learner
whose daemon is down must get `error` statuses in the scoreboard, never an error cell).
"""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

REPO = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))
NO_DAEMON_URI = "qemu:///system?socket=/nonexistent/virtlab-test/libvirt-sock"


def run_notebook(path: Path, libvirt_uri: str) -> nbformat.NotebookNode:
    nb = nbformat.read(path, as_version=4)
    env = dict(os.environ, LIBVIRT_DEFAULT_URI=libvirt_uri,
               PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    env.pop("VIRTLAB_LABS", None)
    client = NotebookClient(nb, timeout=120, kernel_name="python3", allow_errors=True,
                            resources={"metadata": {"path": str(path.parent)}})
    client.execute(env=env)
    return nb


def assert_ran_cleanly(nb: nbformat.NotebookNode, lab: str | None, libvirt_uri: str) -> None:
    errors = [(c.id, o.get("ename"), o.get("evalue")) for c in nb.cells
              if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert errors == []
    for c in nb.cells:
        if c.cell_type == "code":
            assert c.execution_count is not None, f"cell {c.id} did not run"
    checks = [c for c in nb.cells if c.cell_type == "code" and c.id.endswith("check")]
    if lab is None:  # the index: a map, no check
        assert checks == []
        return
    assert [c.id for c in checks] == ["fr-check", "en-check"]
    for c, title_word in zip(checks, ("Objectif", "Objective")):
        html = [o["data"]["text/html"] for o in c.outputs
                if o.output_type in ("execute_result", "display_data")
                and "text/html" in o.get("data", {})]
        assert html, f"cell {c.id} shows no scoreboard: {c.outputs}"
        board = html[0]
        assert 'class="vl-report"' in board and lab in board
        assert title_word in board
        assert libvirt_uri.replace("&", "&amp;") in board  # the URI the kernel was given


def lab_of(path: Path) -> str | None:
    return None if path.stem == "index" else path.stem


def test_there_are_notebooks():
    assert any(p.stem != "index" for p in NOTEBOOKS)
    assert REPO / "notebooks" / "index.ipynb" in NOTEBOOKS


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs_without_a_libvirt_daemon(path):
    nb = run_notebook(path, NO_DAEMON_URI)
    assert_ran_cleanly(nb, lab_of(path), NO_DAEMON_URI)


@pytest.mark.integration
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs_against_the_sandbox_daemon(path, sandbox):
    nb = run_notebook(path, sandbox.uri)
    assert_ran_cleanly(nb, lab_of(path), sandbox.uri)
