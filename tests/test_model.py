"""The report contract (design README, "The report (JSON, schema_version 1)")."""

from __future__ import annotations

import json
from datetime import datetime

import pytest

from checker.model import (
    OBJECTIVE_KEYS,
    REPORT_KEYS,
    SCHEMA_VERSION,
    ObjectiveResult,
    Report,
    Text,
    resolve_lang,
)

# The contract, written out again here on purpose: a change to the model must be a
# deliberate change to this test too.
CONTRACT_TOP = {"schema_version", "lab", "title", "host", "libvirt_uri", "user", "lang",
                "score", "max_score", "passed", "started_at", "duration_s",
                "checker_version", "objectives"}
CONTRACT_OBJECTIVE = {"id", "title", "section", "points", "earned", "status", "message",
                      "hint", "evidence", "hints_shown", "duration_s"}


def obj(oid: str, status: str, points: int = 2, earned: int | None = None,
        **kw: object) -> ObjectiveResult:
    if earned is None:
        earned = points if status == "pass" else 0
    return ObjectiveResult(id=oid, title=f"title {oid}", section="8.1.1", points=points,
                           earned=earned, status=status,  # type: ignore[arg-type]
                           message=f"message {oid}", hint=kw.pop("hint", ""),  # type: ignore[arg-type]
                           **kw)  # type: ignore[arg-type]


def report(*objectives: ObjectiveResult, **kw: object) -> Report:
    base = dict(lab="01-hardware", title="T", host="local://", libvirt_uri="qemu:///system",
                user="alice", lang="fr", started_at="2025-03-04T10:11:12+01:00",
                duration_s=0.25, checker_version="0.1.0", objectives=objectives)
    base.update(kw)
    return Report(**base)  # type: ignore[arg-type]


def test_score_is_the_sum_of_earned_points_and_max_score_of_points():
    r = report(obj("a", "pass", 3), obj("b", "fail", 2), obj("c", "error", 4), obj("d", "pass", 1))
    assert (r.score, r.max_score) == (4, 10)


def test_skipped_objectives_count_neither_in_score_nor_in_max_score():
    r = report(obj("a", "pass", 3), obj("b", "skip", 5), obj("c", "fail", 2))
    assert (r.score, r.max_score) == (3, 5)
    only_skips = report(obj("a", "skip", 3))
    assert (only_skips.score, only_skips.max_score) == (0, 0)


@pytest.mark.parametrize("statuses, passed", [
    (("pass", "pass"), True),
    (("pass", "skip"), True),
    (("pass", "fail"), False),
    (("pass", "error"), False),
    (("skip", "error"), False),
])
def test_passed_means_every_objective_that_applies_passed(statuses, passed):
    r = report(*(obj(f"o{i}", s) for i, s in enumerate(statuses)))
    assert r.passed is passed
    assert r.to_dict()["passed"] is passed


def test_counts_per_status():
    r = report(obj("a", "pass"), obj("b", "fail"), obj("c", "fail"), obj("d", "skip"))
    assert r.counts() == {"pass": 1, "fail": 2, "error": 0, "skip": 1}


def test_an_objective_cannot_earn_more_than_its_points_or_have_an_unknown_status():
    with pytest.raises(ValueError, match="earned"):
        obj("a", "pass", points=2, earned=3)
    with pytest.raises(ValueError, match="status"):
        obj("a", "passed")


def test_to_dict_keys_are_exactly_the_contract():
    d = report(obj("a", "pass", evidence={"x": 1})).to_dict()
    assert set(d) == CONTRACT_TOP
    assert tuple(d) == REPORT_KEYS  # and in the documented order
    assert set(d["objectives"][0]) == CONTRACT_OBJECTIVE
    assert tuple(d["objectives"][0]) == OBJECTIVE_KEYS
    assert d["schema_version"] == SCHEMA_VERSION == 1
    assert d["objectives"][0]["evidence"] == {"x": 1}


