"""The reports in dark themes: the single HTML report, the notebook's scoreboard and the class
report (its chart included) follow a dark palette (checker/templates/palette.css), with AA
contrast for every colour, in headless Chromium and inside a real JupyterLab in its dark theme.

- the palette itself: every text colour on its background (4.5:1), every bar of the chart and
  rule on the page (3:1), in both palettes;
- a standalone page follows prefers-color-scheme (emulated through the DevTools protocol);
  inside JupyterLab (data-jp-theme-light on its body) or VS Code (body.vscode-dark/-light)
  the editor's theme wins over the system's, and the scoreboard's CSS styles nothing but
  itself;
- a real JupyterLab (tests/test_jupyterlab_language.py's) started with "JupyterLab Dark" as
  its theme (a settings override in its temporary settings folder) opens a notebook whose
  check cells a real kernel ran (nbclient, the real check API on labs 02 and 03): axe-core
  finds no serious violation in the output area (and did judge every status cell), the
  scoreboard is light on dark on a light system; the controls: the CSS of the light-only
  reports (before the dark palette) in the same place makes axe find contrast violations,
  and the palette without its dark rules is not dark; then the learner picks "JupyterLab
  Light" on a dark system: the scoreboard is light, audited again.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import nbformat
import pytest

# the headless Chromium of the site's tests and the JupyterLab of the language's (fixtures:
# imported by name for pytest)
from test_jupyterlab_language import JUPYTER, jupyter_env, jupyterlab  # noqa: F401
from test_notebooks import NO_DAEMON_URI, run_notebook
from test_site import (
    LUM_JS,
    axe_run,
    browser,  # noqa: F401
    contrast,
    is_dark,
    is_light,
    load,
    luminance,
    with_axe,
)

REPO = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).parent / "fixtures"
ARTIFACTS = REPO / "artifacts"

THEME = "@jupyterlab/apputils-extension:themes"
#: every cell laid out (JupyterLab 4 skips drawing the cells out of view by default): the
#: audit sees every objective of both scoreboards
WINDOWING = "@jupyterlab/notebook-extension:tracker"


# --- the palette ------------------------------------------------------------------------

def _palettes() -> dict[str, dict[str, str]]:
    from checker.reporters.html import environment

    css = environment().get_template("palette.css").render()
    light = re.search(r"^\.vl-report\{([^}]*)\}", css, re.M)
    dark = re.search(r"@media \(prefers-color-scheme:dark\)\{\.vl-report\{([^}]*)\}\}", css)
    assert light and dark, css
    return {name: dict(re.findall(r"--vl-([\w-]+):(#[0-9a-f]{3,6})", m.group(1)))
            for name, m in (("light", light), ("dark", dark))}


def _luminance(hex_colour: str) -> float:
    h = hex_colour.lstrip("#")
    if len(h) == 3:
        h = "".join(c * 2 for c in h)
    rgb = [int(h[i:i + 2], 16) / 255 for i in (0, 2, 4)]
    lin = [c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in rgb]
    return 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]


def _ratio(a: str, b: str) -> float:
    return contrast({"fg": _luminance(a), "bg": _luminance(b)})


#: (foreground, background, minimum ratio): text 4.5:1, bars, rules and the hint's bar 3:1
PAIRS = [(fg, "bg", 4.5) for fg in ("fg", "muted", "pass", "fail", "error", "error-fg")] + [
    ("code-fg", "code-bg", 4.5), ("fg", "head-bg", 4.5), ("muted", "head-bg", 4.5),
    ("pass", "pass-bg", 4.5), ("fail", "fail-bg", 4.5), ("error-fg", "error-bg", 4.5),
    ("muted", "none-bg", 4.5),
    ("bar-hi", "bg", 3), ("bar-mid", "bg", 3), ("bar-lo", "bg", 3), ("hint", "bg", 3),
    ("border", "bg", 3)]


def test_every_colour_of_both_palettes_has_aa_contrast():
    palettes = _palettes()
    assert palettes["light"].keys() == palettes["dark"].keys()
    low = []
    for name, p in palettes.items():
        for fg, bg, minimum in PAIRS:
            ratio = _ratio(p[fg], p[bg])
            if ratio < minimum:
                low.append((name, fg, p[fg], bg, p[bg], round(ratio, 2)))
    assert low == []
    assert _luminance(palettes["dark"]["bg"]) < 0.05 < _luminance(palettes["light"]["bg"])


def test_the_chart_draws_with_the_page_colours_on_a_transparent_background():
    from checker.grade.exports import CHART_COLOURS, chart_svg

    svg = chart_svg([("02-install-kvm", "a", 0.9, 3), ("02-install-kvm", "b", 0.6, 3),
                     ("03-libvirt-basics", "c", 0.1, 2)], multi_lab=True)
    colours = set(re.findall(r"(?:fill|stroke):\s*([^;\"]+)", svg))
    # every colour is one of the page's (the stand-ins replaced), or none: no white background
    assert colours <= {"none", *CHART_COLOURS.values()}, colours
    assert set(CHART_COLOURS.values()) <= colours
    assert not re.search(r"#[0-9a-fA-F]{6}\b", svg)


# --- standalone pages and editors' themes, in headless Chromium --------------------------

#: where a notebook shows its cells' output
OUTPUT = ".jp-Notebook .jp-OutputArea"

#: JupyterLab's <body> is 0 px high with overflow: hidden (its shell is positioned over it),
#: which axe-core takes for "everything inside is clipped": it would audit almost nothing.
#: Giving <html> and <body> the window's height changes no colour and lets it see the page.
_AXE_CAN_SEE = ("document.documentElement.style.height = '100%';"
                "document.body.style.height = '100%';")

#: the status cells of the scoreboards that axe-core's contrast rule did judge (passed or
#: failed; "incomplete", it could not tell), and all of them: an audit that saw none would
#: pass without having looked
_COVERAGE_JS = """
const done = arguments[arguments.length - 1];
axe.run({include: [[arguments[0]]]}, {runOnly: ['color-contrast'], elementRef: true})
  .then(r => {
    const seen = new Set([...r.passes, ...r.violations]
      .flatMap(v => v.nodes.map(n => n.element)));
    const cells = [...document.querySelectorAll('.vl-report .vl-status')];
    done({seen: cells.filter(c => seen.has(c)).length, all: cells.length});
  }).catch(e => done({error: String(e)}));
