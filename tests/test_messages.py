"""One translation mechanism, complete catalogues, and help built from the registries.

- every module of ``checker/`` imported, every message of :data:`checker.i18n.CATALOGUE` has
  French and English, the same ``{placeholders}`` in both, and French typography;
- no other language mechanism is left in ``checker/`` or ``labs/`` (an AST scan: comparisons
  with ``"en"``/``"fr"``, functions named ``_tr``/``tr``, dict literals keyed by both
  ``"fr"`` and ``"en"``); the failure lists every offending file:line;
- the CLI's help, choices and the site's reference page come from the registries
  (:mod:`checker.commands`, :data:`checker.reporters.RENDERERS`, :class:`checker.exitcodes.Exit`).
"""

from __future__ import annotations

import ast
import contextlib
import importlib
import io
import pkgutil
import re
from pathlib import Path

import pytest

import checker
from checker.i18n import CATALOGUE, Text

REPO = Path(__file__).resolve().parent.parent

# Where the language mechanism itself lives: Text.get() and the lab.toml loader (whose
# `title.fr`/`title.en` fields are read by key).
MECHANISM = {"checker/i18n.py", "checker/catalog.py"}


def _import_all() -> list[str]:
    names = []
    for mod in pkgutil.walk_packages(checker.__path__, "checker."):
        if mod.name.endswith("__main__"):  # runs the CLI
            continue
        importlib.import_module(mod.name)
        names.append(mod.name)
    return names


@pytest.fixture(scope="module")
def catalogue() -> dict:
    _import_all()
    return CATALOGUE


def test_every_module_of_checker_imports_and_declares_its_messages(catalogue):
    names = _import_all()
    assert "checker.cli" in names and "checker.grade.exports" in names
    for key in ("cli.unknown-lab", "cli.usage", "grade.which-lab", "report.closing.ko",
                "watch.quit", "progress.best", "format.html", "exit.usage", "build.cli.option"):
        assert key in catalogue, key
    assert len(catalogue) > 150


def test_every_message_has_both_languages_with_the_same_placeholders(catalogue):
    bad = []
    for key, text in sorted(catalogue.items()):
        if not text.fr.strip() or not text.en.strip():
            bad.append(f"{key}: empty")
            continue
        fr, en = text.placeholders()
        if fr != en:
            bad.append(f"{key}: placeholders fr {sorted(fr)} != en {sorted(en)}")
    assert not bad, "\n".join(bad)


# ":" ";" "?" "!" used as punctuation (followed by a blank or the end), glued to the word
# before it; "ssh://", "{x!r}", "'tp1:!pc13'" are not punctuation.
_GLUED = re.compile(r"(?<=[^\s\"'`(\[{])([:;?!])(?=\s|$)")


def test_french_messages_put_a_space_before_double_punctuation(catalogue):
    bad = [f"{key}: {text.fr!r}" for key, text in sorted(catalogue.items())
           if _GLUED.search(text.fr)]
    assert not bad, "French typography (a space before : ; ? !):\n" + "\n".join(bad)


def test_english_messages_put_no_space_before_a_colon(catalogue):
    bad = [f"{key}: {text.en!r}" for key, text in sorted(catalogue.items())
           if re.search(r"\w :(\s|$)", text.en)]
    assert not bad, "\n".join(bad)


def test_the_typography_check_would_see_a_glued_colon():
    assert _GLUED.search("impossible d'écrire {path}: {reason}")
    assert _GLUED.search("Bravo!")
    assert not _GLUED.search("impossible d'écrire {path} : {reason} ; ssh://h {x!r} 'a:!b'")


# --- no other language mechanism -------------------------------------------------------------

def _offences(path: Path, rel: str) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=rel)
    out = []
    for node in ast.walk(tree):
        where = f"{rel}:{getattr(node, 'lineno', 0)}"
        if isinstance(node, ast.Compare):
            values = [node.left, *node.comparators]
            if any(isinstance(op, (ast.Eq, ast.NotEq)) for op in node.ops) and any(
                    isinstance(v, ast.Constant) and v.value in ("fr", "en") for v in values):
                out.append(f"{where}: compares with a language code ({ast.unparse(node)})")
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name in (
                "_tr", "tr"):
            out.append(f"{where}: a translation function {node.name}()")
        elif isinstance(node, ast.Assign) and isinstance(node.value, ast.Lambda) and any(
                isinstance(t, ast.Name) and t.id in ("_tr", "tr") for t in node.targets):
            out.append(f"{where}: a translation lambda")
        elif isinstance(node, ast.Dict):
            keys = {k.value for k in node.keys if isinstance(k, ast.Constant)}
            if {"fr", "en"} <= keys and rel not in MECHANISM:
                out.append(f"{where}: a dict keyed by language")
    return out


def scan(root: Path = REPO) -> list[str]:
    found = []
    for top in ("checker", "labs"):
        for path in sorted((root / top).rglob("*.py")):
            rel = path.relative_to(root).as_posix()
            if rel == "checker/i18n.py":
                continue
            found += _offences(path, rel)
    return found


def test_no_other_language_mechanism_is_left_in_checker_or_labs():
    found = scan()
    assert not found, ("texts a person reads go through checker.i18n (message()/Text); "
                       "left elsewhere:\n" + "\n".join(found))


