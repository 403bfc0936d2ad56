"""Exports of a class's results: CSV for the LMS, JSON, and the instructors' HTML report.

All three render one :class:`~checker.grade.gradebook.ClassView` and nothing else.

CSV for Moodle's "Import grades from CSV" (``grade/import/csv``). What Moodle's import does
with a file (``gradeimport_csv_load_data::prepare_import_grade_data``, ``csv_import_reader``)
decides what this file holds:

- every cell is trimmed; a row's grade cell that is empty or ``-`` *overwrites* the learner's
  grade with "no grade": so a row is written only for a learner graded in this run (every lab
  of the run graded); a learner not graded is left out, and listed on the terminal and in the
  class report, never written with an empty grade;
- a row whose identity cell is blank is given to the *previous* row's learner (the first such
  row aborts the import), and an identity Moodle does not know aborts the whole import: every
  row carries one identity Moodle maps (``--csv-id username|email|idnumber``, taken from the
  inventory's host variables or matched in ``--roster``, Moodle's participants export); a
  learner without one is left out and reported;
- two rows for one learner both import, the last one winning: a duplicated identity is left
  out and reported;
- the feedback text is imported as it is (after the trim): no quote or other marker is added
  to it. A spreadsheet opening the file must still never evaluate a cell as a formula: the
  feedback starts with virtlab's own words, line breaks become spaces, and any leading blank or
  ``= + - @`` is dropped; an identity starting with one of those is left out and reported.

=====================  ==========================================================
column                 content
=====================  ==========================================================
``username`` |         the learner's identity in Moodle, the column named after
``email`` |            ``--csv-id`` (default ``email``)
``idnumber``
``<lab id>``           the grade: points earned (``--scale points``, the default),
                       or on 20 or 100 (``--scale 20|100``, two decimals at most)
``<lab id> feedback``  the objectives not met and why
=====================  ==========================================================

In Moodle (Grades > Import > CSV file): map the identity column to the user field of the same
name, each lab column to its grade item (maximum grade = the lab's points, ``virtlab show
LAB``, or 20 or 100) and each feedback column to that item's feedback.
Line breaks inside a cell become spaces, other control characters ``\\xNN`` text
(:func:`checker.safetext.clean`, as in every other export); leading blanks and formula signs
(``= + - @``) are dropped, since Moodle keeps feedback exactly as written.
"""

from __future__ import annotations

import csv
import html
import io
import os
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from checker import __version__
from checker.grade.formats import EXPORTS, IDENTITIES, SCALES
from checker.grade.gradebook import ClassView, LearnerRow, StoredResult
from checker.i18n import DEFAULT_LANG, LANGS, Text, format_date, format_number, message
from checker.markup import plain
from checker.reporters.text import ICON, LABELS
from checker.safetext import clean, dumps

if TYPE_CHECKING:
    from jinja2 import Environment

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
ROSTER_MAX_BYTES = 10 * 1024 * 1024

M_NOT_MET = message("grade.feedback.not-met", fr="Objectifs non atteints : {items}",
                    en="Objectives not met: {items}")
M_ITEM = message("grade.feedback.item", fr="{id} : {message}", en="{id}: {message}")
M_JOIN = message("grade.feedback.join", fr=" ; ", en="; ")
M_ALL_MET = message("grade.feedback.all-met", fr="Tous les objectifs sont atteints.",
                    en="Every objective met.")
M_MISSING = message("grade.feedback.missing", fr="Non évalué (pas encore évalué).",
                    en="Not graded (not graded yet).")
M_NOT_GRADED = message("grade.feedback.not-graded", fr="Non évalué ({status}) : {reason}",
                       en="Not graded ({status}): {reason}")
#: Why a host was not graded, in the CSV's feedback.
STATUS = {
    "unreachable": message("grade.feedback.unreachable", fr="hôte injoignable",
                           en="host unreachable"),
    "timeout": message("grade.feedback.timeout", fr="délai dépassé", en="timed out"),
    "error": message("grade.feedback.error", fr="erreur du correcteur", en="grader error"),
}
M_ROSTER_UNREADABLE = message("grade.roster.unreadable",
                              fr="--roster {path} : illisible ({reason})",
                              en="--roster {path}: cannot read it ({reason})")
