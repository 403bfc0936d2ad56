"""The code's layering, read from its syntax trees (no import, nothing run).

- Nothing private of another module is touched: no ``from m import _name``, no ``x._name``
  except on ``self``/``cls`` (our modules and libraries' objects alike). Dunders and the few
  underscore names that are public protocols (Jupyter's ``_repr_*_``, namedtuple's ``_replace``…,
  ``os._exit``) are allowed.
- The library does not import its CLI: no module of ``checker/`` but ``cli.py`` and
  ``__main__.py`` imports ``checker.cli`` or ``checker.__main__``, at any level (inside functions
  too), and no import cycle between ``checker``'s top-level modules goes through the CLI.
- No path of a developer's machine in code, tests, labs or CI scripts: not the workspace this
  project is developed in (``/work``), not this checkout's location or the folder holding it,
  not the running user's home. System paths the product reads (/etc, /var/lib/libvirt, /proc,
  /home/<learner> built from a name, /root in a root filesystem…) are not concerned.

Each rule has a tiny self-test proving it catches an offence.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SCANNED = ("checker", "labs", "tests", "benchmarks")
# data, not code of ours: fixtures hold stand-ins and recorded outputs
SKIPPED_PARTS = {"fixtures", "golden", "__pycache__"}


def sources(*tops: str) -> Iterator[Path]:
    for t in tops:
        for p in sorted((REPO / t).rglob("*.py")):
            if not SKIPPED_PARTS.intersection(p.relative_to(REPO).parts):
                yield p


def parse(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


# --- 1. nothing private of another module -------------------------------------------------------

# Underscore names that are public by their library's documentation.
PUBLIC_UNDERSCORE = {"_exit", "_asdict", "_replace", "_fields", "_make", "_field_defaults"}


def is_private(name: str) -> bool:
    if not name.startswith("_") or (name.startswith("__") and name.endswith("__")):
        return False
    if name.startswith("_repr_") and name.endswith("_"):   # Jupyter's display protocol
        return False
    return name not in PUBLIC_UNDERSCORE


def private_uses(tree: ast.AST) -> list[str]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module != "__future__":
            if any(is_private(part) for part in (node.module or "").split(".")):
                found.append(f"line {node.lineno}: from {node.module} import …")
            found += [f"line {node.lineno}: from {node.module} import {a.name}"
                      for a in node.names if is_private(a.name)]
        elif isinstance(node, ast.Import):
            found += [f"line {node.lineno}: import {a.name}" for a in node.names
                      if any(is_private(part) for part in a.name.split("."))]
        elif isinstance(node, ast.Attribute) and is_private(node.attr):
            if not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")
                    or _is_super_call(node.value)):
                found.append(f"line {node.lineno}: {ast.unparse(node)}")
    return found


def _is_super_call(node: ast.expr) -> bool:
    """``super()._hook()``: a subclass extending its own base class's hook."""
    return (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
            and node.func.id == "super")


def test_no_private_name_of_another_module_is_touched():
    offences = {str(p.relative_to(REPO)): u for p in sources(*SCANNED)
                if (u := private_uses(parse(p)))}
    assert offences == {}


def test_the_private_rule_catches_an_offence():
    code = """
from sandbox import _read_pid, Sandbox
import _thread
from _pytest.monkeypatch import MonkeyPatch
cmd = host.backend._build_ssh_command("true")
self._conn.close(); cls._cache = {}; r._repr_html_(); t.__class__; os._exit(0); p._replace()
super()._write_configs(); other()._hidden
"""
    assert sorted(private_uses(ast.parse(code))) == [
        "line 2: from sandbox import _read_pid", "line 3: import _thread",
        "line 4: from _pytest.monkeypatch import …", "line 5: host.backend._build_ssh_command",
        "line 7: other()._hidden"]


# --- 2. the library does not import its CLI ------------------------------------------------------

