"""The terminal report, written for a learner reading an 80-100 column terminal.

One block per objective: status and points on the first line with the objective's id,
then its title, what was found, and the hint when it did not pass. Colour only when asked
(``color=True``, the default when stdout is a terminal and ``NO_COLOR`` is unset).

>>> print(render(report, color=False, width=80))      # doctest: +SKIP
01-hardware — Is the hardware ready for virtualization?
host: local://  ·  libvirt: qemu:///system  ·  learner: alice
<BLANKLINE>
✔ pass      cpu-virt-flags                                                  3/3
            The CPU exposes VT-x (vmx) or AMD-V (svm)
            The CPU exposes vmx: Intel VT-x is available.
...
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import textwrap

from checker.i18n import Text, message
from checker.markup import plain, segments
from checker.model import STATUSES, Report

# the one rule for learner-controlled text, re-exported here for the other renderers
from checker.safetext import clean as clean

#: The report's labels, by name (the HTML templates read them too, as ``t.NAME``).
LABELS: dict[str, Text] = {
    "obj": message("report.objective", fr="Objectif", en="Objective"),
    "pts": message("report.points", fr="Points", en="Points"),
    "status": message("report.status", fr="État", en="Status"),
    "detail": message("report.detail", fr="Constat / indice", en="Finding / hint"),
    "score": message("report.score", fr="Score", en="Score"),
    "host": message("report.host", fr="hôte", en="host"),
    "user": message("report.learner", fr="apprenant", en="learner"),
    "hint": message("report.hint", fr="Indice", en="Hint"),
    "pass": message("report.status.pass", fr="réussi", en="pass"),
    "fail": message("report.status.fail", fr="échec", en="fail"),
    "error": message("report.status.error", fr="erreur", en="error"),
    "skip": message("report.status.skip", fr="sans objet", en="skip"),
}
# Counts in the footer ("label : n" avoids French plural agreement).
COUNT_LABELS: dict[str, Text] = {
    "pass": message("report.count.pass", fr="réussis", en="passed"),
    "fail": message("report.count.fail", fr="échecs", en="failed"),
    "error": message("report.count.error", fr="erreurs", en="errors"),
    "skip": message("report.count.skip", fr="sans objet", en="skipped"),
}
CLOSING: dict[str, Text] = {
    "ok": message("report.closing.ok", fr="Tous les objectifs sont atteints. Bravo !",
                  en="Every objective is met. Well done!"),
    "ko": message("report.closing.ko",
                  fr="Corrigez les objectifs marqués ✘ ou !, puis relancez : virtlab check {lab}",
                  en="Fix the objectives marked ✘ or !, then run again: virtlab check {lab}"),
}
#: French typography puts a space before the colon.
COLON = message("report.colon", fr=" : ", en=": ")


def labels(lang: str) -> dict[str, str]:
    """The labels in ``lang``, by name, and ``colon``."""
    return {**{k: v.get(lang) for k, v in LABELS.items()}, "colon": COLON.get(lang)}


STYLE = {"pass": "green", "fail": "red", "error": "yellow", "skip": "dim"}
ICON = {"pass": "✔", "fail": "✘", "error": "!", "skip": "–"}

NBSP = "\u00a0"
_SGR = {"bold": "1", "dim": "2", "italic": "3", "red": "31", "green": "32", "yellow": "33",
        "cyan": "36"}
MIN_WIDTH, MAX_WIDTH = 60, 100
#: How inline code (`` `virsh list` `` in a title, hint or message) looks on a colour terminal.
CODE_STYLE = ("bold",)
# Private-use characters marking a code span while the text is wrapped (learner text holding
# them has them shown as \uNNNN first: they never come from the data).
_CODE_ON, _CODE_OFF = "\ue000", "\ue001"

# French typography keeps a space before : ; ! ? » and after «, and never breaks a line
# there: while wrapping, such a space is this private character, a space again once wrapped
# (never a no-break space in the output: a command copied from the terminal stays a command).
_GLUE = "\ue002"
_UNBREAKABLE = re.compile(r" (?=[:;!?»])|(?<=«) ")


def _wrap(s: str, width: int, indent: str = "") -> list[str]:
    """Wrap each line of s to width; continuation lines start with indent; no line starts
    with the ``:``, ``;``, ``!``, ``?`` or ``»`` of French typography, none ends with ``«``."""
    out: list[str] = []
    for para in clean(s).replace(_GLUE, "\\ue002").split("\n"):
        lines = textwrap.wrap(_UNBREAKABLE.sub(_GLUE, para), width=width,
                              subsequent_indent=indent, break_long_words=True,
                              break_on_hyphens=False) or [""]
        out += [ln.replace(_GLUE, " ") for ln in lines]
    return out


def _md_marked(s: str) -> str:
    """Inline Markdown ``s`` as plain text, its code spans between the private marks."""
    s = clean(s).replace(_CODE_ON, "\\ue000").replace(_CODE_OFF, "\\ue001")
    return "".join(f"{_CODE_ON}{p}{_CODE_OFF}" if kind == "code" else p
                   for p, kind in segments(s))


def _wrap_md(s: str, width: int, indent: str, style: tuple[str, ...], color: bool) -> list[str]:
    """Inline Markdown ``s`` wrapped to ``width``, in ``style``; its code spans in
    :data:`CODE_STYLE` when ``color``, their backticks dropped either way."""
    def sgr(styles: tuple[str, ...]) -> str:
        return f"\x1b[{';'.join(_SGR[x] for x in styles)}m" if styles else ""

    if not color:
        return _wrap(plain(clean(s)), width, indent)
    # (the marks count as characters while wrapping: a line may end a little early)
    base, code = sgr(style), sgr(style) + sgr(CODE_STYLE)
    out: list[str] = []
    inside = False  # a code span continues from the line before
    for ln in _wrap(_md_marked(s), width, indent):
        styled = (code if inside else base) + ln.replace(_CODE_ON, code).replace(
            _CODE_OFF, "\x1b[0m" + base)
        last_on, last_off = ln.rfind(_CODE_ON), ln.rfind(_CODE_OFF)
        if last_on != last_off:  # -1 both: no mark on this line
            inside = last_on > last_off
        out.append(styled + "\x1b[0m" if styled != ln else ln)
    return out


def _pack(items: list[str], width: int, sep: str = "  ·  ") -> list[str]:
    """Items on as few lines as fit, never splitting one unless it alone is too long."""
    lines: list[str] = []
    cur = ""
    for item in (clean(i).replace("\n", " ") for i in items):
        if cur and len(cur) + len(sep) + len(item) <= width:
            cur += sep + item
            continue
        if cur:
            lines.append(cur)
        wrapped = _wrap(item, width, indent="  ")
        lines += wrapped[:-1]
        cur = wrapped[-1]
    if cur:
        lines.append(cur)
    return lines


def default_width() -> int:
    cols = shutil.get_terminal_size((80, 24)).columns
    return max(MIN_WIDTH, min(MAX_WIDTH, cols))


def rerun_words(report: Report) -> list[str]:
    """The command that checks the same lab on the same target again, as shell words (each
    quoted; an option with its value is one word here): a remote host, and its learner when
    the host spec does not name them."""
    import shlex
    from urllib.parse import urlsplit

    words = [f"virtlab check {shlex.quote(report.lab)}"]
    if not report.host.startswith("local://"):
        words.append(f"--host {shlex.quote(report.host)}")
        try:
            named = urlsplit(report.host).username
        except ValueError:
            named = None
        if report.user and report.user != named:
            words.append(f"--user {shlex.quote(report.user)}")
    return words


def _command_lines(words: list[str], width: int) -> list[str]:
    """A shell command in lines of at most ``width`` where it can: broken between options,
    each broken line ending with `` \\`` (a shell continues it: it pastes as it reads)."""
    lines = [words[0]]
    for w in words[1:]:
        if len(lines[-1]) + 1 + len(w) + 2 <= width:
            lines[-1] += " " + w
        else:
            lines[-1] += " \\"
            lines.append("    " + w)
    return lines


def render(report: Report, color: bool | None = None, width: int | None = None) -> str:
    t = labels(report.lang)
    colon = t["colon"]
    if color is None:
        color = sys.stdout.isatty() and not os.environ.get("NO_COLOR")
    width = max(40, width or default_width())

    def st(text: str, *styles: str) -> str:
        if not color or not styles:
            return text
        return f"\x1b[{';'.join(_SGR[x] for x in styles)}m{text}\x1b[0m"

    lines: list[str] = []
    lines += _wrap_md(f"{report.lab} — {report.title}", width, "", ("bold",), color)
    meta = [f"{t['host']}{colon}{report.host}", f"libvirt{colon}{report.libvirt_uri}",
            f"{t['user']}{colon}{report.user}"]
    lines += _pack(meta, width)
    lines.append("")

    present = {o.status for o in report.objectives} or {"pass"}
    status_w = max(len(f"{ICON[s]} {t[s]}") for s in present) + 3
    body_w = width - status_w
    pad = " " * status_w
    for o in report.objectives:
        status = f"{ICON[o.status]} {t[o.status]}"
        pts = "—" if o.status == "skip" else f"{o.earned}/{o.points}"
        oid = clean(o.id).replace("\n", " ")
        gap = body_w - len(oid) - len(pts)
        first = st(oid, "bold") + " " * max(1, gap) + st(pts, STYLE[o.status])
        lines.append(st(status.ljust(status_w), STYLE[o.status]) + first)
        for ln in _wrap_md(o.title, body_w, "", (), color):
            lines.append(pad + ln)
        if o.message:
            dim = ("dim",) if o.status in ("pass", "skip") else ()
            for ln in _wrap_md(o.message, body_w, "", dim, color):
                lines.append(pad + ln)
        if o.hint:
            for ln in _wrap_md(f"→ {t['hint']}{colon}{o.hint}", body_w, "  ", ("cyan",), color):
                lines.append(pad + ln)
        lines.append("")

    lines.append("─" * width)
    counts = report.counts()
    cl = {k: v.get(report.lang) for k, v in COUNT_LABELS.items()}
    score = f"{t['score']}{colon}{report.score}/{report.max_score}"
    footer = _pack([score] + [f"{cl[s]}{colon}{counts[s]}" for s in STATUSES if counts[s]],
                   width)
    # The score, first on the line, in colour.
    footer[0] = st(score, "bold", "green" if report.passed else "red") + footer[0][len(score):]
    lines += footer
    # The command to run again, complete: on the closing line when it fits there (no-break
    # spaces while wrapping), else on lines of its own broken between options.
    words = [clean(w) for w in rerun_words(report)]
    one = " ".join(words)
    closing = CLOSING["ok" if report.passed else "ko"].get(report.lang).format(lab="\0")
    if len(one) <= width:
        closing = closing.replace("virtlab check \0", one.replace(" ", NBSP))
        lines += [ln.replace(NBSP, " ") for ln in _wrap(closing, width)]
    else:
        lines += _wrap(closing.replace(" virtlab check \0", "").rstrip(), width)
        lines += _command_lines(words, width)
    return "\n".join(ln.rstrip() for ln in lines) + "\n"
