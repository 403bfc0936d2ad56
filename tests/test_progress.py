"""The learner's progress store and `virtlab progress`."""

from __future__ import annotations

import json
import os

from conftest import run_virtlab

from checker import progress
from checker.model import ObjectiveResult, Report


def _report(lab: str, statuses: list[str], points: int = 2) -> Report:
    objs = tuple(
        ObjectiveResult(id=f"o{i}", title="t", section="s", points=points,
                        earned=points if s == "pass" else 0, status=s, message="m", hint="")
        for i, s in enumerate(statuses))
    return Report(lab=lab, title="T", host="local://", libvirt_uri="qemu:///system", user="u",
                  lang="fr", started_at="2026-11-26T10:00:00+00:00", duration_s=0.1,
                  checker_version="0", objectives=objs)


def test_best_score_and_what_is_left(tmp_path, monkeypatch):
    monkeypatch.setenv("VIRTLAB_DATA", str(tmp_path))
    assert progress.record(_report("01-hardware", ["pass", "fail", "pass", "fail"]))
    assert progress.record(_report("01-hardware", ["fail", "fail", "fail", "pass"]))
    rows = {r.lab: r for r in progress.summary("en")}
    r = rows["01-hardware"]
    assert r.checks == 2 and r.best_score == 4
    assert r.left == ("o0", "o1", "o2")  # from the last check
    never = [r for r in rows.values() if r.lab != "01-hardware"]
    assert all(r.best_score is None and r.checks == 0 for r in never)


def test_unwritable_store_never_fails_a_check(tmp_path, monkeypatch):
    ro = tmp_path / "ro"
    ro.write_text("a file where a folder should be")
    monkeypatch.setenv("VIRTLAB_DATA", str(ro))
    assert progress.record(_report("01-hardware", ["pass"])) is False


def test_cli_check_records_and_progress_shows_it(tmp_path):
    env = {"VIRTLAB_DATA": str(tmp_path)}
    r = run_virtlab("check", "01", "--format", "json", env=env)
    assert r.returncode in (0, 1), r.stderr
    out = run_virtlab("progress", "--format", "json", env=env)
    assert out.returncode == 0, out.stderr
    rows = {r["lab"]: r for r in json.loads(out.stdout)}
    assert rows["01-hardware"]["checks"] == 1
    assert rows["01-hardware"]["best_score"] == json.loads(r.stdout)["score"]
    text = run_virtlab("progress", "--lang", "fr", env=env)
    assert "01-hardware" in text.stdout and "meilleur score" in text.stdout
    text_en = run_virtlab("progress", "--lang", "en", env=env)
    assert "best score" in text_en.stdout and "never checked" in text_en.stdout or \
        len(rows) == 1
    assert os.path.exists(tmp_path / "progress.sqlite")
