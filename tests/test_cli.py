"""The command line as a learner meets it: ``python -m checker`` of this checkout, and the
``virtlab`` console script of a fresh, non-editable ``pip install .``.

Exit codes (design README): 0 all passed, 1 some did not, 2 bad usage, 3 unreachable host.
No command ever answers with a Python traceback.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import venv
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from checker.i18n import LOCALE_VARS

REPO = Path(__file__).resolve().parent.parent
HEAVY = ("testinfra", "libvirt", "rich", "jinja2", "pytest", "_pytest", "paramiko")


_DATA: dict[str, str] = {}


@pytest.fixture(autouse=True, scope="module")
def _private_progress_store(tmp_path_factory):
    # `virtlab check` records each report in the learner's progress store: keep the tests'
    # reports out of the real one.
    _DATA["VIRTLAB_DATA"] = str(tmp_path_factory.mktemp("virtlab-data"))
    yield
    _DATA.clear()


def run(*args: str, env: dict[str, str] | None = None, cwd: Path | str = REPO,
        exe: list[str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if k not in LOCALE_VARS + ("LANGUAGE",)}
    full_env.update({"LANG": "C.UTF-8", **_DATA, **(env or {})})
    full_env.pop("VIRTLAB_DEBUG", None)
    cmd = (exe or [sys.executable, "-m", "checker"]) + list(args)
    p = subprocess.run(cmd, capture_output=True, text=True, env=full_env, cwd=cwd,
                       timeout=timeout, stdin=subprocess.DEVNULL)
    assert "Traceback" not in p.stderr, p.stderr
    assert "Traceback" not in p.stdout, p.stdout
    return p


def lab_ids() -> list[str]:
    return sorted(p.name for p in (REPO / "labs").iterdir() if re.match(r"^\d{2}-", p.name))


# --- list / show -------------------------------------------------------------------------

def test_list_shows_lab_01_with_its_title():
    p = run("list")
    assert p.returncode in (0, 2)  # 2: some lab being written is malformed (said on stderr)
    assert "01-hardware" in p.stdout and "Le matériel est-il prêt" in p.stdout
    if p.returncode == 2:
        assert "malformed lab" in p.stderr or "lab mal formé" in p.stderr


def test_list_json_parses_and_lists_the_labs_in_order():
    p = run("list", "--format", "json", "--lang", "en")
    labs = json.loads(p.stdout)
    ids = [lab["id"] for lab in labs]
    assert "01-hardware" in ids and ids == sorted(ids)
    first = labs[ids.index("01-hardware")]
    assert first["title"] == "Is the hardware ready for virtualization?"
    assert first["objectives"] == 4 and first["max_score"] == 10


@pytest.mark.parametrize("query", ["01", "1", "01-hardware", "hardware"])
def test_show_finds_a_lab_by_number_id_or_slug(query):
    p = run("show", query, "--lang", "en")
    assert p.returncode == 0
    assert p.stdout.startswith("01-hardware — Is the hardware ready for virtualization?")
    for oid in ("cpu-virt-flags", "kvm-modules", "dev-kvm", "host-resources"):
        assert oid in p.stdout


# --- bad usage: exit 2, a clear message -----------------------------------------------------

@pytest.mark.parametrize("cmd", [["check", "99"], ["show", "nope"], ["check", "hardwar"]])
def test_unknown_lab_exits_2_and_lists_the_valid_labs(cmd):
    p = run(*cmd, "--lang", "en")
    assert p.returncode == 2
    assert "unknown lab" in p.stderr and "Valid labs:" in p.stderr
    for lab_id in lab_ids():
        assert lab_id in p.stderr


def test_unknown_lab_message_is_french_by_default():
    p = run("check", "99")
    assert p.returncode == 2 and "lab inconnu '99'" in p.stderr and "01-hardware" in p.stderr


@pytest.mark.parametrize("args, words", [
    (["check", "01", "--bogus"], ["unrecognized arguments: --bogus"]),
    (["check", "01", "--format", "xml"], ["invalid choice: 'xml'", "json", "junit", "html"]),
    (["list", "--format", "csv"], ["invalid choice: 'csv'"]),
    (["check", "01", "--lang", "de"], ["invalid choice: 'de'"]),
    (["check", "01", "--timeout", "zero"], ["whole number of seconds"]),
    (["frobnicate"], ["invalid choice: 'frobnicate'"]),
    ([], ["required: COMMAND"]),
    (["check"], ["required: LAB"]),
])
def test_bad_options_exit_2_with_usage(args, words):
    p = run(*args, env={"LANG": "en_US.UTF-8"})
    assert p.returncode == 2
    assert "usage: virtlab" in p.stderr and "error: " in p.stderr
    for w in words:
        assert w in p.stderr


@pytest.mark.parametrize("args, words", [
    (["check", "01", "--bogus"], "arguments non reconnus : --bogus"),
    (["check"], "arguments obligatoires manquants : LAB"),
    ([], "arguments obligatoires manquants : COMMANDE"),
    (["check", "01", "--format", "xml"], "argument --format : choix invalide : 'xml'"),
    (["check", "01", "--timeout", "zero"], "un nombre entier de secondes est attendu"),
    (["check", "01", "--host"], "argument --host : une valeur est attendue"),
    (["grade", "01", "--hosts", "ssh://a@h", "--inventory", "x"],
     "argument --inventory : incompatible avec l'argument --hosts"),
    (["grade", "01", "--workers", "many"], "argument --workers : valeur invalide (int) : 'many'"),
])
def test_usage_errors_are_in_the_readers_language(args, words):
    """argparse's own words too: French by default, English with LANG=en… or --lang en."""
    fr = run(*args)
    assert fr.returncode == 2
    assert "usage : virtlab" in fr.stderr and "erreur : " in fr.stderr, fr.stderr
    assert words in fr.stderr, fr.stderr
    assert "usage: " not in fr.stderr
    en = run(*args, "--lang", "en") if args else run(env={"LANG": "en_US.UTF-8"})
    assert en.returncode == 2
    assert "usage: virtlab" in en.stderr and "error: " in en.stderr, en.stderr


