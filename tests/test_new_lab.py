"""A new lab is a folder: in a scratch copy of the repository, a lab ``08-extra`` copied from
lab 03 with one objective more (its lab.toml entry, its check, its line of solution.sh, its
break in breaks.toml), then ``virtlab build``; the copy's own tests then pass for it without a
line of them changed: the catalogue, the build and the generated notebook and site pages, and
the lab contract run for real in the libvirt sandbox on both Debian releases (full marks
after the solution, each break, the new objective's included, failing exactly its
objective). The real ``labs/`` is never written.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from conftest import REPO, cannot_run

pytestmark = pytest.mark.integration

NEW = "08-extra"
EXTRA = "extra-network"

LAB_TOML = '''
[[objectives]]
id = "extra-network"
points = 1
section = "8.1.5 Réseaux virtuels avancés"
title.fr = "Le réseau vlextra est défini"
title.en = "Network vlextra is defined"
hint.fr = "virsh net-list --all le montre ; définissez-le avec sudo virsh net-define."
hint.en = "virsh net-list --all shows it; define it with sudo virsh net-define."
'''

CHECK = '''

@objective("extra-network")
def test_extra_network(virt, obj):
    obj.evidence(networks=list(virt.network_names))
    if virt.network("vlextra") is None:
        obj.fail(fr="Le réseau `vlextra` n'est pas défini.",
                 en="Network `vlextra` is not defined.")
    obj.ok(fr="Le réseau `vlextra` est défini.", en="Network `vlextra` is defined.")
'''

SOLUTION = '''
# 5. One network more (lab 08-extra).
extra=$(mktemp)
printf "<network><name>vlextra</name><bridge name='vlextra0'/></network>" > "$extra"
virsh net-info vlextra >/dev/null 2>&1 || virsh net-define "$extra"
rm -f "$extra"
'''

BREAK = '''
[[break]]
name = "no network vlextra"
fails = ["extra-network"]
says = "`vlextra` is not defined"
run = "virsh net-undefine vlextra"
restore = """
printf "<network><name>vlextra</name><bridge name='vlextra0'/></network>" > "$VIRTLAB_WORK/x.xml"
virsh net-define "$VIRTLAB_WORK/x.xml"
"""
'''


def _copy_repository(dst: Path) -> None:
    """The files of this checkout git knows (tracked, and new ones not ignored), as they are."""
    r = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                       cwd=REPO, capture_output=True, check=True)
    for rel in sorted({p for p in r.stdout.decode().split("\0") if p}):
        src = REPO / rel
        if src.is_file():
            (dst / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst / rel)


def _append(path: Path, text: str) -> None:
    path.write_text(path.read_text(encoding="utf-8") + text, encoding="utf-8")


def make_extra_lab(repo: Path) -> Path:
    lab = repo / "labs" / NEW
    shutil.copytree(repo / "labs" / "03-libvirt-basics", lab,
                    ignore=shutil.ignore_patterns("__pycache__"))
    toml = lab / "lab.toml"
    toml.write_text(toml.read_text(encoding="utf-8").replace(
        'id = "03-libvirt-basics"', f'id = "{NEW}"', 1), encoding="utf-8")
    _append(toml, LAB_TOML)
    (check,) = (lab / "checks").glob("test_*.py")
    _append(check, CHECK)
    _append(lab / "solution.sh", SOLUTION)
    _append(lab / "breaks.toml", BREAK)
    return lab


def test_a_lab_added_as_a_folder_passes_the_suite_unchanged(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        cannot_run("the contract suite runs the libvirt sandbox, which needs root")
    repo = tmp_path / "repo"
    _copy_repository(repo)
    make_extra_lab(repo)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTLAB_", "PYTEST_"))}
    env["PYTHONPATH"] = str(repo)  # the copy's checker, not this checkout's
    env["PYTHONDONTWRITEBYTECODE"] = "1"

    built = subprocess.run([sys.executable, "-m", "checker", "build"], cwd=repo, env=env,
                           capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stdout + built.stderr
    for out in (f"notebooks/{NEW}.ipynb", f"site/labs/{NEW}.md", f"site/labs/{NEW}.en.md"):
        assert (repo / out).is_file(), out
    assert f"labs/{NEW}.md" in (repo / "mkdocs.yml").read_text(encoding="utf-8")

    junit = tmp_path / "junit.xml"
    r = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={junit}",
         "tests/test_catalog.py", "tests/test_build.py", "tests/test_notebooks.py",
         "tests/test_labs.py", "-k", f"{NEW} or test_catalog or test_build"],
        cwd=repo, env=env, capture_output=True, text=True, timeout=3600)
    assert r.returncode == 0, r.stdout[-6000:] + r.stderr[-3000:]

    cases = {f"{c.get('classname')}::{c.get('name')}": c
             for c in ET.parse(junit).getroot().iter("testcase")}
    ran = [k for k in cases if NEW in k]
    not_passed = {k: [e.tag for e in cases[k]] for k in ran if len(cases[k])}
    assert not not_passed, f"not passed: {not_passed}"  # no skip, failure or error
    # The catalogue and the build know it; its notebook runs.
    assert any("test_every_real_lab_loads" in k for k in ran), ran
    assert any("test_every_lab_declares_a_break_for_every_objective" in k for k in ran), ran
    assert any("test_notebook" in k for k in ran), ran
    # The contract, for real, on both releases: full marks, then every break of lab 03 and
    # the new one, each failing exactly its objectives.
    import contract

    breaks = contract.load(repo / "labs" / NEW).breaks
    assert len(breaks) == len(contract.load(REPO / "labs" / "03-libvirt-basics").breaks) + 1
    for release in ("host-", "rootfs-"):
        solution = [k for k in ran if "full_marks" in k and release in k]
        assert len(solution) == 1, (release, ran)
        broken = [k for k in ran if "test_each_break_fails_exactly" in k and release in k]
        assert len(broken) == len(breaks), broken
        assert any("no network vlextra" in k for k in broken), broken
