"""The programs that read virtlab's files, as the tests use them.

- :func:`xmllint_junit`: Jenkins' JUnit schema (``schemas/junit-10.xsd``) checked by
  ``xmllint`` (Debian package libxml2-utils), the way Jenkins' xUnit plugin validates a report;
- :func:`check_json`: virtlab's JSON Schemas (``checker/schemas``), with the ``jsonschema``
  package;
- :func:`moodle_import`: Moodle's CSV grade import, its rules encoded from its source, and
  :func:`check_moodle_csv`, the harm no CSV of ours may do to a Moodle gradebook.

Moodle's import, as read in moodle/moodle ``lib/csvlib.class.php`` (``csv_import_reader::
load_csv_content``) and ``grade/import/csv/classes/load_data.php``
(``gradeimport_csv_load_data::prepare_import_grade_data`` and the methods it calls):

1. the content is converted to UTF-8, its BOM removed, ``\\r\\n`` and ``\\r`` made ``\\n``, the
   whole trimmed; rows are read with PHP's ``fgetcsv`` (enclosure ``"``, escape ``\\``);
   blank lines are dropped; a row with another number of cells than the header aborts
   (``csvweirdcolumns``);
2. headers and every cell are trimmed (``trim``: blanks, tabs, line breaks, NUL);
3. the identity cell (mapped to id / idnumber / email / username): when it is not
   ``empty()`` (PHP: neither ``""`` nor ``"0"``) the learner is looked up, and an unknown one
   aborts the whole import (``usermappingerror``); when it is blank the row keeps the
   *previous* row's learner, and a first row without learner aborts
   (``usermappingerrorusernotfound``);
4. a grade cell ``""`` or ``"-"`` becomes "no grade", which *overwrites* the learner's grade;
   another value must be a number (``unformat_float``), else abort (``badgrade``); a grade
   above the site's maximum (100 unless ``unlimitedgrades``) aborts (``gradevaluetoobig``);
5. a feedback cell is imported as it is (trimmed);
6. two rows for one learner both go to the buffer: the last one wins.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
JUNIT_XSD = HERE / "schemas" / "junit-10.xsd"


# --- Jenkins: JUnit ----------------------------------------------------------------------

def xmllint_junit(xml: str | Path) -> None:
    """Validate a JUnit XML text or file against Jenkins' junit-10.xsd with xmllint."""
    from conftest import cannot_run

    xmllint = shutil.which("xmllint")
    if not xmllint:
        cannot_run("xmllint not found: install the Debian package libxml2-utils")
    if isinstance(xml, Path):
        target = str(xml)
        tmp = None
    else:
        fd, target = tempfile.mkstemp(suffix=".xml")
        tmp = target
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(xml)
    try:
        r = subprocess.run([xmllint, "--noout", "--schema", str(JUNIT_XSD), target],
                           capture_output=True, text=True, timeout=60)
    finally:
        if tmp:
            os.unlink(tmp)
    assert r.returncode == 0, f"invalid against junit-10.xsd:\n{r.stderr}"


# --- virtlab's JSON Schemas ----------------------------------------------------------------

def check_json(doc: Any, name: str) -> Any:
    """Validate a report (``name`` = report) or class export (class-export), given as a
    JSON text or a parsed document; return the document."""
    from checker.schemas import errors

    if isinstance(doc, (str, bytes)):
        doc = json.loads(doc)
    errs = errors(doc, name)
    assert not errs, f"not a valid {name} document:\n  " + "\n  ".join(errs[:20])
    return doc


# --- Moodle: CSV grade import ---------------------------------------------------------------

class MoodleAbort(Exception):
    """Moodle's import stopped; ``code`` is Moodle's error string id."""

    def __init__(self, code: str, detail: str = ""):
        self.code = code
        super().__init__(f"{code}: {detail}" if detail else code)


@dataclass
class MoodleUser:
    id: int
    username: str
    email: str = ""
    idnumber: str = ""


MAP_FIELDS = {"userid": "id", "useridnumber": "idnumber", "useremail": "email",
              "username": "username"}
IDENTITY_MAPPING = {"username": "username", "email": "useremail", "idnumber": "useridnumber"}
NO_GRADE = None


@dataclass
class MoodleResult:
    grades: dict[tuple[int, str], Any]  # (user id, item) -> grade (None: no grade)
    feedback: dict[tuple[int, str], str]
    rows_of: dict[int, list[int]] = field(default_factory=dict)  # user id -> row numbers
    inherited: list[int] = field(default_factory=list)  # rows given to the previous learner
    blanked: list[tuple[int, str]] = field(default_factory=list)  # grades set to no grade


def _php_trim(s: str) -> str:
    return s.strip(" \t\n\r\0\x0b")


def _php_empty(s: str) -> bool:
    return s in ("", "0")