def test_help_is_french_by_default_and_english_on_request():
    fr = run("--help")
    assert fr.returncode == 0
    for words in ("usage : virtlab", "options :", "commandes :", "afficher cette aide",
                  "lister les labs", "codes de sortie :", "130"):
        assert words in fr.stdout, words
    assert "show this help" not in fr.stdout
    for en in (run("--help", "--lang", "en"), run("--help", env={"LANG": "en_US.UTF-8"})):
        assert en.returncode == 0
        for words in ("usage: virtlab", "options:", "commands:", "show this help message",
                      "list the labs", "exit codes:"):
            assert words in en.stdout, words
    sub = run("check", "--help")
    assert "arguments positionnels :" in sub.stdout and "format du rapport" in sub.stdout
    sub = run("check", "--help", "--lang", "en")
    assert "positional arguments:" in sub.stdout and "report format" in sub.stdout


def test_help_lists_every_format_and_exit_code_from_their_registries():
    from checker.exitcodes import Exit
    from checker.reporters import FORMATS

    out = run("check", "--help", env={"LANG": "en_US.UTF-8", "COLUMNS": "200"}).stdout
    assert "{" + ",".join(FORMATS) + "}" in out
    top = run("--help", env={"COLUMNS": "200"}).stdout
    for code in Exit:
        assert f"  {int(code):<5}{code.description.fr[:30]}" in top