"""


def whole_notebook_in_view(driver) -> None:
    """A window as high as the notebook: axe-core's contrast rule checks what is drawn in the
    viewport, and JupyterLab scrolls a notebook inside its own panel."""
    height = driver.execute_script(
        "return document.querySelector('.jp-Notebook .jp-WindowedPanel-inner').scrollHeight")
    driver.set_window_size(1280, height + 400)
    driver.execute_script(_AXE_CAN_SEE)


def contrast_coverage(driver, selector: str = OUTPUT) -> dict:
    with_axe(driver)
    return driver.execute_async_script(_COVERAGE_JS, selector)


def _scoreboard_page(tmp: Path, name: str, body_attrs: str) -> str:
    """The notebook's scoreboard (labs 02 and 03, every status, hints, hostile strings: the
    reports of tests/test_lab_text.py) in a page whose body carries an editor's theme mark."""
    from test_lab_text import LABS, lab_report

    from checker.reporters import render

    boards = "".join(render(lab_report(lab, "fr"), "notebook") for lab in LABS[1:3])
    path = tmp / f"{name}.html"
    path.write_text(f'<!DOCTYPE html><html lang="fr"><head><meta charset="utf-8">'
                    f'<title>{name}</title></head><body {body_attrs}><main><h1>{name}</h1>'
                    f'{boards}</main></body></html>', "utf-8")
    return path.as_uri()


