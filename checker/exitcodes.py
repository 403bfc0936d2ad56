"""Exit codes of every ``virtlab`` command, defined once (the README's table is built from
this enum's docstrings by ``virtlab build``)."""

from __future__ import annotations

from enum import IntEnum


class Exit(IntEnum):
    """What a ``virtlab`` command's exit status means."""

    #: check: every objective passed · grade: every host graded · other commands: done.
    OK = 0
    #: check: at least one objective did not pass · start/finish: a step failed.
    FAILED = 1
    #: Bad usage: unknown lab, bad option or host spec, unreadable or unwritable file.
    USAGE = 2
    #: check/start/finish: the target could not be inspected at all · grade: not every host
    #: could be graded (unreachable, daemon down, flood).
    UNREACHABLE = 3
    #: An internal error of the checker (a bug: ``VIRTLAB_DEBUG=1`` shows the traceback).
    INTERNAL = 70
    #: Interrupted (Ctrl-C); what was done so far is kept and reported.
    INTERRUPTED = 130


class UsageError(Exception):
    """Bad usage of a command or of the library (exit :attr:`Exit.USAGE`)."""
