"""JSON Schemas (draft 2020-12) of the files virtlab writes, shipped with the package.

- ``report.schema.json``: one lab checked on one host (``virtlab check --format json``);
- ``class-export.schema.json``: a grading run (``virtlab grade --json``); its reports refer to
  ``report.schema.json`` by that relative name.

    >>> from checker.schemas import path
    >>> path("report").name
    'report.schema.json'

Validate with any draft 2020-12 validator, e.g. ``check-jsonschema --schemafile
$(python -c 'from checker.schemas import path; print(path("class-export"))') class.json``,
or in Python with :func:`validate` (needs the ``jsonschema`` package).
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

NAMES = ("report", "class-export")
_DIR = Path(__file__).resolve().parent


def path(name: str) -> Path:
    if name not in NAMES:
        raise ValueError(f"unknown schema {name!r}; expected one of {', '.join(NAMES)}")
    return _DIR / f"{name}.schema.json"


@cache
def load(name: str) -> dict[str, Any]:
    schema: dict[str, Any] = json.loads(path(name).read_text(encoding="utf-8"))
    return schema


@cache
def _validator(name: str) -> Any:
    from jsonschema import Draft202012Validator
    from referencing import Registry, Resource

    registry = Registry().with_resources(
        (f"{n}.schema.json", Resource.from_contents(load(n))) for n in NAMES)
    schema = load(name)
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, registry=registry,
                                format_checker=Draft202012Validator.FORMAT_CHECKER)


def errors(doc: Any, name: str) -> list[str]:
    """Every way ``doc`` breaks schema ``name`` (empty when valid), as 'path: message'."""
    out = []
    for e in sorted(_validator(name).iter_errors(doc), key=lambda e: list(e.absolute_path)):
        where = "/".join(str(p) for p in e.absolute_path) or "(top)"
        out.append(f"{where}: {e.message}")
    return out


def validate(doc: Any, name: str) -> None:
    """Raise ValueError listing what is wrong when ``doc`` does not match schema ``name``."""
    errs = errors(doc, name)
    if errs:
        raise ValueError(f"not a valid virtlab {name} document:\n  " + "\n  ".join(errs[:20]))
