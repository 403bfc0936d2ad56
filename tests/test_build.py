"""`virtlab build`: one source (labs/), generated notebooks and site pages that never go stale."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from checker.notebook import chunks, iter_lines, sections, split_title, to_jupyter_md, to_site_md

REPO = Path(__file__).resolve().parent.parent
CELL_ID_RE = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")


def virtlab(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "checker", *args], cwd=REPO,
                          capture_output=True, text=True, env=env, timeout=120)


def tree_copy(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A copy of what the build reads and writes, with lab 01 only (the other labs may be
    half-written by their authors), built once; and the env pointing the build at it."""
    root = tmp_path / "tree"
    root.mkdir(parents=True)
    for d in ("notebooks", "site"):
        shutil.copytree(REPO / d, root / d)
    shutil.copytree(REPO / "labs" / "01-hardware", root / "labs" / "01-hardware",
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy2(REPO / "mkdocs.yml", root / "mkdocs.yml")
    env = dict(os.environ, VIRTLAB_LABS=str(root / "labs"), VIRTLAB_ROOT=str(root))
    r = virtlab("build", env=env)
    assert r.returncode == 0, r.stderr
    return root, env


def stale_list(r: subprocess.CompletedProcess) -> set[str]:
    return {line.strip() for line in r.stderr.splitlines()[1:] if line.strip()}


def snapshot(root: Path) -> dict[str, bytes]:
    files = [*root.glob("notebooks/*.ipynb"), *root.glob("site/**/*.md"), root / "mkdocs.yml"]
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in files}


# --- the committed tree ------------------------------------------------------------------

def test_committed_outputs_are_up_to_date():
    r = virtlab("build", "--check")
    assert r.returncode == 0, f"stale generated files; run `virtlab build`:\n{r.stderr}"
    assert r.stderr == ""


def test_every_lab_has_its_notebook_and_pages():
    labs = sorted(p.name for p in (REPO / "labs").iterdir()
                  if p.is_dir() and re.match(r"^\d\d-", p.name))
    assert labs, "no lab folder found"
    for lab in labs:
        assert (REPO / "notebooks" / f"{lab}.ipynb").is_file()
        assert (REPO / "site" / "labs" / f"{lab}.md").is_file()
        assert (REPO / "site" / "labs" / f"{lab}.en.md").is_file()
        nav = (REPO / "mkdocs.yml").read_text(encoding="utf-8")
        assert f"- labs/{lab}.md" in nav


# --- drift is detected, then repaired ----------------------------------------------------

def test_a_changed_lab_toml_makes_exactly_its_outputs_stale(tmp_path):
    root, env = tree_copy(tmp_path)
    r = virtlab("build", "--check", env=env)
    assert r.returncode == 0, r.stderr

    toml = root / "labs" / "01-hardware" / "lab.toml"
    text = toml.read_text(encoding="utf-8")
    old = 'title.fr = "Le matériel est-il prêt pour la virtualisation ?"'
    assert old in text
    toml.write_text(text.replace(old, 'title.fr = "Matériel : tout est prêt ?"'),
                    encoding="utf-8")

    r = virtlab("build", "--check", env={**env, "LANG": "C.UTF-8"})
    assert r.returncode == 1
    assert "sorties périmées" in r.stderr  # in the reader's language: French by default
    # The French title shows in the French page, the notebook (both halves share a head
    # cell), the lab maps; the English page does not change.
    expected = {"notebooks/01-hardware.ipynb", "notebooks/index.ipynb",
                "site/labs/01-hardware.md", "site/index.md"}
    assert stale_list(r) == expected

    before = snapshot(root)
    r = virtlab("build", env=env)
    assert r.returncode == 0, r.stderr
    after = snapshot(root)
    assert {k for k in after if after[k] != before.get(k)} == expected
    assert "Matériel : tout est prêt ?" in (root / "site/labs/01-hardware.md").read_text("utf-8")
    assert virtlab("build", "--check", env=env).returncode == 0


