"""Progressive hints: how many levels of hint each learner has seen, per lab and objective.

The first level (``hint`` in lab.toml) comes with every failed check; the next ones
(``more_hints``) only on request, with ``virtlab hint LAB OBJECTIVE``, which records the new
level. The report's ``hints_shown`` reads it back, so instructors see who needed how much
help. The state is a small JSON file per learner, in their XDG data folder:
``$XDG_DATA_HOME/virtlab/hints.json`` (default ``~/.local/share/virtlab/hints.json``)::

    {"version": 1, "labs": {"07-troubleshooting": {"vm-link-up": 2}}}

>>> reveal(lab, lab.objective("vm-link-up"))   # doctest: +SKIP
2
>>> levels("07-troubleshooting")              # doctest: +SKIP
{'vm-link-up': 2}

Reading never fails: a missing, unreadable or malformed file counts as "no hint asked".
"""

from __future__ import annotations

import json
import os
import pwd
import tempfile
from pathlib import Path
from typing import Any

from checker.model import Lab, Objective
from checker.probes import read_file, ssh_lost
from checker.progress import xdg_data_dir

VERSION = 1
FILENAME = "hints.json"


def _current_user() -> str:
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return str(os.geteuid())


def state_path(user: str | None = None) -> Path:
    """The hints file of ``user`` (default: whoever runs this).

    For the user running it, ``$XDG_DATA_HOME`` is honoured; for another user (an instructor
    running the checker with ``--user alice``, or ``sudo virtlab …`` for alice) it is the
    default location in that user's home.
    """
    if user is None or user == _current_user():
        return xdg_data_dir() / FILENAME
    try:
        home = pwd.getpwnam(user).pw_dir
    except KeyError:
        home = f"/home/{user}"
    return Path(home) / ".local" / "share" / "virtlab" / FILENAME


def _read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {"version": VERSION, "labs": {}}
    if not isinstance(data, dict) or not isinstance(data.get("labs"), dict):
        return {"version": VERSION, "labs": {}}
    return data


def parse_levels(text: str, lab_id: str) -> dict[str, int]:
    """{objective id: levels} of one lab from a hints file's text (empty when malformed)."""
    try:
        data = json.loads(text)
    except ValueError:
        return {}
    labs = data.get("labs") if isinstance(data, dict) else None
    raw = labs.get(lab_id, {}) if isinstance(labs, dict) else {}
    if not isinstance(raw, dict):
        return {}
    return {str(k): v for k, v in raw.items() if isinstance(v, int) and not isinstance(v, bool)
            and v > 0}


def levels(lab_id: str, user: str | None = None, host: Any = None) -> dict[str, int]:
    """{objective id: hint levels asked for} of one lab (empty when none).

    With a testinfra ``host`` (a learner's machine graded over SSH), the learner's file is
    read there, through the same connection as every other fact.
    """
    if host is not None and host.backend.NAME != "local":
        try:
            home = host.user(user).home if user else host.user().home
            text = read_file(host, f"{home}/.local/share/virtlab/{FILENAME}")
            return parse_levels(text, lab_id) if text is not None else {}
        except Exception as e:  # unreadable: counts as no hint asked
            if ssh_lost(e):
                raise  # a lost connection is not "no hint asked"
            return {}
    try:
        return parse_levels(state_path(user).read_text(encoding="utf-8"), lab_id)
    except (OSError, UnicodeDecodeError):
        return {}


def reveal(lab: Lab, objective: Objective, user: str | None = None) -> int:
    """Record one more level of hint for ``objective`` and return the new level.

    Level 1 is the hint every failed check shows, so the first request gives level 2 (or
    stays at the last level when there is no more). Written atomically (temp file + rename).
    """
    path = state_path(user)
    data = _read(path)
    per_lab = data["labs"].setdefault(lab.id, {})
    if not isinstance(per_lab, dict):
        per_lab = data["labs"][lab.id] = {}
    current = per_lab.get(objective.id, 0)
    current = current if isinstance(current, int) and current > 0 else 1
    level = min(current + 1, len(objective.hints))
    per_lab[objective.id] = level
    data["version"] = VERSION
    _write(path, data, user)
    return level


def _write(path: Path, data: dict[str, Any], user: str | None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".hints-", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, ensure_ascii=False, indent=1, sort_keys=True)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    # root writing a learner's file (sudo virtlab hint …): leave it theirs.
    if user and user != _current_user() and os.geteuid() == 0:
        try:
            pw = pwd.getpwnam(user)
        except KeyError:
            return
        home = Path(pw.pw_dir)
        p = path
        while p != home and home in p.parents:
            os.chown(p, pw.pw_uid, pw.pw_gid)
            p = p.parent


def shown(stored: int, failing: bool) -> int:
    """How many hint levels a report counts: what was asked for, and at least the first one
    when the objective fails (the report itself shows it)."""
    return max(stored, 1) if failing else stored
