"""JUnit XML: one testsuite per lab, one testcase per objective (CI dashboards, LMS plugins).

Strings from the learner's machine may hold characters XML 1.0 cannot carry (control
characters): they are replaced by ``\\xNN`` so that the file always parses.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET

from checker.model import Report

# Characters outside XML 1.0's Char production.
_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def _x(s: object) -> str:
    if isinstance(s, bool):
        s = str(s).lower()
    return _XML_INVALID.sub(lambda m: f"\\x{ord(m.group()):02x}", str(s))


def render(report: Report) -> str:
    c = report.counts()
    counts = {"tests": str(len(report.objectives)), "failures": str(c["fail"]),
              "errors": str(c["error"]), "skipped": str(c["skip"]),
              "time": f"{report.duration_s:.3f}"}
    root = ET.Element("testsuites", {"name": "virtlab", **counts})
    suite = ET.SubElement(root, "testsuite", {
        "name": _x(f"virtlab.{report.lab}"), **counts,
        "timestamp": _x(report.started_at), "hostname": _x(report.host),
    })
    props = ET.SubElement(suite, "properties")
    for k in ("score", "max_score", "passed", "user", "libvirt_uri", "lang", "checker_version"):
        ET.SubElement(props, "property", {"name": k, "value": _x(getattr(report, k))})
    for o in report.objectives:
        case = ET.SubElement(suite, "testcase", {
            "classname": _x(f"virtlab.{report.lab}"), "name": _x(o.id), "time": "0"})
        cp = ET.SubElement(case, "properties")
        for k in ("title", "section", "points", "earned", "status"):
            ET.SubElement(cp, "property", {"name": k, "value": _x(getattr(o, k))})
        body = f"{o.title}\n{o.message}"
        if o.hint:
            body += f"\n{o.hint}"
        if o.status == "fail":
            ET.SubElement(case, "failure", {"message": _x(o.message), "type": "fail"}).text = _x(body)
        elif o.status == "error":
            ET.SubElement(case, "error", {"message": _x(o.message), "type": "error"}).text = _x(body)
        elif o.status == "skip":
            ET.SubElement(case, "skipped", {"message": _x(o.message)})
        ET.SubElement(case, "system-out").text = _x(
            json.dumps(o.evidence, ensure_ascii=False, sort_keys=True))
    ET.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
