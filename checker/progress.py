"""The learner's progress: every check recorded in a small local SQLite store.

The store lives under the XDG data directory (``$XDG_DATA_HOME/virtlab/progress.sqlite``,
default ``~/.local/share/virtlab/``); ``$VIRTLAB_DATA`` overrides the folder. Recording is
best effort: a read-only home never makes a check fail.

>>> record(report)                 # doctest: +SKIP
>>> [row.lab for row in summary()] # doctest: +SKIP
['01-hardware', '02-install-kvm', ...]
"""

from __future__ import annotations

import json
import os
import sqlite3
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

from checker.i18n import format_date, message, resolve_lang
from checker.model import Report

SCHEMA = """
CREATE TABLE IF NOT EXISTS checks (
    id INTEGER PRIMARY KEY,
    lab TEXT NOT NULL,
    host TEXT NOT NULL,
    user TEXT NOT NULL,
    started_at TEXT NOT NULL,
    score INTEGER NOT NULL,
    max_score INTEGER NOT NULL,
    passed INTEGER NOT NULL,
    report TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS checks_lab ON checks(lab, id);
"""


def xdg_data_dir() -> Path:
    """virtlab's folder in the XDG data directory of whoever runs this:
    ``$XDG_DATA_HOME/virtlab``, default ``~/.local/share/virtlab`` (hints, gradebook)."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "virtlab"


def data_dir() -> Path:
    """Where the progress store lives: ``$VIRTLAB_DATA``, else :func:`xdg_data_dir`."""
    env = os.environ.get("VIRTLAB_DATA")
    return Path(env) if env else xdg_data_dir()


def store_path() -> Path:
    return data_dir() / "progress.sqlite"


def _connect(create: bool) -> sqlite3.Connection | None:
    path = store_path()
    if not create and not path.exists():
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path, timeout=5)
    db.executescript(SCHEMA)
    return db


def record(report: Report) -> bool:
    """Store one check; False (and nothing raised) when the store cannot be written."""
    try:
        db = _connect(create=True)
        assert db is not None
        with closing(db), db:
            db.execute(
                "INSERT INTO checks (lab, host, user, started_at, score, max_score, passed, report)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (report.lab, report.host, report.user, report.started_at, report.score,
                 report.max_score, int(report.passed), report.to_json(indent=None)))
        return True
    except (OSError, sqlite3.Error):
        return False


@dataclass(frozen=True)
class LabProgress:
    lab: str
    title: str
    checks: int
    best_score: int | None
    max_score: int
    last_check: str | None
    left: tuple[str, ...]  # objectives not passed at the last check (or all, never checked)


def summary(lang: str = "fr") -> list[LabProgress]:
    """One row per lab of the catalogue, checked or not."""
    from checker.catalog import all_labs

    rows: dict[str, tuple[int, int, int, str, str]] = {}
    try:
        db = _connect(create=False)
    except (OSError, sqlite3.Error):
        db = None
    if db is not None:
        with closing(db):
            for lab, n, last_id in db.execute(
                    "SELECT lab, COUNT(*), MAX(id) FROM checks GROUP BY lab"):
                started, rep = db.execute(
                    "SELECT started_at, report FROM checks WHERE id = ?", (last_id,)).fetchone()
                # the best check's own score and maximum (checker.model.score: a skipped
                # objective counts neither way, so the maximum is that check's, not the lab's)
                best, best_max = db.execute(
                    "SELECT score, max_score FROM checks WHERE lab = ? "
                    "ORDER BY score DESC, id DESC LIMIT 1", (lab,)).fetchone()
                rows[lab] = (n, best, best_max, started, rep)
    out = []
    for lab in all_labs():
        if lab.id in rows:
            n, best, best_max, started, rep = rows[lab.id]
            try:
                objs = json.loads(rep)["objectives"]
                left = tuple(o["id"] for o in objs if o["status"] in ("fail", "error"))
            except (ValueError, KeyError, TypeError):
                left = ()
            out.append(LabProgress(lab.id, lab.title.get(lang), n, best, best_max, started, left))
        else:
            out.append(LabProgress(lab.id, lab.title.get(lang), 0, None, lab.max_score, None,
                                   tuple(o.id for o in lab.objectives)))
    return out


class ProgressTable:
    """``show()`` in a notebook: the progress summary as an HTML table."""

    HEAD = (message("progress.lab", fr="Lab", en="Lab"),
            message("progress.best", fr="Meilleur score", en="Best score"),
            message("progress.last", fr="Dernière vérification", en="Last check"),
            message("progress.left", fr="Non réussis à la dernière vérification",
                    en="Not passed at the last check"),
            message("progress.never", fr="jamais vérifié", en="never checked"))

    def __init__(self, lang: str | None = None) -> None:
        self.lang = resolve_lang(lang)
        self.rows = summary(self.lang)

    def _repr_html_(self) -> str:
        from html import escape

        from checker.markup import to_html
        from checker.safetext import clean

        h = [x.get(self.lang) for x in self.HEAD]
        out = ["<table class='vl-progress'><thead><tr>"]
        out += [f"<th>{escape(x)}</th>" for x in h[:4]]
        out.append("</tr></thead><tbody>")
        for r in self.rows:
            best = f"{r.best_score}/{r.max_score}" if r.best_score is not None else h[4]
            left = ", ".join(r.left) if r.best_score is not None else "—"
            last = format_date(r.last_check, self.lang)
            # the title is lab text: inline Markdown rendered, everything else escaped
            out.append(f"<tr><td><strong>{escape(r.lab)}</strong><br>{to_html(clean(r.title))}</td>"
                       f"<td>{escape(best)}</td><td>{escape(last)}</td>"
                       f"<td>{escape(left) or '✔'}</td></tr>")
        out.append("</tbody></table>")
        return "".join(out)

    def __repr__(self) -> str:
        return "\n".join(f"{r.lab}: "
                         f"{r.best_score if r.best_score is not None else '-'}/{r.max_score}"
                         for r in self.rows)


def show(lang: str | None = None) -> ProgressTable:
    """The progress table in a notebook (``lang``: else the reader's, :func:`resolve_lang`)."""
    return ProgressTable(lang)
