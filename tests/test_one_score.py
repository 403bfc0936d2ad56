"""One score everywhere: a real check of lab 02 with a skipped objective shows the same
score in every view (check, progress, notebook scoreboard, watch, gradebook, exports).

On this machine (no systemd as PID 1) lab 02's ``libvirtd-enabled`` is ``skip``: a skipped
objective counts neither way (:func:`checker.model.score`, the contract in
``design/labs.md``), so the maximum is the lab's points minus its points. The test reads
each view as its reader does: the terminal text, the JSON, the HTML.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, cannot_run

from checker.catalog import resolve
from checker.grade import exports
from checker.grade.gradebook import Gradebook
from checker.grade.targets import HostTarget
from checker.i18n import LOCALE_VARS

LAB = "02-install-kvm"
SKIPPED = "libvirtd-enabled"


def _env(tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in LOCALE_VARS + ("LANGUAGE", "VIRTLAB_DEBUG", "VIRTLAB_LABS")}
    env.update(LANG="C.UTF-8", VIRTLAB_DATA=str(tmp / "data"), VIRTLAB_WATCH_INTERVAL="30")
    return env


def _virtlab(tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    p = subprocess.run([sys.executable, "-m", "checker", *args], capture_output=True,
                       text=True, env=_env(tmp), cwd=REPO, timeout=300,
                       stdin=subprocess.DEVNULL)
    assert "Traceback" not in p.stderr, p.stderr
    return p


def test_the_same_score_in_every_view(tmp_path: Path) -> None:
    # --- virtlab check: JSON (the reference) and the terminal text ---------------------
    p = _virtlab(tmp_path, "check", "02", "--format", "json")
    report = json.loads(p.stdout)
    statuses = {o["id"]: o["status"] for o in report["objectives"]}
    if statuses.get(SKIPPED) != "skip":
        cannot_run(f"{SKIPPED} is {statuses.get(SKIPPED)} here (skip needs no systemd)")
    lab = resolve(LAB)
    skipped_points = sum(o["points"] for o in report["objectives"] if o["status"] == "skip")
    score, max_score = report["score"], report["max_score"]
    assert max_score == lab.max_score - skipped_points < lab.max_score
    assert score == sum(o["earned"] for o in report["objectives"])
    shown = f"{score}/{max_score}"

    p = _virtlab(tmp_path, "check", "02")
    assert re.search(rf"Score : {score}/{max_score}\b", p.stdout), p.stdout

    # --- virtlab progress (text and JSON) ----------------------------------------------
    p = _virtlab(tmp_path, "progress")
    line = next(ln for ln in p.stdout.splitlines() if ln.startswith(LAB))
    assert f"meilleur score {shown}," in line, line
    rows = {r["lab"]: r for r in json.loads(_virtlab(tmp_path, "progress", "--format",
                                                     "json").stdout)}
    assert (rows[LAB]["best_score"], rows[LAB]["max_score"]) == (score, max_score)

    # --- the notebook: check() and its scoreboard, show() and its progress table -------
    code = ("import json\nfrom checker import check\nfrom checker.progress import show\n"
            "r = check('02')\n"
            "print(json.dumps({'board': r._repr_html_(), 'table': show()._repr_html_()}))\n")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       env=_env(tmp_path), cwd=tmp_path, timeout=300)
    assert p.returncode == 0, p.stderr
    views = json.loads(p.stdout)
    assert re.search(rf'class="vl-score[^"]*">[^<]*{score}/{max_score}</p>', views["board"])
    assert f"<td>{shown}</td>" in views["table"]

    # --- the watch's first update -----------------------------------------------------
    w = subprocess.Popen([sys.executable, "-m", "checker", "check", "02", "--watch",
                          "--format", "json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, env=_env(tmp_path), cwd=REPO, stdin=subprocess.DEVNULL)
    try:
        assert w.stdout is not None
        first = json.loads(w.stdout.readline())
        w.send_signal(signal.SIGINT)
        w.communicate(timeout=30)
    finally:
        if w.poll() is None:
            w.kill()
            w.communicate()
    assert (first["reason"], first["score"], first["max_score"]) == ("start", score, max_score)

    # --- grading: the worker's own function on this host, the gradebook, the exports ----
    from checker.grade.worker import grade_labs

    answer = grade_labs({"host": "local://", "labs": [LAB], "spec": "local://", "lang": "fr"})
    gb = Gradebook(tmp_path / "gb.sqlite")
    target = HostTarget(host="local://", spec="local://", learner="learner",
                        email="learner@example.org", ssh_user="learner", ssh_host="localhost")
    run = gb.start_run([LAB], [target], lang="fr")
    gb.record(run, "local://", answer["results"])
    gb.finish_run(run, "complete")
    view = gb.class_view(run)
    stored = view.rows[0].results[LAB]
    assert (stored.status, stored.score, stored.max_score) == ("graded", score, max_score)

    rows_csv = list(csv.reader(io.StringIO(exports.to_csv(view))))  # scale: points
    assert rows_csv[0][:2] == ["email", LAB]
    assert rows_csv[1][:2] == ["learner@example.org", str(score)]
    on20 = list(csv.reader(io.StringIO(exports.to_csv(view, exports.CsvOptions(scale="20")))))
    assert float(on20[1][1]) == pytest.approx(round(score * 20 / max_score, 2))
    doc = json.loads(exports.to_json(view))
    res = doc["learners"][0]["results"][LAB]
    assert (res["score"], res["max_score"]) == (score, max_score)
    assert (res["report"]["score"], res["report"]["max_score"]) == (score, max_score)
    assert re.search(rf"<td[^>]*>{score}/{max_score}</td>", exports.to_html(view))