def test_started_at_from_the_engine_is_iso_8601_with_an_offset():
    # What engine.check() writes: an aware local time, to the second.
    from checker.engine import check

    r = check("01", lang="en")
    parsed = datetime.fromisoformat(r.started_at)
    assert parsed.tzinfo is not None and parsed.utcoffset() is not None
    assert r.started_at[-6] in "+-" and r.started_at[-3] == ":"  # "+01:00", not "Z"


def test_json_round_trip_gives_an_equal_report():
    r = report(obj("a", "pass", 3, evidence={"flags": ["vmx"], "n": None}),
               obj("b", "fail", 2, hint="essayez « virsh list »", hints_shown=1),
               obj("c", "skip", 1), lang="en")
    text = r.to_json()
    again = Report.from_json(text)
    assert again == r
    assert Report.from_dict(json.loads(text)).to_dict() == json.loads(text)


def test_from_dict_refuses_another_schema_version_and_missing_keys():
    d = report(obj("a", "pass")).to_dict()
    with pytest.raises(ValueError, match="schema_version"):
        Report.from_dict({**d, "schema_version": 2})
    del d["host"]
    with pytest.raises(ValueError, match="host"):
        Report.from_dict(d)


def test_json_keeps_non_ascii_readable():
    r = report(obj("a", "fail", hint="Activez VT-x dans le BIOS/UEFI — « SVM »"))
    assert "« SVM »" in r.to_json()


def test_text_picks_the_language():
    t = Text(fr="Bonjour", en="Hello")
    assert (t.get("fr"), t.get("en"), t.get("de")) == ("Bonjour", "Hello", "Bonjour")


@pytest.mark.parametrize("arg, env, expected", [
    ("en", "fr_FR.UTF-8", "en"), ("fr", "en_US.UTF-8", "fr"), (None, "en_GB.UTF-8", "en"),
    (None, "fr_FR.UTF-8", "fr"), (None, "C.UTF-8", "fr"), (None, "", "fr"),
])
def test_language_is_the_option_else_lang_else_french(monkeypatch, arg, env, expected):
    monkeypatch.setenv("LANG", env)
    assert resolve_lang(arg) == expected


def test_evidence_is_always_valid_json():
    from pathlib import PurePosixPath

    from checker.dsl import Verdict

    v = Verdict("x")
    v.evidence(nan=float("nan"), inf=float("-inf"), path=PurePosixPath("/dev/kvm"),
               flags=frozenset({"vmx", "ept"}), nested={1: (True, None)})
    text = json.dumps(v.facts, allow_nan=False)
    assert json.loads(text) == {"nan": "nan", "inf": "-inf", "path": "/dev/kvm",
                                "flags": ["ept", "vmx"], "nested": {"1": [True, None]}}


def test_objective_ids_are_checked_where_a_check_is_declared():
    from checker.dsl import objective

    with pytest.raises(ValueError, match="lowercase-dashed"):
        objective("Dev KVM")
    assert objective("dev-kvm")(lambda: None).virtlab_objective == "dev-kvm"


def test_every_report_made_in_the_test_session_is_checked_against_its_json_schema():
    """tests/conftest.py validates each Report.to_dict() against checker/schemas: a report
    off its contract fails the test that made it."""
    assert report(obj("a", "pass")).to_dict()["lang"] == "fr"
    with pytest.raises(AssertionError, match="not a valid report"):
        report(obj("a", "pass"), lang="de").to_dict()
    with pytest.raises(AssertionError, match="not a valid report"):
        report(obj("a", "pass"), duration_s=-1.0).to_dict()


def test_the_json_schemas_are_draft_2020_12_and_accept_the_documented_example():
    import re
    from pathlib import Path

    from jsonschema import Draft202012Validator

    from checker.schemas import NAMES, errors, load

    for name in NAMES:
        Draft202012Validator.check_schema(load(name))
        assert load(name)["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    for page in ("reference.md", "reference.en.md"):
        text = (Path(__file__).resolve().parent.parent / "site" / page).read_text("utf-8")
        example = re.search(r"```json\n(\{.*?\})\n```", text, re.S).group(1)
        doc = json.loads(example.replace("…", "..."))
        assert errors(doc, "report") == [], page
