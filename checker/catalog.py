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

from checker.i18n import LANGS, Text, message
from checker.model import Lab, Objective
from checker.releases import WORDS, unknown_words

LAB_DIR_RE = re.compile(r"^(\d{2})-[a-z0-9]+(?:-[a-z0-9]+)*$")
OBJECTIVE_ID_RE = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")


class CatalogError(Exception):
    """A lab file is malformed; the message (:attr:`text`, both languages; ``str()`` is the
    English) names the file and the field."""

    def __init__(self, text: Text) -> None:
        super().__init__(text.en)
        self.text = text


M_NOT_TEXT = message(
    "catalog.not-text",
    fr="{where} : le champ « {field} » doit être une table avec les chaînes « fr » et « en »",
    en="{where}: field '{field}' must be a table with 'fr' and 'en' strings")
M_TEXT_EMPTY = message("catalog.text-empty", fr="{where} : le champ « {field} » manque ou est vide",
                       en="{where}: field '{field}' is missing or empty")
M_NOT_TABLE = message("catalog.not-table", fr="{where} : {loc} doit être une table",
                      en="{where}: {loc} must be a table")
M_BAD_ID = message(
    "catalog.bad-id",
    fr="{where} : le champ « {field} » doit être un identifiant en minuscules et tirets, "
       "trouvé {got}",
    en="{where}: field '{field}' must be a lowercase-dashed id, got {got}")
M_BAD_POINTS = message(
    "catalog.bad-points",
    fr="{where} : le champ « {field} » doit être un entier positif, trouvé {got}",
    en="{where}: field '{field}' must be a positive integer, got {got}")
M_FIELD_MISSING = message("catalog.field-missing", fr="{where} : le champ « {field} » manque",
                          en="{where}: field '{field}' is missing")
M_NOT_LIST = message("catalog.not-list", fr="{where} : le champ « {field} » doit être une liste",
                     en="{where}: field '{field}' must be a list")
M_UNKNOWN_WORD = message(
    "catalog.unknown-word",
    fr="{where} : le champ « {field} » nomme un mot inconnu {{{word}}} (connus : {known})",
    en="{where}: field '{field}' names an unknown word {{{word}}} (known: {known})")
M_BAD_FOLDER = message(
    "catalog.bad-folder",
    fr="{path} : un dossier de lab s'appelle NN-slug (par ex. 02-install-kvm)",
    en="{path}: a lab folder is named NN-slug (e.g. 02-install-kvm)")
M_FILE_MISSING = message("catalog.file-missing", fr="{where} : fichier absent",
                         en="{where}: file missing")
M_UNREADABLE = message("catalog.unreadable", fr="{where} : illisible : {error}",
                       en="{where}: cannot be read: {error}")
M_BAD_TOML = message("catalog.bad-toml", fr="{where} : TOML invalide : {error}",
                     en="{where}: not valid TOML: {error}")
M_NO_ID = message("catalog.no-id", fr="{where} : le champ « id » manque ({expected} attendu)",
                  en="{where}: field 'id' is missing (expected {expected})")
M_WRONG_ID = message(
    "catalog.wrong-id",
    fr="{where} : le champ « id » doit être {expected} (le nom du dossier), trouvé {got}",
    en="{where}: field 'id' must be {expected} (the folder's name), got {got}")
M_NO_SECTION = message(
    "catalog.no-section", fr="{where} : le champ « section » manque ou n'est pas une chaîne",
    en="{where}: field 'section' is missing or not a string")
M_NO_OBJECTIVES = message(
    "catalog.no-objectives",
    fr="{where} : le champ « objectives » doit être une liste non vide de tables ([[objectives]])",
    en="{where}: field 'objectives' must be a non-empty list of tables ([[objectives]])")
M_DUPLICATE = message(
    "catalog.duplicate-objective",
    fr="{where} : champ « objectives.id » : l'objectif {oid} apparaît deux fois",
    en="{where}: field 'objectives.id': objective id {oid} appears twice")
M_NO_INSTRUCTIONS = message(
    "catalog.no-instructions", fr="{path} : fichier absent (les instructions du lab en {lang})",
    en="{path}: file missing (the lab's instructions in {lang})")
M_NO_LABS = message(
    "catalog.no-labs-folder", fr="{root} : dossier des labs introuvable (définissez VIRTLAB_LABS)",
    en="{root}: labs folder not found (set VIRTLAB_LABS)")
M_TWO_LABS = message("catalog.two-labs", fr="{root} : deux labs portent le numéro {n} : {a} et {b}",
                     en="{root}: two labs numbered {n}: {a} and {b}")


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
        raise CatalogError(M_NOT_TEXT.format(where=where, field=field))
    for lang in ("fr", "en"):
        v = raw.get(lang)
        if not isinstance(v, str) or not v.strip():
            raise CatalogError(M_TEXT_EMPTY.format(where=where, field=f"{field}.{lang}"))
    return Text(fr=raw["fr"].strip(), en=raw["en"].strip())