@pytest.mark.parametrize("spec, why_fr, why_en", [
    ("foo", "spécification d'hôte invalide 'foo' : local://, ssh://",
     "bad host spec 'foo': expected local://, ssh://"),
    ("bogus://x", "spécification d'hôte invalide 'bogus://x' : moteur inconnu 'bogus'",
     "bad host spec 'bogus://x': unknown backend 'bogus'"),
    ("paramiko://x", "spécification d'hôte refusée 'paramiko://x' : le moteur 'paramiko'",
     "bad host spec 'paramiko://x': the 'paramiko' backend"),
    ("ssh://", "hôte refusé 'ssh://' : nom d'hôte '' invalide",
     "host refused 'ssh://': invalid host name ''"),
    ("ssh://pc 12", "hôte refusé 'ssh://pc 12' : caractère non ASCII, espace",
     "host refused 'ssh://pc 12': non-ASCII, blank or control character"),
    ("ssh://alice@127.0.0.1:99999", "le port doit être un nombre de 1 à 65535",
     "the port must be a number in 1..65535"),
])
def test_bad_host_spec_exits_2_and_says_what_is_expected(spec, why_fr, why_en):
    """In the reader's language only: French by default, English with --lang en."""
    fr = run("check", "01", "--host", spec)
    en = run("check", "01", "--host", spec, "--lang", "en")
    assert fr.returncode == en.returncode == 2
    assert why_fr in fr.stderr and why_en not in fr.stderr
    assert why_en in en.stderr and why_fr not in en.stderr
    assert fr.stderr.count("\n") == en.stderr.count("\n") == 1  # one line, one language


def test_unreachable_host_exits_3_naming_the_host_and_why_without_prompting():
    # Port 1 on loopback: nothing listens, ssh must give up at once (BatchMode: no prompt).
    p = run("check", "01", "--host", "ssh://nobody@127.0.0.1:1", "--timeout", "5", "--lang", "en",
            timeout=30)
    assert p.returncode == 3, p.stderr
    assert "cannot inspect ssh://nobody@127.0.0.1:1" in p.stderr
    assert "Connection refused" in p.stderr or "port 1" in p.stderr
    assert p.stdout == ""


@pytest.mark.parametrize("target", ["/nonexistent-dir/report.json", "{tmp}", "/proc/virtlab.json"])
def test_output_to_an_unwritable_path_exits_2(tmp_path, target):
    p = run("check", "01", "--format", "json", "--output", target.format(tmp=tmp_path),
            "--lang", "en")
    assert p.returncode == 2
    assert "cannot write" in p.stderr


# --- check ---------------------------------------------------------------------------------

def test_check_json_parses_and_its_exit_code_says_whether_it_passed():
    p = run("check", "01", "--format", "json")
    report = json.loads(p.stdout)
    assert report["lab"] == "01-hardware" and report["lang"] == "fr"
    assert [o["id"] for o in report["objectives"]] == [
        "cpu-virt-flags", "kvm-modules", "dev-kvm", "host-resources"]
    assert p.returncode == (0 if report["passed"] else 1)


def test_check_in_english():
    p = run("check", "01", "--format", "json", "--lang", "en")
    report = json.loads(p.stdout)
    assert report["lang"] == "en" and report["title"] == "Is the hardware ready for virtualization?"
    text = run("check", "01", "--lang", "en").stdout
    assert "Score: " in text and "host: local://" in text


def test_lang_defaults_to_the_environment():
    p = run("check", "01", "--format", "json", env={"LANG": "en_US.UTF-8"})
    assert json.loads(p.stdout)["lang"] == "en"


def test_check_writes_the_report_to_output_and_shows_the_summary(tmp_path):
    out = tmp_path / "r.xml"
    p = run("check", "01", "--format", "junit", "--output", str(out))
    assert p.returncode in (0, 1)
    suite = ET.parse(out).getroot().find("testsuite")
    assert suite is not None and len(suite.findall("testcase")) == 4
    assert "Score : " in p.stdout  # the terminal still gets the text summary


def test_check_html_to_stdout_is_a_page():
    p = run("check", "01", "--format", "html")
    assert p.stdout.startswith("<!DOCTYPE html>") and "cpu-virt-flags" in p.stdout


def test_piped_text_has_no_colour():
    p = run("check", "01")
    assert "\x1b[" not in p.stdout and "cpu-virt-flags" in p.stdout


# --- starting fast: no heavy import on --help and list ----------------------------------

