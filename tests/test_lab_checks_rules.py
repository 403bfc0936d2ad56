"""Lab checks reach the host only through probes, and a lost connection is never a fact.

Every ``labs/*/checks/*.py`` is read as Python (its AST) and may not:

- catch broadly (``except:``, ``except Exception``, ``except BaseException``): a lost SSH
  connection or libvirt daemon would be taken for "missing" or "broken" and graded;
- read the process's environment (``os.environ``, ``os.getenv``), open files itself
  (``open``), run programs (``subprocess``, ``os.system``…), or import ``os``,
  ``subprocess``, ``shutil``, ``socket``, ``pathlib``, ``glob``: the checked host may be
  another machine, and a test-only switch has no place in a lab;
- run host commands or read host files raw (``host.run``, ``check_output``, ``run_expect``,
  ``run_test``, ``.content``, ``.content_string``, ``.listdir``): testinfra raises
  ``AssertionError`` when such a command fails, which would read as the learner's fault;
  the probes in ``checker/probes/`` say what a failure means.

A temporary check module with each fault proves the scan finds it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
CHECK_FILES = sorted(REPO.glob("labs/*/checks/*.py"))

BROAD = {"Exception", "BaseException"}
FORBIDDEN_IMPORTS = {"os", "subprocess", "shutil", "socket", "pathlib", "glob", "io"}
FORBIDDEN_CALLS = {"open", "exec", "eval", "__import__"}
#: attributes whose use means a raw host read or command
RAW_ATTRS = {"run_expect", "run_test", "check_output", "content", "content_string",
             "listdir", "environ", "getenv", "system", "popen"}


def _names(node: ast.expr | None) -> list[str]:
    if node is None:
        return []
    if isinstance(node, ast.Tuple):
        return [n for e in node.elts for n in _names(e)]
    if isinstance(node, ast.Name):
        return [node.id]
    if isinstance(node, ast.Attribute):
        return [node.attr]
    return []


def violations(source: str, filename: str = "<check>") -> list[str]:
    """What a check module does that a check may not, one line each (``file:line: what``)."""
    out: list[str] = []
    for node in ast.walk(ast.parse(source, filename)):
        where = f"{filename}:{getattr(node, 'lineno', 0)}"
        if isinstance(node, ast.ExceptHandler):
            caught = _names(node.type)
            if node.type is None:
                out.append(f"{where}: bare except")
            elif BROAD & set(caught):
                out.append(f"{where}: except {', '.join(sorted(BROAD & set(caught)))}")
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.split(".")[0] in FORBIDDEN_IMPORTS:
                    out.append(f"{where}: import {a.name}")
        elif isinstance(node, ast.ImportFrom):
            if (node.module or "").split(".")[0] in FORBIDDEN_IMPORTS:
                out.append(f"{where}: from {node.module} import …")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) \
                and node.func.id in FORBIDDEN_CALLS:
            out.append(f"{where}: {node.func.id}()")
        elif isinstance(node, ast.Attribute):
            if node.attr in RAW_ATTRS:
                out.append(f"{where}: .{node.attr}")
            elif node.attr == "run" and isinstance(node.value, ast.Name) \
                    and node.value.id == "host":
                out.append(f"{where}: host.run")
    return out


def test_there_are_check_modules_to_scan():
    assert len(CHECK_FILES) >= 7, CHECK_FILES


@pytest.mark.parametrize("path", CHECK_FILES, ids=[p.parent.parent.name for p in CHECK_FILES])
def test_lab_checks_reach_the_host_only_through_probes(path):
    found = violations(path.read_text(encoding="utf-8"), str(path.relative_to(REPO)))
    assert found == [], "\n".join(found)


FAULTS = {
    "bare-except": "try:\n    x = 1\nexcept:\n    pass\n",
    "except-exception": "try:\n    x = 1\nexcept Exception:\n    pass\n",
    "except-in-tuple": "try:\n    x = 1\nexcept (ValueError, BaseException) as e:\n    pass\n",
    "os-environ": "import os\nroot = os.environ.get('X')\n",
    "from-os": "from os import environ\n",
    "open": "text = open('/etc/apt/sources.list').read()\n",
    "subprocess": "import subprocess\nsubprocess.run(['ip', 'link'])\n",
    "host-run": "def test(host):\n    r = host.run('ip link')\n",
    "check-output": "def test(host):\n    host.check_output('cat /x')\n",
    "content-string": "def test(host):\n    host.file('/sys/x').content_string\n",
    "listdir": "def test(host):\n    host.file('/sys/x').listdir()\n",
}


@pytest.mark.parametrize("source", FAULTS.values(), ids=list(FAULTS))
def test_each_forbidden_form_is_found(source):
    assert violations(source), source


def test_what_a_check_may_do_is_not_flagged():
    ok = ("import ipaddress\nimport libvirt\nfrom checker.probes.netdev import net_device\n"
          "def test(host, learner, virt):\n"
          "    try:\n        ipaddress.ip_address('x')\n    except ValueError:\n        pass\n"
          "    try:\n        virt.conn.getLibVersion()\n"
          "    except libvirt.libvirtError:\n        pass\n"
          "    learner.run('virsh', 'list')\n    net_device(host, 'br0')\n"
          "    host.file('/dev/kvm').exists\n")
    assert violations(ok) == []