M_ROSTER_LARGE = message("grade.roster.large", fr="--roster {path} : plus de {mib} Mio",
                         en="--roster {path}: larger than {mib} MiB")
M_ROSTER_UTF8 = message("grade.roster.utf8",
                        fr="--roster {path} : pas en UTF-8 (exportez-le de Moodle en CSV, UTF-8)",
                        en="--roster {path}: not UTF-8 (export it from Moodle as CSV, UTF-8)")
M_ROSTER_EMPTY = message("grade.roster.empty", fr="--roster {path} : vide",
                         en="--roster {path}: empty")
M_ROSTER_NO_ID = message(
    "grade.roster.no-identity",
    fr="--roster {path} : pas de colonne nom d'utilisateur, adresse de courriel ou numéro "
       "d'identification (ses colonnes : {columns}) ; exportez les participants de Moodle avec "
       "leur adresse de courriel (ou nom d'utilisateur / numéro d'identification)",
    en="--roster {path}: no username, email or ID number column (its columns: {columns}); "
       "export the participants from Moodle with their email address (or username / ID "
       "number)")
M_BAD_CHOICE = message("grade.export.bad-choice", fr="--{option} {value} : un de {valid} attendu",
                       en="--{option} {value}: expected one of {valid}")
M_NO_COLUMN = message("grade.roster-no-column",
                      fr="--roster {roster} : pas de colonne {identity} pour --csv-id {identity} "
                         "(trouvées : {found})",
                      en="--roster {roster}: no {identity} column for --csv-id {identity} "
                         "(found: {found})")
M_SEVERAL = message("grade.csv.several", fr="plusieurs participants du fichier {path} "
                                            "correspondent ({shown})",
                    en="several participants of {path} match ({shown})")
M_NOBODY = message("grade.csv.nobody", fr="aucun participant de {path} ne correspond à cet hôte",
                   en="no participant of {path} matches this host")
M_NO_FIELD = message("grade.csv.no-field",
                     fr="le participant trouvé dans {path} n'a pas de {identity}",
                     en="the participant found in {path} has no {identity}")
M_NO_IDENTITY = message("grade.csv.no-identity",
                        fr="pas de {identity} (variable d'hôte {var} de l'inventaire, ou --roster)",
                        en="no {identity} (inventory host variable {var}, or --roster)")
M_LEFT_NOT_GRADED = message("grade.csv.not-graded", fr="non évalué ({why})",
                            en="not graded ({why})")
M_LAB_ITEM = message("grade.csv.lab-item", fr="{lab} : {feedback}", en="{lab}: {feedback}")
M_UNUSABLE = message("grade.csv.unusable",
                     fr="{identity} {value!r} inutilisable dans un CSV (commence par un blanc ou "
                        "un signe de formule, ou contient un caractère de contrôle)",
                     en="{identity} {value!r} unusable in a CSV (starts with a blank or a "
                        "formula sign, or holds a control character)")
M_NO_GRADE = message("grade.csv.no-grade",
                     fr="{lab} : aucun objectif applicable, pas de note sur {scale}",
                     en="{lab}: no objective applies, no grade on {scale}")
M_DUPLICATE = message("grade.csv.duplicate",
                      fr="{identity} {value} en double (aussi : {others}) : Moodle donnerait la "
                         "note de l'un à l'autre",
                      en="duplicate {identity} {value} (also: {others}): Moodle would give "
                         "one's grade to the other")


class ExportError(ValueError):
    """An export cannot be made as asked (unreadable roster, roster without the identity
    column); the message says what and how to fix it, in both languages."""

    def __init__(self, text: Text) -> None:
        super().__init__(text.en)
        self.text = text


