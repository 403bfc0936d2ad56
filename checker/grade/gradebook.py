"""The gradebook: every grading run and every host's results, in SQLite, behind one class.

    >>> gb = Gradebook("gradebook.sqlite")                           # doctest: +SKIP
    >>> run = gb.start_run(["01-hardware"], roster, lang="fr")       # doctest: +SKIP
    >>> gb.record(run, outcome)          # one transaction per host  # doctest: +SKIP
    >>> gb.finish_run(run, "complete")                               # doctest: +SKIP
    >>> view = gb.class_view(run)        # what the exports render    # doctest: +SKIP

Every run is kept: when it started and ended, how it ended (``running`` while it goes, then
``complete`` or ``interrupted``; a run whose process died stays ``running``), the checker's
version, its labs, options and roster (the class), and for each host and lab the outcome,
its reason and the full Report JSON (per-objective results with their evidence), with the
objectives also in their own table for queries.

A run may continue another: ``--resume`` grades the hosts of the last run that have no result
yet (an interrupted run), ``--retry-unreachable`` the hosts whose last outcome was
``unreachable`` or ``timeout``. Such a run stores its own time and results and points at the
run it continues (``parent_id``); :meth:`Gradebook.class_view` follows that chain back to the
first run and takes, for each learner and lab, the latest outcome.
"""

from __future__ import annotations

import functools
import json
import os
import sqlite3
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar

from checker import __version__
from checker.grade.targets import HostTarget
from checker.i18n import Text, message

