"""French typography on a terminal: a space stays before ``:`` ``;`` ``!`` ``?`` ``»`` and
after ``«``, and a wrapped line never breaks there (a line starting with « : » or ending
with « « » reads as a glitch), at any width; the output holds no no-break space, so a command
copied from the terminal stays a command."""

from __future__ import annotations

import re

import pytest
from test_lab_text import CASES, IDS, lab_report

from checker.reporters import render

# ("! erreur" / "! error" is the status mark of an objective that could not be evaluated)
BAD_START = re.compile(r"^\s*(?:[:;?»]|!(?! (?:erreur|error) ))")
BAD_END = re.compile(r"«\s*$")


@pytest.mark.parametrize("lab, lang", CASES, ids=IDS)
def test_no_line_breaks_inside_french_spacing(lab, lang):
    report = lab_report(lab, lang)
    for width in range(60, 121, 3):  # (narrower, a long path is cut anywhere)
        for color in (False, True):
            out = render(report, "text", color=color, width=width)
            plain_out = re.sub(r"\x1b\[[0-9;]*m", "", out)
            for line in plain_out.splitlines():
                assert not BAD_START.search(line), (width, line)
                assert not BAD_END.search(line), (width, line)
            assert "\xa0" not in plain_out and "\ue002" not in plain_out


def test_the_words_are_kept_whole():
    lab, lang = next((lab, lang) for lab, lang in CASES if lang == "fr" and
                     any("«" in (h.fr) for o in lab.objectives for h in o.hints))
    out = render(lab_report(lab, lang), "text", color=False, width=200)
    assert "« " in out and " »" in out
