"""Finding and loading labs.

Each lab is a folder ``labs/NN-slug/`` holding ``lab.toml`` (metadata and objectives),
``instructions.fr.md`` / ``instructions.en.md``, ``checks/test_*.py`` (testinfra test
modules) and ``solution.sh`` (the reference solution), optionally ``lifecycle.py``
(``setup``/``cleanup`` for ``virtlab start``/``finish``), and ``breaks.toml`` (the lab's
contract for the test suite, read by tests/contract.py, never by the checker).

>>> lab = resolve("2")        # doctest: +SKIP
>>> lab.id                    # doctest: +SKIP
'02-install-kvm'
"""

from __future__ import annotations

import os
import re
import tomllib
from functools import lru_cache
from pathlib import Path
from typing import Any

from checker.i18n import LANGS, Text
from checker.model import Lab, Objective
from checker.releases import WORDS, unknown_words

LAB_DIR_RE = re.compile(r"^(\d{2})-[a-z0-9]+(?:-[a-z0-9]+)*$")
OBJECTIVE_ID_RE = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")


class CatalogError(Exception):
    """A lab file is malformed; the message names the file and the field."""


class UnknownLab(LookupError):
    def __init__(self, query: str, valid: list[str]):
        self.query = query
        self.valid = valid
        super().__init__(f"unknown lab {query!r}; valid labs: {', '.join(valid)}")


def labs_root() -> Path:
    """Where the labs are: $VIRTLAB_LABS, the installed copy, or the source tree."""
    env = os.environ.get("VIRTLAB_LABS")
    if env:
        return Path(env)
    here = Path(__file__).resolve().parent
    installed = here / "labs"
    if installed.is_dir():
        return installed
    return here.parent / "labs"


def _text(raw: Any, where: str, field: str) -> Text:
    if not isinstance(raw, dict):
        raise CatalogError(f"{where}: field '{field}' must be a table with 'fr' and 'en' strings")
    for lang in ("fr", "en"):
        v = raw.get(lang)
        if not isinstance(v, str) or not v.strip():
            raise CatalogError(f"{where}: field '{field}.{lang}' is missing or empty")
    return Text(fr=raw["fr"].strip(), en=raw["en"].strip())


def _objective(raw: Any, where: str, index: int) -> Objective:
    loc = f"objectives[{index}]"
    if not isinstance(raw, dict):
        raise CatalogError(f"{where}: {loc} must be a table")
    oid = raw.get("id")
    if not isinstance(oid, str) or not OBJECTIVE_ID_RE.match(oid):
        raise CatalogError(f"{where}: field '{loc}.id' must be a lowercase-dashed id, got {oid!r}")
    loc = f"objectives[{index}] ({oid})"
    points = raw.get("points")
    if not isinstance(points, int) or isinstance(points, bool) or points < 1:
        raise CatalogError(f"{where}: field '{loc}.points' must be a positive integer, got {points!r}")
    section = raw.get("section")
    if not isinstance(section, str) or not section.strip():
        raise CatalogError(f"{where}: field '{loc}.section' is missing")
    hints = [_text(raw.get("hint"), where, f"{loc}.hint")]
    more = raw.get("more_hints", [])
    if not isinstance(more, list):
        raise CatalogError(f"{where}: field '{loc}.more_hints' must be a list")
    hints += [_text(h, where, f"{loc}.more_hints[{i}]") for i, h in enumerate(more)]
    for i, h in enumerate(hints):
        field = f"{loc}.hint" if i == 0 else f"{loc}.more_hints[{i - 1}]"
        for lang in ("fr", "en"):
            bad = unknown_words(h.get(lang))
            if bad:
                raise CatalogError(
                    f"{where}: field '{field}.{lang}' names an unknown word {{{bad[0]}}} "
                    f"(known: {', '.join(WORDS)})")
    return Objective(
        id=oid, points=points, section=section.strip(),
        title=_text(raw.get("title"), where, f"{loc}.title"), hints=tuple(hints),
    )


