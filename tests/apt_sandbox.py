"""Run a lab's check where APT's files really are a test's files.

Lab 06 reads APT's sources and keyrings at their real paths (``/etc/apt``,
``/usr/share/keyrings``) through its probe, like apt does: it has no test-only hook. A test
gives it other files the way a machine would: the check runs in a child process inside a
private mount namespace (``unshare --mount``, propagation private: nothing is seen outside
it) where the test's ``etc/apt`` and ``usr/share/keyrings`` are bind-mounted over the real
ones. The child prints the Report as JSON; the parent reads it back.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from checker.model import Report

REPO = Path(__file__).resolve().parent.parent

#: The folders apt reads that a test's APT root replaces (relative to that root).
APT_DIRS = ("etc/apt", "usr/share/keyrings")

_CHILD = """
import json, sys
from checker.engine import check
args, kw = json.loads(sys.argv[1])
sys.stdout.write(check(*args, **kw).to_json())
"""

_MOUNT = """
set -e
mount --bind "$1" /etc/apt
mount --bind "$2" /usr/share/keyrings
shift 2
exec "$@"
"""


def check_with_apt(root: Path, *args: Any, timeout: int = 300, **kw: Any) -> Report:
    """``checker.engine.check(*args, **kw)`` with ``root``'s APT folders in place of the
    machine's (a missing one is made empty, as on a machine without it)."""
    if os.geteuid() != 0:
        raise RuntimeError("check_with_apt needs root (unshare --mount, mount --bind)")
    dirs = []
    for rel in APT_DIRS:
        d = Path(root) / rel
        d.mkdir(parents=True, exist_ok=True)
        dirs.append(str(d))
    p = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c", _MOUNT, "sh", *dirs,
         sys.executable, "-c", _CHILD, json.dumps([list(args), kw])],
        cwd=REPO, capture_output=True, text=True, timeout=timeout)
    if p.returncode != 0 or not p.stdout.strip():
        raise RuntimeError(f"check in the APT sandbox failed (rc={p.returncode}): "
                           f"{p.stderr[-3000:]}")
    return Report.from_json(p.stdout)
