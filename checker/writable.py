"""Output paths a command is asked to write (``virtlab check --output``, ``virtlab grade
--csv/--html/…``): refused before any work starts, with one set of messages.

>>> why_unwritable("/nonexistent-dir/report.html").en
'cannot write /nonexistent-dir/report.html: folder /nonexistent-dir does not exist'
>>> why_unwritable("/tmp") is not None
True
"""

from __future__ import annotations

import os

from checker.i18n import Text, message

M_IS_DIR = message("write.is-dir", fr="impossible d'écrire {path} : c'est un dossier",
                   en="cannot write {path}: it is a directory")
M_NO_DIR = message("write.no-dir",
                   fr="impossible d'écrire {path} : le dossier {parent} n'existe pas",
                   en="cannot write {path}: folder {parent} does not exist")
M_DENIED = message("write.denied", fr="impossible d'écrire {path} : permission refusée",
                   en="cannot write {path}: permission denied")
#: writing failed after all (a full disk, a file removed meanwhile): the system's reason
M_CANNOT_WRITE = message("write.failed", fr="impossible d'écrire {path} : {reason}",
                         en="cannot write {path}: {reason}")


def why_unwritable(path: str) -> Text | None:
    """Why ``path`` cannot be written as a new or replaced file, or None when it can."""
    target = os.path.abspath(path)
    parent = os.path.dirname(target)
    if os.path.isdir(target):
        return M_IS_DIR.format(path=path)
    if not os.path.isdir(parent):
        return M_NO_DIR.format(path=path, parent=parent)
    if not os.access(target if os.path.exists(target) else parent, os.W_OK):
        return M_DENIED.format(path=path)
    return None


def write_failed(path: str, error: OSError) -> Text:
    """The message of a write that failed with ``error``."""
    return M_CANNOT_WRITE.format(path=path, reason=error.strerror or str(error))