def neutralise(value: Any) -> str:
    r"""One CSV cell that no spreadsheet evaluates and that Moodle imports unchanged.

    Line breaks become spaces; leading blanks and formula characters are dropped (Moodle
    trims cells anyway, and a quote added in front would end up in the learner's feedback).

    >>> neutralise("=HYPERLINK(\"http://x\")")
    'HYPERLINK("http://x")'
    >>> neutralise(" \n-@=cmd")
    'cmd'
    >>> neutralise(7)
    '7'
    """
    s = "" if value is None else str(value)
    s = s.replace("\r\n", " ").replace("\n", " ").replace("\r", " ")
    # other control characters shown as text (\x1b): a spreadsheet or a terminal showing
    # the file never gets them raw
    s = clean(s)
    # PHP's fgetcsv (Moodle's reader) takes a backslash before a quote as an escape
    s = s.replace('\\"', '\\ "')
    i = 0
    while i < len(s) and (s[i].isspace() or s[i] in "=+-@\0"):
        i += 1
    return s[i:]


def _formula_start(s: str) -> bool:
    return s.lstrip().startswith(FORMULA_PREFIXES) or s[:1].isspace()


def _lang(view: ClassView) -> str:
    return view.run.lang if view.run.lang in LANGS else DEFAULT_LANG


def feedback_text(result: StoredResult | None) -> Text:
    """The feedback for one learner and lab, in both languages."""
    if result is None:
        return M_MISSING
    if result.status != "graded" or not result.report:
        status = STATUS.get(result.status, Text(result.status, result.status))
        return Text(M_NOT_GRADED.fr.format(status=status.fr, reason=result.reason),
                    M_NOT_GRADED.en.format(status=status.en, reason=result.reason))
    bad = [o for o in result.report["objectives"] if o["status"] in ("fail", "error")]
    if not bad:
        return M_ALL_MET
    # plain text (a CSV cell, Moodle's feedback): the messages' inline Markdown marks dropped
    items = [M_ITEM.format(id=o["id"], message=plain(o["message"])) for o in bad]
    return Text(M_NOT_MET.fr.format(items=M_JOIN.fr.join(i.fr for i in items)),
                M_NOT_MET.en.format(items=M_JOIN.en.join(i.en for i in items)))


def feedback(result: StoredResult | None, lang: str) -> str:
    """The feedback for one learner and lab, in the run's language."""
    return feedback_text(result).get(lang)


# --- roster: Moodle's participants export ------------------------------------------------

# Column titles of Moodle's participants download (and of its grade export), in English and
# French, and the raw field names, mapped to the user field.
_ROSTER_COLUMNS = {
    "username": ("username", "nom d'utilisateur", "nom d’utilisateur", "identifiant"),
    "email": ("email", "email address", "adresse de courriel", "adresse courriel",
              "courriel", "adresse e-mail", "e-mail"),
    "idnumber": ("idnumber", "id number", "numéro d'identification",
                 "numéro d’identification", "n° d'identification"),
}


def _norm(s: str) -> str:
    return unicodedata.normalize("NFC", s).strip().strip("\ufeff").casefold()


