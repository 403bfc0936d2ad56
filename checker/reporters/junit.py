"""JUnit XML: one testsuite per lab, one testcase per objective (CI dashboards, LMS plugins).

Valid against Jenkins' ``junit-10.xsd`` (xUnit plugin; Jenkins' and GitLab's JUnit readers take
it too), which is stricter than what most writers produce: ``<testsuites>`` carries no
``skipped`` count and a ``<testcase>`` no ``<properties>``. So the objective's details (title,
section, points, earned, status) are properties of the suite named ``<objective id>.<field>``;
each testcase's ``time`` is the objective's own check time (``duration_s`` in the JSON) and its
``<system-out>`` the evidence, as JSON. ``tests/test_reporters.py`` validates the output with
``xmllint`` against the schema.

Titles, messages and hints are shown as plain text (a CI dashboard renders no Markdown): their
inline Markdown marks are dropped (:func:`checker.markup.plain`); the JSON report keeps them.

Strings from the learner's machine may hold characters XML 1.0 cannot carry (control
characters): they are replaced by ``\\xNN`` so that the file always parses.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET

from checker.markup import plain
from checker.model import Report

#: The objective's fields that are lab text (inline Markdown).
_TEXT_FIELDS = ("title", "message", "hint")

# Characters outside XML 1.0's Char production.
_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _x(s: object) -> str:
    if isinstance(s, bool):
        s = str(s).lower()
    return _XML_INVALID.sub(lambda m: f"\\x{ord(m.group()):02x}", str(s))


def render(report: Report) -> str:
    c = report.counts()
    counts = {"tests": str(len(report.objectives)), "failures": str(c["fail"]),
              "errors": str(c["error"])}
    time = f"{max(report.duration_s, 0):.3f}"
    root = ET.Element("testsuites", {"name": "virtlab", **counts, "time": time})
    suite = ET.SubElement(root, "testsuite", {
        "name": _x(f"virtlab.{report.lab}"), **counts, "skipped": str(c["skip"]), "time": time,
        "timestamp": _x(report.started_at), "hostname": _x(report.host),
    })
    props = ET.SubElement(suite, "properties")
    for k in ("score", "max_score", "passed", "user", "libvirt_uri", "lang", "checker_version"):
        ET.SubElement(props, "property", {"name": k, "value": _x(getattr(report, k))})
    for o in report.objectives:
        for k in ("title", "section", "points", "earned", "status", "hints_shown"):
            v = getattr(o, k)
            ET.SubElement(props, "property", {"name": _x(f"{o.id}.{k}"),
                                              "value": _x(plain(v) if k in _TEXT_FIELDS else v)})
    for o in report.objectives:
        case = ET.SubElement(suite, "testcase", {
            "classname": _x(f"virtlab.{report.lab}"), "name": _x(o.id),
            "time": f"{max(o.duration_s, 0):.3f}"})
        message = plain(o.message)
        body = f"{plain(o.title)}\n{message}"
        if o.hint:
            body += f"\n{plain(o.hint)}"
        if o.status == "fail":
            ET.SubElement(case, "failure", {"message": _x(message), "type": "fail"}).text = _x(body)
        elif o.status == "error":
            ET.SubElement(case, "error", {"message": _x(message), "type": "error"}).text = _x(body)
        elif o.status == "skip":
            ET.SubElement(case, "skipped", {"message": _x(message)})
        ET.SubElement(case, "system-out").text = _x(
            json.dumps(o.evidence, ensure_ascii=False, sort_keys=True))
    ET.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
