"""JUnit XML: one testsuite per lab, one testcase per objective (CI dashboards, LMS plugins)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

from checker.model import Report


def render(report: Report) -> str:
    c = report.counts()
    suite = ET.Element("testsuite", {
        "name": f"virtlab.{report.lab}", "tests": str(len(report.objectives)),
        "failures": str(c["fail"]), "errors": str(c["error"]), "skipped": str(c["skip"]),
        "time": f"{report.duration_s:.3f}", "timestamp": report.started_at,
        "hostname": report.host,
    })
    props = ET.SubElement(suite, "properties")
    for k in ("score", "max_score", "user", "libvirt_uri", "lang", "checker_version"):
        ET.SubElement(props, "property", {"name": k, "value": str(getattr(report, k))})
    for o in report.objectives:
        case = ET.SubElement(suite, "testcase", {
            "classname": f"virtlab.{report.lab}", "name": o.id, "time": "0"})
        cp = ET.SubElement(case, "properties")
        ET.SubElement(cp, "property", {"name": "points", "value": str(o.points)})
        ET.SubElement(cp, "property", {"name": "earned", "value": str(o.earned)})
        body = f"{o.title}\n{o.message}"
        if o.hint:
            body += f"\n{o.hint}"
        if o.status == "fail":
            ET.SubElement(case, "failure", {"message": o.message, "type": "fail"}).text = body
        elif o.status == "error":
            ET.SubElement(case, "error", {"message": o.message, "type": "error"}).text = body
        elif o.status == "skip":
            ET.SubElement(case, "skipped", {"message": o.message})
        ET.SubElement(case, "system-out").text = json.dumps(o.evidence, ensure_ascii=False, sort_keys=True)
    ET.indent(suite)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(suite, encoding="unicode") + "\n"