@dataclass
class Roster:
    """Moodle's participants, as exported from the course (Participants > select all >
    Download table data as CSV): one dict per participant with the fields found."""

    path: str
    people: list[dict[str, str]]
    fields: tuple[str, ...]

    @classmethod
    def read(cls, path: str | Path) -> Roster:
        p = Path(path)
        try:
            with open(p, "rb") as f:
                raw = f.read(ROSTER_MAX_BYTES + 1)
        except OSError as e:
            raise ExportError(M_ROSTER_UNREADABLE.format(path=path, reason=e.strerror)) from None
        if len(raw) > ROSTER_MAX_BYTES:
            raise ExportError(M_ROSTER_LARGE.format(path=path, mib=ROSTER_MAX_BYTES // 2**20))
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise ExportError(M_ROSTER_UTF8.format(path=path)) from None
        first = text.splitlines()[0] if text.strip() else ""
        delim = max(",;\t", key=first.count)
        rows = [r for r in csv.reader(io.StringIO(text), delimiter=delim)
                if any(c.strip() for c in r)]
        if not rows:
            raise ExportError(M_ROSTER_EMPTY.format(path=path))
        header = [_norm(h) for h in rows[0]]
        where: dict[str, int] = {}
        for fld, names in _ROSTER_COLUMNS.items():
            for i, h in enumerate(header):
                if h in names:
                    where.setdefault(fld, i)
        if not where:
            raise ExportError(M_ROSTER_NO_ID.format(path=path, columns=", ".join(rows[0])))
        people = []
        for r in rows[1:]:
            people.append({fld: r[i].strip() if i < len(r) else "" for fld, i in where.items()})
        return cls(str(path), people, tuple(where))

    def match(self, row: LearnerRow) -> list[dict[str, str]]:
        """The participants that are this host's learner: one of their username, email or
        ID number equals what the inventory says of the learner (learner / login name, email,
        virtlab_username, virtlab_idnumber), or their email's local part is the login."""
        t = row.target
        known = {_norm(x) for x in (t.learner, t.email, getattr(t, "username", ""),
                                    getattr(t, "idnumber", ""), t.ssh_user) if x}
        logins = {_norm(x) for x in (t.learner, t.ssh_user) if x}
        out = []
        for person in self.people:
            values = {_norm(v) for v in person.values() if v}
            local = _norm(person.get("email", "").split("@")[0]) if "@" in person.get(
                "email", "") else ""
            if values & known or (local and local in logins):
                out.append(person)
        return out


# --- the CSV ------------------------------------------------------------------------------

@dataclass
class CsvOptions:
    identity: str = "email"  # one of IDENTITIES
    scale: str = "points"  # one of SCALES
    roster: str | None = None  # Moodle participants export (CSV)


@dataclass
class LeftOut:
    """A learner of the class that the CSV does not carry, and why."""

    host: str
    learner: str
    why: Text
    kind: str = "identity"  # not_graded | identity | duplicate | no_grade

    @property
    def fr(self) -> str:
        return self.why.fr

    @property
    def en(self) -> str:
        return self.why.en


@dataclass
class CsvPlan:
    header: list[str]
    rows: list[list[str]] = field(default_factory=list)
    left_out: list[LeftOut] = field(default_factory=list)

    def lines(self) -> list[list[str]]:
        return [self.header, *self.rows]


def _grade(score: int, max_score: int, scale: str) -> str | None:
    if scale == "points":
        return str(score)
    if max_score <= 0:
        return None
    value = round(score * int(scale) / max_score, 2)
    return f"{value:.2f}".rstrip("0").rstrip(".")


def _identity(row: LearnerRow, opts: CsvOptions, roster: Roster | None
              ) -> tuple[str, Text | None]:
    """(identity, why not) for one learner; identity '' when none."""
    t = row.target
    own = {"username": getattr(t, "username", ""), "email": t.email,
           "idnumber": getattr(t, "idnumber", "")}[opts.identity].strip()
    if roster is not None:
        found = roster.match(row)
        values = {p.get(opts.identity, "").strip() for p in found} - {""}
        if len(values) > 1:
            shown = ", ".join(sorted(values))
            return "", M_SEVERAL.format(path=roster.path, shown=shown)
        if values:
            return values.pop(), None
        if not own:
            if not found:
                return "", M_NOBODY.format(path=roster.path)
            return "", M_NO_FIELD.format(path=roster.path, identity=opts.identity)
    if own:
        return own, None
    var = {"username": "virtlab_username", "email": "email", "idnumber": "virtlab_idnumber"}
    return "", M_NO_IDENTITY.format(identity=opts.identity, var=var[opts.identity])


def csv_plan(view: ClassView, opts: CsvOptions | None = None) -> CsvPlan:
    """The CSV's rows and the learners it leaves out (not graded, no identity, duplicate)."""
    opts = opts or CsvOptions()
    if opts.identity not in IDENTITIES:
        raise ExportError(M_BAD_CHOICE.format(option="csv-id", value=opts.identity,
                                              valid=", ".join(IDENTITIES)))
    if opts.scale not in SCALES:
        raise ExportError(M_BAD_CHOICE.format(option="scale", value=opts.scale,
                                              valid=", ".join(SCALES)))
    roster = Roster.read(opts.roster) if opts.roster else None
    if roster is not None and opts.identity not in roster.fields:
        raise ExportError(M_NO_COLUMN.format(roster=opts.roster, identity=opts.identity,
                                             found=", ".join(roster.fields)))
    lang = _lang(view)
    plan = CsvPlan(header=[opts.identity] + [c for lab in view.labs
                                             for c in (lab, f"{lab} feedback")])
    candidates: list[tuple[LearnerRow, str, list[str]]] = []
    for row in view.rows:
        who = (row.target.host, row.target.learner)
        missing = [(lab, row.results.get(lab)) for lab in view.labs]
        bad = [(lab, r) for lab, r in missing
               if r is None or r.status != "graded" or not r.report or r.score is None]
        if bad:
            items = [(lab, feedback_text(r)) for lab, r in bad]
            why = Text(*(M_JOIN.get(lang).join(M_LAB_ITEM.get(lang).format(
                lab=lab, feedback=fb.get(lang)) for lab, fb in items) for lang in LANGS))
            plan.left_out.append(LeftOut(*who, Text(
                M_LEFT_NOT_GRADED.fr.format(why=why.fr), M_LEFT_NOT_GRADED.en.format(why=why.en)),
                "not_graded"))
            continue
        ident, why_not = _identity(row, opts, roster)
        if not ident:
            plan.left_out.append(LeftOut(*who, why_not or Text("", "")))
            continue
        if _formula_start(ident) or any(not c.isprintable() for c in ident):
            plan.left_out.append(LeftOut(*who, M_UNUSABLE.format(identity=opts.identity,
                                                                 value=ident)))
            continue
        cells: list[str] = []
        for lab in view.labs:
            r = row.results[lab]
            g = _grade(r.score or 0, r.max_score or 0, opts.scale)
            if g is None:
                cells = []
                plan.left_out.append(LeftOut(*who, M_NO_GRADE.format(lab=lab, scale=opts.scale),
                                             "no_grade"))
                break
            cells += [g, neutralise(feedback(r, lang))]
        if cells:
            candidates.append((row, ident, cells))
    counts = Counter(_norm(ident) for _, ident, _ in candidates)
    for row, ident, cells in candidates:
        if counts[_norm(ident)] > 1:
            others = ", ".join(r.target.host for r, i, _ in candidates
                               if _norm(i) == _norm(ident) and r is not row)
            plan.left_out.append(LeftOut(
                row.target.host, row.target.learner,
                M_DUPLICATE.format(identity=opts.identity, value=ident, others=others),
                "duplicate"))
            continue
        plan.rows.append([ident, *cells])
    return plan


def csv_rows(view: ClassView, opts: CsvOptions | None = None) -> list[list[str]]:
    return csv_plan(view, opts).lines()


def to_csv(view: ClassView, opts: CsvOptions | None = None) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\r\n").writerows(csv_rows(view, opts))
    return buf.getvalue()


def to_json(view: ClassView, csv_options: CsvOptions | None = None) -> str:
    """Every result of the run (``csv_options`` is not used: every export takes it)."""
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
                      "username": getattr(row.target, "username", ""),
                      "idnumber": getattr(row.target, "idnumber", ""),
                      "results": {lab: res(row.results.get(lab)) for lab in view.labs}}
                     for row in view.rows],
    }
    return dumps(doc, indent=2)


