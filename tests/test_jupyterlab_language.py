"""JupyterLab speaks the learner's language: French menus for a French learner.

``.ci/install`` runs ``.ci/jupyterlab-language``, which writes the default of JupyterLab's
language setting (``@jupyterlab/translation-extension:plugin``, ``locale``) into the
application settings folder of the checkout's .venv. Here the same script writes into a
temporary settings folder, and a real JupyterLab started on 127.0.0.1 with that folder is
asked, through its own REST API, which languages it has and which one it uses.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest

# the headless Chromium of the site's tests (a fixture: imported by name for pytest)
from test_site import browser  # noqa: F401

REPO = Path(__file__).resolve().parent.parent
JUPYTER = Path(sys.executable).parent / "jupyter"
PLUGIN = "@jupyterlab/translation-extension:plugin"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def jupyter_env(tmp: Path, **locale: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("LC_ALL", "LC_MESSAGES", "LANG", "LANGUAGE")}
    # JupyterLab's own config, data and runtime folders: empty ones, not this machine's
    for name in ("CONFIG", "DATA", "RUNTIME"):
        (tmp / name.lower()).mkdir(exist_ok=True)
        env[f"JUPYTER_{name}_DIR"] = str(tmp / name.lower())
    env["JUPYTER_PLATFORM_DIRS"] = "1"
    return {**env, **locale}


def _get(url: str, token: str) -> dict:
    req = urllib.request.Request(url, headers={"Authorization": f"token {token}"})
    with urllib.request.urlopen(req, timeout=20) as r:
        return json.loads(r.read())


@pytest.fixture
def jupyterlab(tmp_path):
    """start(locale env, overrides=None) -> base URL and token of a JupyterLab whose settings
    folder the install's script wrote for that locale (and, if given, a test's own overrides
    of other settings' defaults, e.g. the theme, in overrides.d/test.json: the temporary
    folders only, never this machine's). Its notebook folder: tmp_path / "nb"."""
    procs: list[subprocess.Popen[bytes]] = []
    logs = contextlib.ExitStack()

    def start(overrides: dict | None = None, **locale: str) -> tuple[str, str, dict]:
        env = jupyter_env(tmp_path, **locale)
        settings = tmp_path / "settings"
        r = subprocess.run(["bash", str(REPO / ".ci" / "jupyterlab-language"), str(settings)],
                           env=env, capture_output=True, text=True, timeout=60, check=False)
        assert r.returncode == 0, r.stdout + r.stderr
        written = json.loads((settings / "overrides.d" / "virtlab-language.json").read_text())
        if overrides:
            (settings / "overrides.d" / "test.json").write_text(json.dumps(overrides))
        port, token = _free_port(), uuid.uuid4().hex
        (tmp_path / "nb").mkdir(exist_ok=True)
        log = logs.enter_context(open(tmp_path / f"jupyter-{port}.log", "wb"))
        proc = subprocess.Popen(
            [str(JUPYTER), "lab", "--no-browser", "--allow-root", "--ServerApp.ip=127.0.0.1",
             f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
             f"--IdentityProvider.token={token}", f"--LabApp.app_settings_dir={settings}",
             f"--ServerApp.root_dir={tmp_path / 'nb'}"],
            env=env, stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path)
        procs.append(proc)
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 90
        while True:
            try:
                _get(f"{base}/api/status", token)
                break
            except (OSError, urllib.error.URLError):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError("JupyterLab did not answer:\n" + (
                        tmp_path / f"jupyter-{port}.log").read_text(errors="replace")) from None
                time.sleep(0.3)
        return base, token, written

    yield start
    for proc in procs:  # our own children, by their PID
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    logs.close()


def menu_bar(driver, base: str, token: str) -> list[str]:
    """The labels of JupyterLab's main menu bar, as headless Chromium shows them."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(f"{base}/lab?token={token}")
    WebDriverWait(driver, 90).until(
        lambda d: d.find_elements(By.CSS_SELECTOR, "#jp-MainMenu .lm-MenuBar-itemLabel"))
    return [e.text for e in driver.find_elements(By.CSS_SELECTOR,
                                                 "#jp-MainMenu .lm-MenuBar-itemLabel")]


def test_a_french_learner_gets_jupyterlab_in_french(jupyterlab, browser):  # noqa: F811
    base, token, written = jupyterlab(LANG="fr_FR.UTF-8")
    assert written == {PLUGIN: {"locale": "fr_FR"}}
    # the setting JupyterLab's front end reads: its default is now French (the learner's
    # own choice, none here, would win)
    setting = _get(f"{base}/lab/api/settings/{PLUGIN}", token)
    assert setting["schema"]["properties"]["locale"]["default"] == "fr_FR"
    assert "locale" not in setting["settings"]
    # the languages it lists: the French pack is installed
    packs = _get(f"{base}/lab/api/translations", token)
    assert packs["message"] == "", packs["message"]
    assert "fr_FR" in packs["data"], sorted(packs["data"])
    assert packs["data"]["fr_FR"]["nativeName"].lower().startswith("français")
    # the French strings the menus are drawn from
    fr = _get(f"{base}/lab/api/translations/fr_FR", token)
    assert fr["message"] == "", fr["message"]
    strings = json.dumps(fr["data"], ensure_ascii=False)
    assert '"File": ["Fichier"]' in strings
    # and what a learner sees: JupyterLab's menu bar, in French
    assert "Fichier" in menu_bar(browser, base, token)


def test_an_english_learner_gets_jupyterlab_in_english(jupyterlab, browser):  # noqa: F811
    # (the language is virtlab's own, checker.i18n.resolve_lang: whatever environment
    # variables it reads, the script follows)
    base, token, written = jupyterlab(LANG="en_US.UTF-8")
    assert written == {PLUGIN: {"locale": "en"}}
    setting = _get(f"{base}/lab/api/settings/{PLUGIN}", token)
    assert setting["schema"]["properties"]["locale"]["default"] == "en"
    packs = _get(f"{base}/lab/api/translations", token)
    # French is still there to choose (Settings > Language)
    assert "fr_FR" in packs["data"]
    labels = menu_bar(browser, base, token)
    assert "File" in labels and "Fichier" not in labels, labels
