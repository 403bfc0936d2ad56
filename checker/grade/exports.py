"""Exports of a class's results: CSV for the LMS, JSON, and the instructors' HTML report.

All three render one :class:`~checker.grade.gradebook.ClassView` and nothing else.

CSV (Moodle "Import grades from CSV" accepts it; UTF-8, comma-separated, one header line):

=====================  ==========================================================
column                 content
=====================  ==========================================================
``username``           the learner (``virtlab_learner``, else the SSH user)
``email``              ``email`` / ``virtlab_email`` host variable, else empty
``<lab id>``           points earned in that lab (integer); empty when the host
                       could not be graded (Moodle then leaves the grade alone)
``<lab id> feedback``  the objectives not met and why, or why the host was not graded
=====================  ==========================================================

In Moodle, map ``username`` (or ``email``) to the user field of the same name, each lab column
to its grade item (maximum = the lab's points, ``virtlab show LAB``) and each feedback column
to that item's feedback. A cell starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage
return (also after leading blanks) is prefixed with ``'`` so that no spreadsheet evaluates it
as a formula; line breaks inside a cell become spaces, other control characters ``\\xNN`` text
(:func:`checker.safetext.clean`, as in every other export).
"""

from __future__ import annotations

import csv
import io
import os
from collections import Counter
from functools import lru_cache
from pathlib import Path
from typing import Any

from checker import __version__
from checker.grade.gradebook import ClassView, LearnerRow, StoredResult
from checker.reporters.text import ICON
from checker.safetext import clean, dumps

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")

LABELS: dict[str, dict[str, str]] = {
    "fr": {"not_met": "Objectifs non atteints", "all_met": "Tous les objectifs sont atteints",
           "not_graded": "Non évalué", "unreachable": "hôte injoignable",
           "timeout": "délai dépassé", "error": "erreur du correcteur",
           "missing": "pas encore évalué"},
    "en": {"not_met": "Objectives not met", "all_met": "Every objective met",
           "not_graded": "Not graded", "unreachable": "host unreachable",
           "timeout": "timed out", "error": "grader error", "missing": "not graded yet"},
}


def neutralise(value: Any) -> str:
    """One safe CSV cell.

    >>> neutralise("=HYPERLINK(\\"http://x\\")")
    '\\'=HYPERLINK("http://x")'
    >>> neutralise(7)
    '7'
    """
    s = "" if value is None else str(value)
    if s.startswith(FORMULA_PREFIXES):
        s = "'" + s
    s = s.replace("\r\n", " ").replace("\n", " ").replace("\r", " ")
    # other control characters shown as text (\x1b): a spreadsheet or a terminal showing
    # the file never gets them raw
    s = clean(s)
    # a spreadsheet that trims blanks on import would see " =…" (or "\n=…") as a formula
    if s[:1].isspace() and s.lstrip().startswith(FORMULA_PREFIXES):
        s = "'" + s
    return s


def _lang(view: ClassView) -> str:
    return "en" if view.run.lang == "en" else "fr"


def feedback(result: StoredResult | None, lang: str) -> str:
    """The feedback for one learner and lab, in the run's language."""
    t = LABELS[lang]
    sep, join = (" : ", " ; ") if lang == "fr" else (": ", "; ")
    if result is None:
        return f"{t['not_graded']} ({t['missing']})."
    if result.status != "graded" or not result.report:
        return f"{t['not_graded']} ({t.get(result.status, result.status)}){sep}{result.reason}"
    bad = [o for o in result.report["objectives"] if o["status"] in ("fail", "error")]
    if not bad:
        return t["all_met"] + "."
    return t["not_met"] + sep + join.join(f"{o['id']}{sep}{o['message']}" for o in bad)


def csv_header(view: ClassView) -> list[str]:
    cols = ["username", "email"]
    for lab in view.labs:
        cols += [lab, f"{lab} feedback"]
    return cols


def csv_rows(view: ClassView) -> list[list[str]]:
    lang = _lang(view)
    rows = [csv_header(view)]
    for row in view.rows:
        cells: list[Any] = [row.target.learner, row.target.email]
        for lab in view.labs:
            r = row.results.get(lab)
            cells.append(r.score if r is not None and r.status == "graded" else "")
            cells.append(feedback(r, lang))
        rows.append([neutralise(c) for c in cells])
    return rows


def to_csv(view: ClassView) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\r\n").writerows(csv_rows(view))
    return buf.getvalue()