# --- HTML -----------------------------------------------------------------------------

#: The class report's headings and labels (both languages are shown).
HTML_LABELS: dict[str, Text] = {
    "title": message("grade.html.title",
            fr="Rapport de classe",
            en="Class report"),
    "learner": message("grade.html.learner",
            fr="Apprenant",
            en="Learner"),
    "email": message("grade.html.email",
            fr="Courriel",
            en="Email"),
    "host": message("grade.html.host",
            fr="Hôte",
            en="Host"),
    "score": message("grade.html.score",
            fr="Score",
            en="Score"),
    "lab": message("grade.html.lab",
            fr="Lab",
            en="Lab"),
    "summary": message("grade.html.summary",
            fr="Synthèse",
            en="Summary"),
    "graded": message("grade.html.graded",
            fr="évalués",
            en="graded"),
    "not_graded": message("grade.html.not_graded",
            fr="non évalués",
            en="not graded"),
    "mean": message("grade.html.mean",
            fr="moyenne",
            en="mean"),
    "grid": message("grade.html.grid",
            fr="Apprenants × objectifs",
            en="Learners × objectives"),
    "rates": message("grade.html.rates",
            fr="Taux de réussite par objectif",
            en="Pass rate per objective"),
    "failures": message("grade.html.failures",
            fr="Échecs les plus fréquents",
            en="Most common failures"),
    "count": message("grade.html.count",
            fr="Nombre",
            en="Count"),
    "objective": message("grade.html.objective",
            fr="Objectif",
            en="Objective"),
    "message": message("grade.html.message",
            fr="Message",
            en="Message"),
    "unreachable": message("grade.html.unreachable",
            fr="Hôtes non évalués",
            en="Hosts not graded"),
    "status": message("grade.html.status",
            fr="État",
            en="Status"),
    "reason": message("grade.html.reason",
            fr="Raison",
            en="Reason"),
    "none": message("grade.html.none",
            fr="Aucun.",
            en="None."),
    "csv_left_out": message("grade.html.csv_left_out",
            fr="Absents du CSV pour Moodle",
            en="Left out of the CSV for Moodle"),
    "runs": message("grade.html.runs",
            fr="Exécutions",
            en="Runs"),
    "generated": message("grade.html.generated",
            fr="Généré par virtlab",
            en="Generated by virtlab"),
    "details": message("grade.html.details",
            fr="Détail par apprenant",
            en="Details per learner"),
    "rate": message("grade.html.rate",
            fr="Taux de réussite",
            en="Pass rate"),
    "judged": message("grade.html.judged",
            fr="Apprenants évalués",
            en="Learners judged"),
    "rates_caption": message("grade.html.rates-caption",
            fr="Le même taux, en chiffres, dans le tableau ci-dessous.",
            en="The same rates, as numbers, in the table below."),
    "legend": message("grade.html.legend",
            fr="✔ réussi · ✘ échec · ! erreur · – sans objet · ? non évalué · ✔² : réussi après 2 "
               "niveaux d'indice",
            en="✔ pass · ✘ fail · ! error · – skip · ? not graded · ✔²: met after 2 hint levels"),
}
#: Why a host was not graded, in the class report.
HOST_STATUS: dict[str, Text] = {
    "unreachable": message("grade.html.status.unreachable",
            fr="injoignable",
            en="unreachable"),
    "timeout": message("grade.html.status.timeout",
            fr="délai dépassé",
            en="timed out"),
    "error": message("grade.html.status.error",
            fr="erreur du correcteur",
            en="grader error"),
    "missing": message("grade.html.status.missing",
            fr="pas encore évalué",
            en="not graded yet"),
}