def test_the_scan_would_see_each_kind_of_offence(tmp_path):
    (tmp_path / "checker").mkdir()
    (tmp_path / "labs").mkdir()
    (tmp_path / "checker" / "x.py").write_text(
        'def _tr(lang, fr, en):\n    return en if lang == "en" else fr\n'
        'tr = lambda fr, en: fr\n'
        'T = {"fr": "a", "en": "b"}\n', encoding="utf-8")
    (tmp_path / "labs" / "y.py").write_text('ok = "fr" != lang\n', encoding="utf-8")
    found = scan(tmp_path)
    assert any(f.startswith("checker/x.py:1: a translation function") for f in found)
    assert any(f.startswith("checker/x.py:2: compares") for f in found)
    assert any(f.startswith("checker/x.py:3: a translation lambda") for f in found)
    assert any(f.startswith("checker/x.py:4: a dict keyed") for f in found)
    assert any(f.startswith("labs/y.py:1: compares") for f in found)


# --- help and reference from the registries ------------------------------------------------

def _help(lang: str, *argv: str) -> str:
    from checker.cli import build_parser

    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as e:
        build_parser(lang).parse_args([*argv, "--help"])
    assert e.value.code == 0
    return " ".join(out.getvalue().split())


@pytest.mark.parametrize("lang", ["fr", "en"])
def test_every_command_and_option_help_is_in_the_readers_language(lang, monkeypatch):
    from checker.commands import COMMANDS

    monkeypatch.setenv("COLUMNS", "300")
    top = _help(lang)
    for command in COMMANDS.values():
        assert command.help.get(lang) in top, command.name
        page = _help(lang, command.name)
        for o in command.options:
            if o.help is not None:
                assert o.help.get(lang) in page, (command.name, o.flags)
                other = o.help.get({"fr": "en", "en": "fr"}[lang])
                if other != o.help.get(lang):
                    assert other not in page, (command.name, o.flags)


def test_check_accepts_every_format_of_the_registry_and_only_those():
    from checker.cli import build_parser
    from checker.reporters import FORMATS, RENDERERS

    assert set(FORMATS) == {name for name, r in RENDERERS.items() if r.cli}
    for fmt in FORMATS:
        assert build_parser("en").parse_args(["check", "01", "--format", fmt]).format == fmt
    with contextlib.redirect_stderr(io.StringIO()), pytest.raises(SystemExit) as e:
        build_parser("en").parse_args(["check", "01", "--format", "notebook"])
    assert e.value.code == 2


@pytest.mark.parametrize("lang", ["fr", "en"])
def test_the_reference_page_lists_every_command_format_and_exit_code(lang):
    from checker.build import cli_reference
    from checker.commands import COMMANDS, usage
    from checker.exitcodes import Exit
    from checker.reporters import FORMATS, RENDERERS

    ref = cli_reference(lang)
    for command in COMMANDS.values():
        assert f"### `virtlab {command.name}`" in ref and usage(command, lang) in ref
    for fmt in FORMATS:
        assert (f"| `{fmt}` | `{RENDERERS[fmt].suffix}` | "
                f"{RENDERERS[fmt].description.get(lang)}" in ref)
    for code in Exit:
        assert f"| {int(code)} | {code.description.get(lang)} |" in ref


@pytest.mark.parametrize("lang, prefix", [("en", "usage: "), ("fr", "usage : ")])
def test_the_usage_line_of_the_reference_is_argparses(monkeypatch, lang, prefix):
    """The reference's usage lines (from the registry) are the ones argparse prints, value
    names in the reader's language included."""
    from checker.cli import build_parser
    from checker.commands import COMMANDS, usage

    monkeypatch.setenv("COLUMNS", "10000")
    for command in COMMANDS.values():
        # a usage error the command's own parser reports (with its own usage line)
        chosen = next((o for o in command.options if o.choices and not o.positional), None)
        bad = ([chosen.flags[0], "!bad"] if chosen else
               [next(f"{o.flags[0]}=x" for o in command.options if o.action == "store_true")])
        out = io.StringIO()
        with contextlib.redirect_stderr(out), pytest.raises(SystemExit):
            build_parser(lang).parse_args([command.name, *bad])
        assert out.getvalue().splitlines()[0] == prefix + usage(command, lang), command.name


def test_french_help_names_values_in_french():
    """``--output FICHIER``, ``--user NOM``…: no English value name in French help."""
    from checker import commands
    from checker.cli import build_parser

    english = {t.en for name, t in vars(commands).items()
               if name.startswith("V_") and isinstance(t, Text) and t.fr != t.en}
    assert {"FILE", "NAME", "HOST", "COMMAND"} <= english
    texts = [build_parser("fr").format_help()]
    for c in commands.COMMANDS:
        out = io.StringIO()
        with contextlib.redirect_stdout(out), pytest.raises(SystemExit):
            build_parser("fr").parse_args([c, "--help"])
        texts.append(out.getvalue())
    words = set(re.findall(r"\b[A-Z][A-Z_]+\b", "\n".join(texts)))
    assert not words & english, words & english
    assert "--output FICHIER" in "\n".join(texts)