def _objective(raw: Any, where: str, index: int) -> Objective:
    loc = f"objectives[{index}]"
    if not isinstance(raw, dict):
        raise CatalogError(M_NOT_TABLE.format(where=where, loc=loc))
    oid = raw.get("id")
    if not isinstance(oid, str) or not OBJECTIVE_ID_RE.match(oid):
        raise CatalogError(M_BAD_ID.format(where=where, field=f"{loc}.id", got=repr(oid)))
    loc = f"objectives[{index}] ({oid})"
    points = raw.get("points")
    if not isinstance(points, int) or isinstance(points, bool) or points < 1:
        raise CatalogError(M_BAD_POINTS.format(where=where, field=f"{loc}.points",
                                               got=repr(points)))
    section = raw.get("section")
    if not isinstance(section, str) or not section.strip():
        raise CatalogError(M_FIELD_MISSING.format(where=where, field=f"{loc}.section"))
    hints = [_text(raw.get("hint"), where, f"{loc}.hint")]
    more = raw.get("more_hints", [])
    if not isinstance(more, list):
        raise CatalogError(M_NOT_LIST.format(where=where, field=f"{loc}.more_hints"))
    hints += [_text(h, where, f"{loc}.more_hints[{i}]") for i, h in enumerate(more)]
    for i, h in enumerate(hints):
        field = f"{loc}.hint" if i == 0 else f"{loc}.more_hints[{i - 1}]"
        for lang in ("fr", "en"):
            bad = unknown_words(h.get(lang))
            if bad:
                raise CatalogError(M_UNKNOWN_WORD.format(
                    where=where, field=f"{field}.{lang}", word=bad[0], known=", ".join(WORDS)))
    return Objective(
        id=oid, points=points, section=section.strip(),
        title=_text(raw.get("title"), where, f"{loc}.title"), hints=tuple(hints),
    )


def load_lab(path: Path) -> Lab:
    """Load and validate one lab folder; a CatalogError names the file and the field."""
    path = Path(path)
    m = LAB_DIR_RE.match(path.name)
    if not m:
        raise CatalogError(M_BAD_FOLDER.format(path=path))
    meta_file = path / "lab.toml"
    where = str(meta_file)
    try:
        raw = tomllib.loads(meta_file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CatalogError(M_FILE_MISSING.format(where=where)) from None
    except OSError as e:
        raise CatalogError(M_UNREADABLE.format(where=where, error=e.strerror)) from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise CatalogError(M_BAD_TOML.format(where=where, error=e)) from None
    if "id" not in raw:
        raise CatalogError(M_NO_ID.format(where=where, expected=repr(path.name)))
    if raw["id"] != path.name:
        raise CatalogError(M_WRONG_ID.format(where=where, expected=repr(path.name),
                                             got=repr(raw["id"])))
    title = _text(raw.get("title"), where, "title")
    summary = _text(raw.get("summary"), where, "summary")
    section = raw.get("section")
    if not isinstance(section, str) or not section.strip():
        raise CatalogError(M_NO_SECTION.format(where=where))
    objs_raw = raw.get("objectives")
    if not isinstance(objs_raw, list) or not objs_raw:
        raise CatalogError(M_NO_OBJECTIVES.format(where=where))
    objectives = tuple(_objective(o, where, i) for i, o in enumerate(objs_raw))
    seen: set[str] = set()
    for o in objectives:
        if o.id in seen:
            raise CatalogError(M_DUPLICATE.format(where=where, oid=repr(o.id)))
        seen.add(o.id)
    for lang in LANGS:
        if not (path / f"instructions.{lang}.md").is_file():
            raise CatalogError(M_NO_INSTRUCTIONS.format(path=path / f"instructions.{lang}.md",
                                                        lang=lang))
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
        raise CatalogError(M_NO_LABS.format(root=root))
    # os.scandir: the entry's type comes with its name (no stat per entry, symlinks still
    # followed), names sorted as strings (what sorting their Paths under one root does): a
    # grading worker resolves a lab ~10 times per lab and host
    with os.scandir(root) as it:
        names = sorted(e.name for e in it if LAB_DIR_RE.match(e.name) and e.is_dir())
    dirs = [root / n for n in names]
    numbers: dict[str, str] = {}
    for d in dirs:
        n = d.name[:2]
        if n in numbers:
            raise CatalogError(M_TWO_LABS.format(root=root, n=n, a=numbers[n], b=d.name))
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