@lru_cache(maxsize=1)
def _env() -> Environment:
    # autoescape everything: learners control host variables, VM titles, messages; control
    # characters shown as \xNN and messages' inline Markdown rendered (|md), as in the single
    # report
    from checker.reporters.html import environment

    return environment()


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


M_PASS_RATE = message("grade.html.pass-rate", fr="% réussite", en="pass rate")
M_HINTS_SEEN = message("grade.html.hints-seen", fr="indices vus : {n}", en="hints seen: {n}")
M_CHART_ALT = message("grade.html.chart-alt",
                      fr="Diagramme en barres : taux de réussite par objectif (détail dans le "
                         "tableau qui suit)",
                      en="Bar chart: pass rate per objective (details in the table that follows)")
M_CELL_NONE = message("grade.html.cell-none", fr="non évalué", en="not graded")


#: The chart's colours: matplotlib draws with these stand-ins, each then replaced in the SVG by
#: the page's custom property (checker/templates/palette.css), so that one picture follows the
#: page's light or dark palette; its background is transparent.
CHART_COLOURS = {"#010101": "var(--vl-fg)", "#010102": "var(--vl-bar-hi)",
                 "#010103": "var(--vl-bar-mid)", "#010104": "var(--vl-bar-lo)"}


def chart_svg(rates: list[tuple[str, str, float, int]], multi_lab: bool) -> str:
    """Pass rates as a horizontal bar chart, an inline SVG (text drawn as paths: nothing in
    it is markup from the data) in the page's colours (:data:`CHART_COLOURS`)."""
    from matplotlib.figure import Figure

    ink, hi, mid, lo = CHART_COLOURS
    labels = [f"{lab[:2]} {oid}" if multi_lab else oid for lab, oid, _, _ in rates]
    values = [100 * r for _, _, r, _ in rates]
    fig = Figure(figsize=(7.5, 0.32 * max(3, len(rates)) + 0.9))
    ax = fig.add_subplot()
    y = list(range(len(rates)))[::-1]
    colors = [hi if v >= 80 else mid if v >= 50 else lo for v in values]
    ax.barh(y, values, color=colors)
    ax.set_yticks(y, labels)
    # room right of the longest bar: each bar's figures are written on the page, never on a bar
    ax.set_xlim(0, 122)
    ax.set_xticks(range(0, 101, 20))
    ax.spines["bottom"].set_bounds(0, 100)
    ax.set_xlabel(M_PASS_RATE.both(), color=ink)
    ax.tick_params(colors=ink)
    for spine in ax.spines.values():
        spine.set_color(ink)
    for yi, v, (_, _, _, n) in zip(y, values, rates):
        ax.text(v + 1, yi, f"{v:.0f} % (n={n})", va="center", fontsize=8, color=ink)
    ax.spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    buf = io.StringIO()
    fig.savefig(buf, format="svg", transparent=True)
    svg = buf.getvalue()
    svg = svg[svg.index("<svg"):]
    for stand_in, colour in CHART_COLOURS.items():
        svg = svg.replace(stand_in, colour)
    # a picture with a text alternative (the numbers are in a table beside it)
    alt = html.escape(M_CHART_ALT.both(), quote=True)
    return svg.replace("<svg ", f'<svg role="img" aria-label="{alt}" ', 1)


