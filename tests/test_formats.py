"""Dates, numbers and units as the reader writes them: French in French output, English in
English (Babel's CLDR data through :mod:`checker.i18n`); machine files keep ISO and dots."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from checker import progress
from checker.checks import decimal
from checker.grade import exports
from checker.grade.gradebook import Gradebook
from checker.i18n import format_date, format_duration, format_number, format_percent
from checker.model import ObjectiveResult, Report
from checker.reporters import render

REPO = Path(__file__).resolve().parent.parent
ISO = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d")
STARTED = "2026-12-01T05:40:42+00:00"  # 06:40 in Paris (CET, UTC+1)


@pytest.fixture(autouse=True)
def _paris_time(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("TZ", "Europe/Paris")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def test_dates_in_the_local_time_zone_in_each_language() -> None:
    assert format_date(STARTED, "fr") == "1 décembre 2026 à 06:40"
    assert format_date(STARTED, "en") == "1 December 2026, 06:40"
    assert format_date("2026-07-14T10:00:00+00:00", "fr") == "14 juillet 2026 à 12:00"  # CEST
    assert format_date(None, "fr") == "—"
    assert format_date("not a date", "en") == "not a date"  # shown as stored, never a crash


def test_numbers_percentages_durations_in_each_language() -> None:
    assert (format_number(23.5, "fr"), format_number(23.5, "en")) == ("23,5", "23.5")
    assert format_number(1234.56, "fr", 2) == "1\u202f234,56"
    assert format_number(1234.56, "en", 2) == "1,234.56"
    assert format_number(7, "fr", 0) == "7"
    assert (format_percent(0.875, "fr", 1), format_percent(0.875, "en", 1)) == \
        ("87,5\xa0%", "87.5%")
    assert (format_duration(1.234, "fr", 2), format_duration(1.234, "en", 2)) == \
        ("1,23 s", "1.23 s")
    # the labs' helper is the same function
    assert (decimal(23.54).fr, decimal(23.54).en) == ("23,5", "23.5")


def _report(lang: str, started: str = STARTED) -> Report:
    objs = (ObjectiveResult(id="o1", title="t", section="s", points=2, earned=2, status="pass",
                            message="m", hint=""),)
    return Report(lab="01-hardware", title="T", host="local://", libvirt_uri="qemu:///system",
                  user="u", lang=lang, started_at=started, duration_s=1.234,
                  checker_version="0", objectives=objs)


@pytest.mark.parametrize("lang,when,seconds", [
    ("fr", "1 décembre 2026 à 06:40", "1,23 s"), ("en", "1 December 2026, 06:40", "1.23 s")])
def test_html_report_shows_a_readable_time_json_keeps_iso(lang: str, when: str,
                                                          seconds: str) -> None:
    html = render(_report(lang), "html")
    assert when in html and seconds in html
    assert not ISO.search(html)
    assert json.loads(render(_report(lang), "json"))["started_at"] == STARTED


@pytest.mark.parametrize("lang,when", [("fr", "1 décembre 2026 à 06:40"),
                                       ("en", "1 December 2026, 06:40")])
def test_virtlab_progress_and_the_notebook_table(tmp_path: Path, lang: str, when: str) -> None:
    os.environ["VIRTLAB_DATA"] = str(tmp_path)
    try:
        assert progress.record(_report(lang))
        table = progress.ProgressTable(lang)._repr_html_()
        assert when in table and not ISO.search(table)
        env = {k: v for k, v in os.environ.items()
               if k not in ("LANGUAGE", "LC_ALL", "LC_MESSAGES", "VIRTLAB_DEBUG")}
        env.update(LANG="C.UTF-8", TZ="Europe/Paris")
        p = subprocess.run([sys.executable, "-m", "checker", "progress", "--lang", lang],
                           capture_output=True, text=True, env=env, cwd=REPO, timeout=60)
        assert p.returncode == 0, p.stderr
        assert when in p.stdout and not ISO.search(p.stdout), p.stdout
        # the machine form keeps ISO
        p = subprocess.run([sys.executable, "-m", "checker", "progress", "--format", "json"],
                           capture_output=True, text=True, env=env, cwd=REPO, timeout=60)
        rows = {r["lab"]: r for r in json.loads(p.stdout)}
        assert rows["01-hardware"]["last_check"] == STARTED
    finally:
        del os.environ["VIRTLAB_DATA"]


@pytest.mark.parametrize("lang,mean,when", [("fr", "7,5/10", "décembre 2026"),
                                            ("en", "7.5/10", "December 2026")])
def test_class_report_mean_and_run_times(tmp_path: Path, lang: str, mean: str, when: str
                                         ) -> None:
    from test_grade_units import LAB, a_class, graded

    gb = Gradebook(tmp_path / "gb.sqlite")
    roster = a_class(2)
    run = gb.start_run([LAB], roster, lang=lang)
    # 10 points in lab 01: dev-kvm (2) failed -> 8, host-resources (3) failed -> 7: mean 7.5
    gb.record(run, roster[0].host, graded("u0", {"cpu-virt-flags": "pass", "kvm-modules": "pass",
                                                  "dev-kvm": "fail", "host-resources": "pass"}))
    gb.record(run, roster[1].host, graded("u1", {"cpu-virt-flags": "pass", "kvm-modules": "pass",
                                                  "dev-kvm": "pass", "host-resources": "fail"}))
    gb.finish_run(run, "complete")
    view = gb.class_view(run)
    assert [r.results[LAB].score for r in view.rows] == [8, 7]
    html = exports.to_html(view)
    shown = re.sub(r"<svg.*</svg>", "", html, flags=re.S)  # the chart's metadata: not read
    assert when in shown and not ISO.search(shown)
    assert mean in shown
    # the machine export keeps ISO times
    doc = json.loads(exports.to_json(view))
    assert ISO.match(doc["run"]["started_at"])


@pytest.mark.parametrize("lang,pattern", [("fr", r"\d+,\d Gio de RAM, \d+ Gio libres"),
                                          ("en", r"\d+\.\d GiB RAM, \d+ GiB free")])
def test_a_lab_message_with_a_decimal(tmp_path: Path, lang: str, pattern: str) -> None:
    """Lab 01's host-resources message on this machine (it passes here: 2 cores, > 3 GiB)."""
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTLAB_DEBUG", "VIRTLAB_LABS")}
    env.update(VIRTLAB_DATA=str(tmp_path), LANG="C.UTF-8")
    p = subprocess.run([sys.executable, "-m", "checker", "check", "01", "--lang", lang,
                        "--format", "json"], capture_output=True, text=True, env=env, cwd=REPO,
                       timeout=120)
    objs = {o["id"]: o for o in json.loads(p.stdout)["objectives"]}
    res = objs["host-resources"]
    assert res["status"] == "pass", res
    assert re.search(pattern, res["message"]), res["message"]