def test_a_new_lab_gets_pages_nav_and_map_and_a_removed_one_leaves_nothing(tmp_path):
    root, env = tree_copy(tmp_path)
    new = root / "labs" / "09-extra"
    shutil.copytree(root / "labs" / "01-hardware", new)
    toml = new / "lab.toml"
    toml.write_text(toml.read_text("utf-8").replace('id = "01-hardware"', 'id = "09-extra"'),
                    encoding="utf-8")

    r = virtlab("build", "--check", env=env)
    assert r.returncode == 1
    assert {"notebooks/09-extra.ipynb", "site/labs/09-extra.md", "site/labs/09-extra.en.md",
            "mkdocs.yml", "site/index.md", "site/index.en.md",
            "notebooks/index.ipynb"} <= stale_list(r)

    assert virtlab("build", env=env).returncode == 0
    assert "- labs/09-extra.md" in (root / "mkdocs.yml").read_text("utf-8")
    assert "(labs/09-extra.md)" in (root / "site/index.en.md").read_text("utf-8")

    shutil.rmtree(new)
    r = virtlab("build", "--check", env=env)
    assert r.returncode == 1
    assert {"notebooks/09-extra.ipynb", "site/labs/09-extra.md",
            "site/labs/09-extra.en.md"} <= stale_list(r)
    assert virtlab("build", env=env).returncode == 0
    assert not (root / "notebooks/09-extra.ipynb").exists()
    assert not (root / "site/labs/09-extra.md").exists()
    assert "09-extra" not in (root / "mkdocs.yml").read_text("utf-8")


def test_build_outside_a_source_tree_is_a_usage_error(tmp_path):
    env = dict(os.environ, VIRTLAB_ROOT=str(tmp_path))
    r = virtlab("build", "--check", env=env)
    assert r.returncode == 2
    assert "pas un dépôt virtlab" in r.stderr
    assert "Traceback" not in r.stderr


def test_instructions_without_a_title_line_are_refused_clearly(tmp_path):
    root, env = tree_copy(tmp_path)
    f = root / "labs" / "01-hardware" / "instructions.en.md"
    f.write_text("Some text without a title\n\n## Step\n", encoding="utf-8")
    r = virtlab("build", "--check", env=env)
    assert r.returncode == 2
    assert "instructions.en.md" in r.stderr and "« # Titre »" in r.stderr
    assert "Traceback" not in r.stderr


# --- the notebooks ---------------------------------------------------------------------

def committed_notebooks() -> list[Path]:
    nbs = sorted((REPO / "notebooks").glob("*.ipynb"))
    assert nbs, "no notebook committed"
    return nbs


@pytest.mark.parametrize("path", committed_notebooks(), ids=lambda p: p.name)
def test_notebook_is_valid_v4_without_outputs_or_machine_metadata(path):
    raw = path.read_text(encoding="utf-8")
    nb = nbformat.reads(raw, as_version=nbformat.NO_CONVERT)
    nbformat.validate(nb)
    assert nb.nbformat == 4 and nb.nbformat_minor >= 5
    assert set(nb.metadata) <= {"kernelspec", "language_info", "virtlab"}
    assert nb.metadata.kernelspec == {"display_name": "Python 3 (ipykernel)",
                                      "language": "python", "name": "python3"}
    assert nb.metadata.language_info == {"name": "python"}  # no version of this machine
    ids = [c.id for c in nb.cells]
    assert len(ids) == len(set(ids))
    assert all(CELL_ID_RE.match(i) for i in ids)
    for c in nb.cells:
        assert c.metadata == {}
        if c.cell_type == "code":
            assert c.outputs == [] and c.execution_count is None
    assert raw.endswith("\n") and "\r" not in raw
    # mkdocs-material syntax is translated for Jupyter (outside code blocks).
    for c in nb.cells:
        if c.cell_type == "markdown":
            for line, fenced in iter_lines(c.source):
                assert fenced or not line.lstrip().startswith(("!!!", "???", "===")), (c.id, line)
    if path.stem != "index":  # French half then English half, each closed by its check
        code_ids = [c.id for c in nb.cells if c.cell_type == "code"]
        assert code_ids[-1] == "en-check" and "fr-check" in code_ids
        assert nb.cells[-1].source == f'from checker import check\ncheck("{path.stem}", lang="en")'