SCHEMA_VERSION = 1
CONNECTION_FAILURES = ("unreachable", "timeout")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY,
    parent_id INTEGER REFERENCES runs(id),
    kind TEXT NOT NULL,                 -- grade | resume | retry
    started_at TEXT NOT NULL,
    finished_at TEXT,
    status TEXT NOT NULL,               -- running | complete | interrupted
    checker_version TEXT NOT NULL,
    labs TEXT NOT NULL,                 -- JSON list of lab ids
    lang TEXT NOT NULL,
    options TEXT NOT NULL               -- JSON: ssh_config, timeout, connect, workers...
);
CREATE TABLE IF NOT EXISTS roster (
    run_id INTEGER NOT NULL REFERENCES runs(id),
    position INTEGER NOT NULL,
    host TEXT NOT NULL,
    learner TEXT NOT NULL,
    email TEXT NOT NULL,
    target TEXT NOT NULL,               -- JSON HostTarget
    PRIMARY KEY (run_id, host)
);
CREATE TABLE IF NOT EXISTS results (
    id INTEGER PRIMARY KEY,
    run_id INTEGER NOT NULL REFERENCES runs(id),
    host TEXT NOT NULL,
    lab TEXT NOT NULL,
    status TEXT NOT NULL,               -- graded | unreachable | timeout | error
    reason TEXT NOT NULL,
    score INTEGER,
    max_score INTEGER,
    graded_at TEXT NOT NULL,
    duration_s REAL NOT NULL,
    report TEXT,                        -- JSON Report (schema_version 1) when graded
    UNIQUE (run_id, host, lab)
);
CREATE TABLE IF NOT EXISTS objective_results (
    result_id INTEGER NOT NULL REFERENCES results(id),
    objective TEXT NOT NULL,
    status TEXT NOT NULL,
    points INTEGER NOT NULL,
    earned INTEGER NOT NULL,
    message TEXT NOT NULL,
    evidence TEXT NOT NULL,             -- JSON
    PRIMARY KEY (result_id, objective)
);
CREATE INDEX IF NOT EXISTS results_host ON results (host, lab);
"""


class GradebookError(Exception):
    """The gradebook cannot be opened, read or written (damaged, not a gradebook, disk full,
    read-only); the message (:attr:`text`, both languages; ``str()`` is the English) names the
    file and says why."""

    def __init__(self, text: Text) -> None:
        super().__init__(text.en)
        self.text = text


M_DB = message("gradebook.db-error", fr="carnet de notes {path} : {error}",
               en="gradebook {path}: {error}")
M_CONTENT = message("gradebook.unexpected",
                    fr="carnet de notes {path} : contenu inattendu ({error})",
                    en="gradebook {path}: unexpected content ({error})")
M_FOLDER = message("gradebook.folder",
                   fr="impossible de créer le dossier du carnet de notes {path} : {reason}",
                   en="cannot create the folder of gradebook {path}: {reason}")
M_OPEN = message("gradebook.open", fr="impossible d'ouvrir le carnet de notes {path} : {error}",
                 en="cannot open gradebook {path}: {error}")
M_OPEN_DAMAGED = message(
    "gradebook.open-damaged",
    fr="impossible d'ouvrir le carnet de notes {path} : {error} (un fichier abîmé, tronqué ou "
       "étranger ? restaurez une copie ou donnez un autre --db)",
    en="cannot open gradebook {path}: {error} (a damaged, truncated or foreign file? restore a "
       "copy or give another --db)")
M_DAMAGED = message("gradebook.damaged",
                    fr="{path} : le carnet de notes est abîmé ({why}) ; restaurez une copie ou "
                       "donnez un autre --db",
                    en="{path}: the gradebook is damaged ({why}); restore a copy or give "
                       "another --db")
M_FOREIGN = message("gradebook.foreign",
                    fr="{path} n'est pas un carnet de notes de virtlab (il contient les tables "
                       "{tables}) ; donnez un autre --db",
                    en="{path} is not a virtlab gradebook (it holds tables {tables}); give "
                       "another --db")
M_NO_COLUMN = message("gradebook.no-column",
                      fr="{path} n'est pas un carnet de notes de virtlab (sa table {table!r} n'a "
                         "pas de colonne {missing}) ; donnez un autre --db",
                      en="{path} is not a virtlab gradebook (its table {table!r} has no column "
                         "{missing}); give another --db")
M_BAD_VERSION = message("gradebook.bad-version",
                        fr="{path} n'est pas un carnet de notes de virtlab (version de schéma "
                           "{version!r})",
                        en="{path} is not a virtlab gradebook (schema version {version!r})")
M_NEWER = message("gradebook.newer",
                  fr="{path} : le schéma {version} du carnet de notes est plus récent que ce que "
                     "ce virtlab comprend ({known}) ; mettez virtlab à jour",
                  en="{path}: gradebook schema {version} is newer than this virtlab "
                     "understands ({known}); upgrade virtlab")
M_NO_RUN = message("gradebook.no-run", fr="{path} : pas d'exécution {run}",
                   en="{path}: no run {run}")


# The columns each table must have: a SQLite file of another schema (another program's
# database, an older layout) is refused at open, not half-used.
_COLUMNS = {
    "meta": {"key", "value"},
    "runs": {"id", "parent_id", "kind", "started_at", "finished_at", "status", "checker_version",
             "labs", "lang", "options"},
    "roster": {"run_id", "position", "host", "learner", "email", "target"},
    "results": {"id", "run_id", "host", "lab", "status", "reason", "score", "max_score",
                "graded_at", "duration_s", "report"},
    "objective_results": {"result_id", "objective", "status", "points", "earned", "message",
                          "evidence"},
}

_P = ParamSpec("_P")
_R = TypeVar("_R")


def _db_errors(fn: Callable[Concatenate[Gradebook, _P], _R],
               ) -> Callable[Concatenate[Gradebook, _P], _R]:
    """SQLite errors of a gradebook method (disk full, damaged file, locked) become a
    GradebookError naming the file: a clear message for the instructor, never a traceback."""

    @functools.wraps(fn)
    def wrapper(self: Gradebook, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            return fn(self, *args, **kwargs)
        except sqlite3.Error as e:
            raise GradebookError(M_DB.format(path=self.path, error=e)) from None
        except (ValueError, TypeError, KeyError) as e:  # a row that is not what we wrote
            raise GradebookError(M_CONTENT.format(path=self.path,
                                                  error=f"{type(e).__name__}: {e}")) from None

    return wrapper


def default_path() -> Path:
    """``$XDG_DATA_HOME/virtlab/gradebook.sqlite`` (``~/.local/share/...`` by default)."""
    from checker.progress import xdg_data_dir

    return xdg_data_dir() / "gradebook.sqlite"


def _now() -> str:
    return datetime.now().astimezone().isoformat(timespec="seconds")


@dataclass(frozen=True)
class Run:
    id: int
    parent_id: int | None
    kind: str
    started_at: str
    finished_at: str | None
    status: str
    checker_version: str
    labs: tuple[str, ...]
    lang: str
    options: dict[str, Any]


@dataclass(frozen=True)
class StoredResult:
    run_id: int
    host: str
    lab: str
    status: str
    reason: str
    score: int | None
    max_score: int | None
    graded_at: str
    duration_s: float
    report: dict[str, Any] | None


@dataclass
class LearnerRow:
    target: HostTarget
    results: dict[str, StoredResult] = field(default_factory=dict)  # lab -> latest


@dataclass
class ClassView:
    """A class's latest outcomes across a run and the runs it continues."""

    run: Run
    runs: list[Run]  # the chain, first run first
    labs: tuple[str, ...]
    rows: list[LearnerRow]


