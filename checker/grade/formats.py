"""The class exports ``virtlab grade`` writes, listed once (light: read by ``--help``).

Each export is an option of ``virtlab grade`` (``--csv FILE``, ``--json FILE``,
``--html FILE``) and a function of :mod:`checker.grade.exports`
(``function(view, csv_options) -> str``); the command line, the advice it prints and
:func:`checker.grade.exports.write` read :data:`EXPORTS`.
"""

from __future__ import annotations

from dataclasses import dataclass

from checker.i18n import Text, message

#: The user fields Moodle's CSV grade import can map a learner by (``--csv-id``).
IDENTITIES = ("username", "email", "idnumber")
#: Grade scales of the CSV (``--scale``).
SCALES = ("points", "20", "100")


@dataclass(frozen=True)
class Export:
    """One export of a class's results."""

    name: str
    suffix: str
    #: the help of its option (``--NAME FILE``)
    description: Text
    #: the function of :mod:`checker.grade.exports` that renders it
    function: str


EXPORTS: dict[str, Export] = {e.name: e for e in (
    Export("csv", ".csv", message(
        "grade.export.csv", fr="écrire les notes pour la plateforme (import CSV de Moodle)",
        en="write grades for the LMS (Moodle CSV import)"), "to_csv"),
    Export("json", ".json", message(
        "grade.export.json", fr="écrire tous les résultats en JSON",
        en="write every result as JSON"), "to_json"),
    Export("html", ".html", message(
        "grade.export.html", fr="écrire le rapport de classe (HTML)",
        en="write the class report (HTML)"), "to_html"),
)}
