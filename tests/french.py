"""A French Debian's locale for tests, without touching the machine's: ``fr_FR.UTF-8``
compiled by ``localedef`` into a private folder that ``LOCPATH`` points at (glibc reads
locales there first). A learner's Debian installed in French has exactly this locale."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

FR = "fr_FR.UTF-8"


def build_locale(folder: Path) -> Path:
    """``folder/fr_FR.UTF-8`` from the ``locales`` package's sources; raises OSError or
    CalledProcessError when it cannot be built (no localedef, no ``locales`` package)."""
    if not Path("/usr/share/i18n/locales/fr_FR").exists() or not shutil.which("localedef"):
        raise OSError("no fr_FR locale source (Debian package locales) or no localedef")
    folder.mkdir(parents=True, exist_ok=True)
    subprocess.run(["localedef", "-i", "fr_FR", "-f", "UTF-8", str(folder / FR)], check=True,
                   capture_output=True, timeout=120)
    return folder


def french_env(folder: Path) -> dict[str, str]:
    """The environment of a French learner's session on a host with that locale."""
    return {"LOCPATH": str(folder), "LANG": FR, "LC_ALL": FR, "LANGUAGE": ""}
