"""checker.checks: the helpers the labs' checks share (one copy, used by every lab)."""

from __future__ import annotations

import doctest
import re
from pathlib import Path

import checker.checks
import checker.probes.host
import checker.probes.netdev
from checker.checks import NONE, NONE_F, decimal, listed

REPO = Path(__file__).resolve().parent.parent


def test_listed_quotes_cuts_and_says_none_in_both_languages():
    assert listed(["a", "b"]).fr == "`a`, `b`" == listed(["a", "b"]).en
    many = listed([f"n{i}" for i in range(12)], limit=10)
    assert many.en.endswith("`n9` (+2)") and many.en.count("`") == 20
    assert listed(["x"] * 3, None, as_code=False).fr == "x, x, x"
    assert listed([]) == NONE and (NONE.fr, NONE.en) == ("aucun", "none")
    assert listed([], none=NONE_F).fr == "aucune"


def test_decimal_uses_each_languages_separator():
    assert (decimal(21.54).fr, decimal(21.54).en) == ("21,5", "21.5")
    assert decimal(0.125, 2).fr == "0,12" or decimal(0.125, 2).fr == "0,13"


def test_the_doctests_of_the_shared_modules():
    for mod in (checker.checks, checker.probes.netdev, checker.probes.host):
        failed, tried = doctest.testmod(mod)
        assert tried and not failed, mod.__name__


def test_no_lab_copies_a_shared_helper_again():
    """The helpers moved to checker.checks are not defined again in a lab's checks."""
    shared = re.compile(r"^def (_names|_num|_fr)\(|^def _config\(virt, name\)", re.M)
    for path in sorted(REPO.glob("labs/*/checks/*.py")):
        text = path.read_text(encoding="utf-8")
        assert not shared.search(text), f"{path}: {shared.search(text).group(0)}"
