"""One rule for output paths: ``virtlab check --output`` and ``virtlab grade --csv/--html/…``
refuse the same paths with the same words, in the reader's language, before any work."""

from __future__ import annotations

import doctest

import pytest
from conftest import run_virtlab

import checker.writable
from checker.i18n import message
from checker.writable import why_unwritable


def test_the_doctests():
    failed, tried = doctest.testmod(checker.writable)
    assert tried and not failed


def test_a_text_formatted_with_a_text_takes_each_language_s_own():
    outer = message("test.outer", fr="--csv : {reason}", en="--csv: {reason}")
    inner = why_unwritable("/nonexistent-dir/x.csv")
    assert inner is not None
    t = outer.format(reason=inner)
    assert t.fr == "--csv : impossible d'écrire /nonexistent-dir/x.csv : le dossier " \
                   "/nonexistent-dir n'existe pas"
    assert t.en == "--csv: cannot write /nonexistent-dir/x.csv: folder /nonexistent-dir " \
                   "does not exist"


def test_a_writable_path_is_accepted(tmp_path):
    assert why_unwritable(str(tmp_path / "new.csv")) is None
    (tmp_path / "old.csv").write_text("x")
    assert why_unwritable(str(tmp_path / "old.csv")) is None


@pytest.mark.parametrize("lang, words", [("fr_FR.UTF-8", "c'est un dossier"),
                                         ("en_US.UTF-8", "it is a directory")])
def test_check_and_grade_refuse_a_folder_with_the_same_words(tmp_path, lang, words):
    env = {"LANG": lang, "LC_ALL": "", "LANGUAGE": ""}
    check = run_virtlab("check", "01", "--format", "json", "--output", str(tmp_path), env=env)
    grade = run_virtlab("grade", "01", "--hosts", "ssh://a@h", "--csv", str(tmp_path),
                        "--db", str(tmp_path / "gb.sqlite"), env=env)
    for r in (check, grade):
        assert r.returncode == 2, r.stderr
        assert words in r.stderr and str(tmp_path) in r.stderr
        assert "Traceback" not in r.stderr
    assert "--csv" in grade.stderr
