"""Grading a whole class: ``virtlab grade LAB... --hosts SPEC,... | --inventory FILE``.

One folder per concern:

- ``targets``   the class: ``--hosts`` specs or an Ansible inventory -> HostTarget
- ``sshconf``   the run's SSH set-up (batch mode, shared connections, timeouts)
- ``hostssh``   one host's own ssh options (its inventory's), for libvirt's connection too
- ``worker``    one process grading one host at a time with ``checker.engine.check()``
- ``runner``    the pool of workers, each host bounded by a deadline
- ``gradebook`` SQLite: every run, every host's results and evidence (one facade class)
- ``exports``   CSV for the LMS, JSON, the instructors' HTML report
- ``grading``   the pipeline tying them together; ``command`` the CLI side

    >>> from checker.grade import Gradebook, GradeOptions, grade, from_specs   # doctest: +SKIP
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    # re-exported lazily by __getattr__; listed in __all__
    from checker.grade.gradebook import ClassView, Gradebook, GradebookError, default_path  # noqa: F401
    from checker.grade.grading import GradeOptions, grade  # noqa: F401
    from checker.grade.targets import HostTarget, TargetError, from_inventory, from_specs  # noqa: F401

_WHERE = {
    "ClassView": "gradebook", "Gradebook": "gradebook", "GradebookError": "gradebook",
    "default_path": "gradebook", "GradeOptions": "grading", "grade": "grading",
    "HostTarget": "targets", "TargetError": "targets", "from_inventory": "targets",
    "from_specs": "targets",
}
__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    # Imported lazily: `virtlab --help` builds the grade parser without loading all this.
    if name in _WHERE:
        from importlib import import_module

        return getattr(import_module(f"checker.grade.{_WHERE[name]}"), name)
    raise AttributeError(name)
