"""A lab's contract, read from its folder: ``labs/NN-slug/breaks.toml``.

The contract every lab honours: after its reference solution, the checker gives full marks;
each way of breaking the solved state fails exactly the objective(s) it stands for (with a
phrase of the message, when given), and undoing it brings full marks back. Every objective
has at least one break. tests/test_labs.py runs it for every lab folder it finds, on both
Debian releases; nothing lists the labs.

``breaks.toml``::

    # Where the contract runs (a small fixed set the test infrastructure knows):
    #   "libvirt": the libvirt sandbox of tests/sandbox.py (this machine's release, and the
    #              other one's root filesystem); tests/test_labs.py runs the breaks below.
    #   "suite":   lab-specific tests run them, for labs whose solved state the libvirt
    #              sandbox cannot hold (recorded hosts, VirtualBox, a guest in a network
    #              namespace); `why` says so, each break names its test (`test`, a pytest node
    #              id, the release left out), and tests/test_labs.py proves that every
    #              objective has one and that it exists. A break no test can make here yet
    #              says why in `gap` (tests/test_labs.py shows it as an expected failure).
    environment = "libvirt"
    solve = ["03", "04"]          # labs solved first, in order (default: this lab only)
    groups = ["libvirt"]          # the learner's groups (default: libvirt)
    start = false                 # `virtlab start` first (default: the lab has lifecycle.py)
    prelude = "VM=test-debian-12"  # bash put before every run and restore (shared helpers)

    [[break]]
    name = "pool default stopped"
    fails = ["default-pool-active"]
    says = "pool-start default"   # optional, in the English message of each failing one
    run = "virsh pool-destroy default"
    restore = "virsh pool-start default"

``run`` and ``restore`` are bash scripts run as root on the learner's host the way
``virtlab solve`` runs ``solution.sh`` (``bash -eu``, in the lab's folder), with
``LIBVIRT_DEFAULT_URI`` (the sandbox's libvirt), ``VIRTLAB_USER`` (the learner) and
``VIRTLAB_WORK`` (an empty folder for this break, to keep what ``restore`` puts back).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FILE = "breaks.toml"
ENVIRONMENTS = ("libvirt", "suite")


class ContractError(Exception):
    """A breaks.toml that is missing or malformed; the message names the file and the field."""


@dataclass(frozen=True)
class Break:
    name: str
    fails: tuple[str, ...]
    says: str = ""
    run: str = ""
    restore: str = ""
    test: str = ""
    gap: str = ""


@dataclass(frozen=True)
class Contract:
    lab_id: str
    path: Path
    environment: str
    breaks: tuple[Break, ...]
    solve: tuple[str, ...] = ()
    groups: tuple[str, ...] = ("libvirt",)
    start: bool = False
    why: str = ""
    prelude: str = ""


def _strs(raw: Any, where: str) -> tuple[str, ...]:
    if not isinstance(raw, list) or not all(isinstance(x, str) and x for x in raw):
        raise ContractError(f"{where} must be a list of non-empty strings")
    return tuple(raw)


def _str(raw: dict[str, Any], key: str, where: str, required: bool = False) -> str:
    v = raw.get(key, "")
    if not isinstance(v, str) or (required and not v.strip()):
        raise ContractError(f"{where}: field '{key}' "
                            + ("is missing or empty" if required else "must be a string"))
    return v


def load(lab_dir: Path) -> Contract:
    """The contract of the lab in ``lab_dir`` (ContractError naming the file and field)."""
    path = lab_dir / FILE
    if not path.is_file():
        raise ContractError(f"{path}: missing (every lab declares how its objectives break)")
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as e:
        raise ContractError(f"{path}: not valid TOML: {e}") from None
    stray = sorted(set(raw) - {"environment", "break", "solve", "groups", "start", "why",
                                "prelude"})
    if stray:
        raise ContractError(f"{path}: unknown fields {stray}")
    env = raw.get("environment")
    if env not in ENVIRONMENTS:
        raise ContractError(f"{path}: field 'environment' must be one of {ENVIRONMENTS}, "
                            f"not {env!r}")
    breaks = []
    raw_breaks = raw.get("break", [])
    if not isinstance(raw_breaks, list):
        raise ContractError(f"{path}: 'break' must be an array of tables ([[break]])")
    for i, b in enumerate(raw_breaks):
        where = f"{path}: break[{i}]"
        if not isinstance(b, dict):
            raise ContractError(f"{where} must be a table")
        name = _str(b, "name", where, required=True)
        where = f"{path}: break[{i}] ({name})"
        stray = sorted(set(b) - {"name", "fails", "says", "run", "restore", "test", "gap"})
        if stray:
            raise ContractError(f"{where}: unknown fields {stray}")
        brk = Break(name=name, fails=_strs(b.get("fails"), f"{where}: field 'fails'"),
                    says=_str(b, "says", where),
                    run=_str(b, "run", where, required=env == "libvirt"),
                    restore=_str(b, "restore", where, required=env == "libvirt"),
                    test=_str(b, "test", where, required=env == "suite" and not b.get("gap")),
                    gap=_str(b, "gap", where))
        if brk.gap and env != "suite":
            raise ContractError(f"{where}: 'gap' is for environment \"suite\" only")
        breaks.append(brk)
    names = [b.name for b in breaks]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ContractError(f"{path}: break names appear twice: {dup}")
    return Contract(
        lab_id=lab_dir.name, path=path, environment=env, breaks=tuple(breaks),
        solve=_strs(raw.get("solve", [lab_dir.name[:2]]), f"{path}: field 'solve'"),
        groups=_strs(raw.get("groups", ["libvirt"]), f"{path}: field 'groups'"),
        start=bool(raw.get("start", (lab_dir / "lifecycle.py").is_file())),
        why=_str(raw, "why", str(path), required=env == "suite"),
        prelude=_str(raw, "prelude", str(path)))


def unbroken(contract: Contract, objectives: list[str]) -> list[str]:
    """The objectives of the lab that no break declares failing (must be none)."""
    covered = {o for b in contract.breaks for o in b.fails}
    return [o for o in objectives if o not in covered]


def unknown(contract: Contract, objectives: list[str]) -> list[str]:
    """Objective ids the breaks name that the lab does not have (must be none)."""
    return sorted({o for b in contract.breaks for o in b.fails} - set(objectives))