CLI = {"checker.cli", "checker.__main__"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported(tree: ast.AST, here: str, is_package: bool) -> set[str]:
    """Every module an import names, at any level of ``tree`` (functions included), absolute;
    ``from pkg import name`` counts as ``pkg.name`` too (name may be a module), and so does
    ``import_module("name")`` / ``__import__("name")`` with a literal name."""
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            f = node.func
            name = f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) \
                else ""
            if name in ("import_module", "__import__") and isinstance(node.args[0].value, str):
                out.add(node.args[0].value)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here.split(".") if is_package else here.split(".")[:-1]
                base = base[:len(base) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            out.add(mod)
            out.update(f"{mod}.{a.name}" for a in node.names)
    return out


def top(module: str) -> str | None:
    """``checker.grade.runner`` -> ``checker.grade``; outside ``checker``: None."""
    parts = module.split(".")
    if parts[0] != "checker" or len(parts) < 2:
        return None
    return ".".join(parts[:2])


def graph(files: dict[str, tuple[ast.AST, bool]]) -> dict[str, set[str]]:
    """Import graph between checker's top-level modules (a sub-package counts as one)."""
    known = {top(m) for m in files} - {None}
    g: dict[str, set[str]] = {}
    for mod, (tree, is_pkg) in files.items():
        src = top(mod)
        if src is None:
            continue
        for target in imported(tree, mod, is_pkg):
            dst = top(target)
            if dst in known and dst != src:
                g.setdefault(src, set()).add(dst)
    return g


def reaches(g: dict[str, set[str]], start: str, goal: str) -> bool:
    seen, todo = set(), [start]
    while todo:
        n = todo.pop()
        for m in g.get(n, ()):
            if m == goal:
                return True
            if m not in seen:
                seen.add(m)
                todo.append(m)
    return False


def cli_offences(files: dict[str, tuple[ast.AST, bool]]) -> list[str]:
    found = []
    for mod, (tree, is_pkg) in files.items():
        bad = sorted(imported(tree, mod, is_pkg) & CLI)
        if mod not in CLI and bad:
            found.append(f"{mod} imports {', '.join(bad)}")
    g = graph(files)
    found += [f"import cycle through {c}" for c in sorted(CLI) if reaches(g, c, c)]
    return found


def checker_files() -> dict[str, tuple[ast.AST, bool]]:
    return {module_name(p): (parse(p), p.name == "__init__.py") for p in sources("checker")}


def test_the_library_does_not_import_its_cli():
    files = checker_files()
    assert "checker.cli" in files and "checker.engine" in files
    assert cli_offences(files) == []


def test_the_cli_rule_catches_an_offence():
    def mod(code: str, pkg: bool = False) -> tuple[ast.AST, bool]:
        return ast.parse(code), pkg

    # an import inside a function, in a sub-package, relative
    files = {"checker.cli": mod("from checker import engine"),
             "checker.engine": mod("x = 1"),
             "checker.grade.command": mod("def f():\n    from ..cli import main")}
    assert cli_offences(files) == ["checker.grade.command imports checker.cli"]
    # `from checker import cli`, and the cycle it closes
    files["checker.engine"] = mod("from checker import cli")
    assert cli_offences(files) == ["checker.engine imports checker.cli",
                                   "checker.grade.command imports checker.cli",
                                   "import cycle through checker.cli"]
    # by name, through importlib
    assert cli_offences({"checker.watch": mod("import importlib\n"
                                              "importlib.import_module('checker.__main__')")}) \
        == ["checker.watch imports checker.__main__"]
    # the CLI importing the library is the right direction: no offence
    assert cli_offences({"checker.cli": mod("import checker.engine"),
                         "checker.engine": mod("import json")}) == []


# --- 3. no path of a developer's machine ---------------------------------------------------------

# What is scanned as text: code, tests, labs (checks, scripts, instructions), CI scripts.
TEXT_TOPS = (*SCANNED, ".ci")
TEXT_FILES = ("pyproject.toml", "README.md", "mkdocs.yml")
TEXT_SUFFIXES = {".py", ".sh", ".toml", ".md", ".json", ".j2", ".yml", ".yaml", ".cfg", ""}


def machine_paths(checkout: Path = REPO, home: Path | None = None) -> list[str]:
    """The paths only a developer's machine has: the workspace this project is developed in,
    this checkout and the folder holding it, the running user's home (under /home)."""
    needles = ["/" + "work" + "/", f"{checkout}/"]
    if len(checkout.parent.parts) > 2:
        needles.append(f"{checkout.parent}/")
    home = home if home is not None else Path.home()
    if home.parent == Path("/home"):
        needles.append(f"{home}/")
    return sorted(set(needles))


def foreign_paths(text: str, needles: list[str]) -> list[str]:
    return [f"line {n}: {needle!r}" for n, line in enumerate(text.splitlines(), 1)
            for needle in needles if needle in line]


def text_files() -> Iterator[Path]:
    for t in TEXT_TOPS:
        for p in sorted((REPO / t).rglob("*")):
            rel = p.relative_to(REPO).parts
            if (p.is_file() and p.suffix in TEXT_SUFFIXES
                    and not {"fixtures", "golden", "__pycache__"}.intersection(rel)):
                yield p
    yield from (REPO / f for f in TEXT_FILES if (REPO / f).exists())


def test_no_path_outside_the_repository():
    needles = machine_paths()
    files = list(text_files())
    assert REPO / "checker" / "engine.py" in files and REPO / ".ci" / "run" in files
    offences = {str(p.relative_to(REPO)): f for p in files
                if (f := foreign_paths(p.read_text(encoding="utf-8", errors="replace"), needles))}
    assert offences == {}


def test_the_path_rule_catches_an_offence():
    needles = machine_paths(Path("/srv/ci/virtlab"), home=Path("/home/dev"))
    text = "\n".join([
        "ok = ['/etc/os-release', '/var/lib/libvirt/images', f'/home/{user}', '/root/.ssh']",
        "DESIGN = '/" + "work/shared/design/labs.md'",
        "HERE = '/srv/ci/virtlab/labs'",
        "NEXT = '/srv/ci/other/x'",
        "MINE = '/home/dev/notes'",
    ])
    assert foreign_paths(text, needles) == [
        "line 2: '/" + "work/'", "line 3: '/srv/ci/'", "line 3: '/srv/ci/virtlab/'",
        "line 4: '/srv/ci/'", "line 5: '/home/dev/'"]