def load_lab(path: Path) -> Lab:
    """Load and validate one lab folder; a CatalogError names the file and the field."""
    path = Path(path)
    m = LAB_DIR_RE.match(path.name)
    if not m:
        raise CatalogError(f"{path}: a lab folder is named NN-slug (e.g. 02-install-kvm)")
    meta_file = path / "lab.toml"
    where = str(meta_file)
    try:
        raw = tomllib.loads(meta_file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CatalogError(f"{where}: file missing") from None
    except OSError as e:
        raise CatalogError(f"{where}: cannot be read: {e.strerror}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise CatalogError(f"{where}: not valid TOML: {e}") from None
    if "id" not in raw:
        raise CatalogError(f"{where}: field 'id' is missing (expected {path.name!r})")
    if raw["id"] != path.name:
        raise CatalogError(f"{where}: field 'id' must be {path.name!r} (the folder's name), "
                           f"got {raw['id']!r}")
    title = _text(raw.get("title"), where, "title")
    summary = _text(raw.get("summary"), where, "summary")
    section = raw.get("section")
    if not isinstance(section, str) or not section.strip():
        raise CatalogError(f"{where}: field 'section' is missing or not a string")
    objs_raw = raw.get("objectives")
    if not isinstance(objs_raw, list) or not objs_raw:
        raise CatalogError(f"{where}: field 'objectives' must be a non-empty list of tables "
                           "([[objectives]])")
    objectives = tuple(_objective(o, where, i) for i, o in enumerate(objs_raw))
    seen: set[str] = set()
    for o in objectives:
        if o.id in seen:
            raise CatalogError(f"{where}: field 'objectives.id': objective id {o.id!r} "
                               "appears twice")
        seen.add(o.id)
    for lang in LANGS:
        if not (path / f"instructions.{lang}.md").is_file():
            raise CatalogError(f"{path / f'instructions.{lang}.md'}: file missing "
                               f"(the lab's instructions in {lang})")
    return Lab(
        id=path.name,
        number=int(m.group(1)),
        title=title,
        section=section.strip(),
        summary=summary,
        objectives=objectives,
        path=path,
        has_lifecycle=(path / "lifecycle.py").is_file(),
    )


def lab_dirs(root: Path) -> list[Path]:
    """The lab folders under ``root`` (``NN-slug``, one per number), in order, unloaded."""
    if not root.is_dir():
        raise CatalogError(f"{root}: labs folder not found (set VIRTLAB_LABS)")
    dirs = sorted(p for p in root.iterdir() if p.is_dir() and LAB_DIR_RE.match(p.name))
    numbers: dict[str, str] = {}
    for d in dirs:
        n = d.name[:2]
        if n in numbers:
            raise CatalogError(f"{root}: two labs numbered {n}: {numbers[n]} and {d.name}")
        numbers[n] = d.name
    return dirs


@lru_cache(maxsize=32)
def _load_cached(path: Path, mtime_ns: int) -> Lab:
    return load_lab(path)


def _load(path: Path) -> Lab:
    try:
        mtime = (path / "lab.toml").stat().st_mtime_ns
    except OSError:
        mtime = 0
    return _load_cached(path, mtime)


def all_labs() -> tuple[Lab, ...]:
    """Every lab under :func:`labs_root`, in order (a malformed one raises CatalogError)."""
    return tuple(_load(p) for p in lab_dirs(labs_root()))


def lab_ids() -> list[str]:
    """The ids of the labs present (folder names), without loading them."""
    return [p.name for p in lab_dirs(labs_root())]


def resolve(query: str | int | Lab) -> Lab:
    """A lab by full id (``04-create-vm``), number (``04``, ``4``) or slug (``create-vm``).

    Only that lab is loaded, so one malformed lab does not block the others.
    Raises :class:`UnknownLab` (listing the valid ids) when nothing matches.
    """
    if isinstance(query, Lab):
        return query
    dirs = lab_dirs(labs_root())
    q = str(query).strip()
    for d in dirs:
        number, slug = d.name.split("-", 1)
        if q == d.name or q == slug or (q.isdigit() and int(q) == int(number)):
            return _load(d)
    raise UnknownLab(q, [d.name for d in dirs])
