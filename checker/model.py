"""The data that flows from a check to every report.

A lab is loaded into :class:`Lab` / :class:`Objective` (from ``labs/NN-slug/lab.toml``);
a run produces one frozen :class:`Report` holding one :class:`ObjectiveResult` per
objective. Reporters (text, json, junit, html, notebook) only render a Report.

>>> Text(fr="Bonjour", en="Hello").get("en")
'Hello'
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from checker.i18n import LANGS, Text, resolve_lang  # noqa: F401  (re-exported)

SCHEMA_VERSION = 1
Status = Literal["pass", "fail", "error", "skip"]
STATUSES: tuple[Status, ...] = ("pass", "fail", "error", "skip")

#: The top-level keys of the JSON report, in order (the contract of the design README).
REPORT_KEYS = ("schema_version", "lab", "title", "host", "libvirt_uri", "user", "lang",
               "score", "max_score", "passed", "started_at", "duration_s", "checker_version",
               "objectives")
#: The keys of one objective in the JSON report.
OBJECTIVE_KEYS = ("id", "title", "section", "points", "earned", "status", "message", "hint",
                  "evidence", "hints_shown", "duration_s")


@dataclass(frozen=True)
class Score:
    """Points earned out of the points that count."""

    earned: int
    total: int

    def __str__(self) -> str:
        return f"{self.earned}/{self.total}"


def earned_points(status: str, points: int) -> int:
    """What one objective earns: all its points when it passes, none otherwise."""
    return points if status == "pass" else 0


def score(results: Iterable[tuple[str, int]]) -> Score:
    """The one scoring rule, from ``(status, points)`` pairs: a passed objective earns its
    points; a failed one, or one that could not be evaluated (error), counts its points
    and earns none; a skipped one (it does not apply on this host) counts neither way.

    Used by :class:`Report` (so by every renderer, the progress store and the gradebook)
    and by the pytest plugin's summary.

    >>> str(score([("pass", 2), ("fail", 3), ("error", 1), ("skip", 5)]))
    '2/6'
    """
    earned = total = 0
    for status, points in results:
        if status == "skip":
            continue
        total += points
        earned += earned_points(status, points)
    return Score(earned, total)


@dataclass(frozen=True)
class Objective:
    id: str
    points: int
    section: str
    title: Text
    hints: tuple[Text, ...]  # hints[0] is shown with a failure; later ones on request

    @property
    def hint(self) -> Text:
        return self.hints[0]


@dataclass(frozen=True)
class Lab:
    id: str  # "02-install-kvm"
    number: int
    title: Text
    section: str
    summary: Text
    objectives: tuple[Objective, ...]
    path: Path
    has_lifecycle: bool = False

    @property
    def slug(self) -> str:
        return self.id.split("-", 1)[1]

    @property
    def max_score(self) -> int:
        return sum(o.points for o in self.objectives)

    def objective(self, oid: str) -> Objective:
        for o in self.objectives:
            if o.id == oid:
                return o
        raise KeyError(oid)

    def instructions(self, lang: str) -> str:
        return (self.path / f"instructions.{lang}.md").read_text(encoding="utf-8")

    @property
    def checks_path(self) -> Path:
        return self.path / "checks"


@dataclass(frozen=True)
class ObjectiveResult:
    id: str
    title: str
    section: str
    points: int
    earned: int
    status: Status
    message: str
    hint: str
    evidence: dict[str, Any] = field(default_factory=dict)
    hints_shown: int = 0
    duration_s: float = 0.0  # wall time of this objective's check (added within schema 1)

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"objective {self.id!r}: status must be one of {STATUSES}, "
                             f"got {self.status!r}")
        if not 0 <= self.earned <= self.points:
            raise ValueError(f"objective {self.id!r}: earned must be within 0..{self.points}, "
                             f"got {self.earned}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "section": self.section,
            "points": self.points,
            "earned": self.earned,
            "status": self.status,
            "message": self.message,
            "hint": self.hint,
            "evidence": self.evidence,
            "hints_shown": self.hints_shown,
            "duration_s": self.duration_s,
        }


@dataclass(frozen=True)
class Report:
    """The result of checking one lab on one target: the JSON contract, schema_version 1."""

    lab: str
    title: str
    host: str
    libvirt_uri: str
    user: str
    lang: str
    started_at: str
    duration_s: float
    checker_version: str
    objectives: tuple[ObjectiveResult, ...]

    @property
    def scored(self) -> Score:
        """The score of this run (:func:`score`)."""
        return score((o.status, o.points) for o in self.objectives)

    @property
    def score(self) -> int:
        return self.scored.earned

    @property
    def max_score(self) -> int:
        return self.scored.total

    @property
    def passed(self) -> bool:
        """Every objective that applies passed (skips do not count against the learner)."""
        return all(o.status in ("pass", "skip") for o in self.objectives)

    def counts(self) -> dict[str, int]:
        c: dict[str, int] = dict.fromkeys(STATUSES, 0)
        for o in self.objectives:
            c[o.status] += 1
        return c

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": SCHEMA_VERSION,
            "lab": self.lab,
            "title": self.title,
            "host": self.host,
            "libvirt_uri": self.libvirt_uri,
            "user": self.user,
            "lang": self.lang,
            "score": self.score,
            "max_score": self.max_score,
            "passed": self.passed,
            "started_at": self.started_at,
            "duration_s": self.duration_s,
            "checker_version": self.checker_version,
            "objectives": [o.to_dict() for o in self.objectives],
        }

    def to_json(self, indent: int | None = 2) -> str:
        from checker.safetext import dumps

        return dumps(self.to_dict(), indent=indent, default=str)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Report:
        """The inverse of :meth:`to_dict` (score, max_score and passed are recomputed).

        Raises ValueError on another ``schema_version`` or a missing key.
        """
        if d.get("schema_version") != SCHEMA_VERSION:
            raise ValueError(f"unsupported report schema_version {d.get('schema_version')!r} "
                             f"(this checker reads {SCHEMA_VERSION})")
        missing = [k for k in REPORT_KEYS if k not in d]
        if missing:
            raise ValueError(f"report lacks keys {missing}")
        objs = tuple(
            ObjectiveResult(
                id=o["id"], title=o["title"], section=o["section"], points=o["points"],
                earned=o["earned"], status=o["status"], message=o["message"], hint=o["hint"],
                evidence=o.get("evidence", {}), hints_shown=o.get("hints_shown", 0),
                duration_s=o.get("duration_s", 0.0),
            )
            for o in d["objectives"]
        )
        return cls(
            lab=d["lab"], title=d["title"], host=d["host"], libvirt_uri=d["libvirt_uri"],
            user=d["user"], lang=d["lang"], started_at=d["started_at"],
            duration_s=d["duration_s"], checker_version=d["checker_version"], objectives=objs,
        )

    def _repr_html_(self) -> str:  # Jupyter scoreboard
        from checker.reporters import render

        return render(self, "notebook")

    @classmethod
    def from_json(cls, text: str) -> Report:
        return cls.from_dict(json.loads(text))
