"""mkdocs hook: give each language root its own sitemap.xml.

Material fetches ``<language root>/sitemap.xml`` on every page; mkdocs-static-i18n writes
only ``/sitemap.xml``, so English pages asked for a missing ``/en/sitemap.xml`` (a 404 in
the browser console). The i18n plugin builds each extra language from inside the default
build, and this hook runs after each build: the copy is made once the language's folder
exists.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any


def on_post_build(config: Any, **_: Any) -> None:
    root = Path(config["site_dir"])
    sitemap = root / "sitemap.xml"
    i18n = config["plugins"].get("i18n")
    if i18n is None or not sitemap.is_file():
        return
    for lang in i18n.config["languages"]:
        if lang["default"] or not lang["build"]:
            continue
        folder = root / lang["link"].strip("/")
        if folder.is_dir():
            shutil.copyfile(sitemap, folder / "sitemap.xml")
