"""The reader's language from the environment, in POSIX order, through the real command.

``--lang`` first; else the first entry of ``LANGUAGE`` (only when the locale is not C/POSIX,
as GNU gettext does); else ``LC_ALL``, ``LC_MESSAGES``, ``LANG``; else French. Each case runs
``virtlab --help`` and ``virtlab list`` as a learner would, in a subprocess with that
environment.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from checker.commands import HELP
from checker.i18n import resolve_lang

REPO = Path(__file__).resolve().parent.parent
LOCALE_KEYS = ("LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG")
FR_LIST, EN_LIST = "objectifs · ", "objectives · "


def _virtlab() -> list[str]:
    exe = Path(sys.executable).parent / "virtlab"
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "checker"]


def run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if k not in LOCALE_KEYS}
    full.pop("VIRTLAB_DEBUG", None)
    full.update(env)
    p = subprocess.run(_virtlab() + list(args), capture_output=True, text=True, env=full,
                       cwd=REPO, timeout=60, stdin=subprocess.DEVNULL)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "Traceback" not in p.stderr
    return p


def lang_of_help(env: dict[str, str], *extra: str) -> str:
    out = run("--help", *extra, env=env).stdout
    fr, en = HELP.get("fr") in out, HELP.get("en") in out
    assert fr != en, out
    return "fr" if fr else "en"


def lang_of_list(env: dict[str, str], *extra: str) -> str:
    out = run("list", *extra, env=env).stdout
    fr, en = FR_LIST in out, EN_LIST in out
    assert fr != en, out
    return "fr" if fr else "en"


CASES = [
    # (environment, expected language, why)
    ({}, "fr", "nothing set: French"),
    ({"LANG": "C.UTF-8"}, "fr", "C locale: French"),
    ({"LANG": "en_US.UTF-8"}, "en", "LANG"),
    ({"LANG": "fr_FR.UTF-8"}, "fr", "LANG"),
    ({"LANG": "de_DE.UTF-8"}, "fr", "a language virtlab does not write: French"),
    ({"LC_MESSAGES": "en_GB.UTF-8"}, "en", "LC_MESSAGES alone"),
    ({"LC_MESSAGES": "en_GB.UTF-8", "LANG": "fr_FR.UTF-8"}, "en", "LC_MESSAGES over LANG"),
    ({"LC_MESSAGES": "fr_FR.UTF-8", "LANG": "en_US.UTF-8"}, "fr", "LC_MESSAGES over LANG"),
    ({"LC_ALL": "en_US.UTF-8", "LANG": "fr_FR.UTF-8"}, "en", "LC_ALL over LANG"),
    ({"LC_ALL": "fr_FR.UTF-8", "LC_MESSAGES": "en_US.UTF-8"}, "fr", "LC_ALL over LC_MESSAGES"),
    ({"LC_ALL": "", "LC_MESSAGES": "en_US.UTF-8", "LANG": "fr_FR.UTF-8"}, "en",
     "an empty variable counts as unset"),
    ({"LANGUAGE": "en", "LANG": "fr_FR.UTF-8"}, "en", "LANGUAGE over LANG"),
    ({"LANGUAGE": "en:fr", "LC_ALL": "fr_FR.UTF-8"}, "en", "LANGUAGE over LC_ALL"),
    ({"LANGUAGE": "fr:en", "LC_ALL": "en_US.UTF-8"}, "fr", "LANGUAGE's first entry"),
    ({"LANGUAGE": "en_GB:fr", "LANG": "fr_FR.UTF-8"}, "en", "LANGUAGE entry with territory"),
    ({"LANGUAGE": "en"}, "fr", "LANGUAGE ignored in the C locale (GNU gettext)"),
    ({"LANGUAGE": "en", "LC_ALL": "C"}, "fr", "LANGUAGE ignored in the C locale"),
    ({"LANGUAGE": "en", "LANG": "POSIX"}, "fr", "LANGUAGE ignored in the POSIX locale"),
]


@pytest.mark.parametrize("env,expected,why", CASES, ids=[c[2] + " " + str(c[0]) for c in CASES])
def test_environment_order(env: dict[str, str], expected: str, why: str) -> None:
    assert resolve_lang(None, env) == expected, why
    assert lang_of_help(env) == expected, why
    assert lang_of_list(env) == expected, why


@pytest.mark.parametrize("flag,expected", [("en", "en"), ("fr", "fr")])
def test_lang_option_wins(flag: str, expected: str) -> None:
    other = {"en": "fr_FR.UTF-8", "fr": "en_US.UTF-8"}[flag]
    env = {"LANGUAGE": other[:2], "LC_ALL": other, "LANG": other}
    assert lang_of_help(env, "--lang", flag) == expected
    assert lang_of_list(env, "--lang", flag) == expected
    assert lang_of_list(env, f"--lang={flag}") == expected


def _fails(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if k not in LOCALE_KEYS}
    full.pop("VIRTLAB_DEBUG", None)
    full.update(env)
    p = subprocess.run(_virtlab() + list(args), capture_output=True, text=True, env=full,
                       cwd=REPO, timeout=120, stdin=subprocess.DEVNULL)
    assert "Traceback" not in p.stderr
    return p


@pytest.mark.parametrize("lang_env,lang", [({"LANG": "fr_FR.UTF-8"}, "fr"),
                                           ({"LC_ALL": "en_US.UTF-8"}, "en")])
def test_errors_in_the_readers_language(tmp_path: Path, lang_env: dict[str, str],
                                        lang: str) -> None:
    """Unreachable host, bad host spec, gradebook and inventory errors: each line in the
    reader's language only (what ssh or SQLite said is quoted as it is)."""
    env = {**lang_env, "VIRTLAB_DATA": str(tmp_path / "data")}
    expected = {
        # args: (exit code, French words, English words)
        ("check", "--host", "ssh://nowhere.invalid", "01"):
            (3, "impossible d'inspecter ssh://nowhere.invalid", "cannot inspect"),
        ("check", "--host", "bogus://x", "01"):
            (2, "spécification d'hôte invalide 'bogus://x' : moteur inconnu", "bad host spec"),
        ("grade", "01", "--inventory", str(tmp_path / "none.ini")):
            (2, "impossible de lire l'inventaire", "cannot read inventory"),
        ("grade", "01", "--hosts", "ssh://u@h", "--db", str(tmp_path)):
            (2, "impossible d'ouvrir le carnet de notes", "cannot open gradebook"),
        ("grade", "--resume", "--db", str(tmp_path / "none.sqlite")):
            (2, "aucune exécution précédente", "no earlier run"),
        ("grade", "01", "--hosts", "ssh://u@nowhere.invalid", "--db",
         str(tmp_path / "gb.sqlite")):
            (3, "  injoignable ", "  unreachable "),  # not --retry-unreachable
    }
    for args, (rc, fr, en) in expected.items():
        p = _fails(*args, env=env)
        out = p.stdout + p.stderr
        assert p.returncode == rc, (args, out)
        want, other = (fr, en) if lang == "fr" else (en, fr)
        assert want in out, (args, out)
        if lang == "fr":
            assert "gradebook:" not in out and "host(s)" not in out, (args, out)
        assert other not in out.replace("nowhere.invalid", ""), (args, out)