def _read_rows(text: str) -> list[list[str]]:
    if text.startswith("\ufeff"):
        text = text[1:]
    text = re.sub(r"\r\n?", "\n", text).strip(" \t\n\r\0\x0b")
    if re.search(r'\\"', text):
        # PHP's fgetcsv takes \" as an escaped quote, Python's csv (and RFC 4180) does not:
        # the file would be read differently by Moodle than by everyone else
        raise MoodleAbort("php-escape", 'a cell holds \\" (PHP fgetcsv escape)')
    rows = [r for r in csv.reader(io.StringIO(text)) if r]
    if not rows:
        raise MoodleAbort("csvemptyfile")
    n = len(rows[0])
    for i, r in enumerate(rows):
        if len(r) != n:
            raise MoodleAbort("csvweirdcolumns", f"row {i} has {len(r)} cells, header {n}")
    return rows


def moodle_import(text: str, users: list[MoodleUser], *, map_from: str, map_to: str,
                  items: dict[str, str], feedback: dict[str, str] | None = None,
                  before: dict[tuple[int, str], Any] | None = None,
                  gradepointmax: float = 100) -> MoodleResult:
    """Import ``text`` as Moodle would: ``map_from`` the identity column, ``map_to`` one of
    userid/useridnumber/useremail/username; ``items`` column -> grade item, ``feedback``
    column -> grade item; ``before`` the gradebook's grades. Raises MoodleAbort."""
    rows = _read_rows(text)
    header = [_php_trim(h) for h in rows[0]]
    col = {h: i for i, h in enumerate(header)}
    if map_from not in col:
        raise MoodleAbort("nomapping", map_from)
    fld = MAP_FIELDS[map_to]
    grades = dict(before or {})
    fb: dict[tuple[int, str], str] = {}
    res = MoodleResult(grades, fb)
    student: int | None = None
    for rownum, line in enumerate(rows[1:], start=1):
        if len(line) <= 1:
            continue
        cells = [_php_trim(c) for c in line]
        ident = cells[col[map_from]]
        if not _php_empty(ident):
            found = [u for u in users if str(getattr(u, fld)) == ident]
            if not found:
                raise MoodleAbort("usermappingerror", f"row {rownum}: {map_to} {ident!r}")
            student = found[0].id
        elif student is not None:
            res.inherited.append(rownum)
        if student is None:
            raise MoodleAbort("usermappingerrorusernotfound", f"row {rownum}")
        new: list[tuple[str, Any]] = []
        for column, item in items.items():
            value = cells[col[column]]
            if value in ("", "-"):
                new.append((item, NO_GRADE))
                continue
            try:
                number = float(value)
            except ValueError:
                raise MoodleAbort("badgrade", f"row {rownum}: {column} {value!r}") from None
            if number > gradepointmax:
                raise MoodleAbort("gradevaluetoobig", f"row {rownum}: {number} > {gradepointmax}")
            new.append((item, number))
        for item, value in new:
            if value is NO_GRADE and grades.get((student, item)) is not None:
                res.blanked.append((student, item))
            grades[(student, item)] = value
        for column, item in (feedback or {}).items():
            fb[(student, item)] = cells[col[column]]
        res.rows_of.setdefault(student, []).append(rownum)
    return res


def check_moodle_csv(text: str, users: list[MoodleUser] | None = None,
                     previous: dict[tuple[int, str], Any] | None = None) -> MoodleResult:
    """Import a CSV written by ``virtlab grade --csv`` as Moodle would, into a course holding
    ``users`` (by default, one user per identity of the file) and assert that it harms
    nothing: no abort, no grade erased, no row given to another row's learner, no learner
    twice, no quote added to a feedback, no cell a spreadsheet would evaluate."""
    rows = _read_rows(text)
    header = rows[0]
    ident_col = header[0]
    assert ident_col in IDENTITY_MAPPING, f"first column {ident_col!r} is not an identity"
    labs = [h for h in header[1:] if not h.endswith(" feedback")]
    assert header[1:] == [c for lab in labs for c in (lab, f"{lab} feedback")], header
    if users is None:
        users = []
        for i, r in enumerate(rows[1:], start=1):
            users.append(MoodleUser(id=i, username=r[0], email=r[0], idnumber=r[0]))
    before = previous
    if before is None:  # everyone had a grade: an empty cell would erase it
        before = {(u.id, lab): 1.0 for u in users for lab in labs}
    res = moodle_import(text, users, map_from=ident_col, map_to=IDENTITY_MAPPING[ident_col],
                        items={lab: lab for lab in labs},
                        feedback={f"{lab} feedback": lab for lab in labs}, before=before)
    assert not res.blanked, f"grades erased by an empty grade cell: {res.blanked}"
    assert not res.inherited, f"rows given to the previous row's learner: {res.inherited}"
    twice = {u: r for u, r in res.rows_of.items() if len(r) > 1}
    assert not twice, f"learners on several rows: {twice}"
    for r in rows:
        for c in r:
            assert not c.startswith(("=", "+", "-", "@", "\t", "\r", " ", "'")), \
                f"cell {c!r} starts with a formula sign, a blank or a quote"
    return res