def _cell(row: LearnerRow, lab: str, oid: str) -> dict[str, Any]:
    r = row.results.get(lab)
    if r is None or not r.report:
        return {"status": "none", "icon": "?", "title": r.reason if r else "",
                "label": M_CELL_NONE.both()}
    for o in r.report["objectives"]:
        if o["id"] == oid:
            hints = int(o.get("hints_shown", 0) or 0)
            title = o["message"]
            if hints > 1:  # asked for more than the hint every failure shows
                title += f" ({M_HINTS_SEEN.format(n=hints).both()})"
            status = LABELS.get(o["status"])
            return {"status": o["status"], "icon": ICON.get(o["status"], "?"),
                    "title": title, "hints": hints,
                    "label": status.both() if status else str(o["status"])}
    return {"status": "none", "icon": "?", "title": "", "label": M_CELL_NONE.both()}


def to_html(view: ClassView, csv_options: CsvOptions | None = None) -> str:
    """The class report; with ``csv_options`` (the run wrote a CSV) it also lists the learners
    that CSV leaves out, and why."""
    from markupsafe import Markup

    lang = _lang(view)
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
                      "mean": (f"{format_number(mean, lang, 1)}/{maxs}" if mean is not None
                               else "—")})
    not_graded = []
    for row in view.rows:
        for lab in view.labs:
            r = row.results.get(lab)
            if r is None or r.status != "graded":
                not_graded.append({"learner": row.target.learner, "host": row.target.host,
                                   "lab": lab, "status": r.status if r else "missing",
                                   "reason": r.reason if r else ""})
    svg = chart_svg(rates, len(view.labs) > 1) if rates else ""
    csv_left_out = None
    if csv_options is not None:
        # the ones not graded are in the table above already
        csv_left_out = [x for x in csv_plan(view, csv_options).left_out
                        if x.kind != "not_graded"]
    return _env().get_template("class_report.html.j2").render(
        L=HTML_LABELS, S=HOST_STATUS, view=view, grids=grids, chart=Markup(svg),
        failures=common_failures(view), not_graded=not_graded, rates=rates, version=__version__,
        csv_left_out=csv_left_out, page=True,
        run_times={r.id: format_date(r.started_at, lang) for r in view.runs})


def write(view: ClassView, path: str | Path, fmt: str, csv_options: CsvOptions | None = None
          ) -> None:
    """Write one export whole or not at all: a temporary file next to ``path``, renamed over
    it once complete (an interrupt or a full disk never leaves a truncated export)."""
    export = EXPORTS.get(fmt)
    if export is None:
        raise ValueError(f"unknown export {fmt!r}: expected one of {', '.join(EXPORTS)}")
    text: str = globals()[export.function](view, csv_options)
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