def _dark_system(driver, dark: bool) -> None:
    driver.execute_cdp_cmd("Emulation.setEmulatedMedia", {
        "features": [{"name": "prefers-color-scheme", "value": "dark" if dark else "light"}]})


#: a scoreboard's rules that style something outside it (none expected)
_LEAKS_JS = """
const out = [];
const walk = rules => { for (const r of rules) {
  if (r.cssRules && !r.selectorText) { walk(r.cssRules); continue; }
  for (const s of (r.selectorText || '').split(',')) \
if (!s.includes('.vl-report')) out.push(s); } };
for (const el of document.querySelectorAll('.vl-report')) {
  const style = el.previousElementSibling;
  if (!style || style.tagName !== 'STYLE') { out.push('no style before a .vl-report'); continue; }
  walk(style.sheet.cssRules); }
return out;
"""


@pytest.mark.parametrize("host,attrs", [
    ("browser", ""), ("jupyterlab-dark", 'data-jp-theme-light="false"'),
    ("jupyterlab-light", 'data-jp-theme-light="true"'), ("vscode-dark", 'class="vscode-dark"'),
    ("vscode-light", 'class="vscode-light"')])
def test_the_scoreboard_follows_the_editor_theme_else_the_system(browser, tmp_path,  # noqa: F811
                                                                 host, attrs):
    url = _scoreboard_page(tmp_path, host, attrs)
    found = {}
    try:
        for system in ("light", "dark"):
            _dark_system(browser, system == "dark")
            load(browser, url)
            dark = host.endswith("-dark") or (host == "browser" and system == "dark")
            for selector in (".vl-report", ".vl-report td:nth-child(2)", ".vl-report .vl-meta",
                             ".vl-report .vl-skip", ".vl-report code"):
                lum = luminance(browser, selector)
                assert (is_dark if dark else is_light)(lum), (host, system, selector, lum)
            found[system] = axe_run(browser)
            coverage = contrast_coverage(browser, "main")
            assert coverage["all"] > 10 and coverage["seen"] == coverage["all"], coverage
            assert browser.execute_script(_LEAKS_JS) == []
    finally:
        browser.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": []})
    assert found == {"light": [], "dark": []}


def test_the_class_report_chart_reads_in_both_palettes(browser, tmp_path):  # noqa: F811
    from test_site import sample_reports

    url = sample_reports(tmp_path)["class-report.html"].as_uri()
    # the luminance of the page and of what the chart draws with: bars 3:1, text 4.5:1
    js = LUM_JS + r"""
    const svg = document.querySelector('.chart svg');
    const fills = sel => [...svg.querySelectorAll(sel)].map(e => lum(getComputedStyle(e).fill));
    // text drawn over a bar (overlapping it by more than a pixel): none expected
    const boxes = sel => [...svg.querySelectorAll(sel)].map(e => e.getBoundingClientRect());
    const over = (a, b) => Math.min(a.right, b.right) - Math.max(a.left, b.left) > 1
                           && Math.min(a.bottom, b.bottom) - Math.max(a.top, b.top) > 1;
    const bars = boxes('[style*="--vl-bar"]');
    const on_bars = boxes('g[style="fill: var(--vl-fg)"]')
      .filter(t => bars.some(b => over(t, b))).length;
    return {page: lum(getComputedStyle(document.body).backgroundColor),
            svg: getComputedStyle(svg).backgroundColor, on_bars: on_bars,
            texts: boxes('g[style="fill: var(--vl-fg)"]').length,
            bars: fills('[style*="--vl-bar"]'), ink: fills('[style*="fill: var(--vl-fg)"]')};
    """
    try:
        for system in ("light", "dark"):
            _dark_system(browser, system == "dark")
            load(browser, url)
            ARTIFACTS.mkdir(exist_ok=True)  # for a human to judge
            assert browser.save_screenshot(str(ARTIFACTS / f"class-report-{system}.png"))
            got = browser.execute_script(js)
            assert (got["page"] < 0.05) == (system == "dark"), got["page"]
            assert got["svg"] == "rgba(0, 0, 0, 0)"  # the page shows through
            assert got["bars"] and got["ink"], got
            assert got["texts"] > len(got["bars"]) and got["on_bars"] == 0, got
            for bar in got["bars"]:
                assert contrast({"fg": bar, "bg": got["page"]}) >= 3, (system, got)
            for ink in got["ink"]:
                assert contrast({"fg": ink, "bg": got["page"]}) >= 4.5, (system, got)
            # its text alternative and the table of the same numbers, in both
            assert browser.execute_script(
                "return document.querySelector('.chart svg').getAttribute('aria-label')")
            assert luminance(browser, "#rates ~ table td") is not None
            assert axe_run(browser) == []
    finally:
        browser.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": []})