class Gradebook:
    """SQLite gradebook; one instance per process, used from one thread."""

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise GradebookError(M_FOLDER.format(path=self.path, reason=e.strerror)) from None
        try:
            self.db = sqlite3.connect(self.path, timeout=30)
        except sqlite3.Error as e:
            raise GradebookError(M_OPEN.format(path=self.path, error=e)) from None
        try:
            self._open()
        except sqlite3.DatabaseError as e:
            self.db.close()
            low = str(e).lower()
            known = any(w in low for w in ("full", "readonly", "read-only", "locked"))
            raise GradebookError((M_OPEN if known else M_OPEN_DAMAGED).format(
                path=self.path, error=e)) from None
        except GradebookError:
            self.db.close()
            raise

    def _open(self) -> None:
        # A damaged file (truncated, overwritten) or another program's database is refused
        # before anything is written in it (reads only until the checks pass).
        bad = [r[0] for r in self.db.execute("PRAGMA quick_check(5)")]
        if bad != ["ok"]:
            raise GradebookError(M_DAMAGED.format(path=self.path, why="; ".join(bad)))
        tables = sorted(r[0] for r in self.db.execute(
            "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%'"))
        if tables and "meta" not in tables:
            raise GradebookError(M_FOREIGN.format(path=self.path, tables=", ".join(tables[:8])))
        have = {name: {c[1] for c in self.db.execute(f"PRAGMA table_info({name})")}
                for name in _COLUMNS}
        for name, cols in _COLUMNS.items():
            if have[name] and not cols <= have[name]:
                missing = ", ".join(sorted(cols - have[name]))
                raise GradebookError(M_NO_COLUMN.format(path=self.path, table=name,
                                                        missing=missing))
        row = (self.db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
               if have["meta"] else None)
        if row is not None:
            try:
                version = int(row[0])
            except (TypeError, ValueError):
                raise GradebookError(M_BAD_VERSION.format(path=self.path, version=row[0])) from None
            if version > SCHEMA_VERSION:
                raise GradebookError(M_NEWER.format(path=self.path, version=version,
                                                    known=SCHEMA_VERSION))
        self.db.execute("PRAGMA journal_mode=WAL")  # readers (reports) never block a run
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute("PRAGMA foreign_keys=ON")
        with self.db:
            self.db.executescript(_SCHEMA)
            if row is None:
                self.db.execute("INSERT INTO meta VALUES ('schema_version', ?)",
                                (str(SCHEMA_VERSION),))

    def close(self) -> None:
        self.db.close()

    # -- runs -------------------------------------------------------------------------
    @_db_errors
    def start_run(self, labs: Iterable[str], roster: list[HostTarget], *, lang: str,
                  options: dict[str, Any] | None = None, parent_id: int | None = None,
                  kind: str = "grade") -> int:
        with self.db:
            cur = self.db.execute(
                "INSERT INTO runs (parent_id, kind, started_at, status, checker_version, labs,"
                " lang, options) VALUES (?, ?, ?, 'running', ?, ?, ?, ?)",
                (parent_id, kind, _now(), __version__, json.dumps(list(labs)), lang,
                 json.dumps(options or {})))
            run_id = int(cur.lastrowid or 0)
            self.db.executemany(
                "INSERT INTO roster VALUES (?, ?, ?, ?, ?, ?)",
                [(run_id, i, t.host, t.learner, t.email, json.dumps(t.to_dict()))
                 for i, t in enumerate(roster)])
        return run_id

    @_db_errors
    def finish_run(self, run_id: int, status: str) -> None:
        with self.db:
            self.db.execute("UPDATE runs SET status=?, finished_at=? WHERE id=?",
                            (status, _now(), run_id))

    def _run(self, row: tuple[Any, ...]) -> Run:
        return Run(id=row[0], parent_id=row[1], kind=row[2], started_at=row[3],
                   finished_at=row[4], status=row[5], checker_version=row[6],
                   labs=tuple(json.loads(row[7])), lang=row[8], options=json.loads(row[9]))

    _RUN_COLS = ("id, parent_id, kind, started_at, finished_at, status, checker_version, labs,"
                 " lang, options")

    @_db_errors
    def run(self, run_id: int) -> Run:
        row = self.db.execute(f"SELECT {self._RUN_COLS} FROM runs WHERE id=?", (run_id,)).fetchone()
        if row is None:
            raise GradebookError(M_NO_RUN.format(path=self.path, run=run_id))
        return self._run(row)

    @_db_errors
    def runs(self) -> list[Run]:
        return [self._run(r) for r in
                self.db.execute(f"SELECT {self._RUN_COLS} FROM runs ORDER BY id")]

    def last_run(self, labs: Iterable[str] | None = None) -> Run | None:
        """The most recent run (of exactly these labs, when given)."""
        want = sorted(labs) if labs else None
        for run in reversed(self.runs()):
            if want is None or sorted(run.labs) == want:
                return run
        return None

    def chain(self, run_id: int) -> list[Run]:
        """The run and those it continues, first run first."""
        out: list[Run] = []
        rid: int | None = run_id
        while rid is not None:
            r = self.run(rid)
            out.append(r)
            rid = r.parent_id
        return out[::-1]

    def roster(self, run_id: int) -> list[HostTarget]:
        """The class of a run: the roster of the first run of its chain."""
        return self._roster(self.chain(run_id))

    @_db_errors
    def _roster(self, chain: list[Run]) -> list[HostTarget]:
        return [HostTarget.from_dict(json.loads(r[0])) for r in self.db.execute(
            "SELECT target FROM roster WHERE run_id=? ORDER BY position", (chain[0].id,))]

    # -- results ----------------------------------------------------------------------
    @_db_errors
    def record(self, run_id: int, host: str, results: list[dict[str, Any]],
               duration_s: float = 0.0) -> None:
        """Store one host's outcome for every lab, in one transaction (commit per host).

        Every string is stored as visible text (:func:`checker.safetext.clean`): no control
        character from a learner's host reaches the gradebook, nor a lone surrogate (which
        SQLite cannot store)."""
        from checker.safetext import clean_data

        results = clean_data(results)
        when = _now()
        with self.db:
            for res in results:
                rep = res.get("report")
                score = max_score = None
                if rep:
                    score, max_score = rep.get("score"), rep.get("max_score")
                cur = self.db.execute(
                    "INSERT INTO results (run_id, host, lab, status, reason, score,"
                    " max_score, graded_at, duration_s, report) VALUES (?,?,?,?,?,?,?,?,?,?)",
                    (run_id, host, res["lab"], res["status"], res.get("reason") or "", score,
                     max_score, when,
                     float(rep.get("duration_s", duration_s)) if rep else duration_s,
                     json.dumps(rep, ensure_ascii=False) if rep else None))
                rid = cur.lastrowid
                for o in (rep or {}).get("objectives", []):
                    self.db.execute(
                        "INSERT INTO objective_results VALUES (?,?,?,?,?,?,?)",
                        (rid, o["id"], o["status"], o["points"], o["earned"], o["message"],
                         json.dumps(o.get("evidence", {}), ensure_ascii=False)))

    def latest(self, run_id: int) -> dict[tuple[str, str], StoredResult]:
        """(host, lab) -> the latest result along the run's chain."""
        return self._latest(self.chain(run_id))

    @_db_errors
    def _latest(self, chain: list[Run]) -> dict[tuple[str, str], StoredResult]:
        ids = [r.id for r in chain]
        marks = ",".join("?" * len(ids))
        out: dict[tuple[str, str], StoredResult] = {}
        for row in self.db.execute(
                "SELECT run_id, host, lab, status, reason, score, max_score, graded_at,"
                f" duration_s, report FROM results WHERE run_id IN ({marks}) ORDER BY id", ids):
            out[(row[1], row[2])] = StoredResult(
                run_id=row[0], host=row[1], lab=row[2], status=row[3], reason=row[4],
                score=row[5], max_score=row[6], graded_at=row[7], duration_s=row[8],
                report=json.loads(row[9]) if row[9] else None)
        return out

    @_db_errors
    def failed_to_connect_last(self) -> set[str]:
        """Hosts whose most recent result, in any run, is unreachable or a timeout."""
        return {row[0] for row in self.db.execute(
            "SELECT host, status FROM results WHERE id IN"
            " (SELECT MAX(id) FROM results GROUP BY host)")
            if row[1] in CONNECTION_FAILURES}

    def pending(self, run_id: int, *, missing: bool, failed_to_connect: bool) -> list[HostTarget]:
        """Hosts of the run's class still to grade: never graded (``missing``: an
        interrupted run) and/or whose last outcome was unreachable/timeout."""
        chain = self.chain(run_id)  # one walk of the chain for the three reads
        labs = chain[-1].labs
        latest = self._latest(chain)
        out = []
        for t in self._roster(chain):
            rs = [latest.get((t.host, lab)) for lab in labs]
            if missing and any(r is None for r in rs):
                out.append(t)
            elif failed_to_connect and any(r is not None and r.status in CONNECTION_FAILURES
                                           for r in rs):
                out.append(t)
        return out

    def class_view(self, run_id: int) -> ClassView:
        chain = self.chain(run_id)
        run = chain[-1]
        labs = chain[0].labs
        latest = self._latest(chain)
        rows = []
        for t in self._roster(chain):
            row = LearnerRow(target=t)
            for lab in labs:
                if (t.host, lab) in latest:
                    row.results[lab] = latest[(t.host, lab)]
            rows.append(row)
        return ClassView(run=run, runs=chain, labs=labs, rows=rows)
