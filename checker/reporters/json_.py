"""The JSON report (schema_version 1): the contract every other format renders."""

from checker.model import Report


def render(report: Report) -> str:
    return report.to_json(indent=2) + "\n"
