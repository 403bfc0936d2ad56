"""libvirt's default error handler prints nothing in any entry point.

libvirt's C library writes "libvirt: Test Driver error : Domain not found" on the process's
stderr (fd 2, red in JupyterLab) for every failed call unless a handler is registered;
virtlab registers one where it opens or hands out a connection
(:func:`checker.probes.libvirt.quiet_libvirt`). These tests look up a missing domain through
libvirt's built-in ``test:///default`` driver (no daemon needed) and capture fd 2 at the OS
level: in a subprocess for the probes, ``virtlab check``, ``virtlab check --watch`` and a grading
worker; in a
Jupyter kernel (nbclient) whose first cell used libvirt itself.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbformat.v4 import new_code_cell, new_notebook

REPO = Path(__file__).resolve().parent.parent
URI = "test:///default"  # libvirt's in-library test driver: domain "test" only
#: libvirt's default handler's line: "libvirt: <driver> error : <message>" (our reports say
#: "libvirt: test:///default" too: the URI, not an error)
NOISE = re.compile(r"libvirt: [^\n]*error : ")


def _env(tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTLAB_DEBUG", "VIRTLAB_LABS")}
    env.update(VIRTLAB_DATA=str(tmp), LANG="C.UTF-8", LIBVIRT_DEFAULT_URI=URI,
               PYTHONPATH=os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]))
    return env


def test_the_test_driver_is_noisy_without_virtlab(tmp_path: Path) -> None:
    """The premise: plain libvirt-python prints the line this file proves we silence."""
    code = ("import libvirt\nc = libvirt.openReadOnly('test:///default')\n"
            "try:\n    c.lookupByName('nope')\nexcept libvirt.libvirtError:\n    pass\n")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       env=_env(tmp_path), timeout=60)
    assert p.returncode == 0, p.stderr
    assert NOISE.search(p.stderr)


def test_a_probe_lookup_of_a_missing_domain_prints_nothing(tmp_path: Path) -> None:
    code = ("from checker.probes.libvirt import Virt\n"
            "v = Virt('test:///default')\n"
            "print(v.domain('nope'), v.domain_config('nope'), v.network('nope'), v.pool('nope'))\n"
            "import libvirt\n"
            "try:\n    v.conn.lookupByName('nope')\n"
            "except libvirt.libvirtError as e:\n    print('raised', e.get_error_code())\n")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       env=_env(tmp_path), timeout=60)
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines() == ["None None None None",
                                     "raised 42"]  # VIR_ERR_NO_DOMAIN: still an error
    assert p.stderr == ""


def test_virtlab_check_prints_no_libvirt_line(tmp_path: Path) -> None:
    p = subprocess.run([sys.executable, "-m", "checker", "check", "04", "--connect", URI],
                       capture_output=True, text=True, env=_env(tmp_path), timeout=120,
                       cwd=REPO, stdin=subprocess.DEVNULL)
    assert p.returncode == 1, p.stdout + p.stderr  # the VM is missing: failed objectives
    assert "test-debian-12" in p.stdout  # our own message says which VM is missing
    assert not NOISE.search(p.stdout + p.stderr)
    assert p.stderr == ""


def test_virtlab_check_watch_prints_no_libvirt_line(tmp_path: Path) -> None:
    env = dict(_env(tmp_path), VIRTLAB_WATCH_INTERVAL="1")
    p = subprocess.Popen([sys.executable, "-m", "checker", "check", "04", "--watch",
                          "--connect", URI, "--format", "json"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, env=env, cwd=REPO,
                         stdin=subprocess.DEVNULL)
    try:
        assert p.stdout is not None
        first = json.loads(p.stdout.readline())
        second = json.loads(p.stdout.readline())  # a re-check on the 1 s cadence
        assert first["lab"] == second["lab"] == "04-create-vm"
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
            p.communicate()
    assert not NOISE.search(out + err), err
    assert "Traceback" not in err


def test_a_grading_worker_prints_no_libvirt_line(tmp_path: Path) -> None:
    """The worker process ``virtlab grade`` starts (``python -m checker.grade.worker``), one
    job on its protocol, its fd 2 captured: its stderr tail would end up in the gradebook."""
    job = {"host": "local://", "labs": ["04-create-vm"], "spec": "local://", "connect": URI,
           "lang": "fr"}
    p = subprocess.run([sys.executable, "-m", "checker.grade.worker"], input=json.dumps(job) + "\n",
                       capture_output=True, text=True, env=_env(tmp_path), cwd=REPO, timeout=120)
    assert p.returncode == 0, p.stderr
    ready, answer = (json.loads(line) for line in p.stdout.splitlines())
    assert "ready" in ready
    result = answer["results"][0]
    assert result["status"] == "graded", result
    assert "test-debian-12" in json.dumps(result["report"], ensure_ascii=False)
    assert not NOISE.search(p.stderr), p.stderr
    assert p.stderr == ""


@pytest.mark.parametrize("lang", ["fr", "en"])
def test_notebook_check_after_the_learners_own_libvirt_cell(tmp_path: Path, lang: str) -> None:
    """The kernel's fd 2 goes to a file (what JupyterLab's kernel forwards into the cell, in
    red); each cell writes a marker there first, so every line is attributed to its cell."""
    fd2 = tmp_path / "kernel-fd2.txt"

    def mark(name: str) -> str:
        return f"import os\nos.write(2, b'=== {name}\\n')\n"

    learner_cell = ("import libvirt\nmine = libvirt.openReadOnly('test:///default')\n"
                    "try:\n    mine.lookupByName('nope')\n"
                    "except libvirt.libvirtError as e:\n    print('mine:', e.get_error_code())\n")
    nb = new_notebook(cells=[
        new_code_cell(f"import os\nos.dup2(os.open({str(fd2)!r}, os.O_WRONLY | os.O_CREAT), 2)"),
        new_code_cell(mark("learner") + learner_cell),
        new_code_cell(mark("check") + f"from checker import check\ncheck('04', lang='{lang}')"),
        new_code_cell(mark("watch") + f"import time\nfrom checker.watch import watch\n"
                      f"w = watch('04', lang='{lang}')\ntime.sleep(3)\nw.stop()"),
        new_code_cell(mark("again") + learner_cell),  # the learner's own lookup, after ours
        new_code_cell(mark("end")),
    ])
    client = NotebookClient(nb, timeout=120, kernel_name="python3", allow_errors=False,
                            resources={"metadata": {"path": str(tmp_path)}})
    client.execute(env=_env(tmp_path))

    def text(cell: nbformat.NotebookNode) -> str:
        return json.dumps(cell.outputs, ensure_ascii=False)

    _, first, checked, watched, again, _ = nb.cells
    per_cell: dict[str, list[str]] = {}
    current = ""
    for line in fd2.read_text().splitlines():
        if line.startswith("=== "):
            current = line[4:]
            per_cell[current] = []
        elif current:
            per_cell[current].append(line)
    assert list(per_cell) == ["learner", "check", "watch", "again", "end"]
    # the premise: libvirt's default handler printed the learner's own failed lookup
    assert any(NOISE.search(line) for line in per_cell["learner"]), per_cell
    assert "mine: 42" in text(first)
    assert "vl-report" in text(checked) and "test-debian-12" in text(checked)
    assert "vl-report" in text(watched)
    for name in ("check", "watch", "again", "end"):
        assert not any(NOISE.search(line) for line in per_cell[name]), per_cell[name]
    for cell in (checked, watched, again):
        assert not NOISE.search(text(cell)), cell.outputs
    assert "mine: 42" in text(again)  # the learner's error is still raised to them