def to_json(view: ClassView) -> str:
    def res(r: StoredResult | None) -> dict[str, Any] | None:
        if r is None:
            return None
        return {"status": r.status, "reason": r.reason, "score": r.score,
                "max_score": r.max_score, "graded_at": r.graded_at, "run_id": r.run_id,
                "report": r.report}

    doc = {
        "schema_version": 1,
        "run": {"id": view.run.id, "started_at": view.runs[0].started_at,
                "runs": [{"id": r.id, "kind": r.kind, "started_at": r.started_at,
                          "finished_at": r.finished_at, "status": r.status,
                          "checker_version": r.checker_version} for r in view.runs],
                "lang": view.run.lang, "checker_version": __version__},
        "labs": list(view.labs),
        "learners": [{"host": row.target.host, "learner": row.target.learner,
                      "email": row.target.email,
                      "results": {lab: res(row.results.get(lab)) for lab in view.labs}}
                     for row in view.rows],
    }
    return dumps(doc, indent=2)


# --- HTML -----------------------------------------------------------------------------

HTML_LABELS = {
    "title": ("Rapport de classe", "Class report"),
    "learner": ("Apprenant", "Learner"),
    "email": ("Courriel", "Email"),
    "host": ("Hôte", "Host"),
    "score": ("Score", "Score"),
    "lab": ("Lab", "Lab"),
    "summary": ("Synthèse", "Summary"),
    "graded": ("évalués", "graded"),
    "not_graded": ("non évalués", "not graded"),
    "mean": ("moyenne", "mean"),
    "grid": ("Apprenants × objectifs", "Learners × objectives"),
    "rates": ("Taux de réussite par objectif", "Pass rate per objective"),
    "failures": ("Échecs les plus fréquents", "Most common failures"),
    "count": ("Nombre", "Count"),
    "objective": ("Objectif", "Objective"),
    "message": ("Message", "Message"),
    "unreachable": ("Hôtes non évalués", "Hosts not graded"),
    "status": ("État", "Status"),
    "reason": ("Raison", "Reason"),
    "none": ("Aucun.", "None."),
    "runs": ("Exécutions", "Runs"),
    "generated": ("Généré par virtlab", "Generated by virtlab"),
    "legend": ("✔ réussi · ✘ échec · ! erreur · – sans objet · ? non évalué · "
               "✔² : réussi après 2 niveaux d'indice",
               "✔ pass · ✘ fail · ! error · – skip · ? not graded · "
               "✔² : met after 2 hint levels"),
}
HOST_STATUS = {"unreachable": ("injoignable", "unreachable"),
               "timeout": ("délai dépassé", "timed out"),
               "error": ("erreur du correcteur", "grader error"),
               "missing": ("pas encore évalué", "not graded yet")}


@lru_cache(maxsize=1)
def _env() -> Any:
    from jinja2 import Environment, PackageLoader

    # autoescape everything: learners control host variables, VM titles, messages; and
    # control characters shown as \xNN, as in the single report (checker.reporters.html)
    from checker.reporters.html import _finalize

    return Environment(loader=PackageLoader("checker", "templates"), autoescape=True,
                       finalize=_finalize)


def _objectives(view: ClassView) -> dict[str, list[str]]:
    """lab -> objective ids, in the catalogue's order (plus any only seen in reports)."""
    from checker.catalog import CatalogError, UnknownLab, resolve

    out: dict[str, list[str]] = {}
    for lab in view.labs:
        try:
            ids = [o.id for o in resolve(lab).objectives]
        except (UnknownLab, CatalogError):
            ids = []
        for row in view.rows:
            r = row.results.get(lab)
            for o in (r.report or {}).get("objectives", []) if r else []:
                if o["id"] not in ids:
                    ids.append(o["id"])
        out[lab] = ids
    return out


def pass_rates(view: ClassView) -> list[tuple[str, str, float, int]]:
    """(lab, objective, pass rate 0..1, learners judged) for every objective; skips and
    hosts not graded are left out of the denominator."""
    out = []
    for lab, ids in _objectives(view).items():
        for oid in ids:
            judged = passed = 0
            for row in view.rows:
                r = row.results.get(lab)
                if r is None or not r.report:
                    continue
                for o in r.report["objectives"]:
                    if o["id"] == oid and o["status"] != "skip":
                        judged += 1
                        passed += o["status"] == "pass"
            out.append((lab, oid, passed / judged if judged else 0.0, judged))
    return out


def common_failures(view: ClassView, limit: int = 10) -> list[tuple[str, str, str, int]]:
    """(lab, objective, message, learners) for the most frequent fail/error messages."""
    c: Counter[tuple[str, str, str]] = Counter()
    for row in view.rows:
        for lab in view.labs:
            r = row.results.get(lab)
            for o in (r.report or {}).get("objectives", []) if r else []:
                if o["status"] in ("fail", "error"):
                    c[(lab, o["id"], o["message"])] += 1
    return [(lab, oid, msg, n) for (lab, oid, msg), n in c.most_common(limit)]