def test_lab_notebook_layout():
    nb = nbformat.read(REPO / "notebooks" / "01-hardware.ipynb", as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    md = [c for c in nb.cells if c.cell_type == "markdown"]
    # French first, then English; one check cell each, last of its half.
    assert [c.id for c in code if c.id.endswith("check")] == ["fr-check", "en-check"]
    fr_check = next(c for c in nb.cells if c.id == "fr-check")
    assert fr_check.source == 'from checker import check\ncheck("01-hardware", lang="fr")'
    assert nb.cells[-1].id == "en-check"
    assert nb.cells[-1].source == 'from checker import check\ncheck("01-hardware", lang="en")'
    ids = [c.id for c in nb.cells]
    assert ids.index("fr-check") < min(i for i, c in enumerate(ids) if c.startswith("en-"))
    # `python notebook` blocks became code cells, in both halves; terminal commands did not.
    assert any("/proc/cpuinfo" in c.source and c.id.startswith("fr-") for c in code)
    assert any("/proc/cpuinfo" in c.source and c.id.startswith("en-") for c in code)
    for c in code:
        assert "sudo" not in c.source and "egrep" not in c.source
    # mkdocs-material syntax was translated for Jupyter.
    for c in md:
        for line in c.source.splitlines():
            assert not line.startswith(("!!!", "???", "===")), line
        assert "python notebook" not in c.source
    joined = "\n".join(c.source for c in md)
    assert "> **Debian 13 et 12 : lscpu parle français**" in joined
    assert "**Ligne de commande**" in joined and "**Command line**" in joined
    assert "egrep -c '(vmx|svm)' /proc/cpuinfo" in joined
    assert "# English version" in joined


def test_build_is_deterministic_byte_for_byte(tmp_path):
    a, env_a = tree_copy(tmp_path / "a")
    b, env_b = tree_copy(tmp_path / "b")
    for p in [*a.glob("notebooks/*.ipynb"), *a.glob("site/labs/*.md")]:
        p.unlink()
    for p in [*b.glob("notebooks/*.ipynb"), *b.glob("site/labs/*.md")]:
        p.unlink()
    assert virtlab("build", env=env_a).returncode == 0
    assert virtlab("build", env=dict(env_b, LANG="en_US.UTF-8", TZ="Asia/Tokyo",
                                      COLUMNS="37")).returncode == 0
    sa, sb = snapshot(a), snapshot(b)
    assert sa == sb
    # A second build finds nothing to do.
    r = virtlab("build", "--check", env=env_a)
    assert r.returncode == 0 and r.stderr == ""


# --- the instruction format ----------------------------------------------------------------

def test_title_line_is_required():
    assert split_title("# Hello\n\n## A\ntext", "x.md") == ("Hello", "## A\ntext")
    with pytest.raises(ValueError, match="first line must be the title"):
        split_title("## Not a title\n", "x.md")


def test_sections_ignore_headings_inside_code_blocks():
    body = "intro\n\n## A\n```bash\n## not a heading\n```\n## B\ntext"
    assert sections(body) == ["intro", "## A\n```bash\n## not a heading\n```", "## B\ntext"]


def test_admonitions_and_tabs_become_plain_jupyter_markdown():
    md = ('!!! note "Debian 12"\n    Install `qemu-system-x86`.\n\n    Second line.\n\nAfter.\n\n'
          '=== "virt-manager"\n    Click.\n\n=== "Ligne de commande"\n    ```bash\n    virsh list\n'
          '    ```\n')
    assert to_jupyter_md(md) == (
        "> **Debian 12**\n>\n> Install `qemu-system-x86`.\n>\n> Second line.\n\nAfter.\n\n"
        "**virt-manager**\n\nClick.\n\n**Ligne de commande**\n\n```bash\nvirsh list\n```")


def test_python_notebook_blocks_become_code_cells_and_plain_python_on_the_site():
    section = "## Step\n\nText.\n\n```python notebook\nprint(1)\n```\n\n```bash\nsudo ls\n```"
    got = chunks(section)
    assert [(c.kind, c.source) for c in got] == [
        ("markdown", "## Step\n\nText."), ("code", "print(1)"),
        ("markdown", "```bash\nsudo ls\n```")]
    assert to_site_md(section) == section.replace("```python notebook", "```python")


def test_generated_site_page_shows_objectives_points_and_the_check_command():
    page = (REPO / "site" / "labs" / "01-hardware.md").read_text(encoding="utf-8")
    assert page.startswith("# Lab 01 · Le matériel est-il prêt pour la virtualisation ?\n")
    assert "| `cpu-virt-flags` — Le processeur expose VT-x (vmx) ou AMD-V (svm) | 3 |" in page
    assert "| **Total** | **10** | |" in page
    assert "## Vérifier votre travail" in page and "```bash\nvirtlab check 01\n```" in page
    assert "Score : 7/10" in page  # the example report
    assert "```python notebook" not in page
    en = (REPO / "site" / "labs" / "01-hardware.en.md").read_text(encoding="utf-8")
    assert "## Check your work" in en and "Score: 7/10" in en
    data = json.loads((REPO / "notebooks" / "index.ipynb").read_text(encoding="utf-8"))
    assert "(01-hardware.ipynb)" in "".join(data["cells"][0]["source"])