# --- a real JupyterLab in its dark theme ------------------------------------------------

def _executed_notebook(folder: Path, env: dict[str, str]) -> Path:
    """A notebook with the check cells of labs 02 (pass, fail, skip, hints) and 03 (error,
    pass), as the generated notebooks have them, run by a real kernel (the real check API,
    libvirt's daemon unreachable), saved and trusted as the learner's own run leaves it."""
    cells = []
    for lab, cell_id in (("02-install-kvm", "fr-check"), ("03-libvirt-basics", "en-check")):
        nb = nbformat.read(REPO / "notebooks" / f"{lab}.ipynb", as_version=4)
        cells += [c for c in nb.cells if c.get("id") == cell_id]
    assert len(cells) == 2
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    path = folder / "dark.ipynb"
    nbformat.write(nb, path)
    nb = run_notebook(path, NO_DAEMON_URI)
    boards = [o for c in nb.cells for o in c.outputs if "text/html" in o.get("data", {})]
    assert len(boards) == 2 and all('class="vl-report"' in o["data"]["text/html"]
                                    for o in boards), nb.cells
    html = "".join(o["data"]["text/html"] for o in boards)
    for status in ("vl-pass", "vl-fail", "vl-error", "vl-skip", "vl-hint"):
        assert status in html, status
    nbformat.write(nb, path)
    # the learner ran it: JupyterLab shows its HTML output as is (an untrusted one is sanitised)
    r = subprocess.run([str(JUPYTER), "trust", str(path)], env=env, capture_output=True,
                       text=True, timeout=60, check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    return path


def _open_notebook(driver, base: str, token: str, name: str,
                   theme: str = "JupyterLab Dark") -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver.set_window_size(1280, 900)  # the browser fixture's
    # JupyterLab's first load is heavy on a busy machine: more time than the site's pages
    driver.set_page_load_timeout(120)
    try:
        driver.get(f"{base}/lab/tree/{name}?token={token}")
    finally:
        driver.set_page_load_timeout(30)  # the browser fixture's
    WebDriverWait(driver, 120).until(lambda d: len(d.find_elements(
        By.CSS_SELECTOR, ".jp-OutputArea-output .vl-report tr.vl-skip")) == 1)
    WebDriverWait(driver, 30).until(lambda d: d.execute_script(
        "return document.body.dataset.jpThemeName") == theme)


def _put_setting(base: str, token: str, plugin: str, value: dict) -> None:
    """A user setting, through JupyterLab's settings API (as Settings › Theme does)."""
    import json
    import urllib.request

    req = urllib.request.Request(
        f"{base}/lab/api/settings/{plugin}", method="PUT",
        data=json.dumps({"raw": json.dumps(value)}).encode(),
        headers={"Authorization": f"token {token}", "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=20) as r:
        assert r.status in (200, 204), r.status


def test_the_scoreboard_in_jupyterlab_dark_theme(jupyterlab, browser, tmp_path):  # noqa: F811
    env = jupyter_env(tmp_path, LANG="fr_FR.UTF-8")
    (tmp_path / "nb").mkdir(exist_ok=True)
    nb = _executed_notebook(tmp_path / "nb", env)
    base, token, _ = jupyterlab(overrides={THEME: {"theme": "JupyterLab Dark"},
                                           WINDOWING: {"windowingMode": "none"}},
                                LANG="fr_FR.UTF-8")
    _dark_system(browser, False)  # a light system: JupyterLab's theme decides, not the system
    try:
        _open_notebook(browser, base, token, nb.name)
        assert browser.execute_script("return document.body.dataset.jpThemeLight") == "false"
        # JupyterLab's own cells are dark: the scoreboard is light on dark like them
        assert is_dark(luminance(browser, ".jp-Notebook .jp-Cell"))
        for selector in (".vl-report", ".vl-report h2", ".vl-report td:nth-child(2)",
                         ".vl-report .vl-meta", ".vl-report .vl-skip", ".vl-report code",
                         ".vl-report .vl-hint"):
            lum = luminance(browser, selector)
            assert is_dark(lum), (selector, lum)
        whole_notebook_in_view(browser)
        ARTIFACTS.mkdir(exist_ok=True)  # for a human to judge
        assert browser.save_screenshot(str(ARTIFACTS / "jupyterlab-dark-scoreboard.png"))
        coverage = contrast_coverage(browser)
        assert coverage["all"] > 10 and coverage["seen"] == coverage["all"], coverage
        assert axe_run(browser, OUTPUT) == []
        assert browser.execute_script(_LEAKS_JS) == []

        # control 1: the reports' CSS before their dark palette (light only, fewer rules
        # over JupyterLab's: its table colours mixed with ours), in the same place: axe
        # finds text under AA contrast
        old = (FIXTURES / "report-light-only.css").read_text("utf-8")
        browser.execute_script(
            "for (const el of document.querySelectorAll('.vl-report')) "
            "el.previousElementSibling.textContent = arguments[0];", old)
        assert "color-contrast" in {v["id"] for v in axe_run(browser, OUTPUT)}, \
            contrast_coverage(browser)

        # control 2: today's CSS without its dark rules is a light card in a dark notebook,
        # which the check above tells from a dark scoreboard
        _open_notebook(browser, base, token, nb.name)
        assert is_dark(luminance(browser, ".vl-report"))
        browser.execute_script(r"""
            for (const el of document.querySelectorAll('.vl-report')) {
              const sheet = el.previousElementSibling.sheet;
              for (let i = sheet.cssRules.length - 1; i >= 0; i--) {
                const r = sheet.cssRules[i];
                if (!r.selectorText || r.selectorText.includes('theme-light="false"'))
                  sheet.deleteRule(i);
              } }""")
        assert not is_dark(luminance(browser, ".vl-report"))
        assert is_light(luminance(browser, ".vl-report"))

        # the learner picks "JupyterLab Light" (Settings › Theme: their user settings, in the
        # test's temporary folders) on a dark system: the scoreboard is light, like JupyterLab
        _put_setting(base, token, THEME, {"theme": "JupyterLab Light"})
        _dark_system(browser, True)
        _open_notebook(browser, base, token, nb.name, "JupyterLab Light")
        assert browser.execute_script("return document.body.dataset.jpThemeLight") == "true"
        for selector in (".vl-report", ".vl-report td:nth-child(2)", ".vl-report .vl-skip",
                         ".vl-report code"):
            lum = luminance(browser, selector)
            assert is_light(lum), (selector, lum)
        whole_notebook_in_view(browser)
        coverage = contrast_coverage(browser)
        assert coverage["all"] > 10 and coverage["seen"] == coverage["all"], coverage
        assert axe_run(browser, OUTPUT) == []
    finally:
        browser.set_window_size(1280, 900)  # the browser fixture's
        browser.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": []})