def chart_svg(rates: list[tuple[str, str, float, int]], multi_lab: bool) -> str:
    """Pass rates as a horizontal bar chart, an inline SVG (text drawn as paths: nothing in
    it is markup from the data)."""
    from matplotlib.figure import Figure

    labels = [f"{lab[:2]} {oid}" if multi_lab else oid for lab, oid, _, _ in rates]
    values = [100 * r for _, _, r, _ in rates]
    fig = Figure(figsize=(7.5, 0.32 * max(3, len(rates)) + 0.9))
    ax = fig.add_subplot()
    y = list(range(len(rates)))[::-1]
    colors = ["#1a7f37" if v >= 80 else "#9a6700" if v >= 50 else "#cf222e" for v in values]
    ax.barh(y, values, color=colors)
    ax.set_yticks(y, labels)
    ax.set_xlim(0, 100)
    ax.set_xlabel("% réussite / pass rate")
    for yi, v, (_, _, _, n) in zip(y, values, rates):
        ax.text(min(v + 1, 88), yi, f"{v:.0f} % (n={n})", va="center", fontsize=8)
    ax.spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    buf = io.StringIO()
    fig.savefig(buf, format="svg")
    svg = buf.getvalue()
    return svg[svg.index("<svg"):]


def _cell(row: LearnerRow, lab: str, oid: str) -> dict[str, str]:
    r = row.results.get(lab)
    if r is None or not r.report:
        return {"status": "none", "icon": "?", "title": r.reason if r else ""}
    for o in r.report["objectives"]:
        if o["id"] == oid:
            hints = int(o.get("hints_shown", 0) or 0)
            title = o["message"]
            if hints > 1:  # asked for more than the hint every failure shows
                title += f" (indices vus : {hints} / hints seen: {hints})"
            return {"status": o["status"], "icon": ICON.get(o["status"], "?"),
                    "title": title, "hints": hints}
    return {"status": "none", "icon": "?", "title": ""}


def to_html(view: ClassView) -> str:
    from markupsafe import Markup

    objectives = _objectives(view)
    rates = pass_rates(view)
    grids = []
    for lab in view.labs:
        lines = []
        for row in view.rows:
            r = row.results.get(lab)
            lines.append({
                "learner": row.target.learner, "email": row.target.email,
                "host": row.target.host,
                "score": (f"{r.score}/{r.max_score}" if r is not None and r.status == "graded"
                          else "—"),
                "cells": [_cell(row, lab, oid) for oid in objectives[lab]],
            })
        graded = [row.results[lab] for row in view.rows
                  if lab in row.results and row.results[lab].status == "graded"]
        mean = (sum(r.score or 0 for r in graded) / len(graded)) if graded else None
        maxs = max((r.max_score or 0 for r in graded), default=0)
        grids.append({"lab": lab, "objectives": objectives[lab], "rows": lines,
                      "graded": len(graded), "not_graded": len(view.rows) - len(graded),
                      "mean": f"{mean:.1f}/{maxs}" if mean is not None else "—"})
    not_graded = []
    for row in view.rows:
        for lab in view.labs:
            r = row.results.get(lab)
            if r is None or r.status != "graded":
                not_graded.append({"learner": row.target.learner, "host": row.target.host,
                                   "lab": lab, "status": r.status if r else "missing",
                                   "reason": r.reason if r else ""})
    svg = chart_svg(rates, len(view.labs) > 1) if rates else ""
    return _env().get_template("class_report.html.j2").render(
        L=HTML_LABELS, S=HOST_STATUS, view=view, grids=grids, chart=Markup(svg),
        failures=common_failures(view), not_graded=not_graded, version=__version__)


def write(view: ClassView, path: str | Path, fmt: str) -> None:
    """Write one export whole or not at all: a temporary file next to ``path``, renamed over
    it once complete (an interrupt or a full disk never leaves a truncated export)."""
    text = {"csv": to_csv, "json": to_json, "html": to_html}[fmt](view)
    target = Path(path)
    tmp = target.with_name(f".{target.name}.virtlab-tmp")
    try:
        # utf-8 without BOM; newline="" keeps the CSV's CRLF as written
        with open(tmp, "w", encoding="utf-8", newline="") as f:
            f.write(text)
        os.replace(tmp, target)
    except BaseException:
        try:
            tmp.unlink()
        except OSError:
            pass
        raise