def imported_modules(*args: str) -> set[str]:
    p = subprocess.run([sys.executable, "-X", "importtime", "-m", "checker", *args],
                       capture_output=True, text=True, cwd=REPO, stdin=subprocess.DEVNULL)
    assert p.returncode in (0, 1, 2), p.stderr[-2000:]
    mods = set()
    for line in p.stderr.splitlines():
        m = re.match(r"import time:\s+\d+ \|\s+\d+ \|\s*(\S+)", line)
        if m:
            mods.add(m.group(1))
    assert "checker.cli" in mods  # the measure works
    return mods


@pytest.mark.parametrize("args", [["--help"], ["list"], ["list", "--format", "json"],
                                  ["show", "01"]])
def test_help_list_and_show_import_nothing_heavy(args):
    mods = imported_modules(*args)
    heavy = sorted(m for m in mods if m.split(".")[0] in HEAVY)
    assert not heavy, f"virtlab {' '.join(args)} imports {heavy}"


def test_the_importtime_measure_would_see_a_heavy_import():
    # The same measure on `check` does see testinfra: the test above can fail.
    mods = imported_modules("check", "01", "--format", "json")
    assert "testinfra" in mods


# --- a fresh, non-editable install ----------------------------------------------------------

@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A new venv with `pip install .` of a copy of this checkout (not editable)."""
    base = tmp_path_factory.mktemp("install")
    src = base / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        if (REPO / name).exists():
            shutil.copy2(REPO / name, src / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(REPO / "checker", src / "checker", ignore=ignore)
    shutil.copytree(REPO / "labs", src / "labs", ignore=ignore)
    env_dir = base / "venv"
    venv.create(env_dir, with_pip=True)
    pip = subprocess.run([str(env_dir / "bin" / "python"), "-m", "pip", "install", "-q",
                          "--disable-pip-version-check", str(src)],
                         capture_output=True, text=True, timeout=900, cwd=base)
    assert pip.returncode == 0, pip.stdout[-3000:] + pip.stderr[-3000:]
    return env_dir


def _venv_run(env_dir: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTLAB_LABS")}
    env["PATH"] = f"{env_dir / 'bin'}:{env.get('PATH', '')}"
    env["LANG"] = "C.UTF-8"
    env.update(_DATA)
    p = subprocess.run([str(env_dir / "bin" / "virtlab"), *args], capture_output=True,
                       text=True, cwd=cwd, env=env, timeout=120, stdin=subprocess.DEVNULL)
    assert "Traceback" not in p.stderr, p.stderr
    return p


def test_installed_package_carries_every_lab_file(installed):
    py = installed / "bin" / "python"
    where = subprocess.run([str(py), "-c", "import checker.catalog as c; print(c.labs_root())"],
                           capture_output=True, text=True, cwd="/", check=True).stdout.strip()
    labs = Path(where)
    assert labs.is_relative_to(installed), f"labs read from {labs}, not from the install"

    def files(root: Path) -> set[str]:
        return {str(p.relative_to(root)) for p in root.rglob("*")
                if p.is_file() and "__pycache__" not in p.parts}

    assert files(labs) == files(REPO / "labs")


def test_installed_virtlab_works_from_another_directory(installed, tmp_path):
    p = _venv_run(installed, "list", cwd=tmp_path)
    assert "01-hardware" in p.stdout
    assert p.returncode in (0, 2)
    p = _venv_run(installed, "show", "01", "--lang", "en", cwd=tmp_path)
    assert p.returncode == 0 and "cpu-virt-flags" in p.stdout
    p = _venv_run(installed, "check", "01", "--format", "json", cwd=tmp_path)
    assert p.returncode in (0, 1), p.stderr
    report = json.loads(p.stdout)
    assert report["lab"] == "01-hardware" and len(report["objectives"]) == 4
    assert {o["status"] for o in report["objectives"]} <= {"pass", "fail", "skip"}
    p = _venv_run(installed, "check", "01", "--host", "bogus://x", cwd=tmp_path)
    assert p.returncode == 2


def test_installed_list_exit_code_matches_the_state_of_the_labs(installed, tmp_path):
    from checker.catalog import CatalogError, load_lab

    broken = []
    for lab_id in lab_ids():
        try:
            load_lab(REPO / "labs" / lab_id)
        except CatalogError:
            broken.append(lab_id)
    p = _venv_run(installed, "list", cwd=tmp_path)
    assert p.returncode == (2 if broken else 0)
    for lab_id in broken:
        assert lab_id in p.stderr


def test_every_subpackage_of_checker_is_packaged():
    import tomllib

    conf = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    listed = set(conf["tool"]["setuptools"]["packages"])
    present = {".".join(p.parent.relative_to(REPO).parts)
               for p in (REPO / "checker").rglob("__init__.py") if "__pycache__" not in p.parts}
    missing = sorted(present - listed)
    assert not missing, f"pyproject.toml [tool.setuptools] packages lacks {missing}"
    assert "checker.labs" in listed


def test_installed_virtlab_builds_the_checkout_it_is_run_in(installed, tmp_path):
    """`virtlab build --check` finds the source tree from the working directory, whatever
    the install (this one is not editable: its labs are a copy inside the venv)."""
    for where in (REPO, REPO / "site", REPO / "labs" / "01-hardware"):
        p = _venv_run(installed, "build", "--check", cwd=where)
        assert p.returncode == 0, (where, p.stdout, p.stderr)
    p = _venv_run(installed, "build", "--check", cwd=tmp_path)
    assert p.returncode == 2 and "pas un dépôt virtlab" in p.stderr


def test_installed_package_ships_its_json_schemas(installed):
    code = ("import json; from checker.schemas import path, NAMES\n"
            "print(all(json.loads(path(n).read_text())['$schema'].endswith('2020-12/schema')"
            " for n in NAMES))")
    out = subprocess.run([str(installed / "bin" / "python"), "-c", code], capture_output=True,
                         text=True, cwd="/", check=True).stdout.strip()
    assert out == "True"


def test_instructor_commands_without_their_extra_say_how_to_install_it(installed, tmp_path):
    """A plain `pip install virtlab` has no ansible-core nor matplotlib: the README's grading
    command then says what to install, never "internal error"."""
    inv = tmp_path / "class.ini"
    inv.write_text("[c]\npc01 ansible_user=alice\n")
    p = _venv_run(installed, "grade", "02", "--inventory", str(inv), "--csv", "g.csv",
                  "--html", "c.html", "--db", str(tmp_path / "gb.sqlite"), cwd=tmp_path)
    assert p.returncode == 2, p.stderr
    assert "internal error" not in p.stderr
    assert "pip install 'virtlab[grade]'" in p.stderr and "matplotlib" in p.stderr
    p = _venv_run(installed, "grade", "02", "--inventory", str(inv),
                  "--db", str(tmp_path / "gb.sqlite"), cwd=tmp_path)
    assert p.returncode == 2 and "ansible" in p.stderr and "virtlab[grade]" in p.stderr


def test_the_readme_install_gives_the_instructor_features_the_readme_shows():
    """README: `sudo bash .ci/install`, then `virtlab grade … --inventory … --html …`: the
    install's extras must carry what those need (ansible-core, matplotlib)."""
    import re
    import tomllib

    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert "sudo bash .ci/install" in readme and "virtlab grade" in readme
    assert "--inventory" in readme and "--html" in readme
    script = (REPO / ".ci" / "install").read_text(encoding="utf-8")
    # the extras of the main (not --test) install: `else extras=a,b` or a pip line `.[a,b]`
    m = re.search(r"else extras=([a-z,]+)", script)
    if m is None:
        lines = [ln for ln in script.splitlines()
                 if "pip install" in ln and ".[" in ln and "'.[test]'" not in ln]
        assert len(lines) == 1, lines
        m = re.search(r"\.\[([a-z,]+)\]", lines[0])
    extras = set(m.group(1).split(","))
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    have = {d.split(">")[0].split("[")[0] for x in extras for d in deps[x]}
    assert {"ansible-core", "matplotlib"} <= have, (extras, have)
