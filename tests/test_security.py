"""Security review, as tests: every place a string reaches a shell, an HTML page, a CSV cell
or a notebook, and what remote grading keeps and prints.

Where strings reach a shell (reviewed; each has a test below):

- testinfra ``host.run(cmd, *args)``: ``cmd`` is a constant of ours, ``args`` are quoted by
  testinfra (``test_commands_are_constants_with_quoted_arguments`` guards the source);
- ``Learner.run``: ``runuser -u NAME -- argv`` with every word quoted, or ``bash -lic`` of a
  ``shlex.join`` (``test_hostile_vm_names_and_learner_names_run_nothing``);
- testinfra's ssh backend: the user as ``-o User=%s`` (quoted), but the host as a bare
  argument: a host starting with ``-`` was an ssh OPTION (``-oProxyCommand=...`` ran a local
  command: fixed, ``test_a_host_that_is_an_ssh_option_is_refused``);
- the grading run's ``ssh`` wrapper and ``ssh_config`` (paths quoted);
- ``virtlab solve``: ``bash -eu solution.sh`` (our file, argv list), no learner string.

HTML: Jinja2 autoescape on every template, ``Markup`` only for matplotlib's SVG (glyphs drawn
as paths, text in comments escaped); single-report escaping is tested in
tests/test_reporters.py (``test_html_escapes_every_string_from_the_report``), the class
report here. CSV: formula cells neutralised. Notebooks: lab ids (a strict pattern) are the
only data in generated code cells.
"""

from __future__ import annotations

import ast
import csv
import io
import json
import os
import re
import shlex
import shutil
import tempfile
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from conftest import REPO, run_virtlab
from hypothesis import example, given, settings
from hypothesis import strategies as st

from checker.catalog import CatalogError, all_labs, lab_ids, load_lab
from checker.grade.exports import FORMULA_PREFIXES, neutralise, to_csv, to_html
from checker.grade.gradebook import ClassView, LearnerRow, Run, StoredResult
from checker.grade.sshconf import FORCED, SshSetup
from checker.grade.targets import HostTarget, TargetError, from_specs

TOKEN = f"vlpwn{uuid.uuid4().hex[:8]}"


def injections(tag: str) -> list[str]:
    """Names that would create a file named TOKEN-tag-N in the current folder if a shell (or
    ssh, or a tool taking options) ever interpreted them. libvirt refuses '/' in names, so the
    markers are relative: the checks run with a scratch cwd, searched afterwards."""
    m = f"{TOKEN}-{tag}"
    return [f"x'; touch {m}-1; '", f"$(touch {m}-2)", f"`touch {m}-3`", f";touch {m}-4;",
            f"-oProxyCommand=touch {m}-5", f"|touch {m}-6", f"&& touch {m}-7", f'"; touch {m}-8; "',
            f"--help$(touch {m}-9)"]


def markers(*dirs: Path) -> list[Path]:
    """Marker files in these folders (not recursive: a shell creates them in its cwd)."""
    return [p for d in dirs if d.is_dir() for p in d.glob(f"{TOKEN}*")]


def search_dirs(*extra: Path) -> list[Path]:
    return [Path("/tmp"), Path("/root"), REPO, *extra]


@pytest.fixture
def scratch_cwd():
    """A cwd every user may write in (commands run as the learner must be able to leave
    their marker, or the test would prove nothing)."""
    d = Path(tempfile.mkdtemp(prefix="vl-sec-", dir="/tmp"))
    d.chmod(0o1777)
    yield d
    shutil.rmtree(d, ignore_errors=True)


# --- shells ------------------------------------------------------------------------------

def _calls(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            yield node


def _template(node: ast.AST) -> bool:
    """A command template built from literals only: "a %s" + " %s" * len(x),
    " ".join(["%s"] * n); never data (a name, an f-string, a .format())."""
    if isinstance(node, ast.Constant):
        return isinstance(node.value, str)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return _template(node.left) and _template(node.right)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mult):
        return _template(node.left) or (isinstance(node.left, ast.List)
                                        and all(_template(e) for e in node.left.elts))
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
            and node.func.attr == "join" and _template(node.func.value) and len(node.args) == 1:
        return _template(node.args[0])
    return False


def test_commands_are_constants_with_quoted_arguments():
    """No command string of a check or probe is built from data: the first argument of every
    ``*.run(...)`` is a literal (or the ``" ".join(["%s"] * n)`` of Learner.run), data goes
    in the quoted arguments; no ``shell=True``, no ``os.system``."""
    files = list((REPO / "checker").rglob("*.py")) + list((REPO / "labs").rglob("*.py"))
    bad = []
    for f in files:
        src = f.read_text(encoding="utf-8")
        tree = ast.parse(src)
        for call in _calls(tree):
            where = f"{f.relative_to(REPO)}:{call.lineno}"
            if call.func.attr in ("system", "popen") and getattr(call.func.value, "id", "") == "os":
                bad.append(f"{where}: os.{call.func.attr}")
            for kw in call.keywords:
                if kw.arg == "shell" and not (isinstance(kw.value, ast.Constant)
                                              and not kw.value.value):
                    # the exceptions: checker/probes/output.py replaces testinfra's own
                    # run_local, checker/probes/shell.py starts the remote shell (a shell
                    # string testinfra built, every argument quoted)
                    if f.relative_to(REPO).as_posix() not in ("checker/probes/output.py",
                                                              "checker/probes/shell.py"):
                        bad.append(f"{where}: shell=")
            owner = ast.unparse(call.func.value)
            if call.func.attr == "command" and re.search(r"(^|\.)(facts|self)$", owner) \
                    and len(call.args) >= 2 and f.name != "learner.py":
                # HostFacts.command(name, COMMAND, *args): the command is a literal too
                if not _template(call.args[1]):
                    bad.append(f"{where}: {owner}.command(..., {ast.unparse(call.args[1])})")
                continue
            if call.func.attr != "run" or not call.args:
                continue
            if not re.search(r"(^|\.)(host|learner)$", owner):
                continue
            first = call.args[0]
            if _template(first):
                continue
            if f.name == "host.py" and ast.unparse(first) == "command":
                continue  # HostFacts.command: its callers' literals are checked above
            if f.name == "learner.py" and ast.unparse(first) == "template":
                continue  # Learner.run runs what Learner.command returns: checked below
            if owner.endswith("learner"):
                continue  # Learner.run(*argv): every word is an argument, quoted by testinfra
            bad.append(f"{where}: {owner}.run({ast.unparse(first)}, ...)")
        # Learner.command returns (template, arguments): each template a literal too
        for fn in ast.walk(tree):
            if f.name == "learner.py" and isinstance(fn, ast.FunctionDef) \
                    and fn.name == "command":
                returns = [r for r in ast.walk(fn) if isinstance(r, ast.Return)]
                assert len(returns) >= 4, returns
                for r in returns:
                    if not (isinstance(r.value, ast.Tuple) and _template(r.value.elts[0])):
                        bad.append(f"{f.relative_to(REPO)}:{r.lineno}: Learner.command returns "
                                   f"{ast.unparse(r.value) if r.value else None}")
    assert not bad, "\n".join(bad)


def test_learner_commands_reach_the_shell_as_single_words():
    """What Learner.run hands the shell, parsed back as the shell would: the hostile learner
    name and arguments come out as whole words, never as commands."""
    from testinfra.backend.base import BaseBackend

    from checker.probes.learner import Learner

    seen: list[str] = []

    class RecordingHost:  # testinfra's own quoting, the command recorded instead of run
        def run(self, cmd, *args):
            seen.append(BaseBackend.quote(cmd, *args))

        def user(self, name=None):
            return type("U", (), {"name": "root", "home": "/root", "exists": True})()

    evil = f"x'; touch {TOKEN}-q; '$(id)`id`"
    Learner(RecordingHost(), evil).run("virsh", "-c", evil, "list", env={"A": evil})
    Learner(RecordingHost(), evil).run("virsh", "-c", evil, "uri", login_shell=True,
                                       env={"A": evil})
    plain, login = (shlex.split(c) for c in seen)
    assert plain == ["runuser", "-u", evil, "--", "env", f"A={evil}", "virsh", "-c", evil, "list"]
    assert login[:6] == ["runuser", "-l", evil, "-s", "/bin/bash", "-c"]
    outer = shlex.split(login[6])  # what bash -c runs
    assert outer[:3] == ["exec", "bash", "-lic"]
    assert shlex.split(outer[3]) == ["env", f"A={evil}", "virsh", "-c", evil, "uri"]


@pytest.mark.parametrize("spec", [
    "ssh://u@-oProxyCommand=touch${IFS}%s",
    "ssh://-oProxyCommand=touch${IFS}%s@h",
    "ssh://u@h;touch${IFS}%s",
    "ssh://u@$(touch${IFS}%s)",
])
def test_a_host_that_is_an_ssh_option_is_refused(spec, scratch_cwd):
    """Before the fix, ``--host ssh://u@-oProxyCommand=...`` ran the proxy command locally."""
    spec = spec % f"{TOKEN}-ssh"
    r = run_virtlab("check", "01", "--host", spec, "--timeout", "2", cwd=scratch_cwd)
    assert r.returncode == 2, r.stdout + r.stderr
    assert "hôte refusé" in r.stderr  # in the reader's language (French here)
    r = run_virtlab("grade", "01", "--hosts", spec, "--timeout", "2", "--db",
                    str(scratch_cwd / "gb.sqlite"), cwd=scratch_cwd)
    assert r.returncode == 2, r.stdout + r.stderr
    assert markers(scratch_cwd) == []


def test_an_inventory_host_that_is_an_ssh_option_is_refused(scratch_cwd):
    inv = scratch_cwd / "classe.ini"
    inv.write_text(f"[c]\npc01 ansible_host=-oProxyCommand=touch${{IFS}}{TOKEN}-inv "
                   "ansible_user=etu\n", encoding="utf-8")
    r = run_virtlab("grade", "01", "--inventory", str(inv), "--timeout", "2", "--db",
                    str(scratch_cwd / "gb.sqlite"), cwd=scratch_cwd)
    assert r.returncode == 2, r.stdout + r.stderr
    assert "sans « - » au début" in r.stderr  # the reason, in the reader's language
    assert markers(scratch_cwd) == []


@pytest.mark.integration
def test_hostile_vm_names_and_learner_names_run_nothing(clean_sandbox, make_user, scratch_cwd):
    """VMs, networks, titles, disks named to inject, and a learner name that would: every lab
    checked through the CLI, as root; no marker file appears anywhere we look."""
    sb = clean_sandbox
    c = sb.conn()
    names = injections("vm")
    for i, name in enumerate(names):
        c.defineXML(sb.domain_xml(name, title=f"t $(touch /tmp/{TOKEN}-title)",
                                  description=f"'; touch /tmp/{TOKEN}-desc; '",
                                  disks=[{"path": f"/tmp/{TOKEN}-d$(touch /tmp/{TOKEN}-disk).img"}],
                                  nics=[{"network": name}]))
        c.networkDefineXML(f"<network><name>{__import__('html').escape(name)}</name>"
                           f"<bridge name='vlinj{i}'/></network>")
    c.defineXML(sb.domain_xml("test-debian-12", nics=[{"network": names[0]}],
                              description=names[1]))
    user = make_user(groups=("libvirt",))
    for lab in lab_ids():  # every lab folder, found in labs/
        r = run_virtlab("check", lab, "--connect", sb.uri, "--user", user, "--format", "json",
                        cwd=scratch_cwd)
        assert r.returncode in (0, 1), r.stdout + r.stderr
        assert "Traceback" not in r.stderr
        json.loads(r.stdout)
    # a learner name made to inject: refused by nothing, run by nobody
    for evil in injections("user")[:4]:
        for lab in ("02", "03"):
            r = run_virtlab("check", lab, "--connect", sb.uri, "--user", evil, "--format", "json",
                            cwd=scratch_cwd)
            assert r.returncode in (0, 1), r.stdout + r.stderr
            assert json.loads(r.stdout)["user"] == evil
    home = Path(os.path.expanduser(f"~{user}"))
    assert markers(scratch_cwd, home, *search_dirs()) == []


# --- HTML --------------------------------------------------------------------------------

def test_every_template_is_autoescaped_and_nothing_is_marked_safe():
    for tpl in (REPO / "checker" / "templates").glob("*.j2"):
        text = tpl.read_text(encoding="utf-8")
        assert "|safe" not in text.replace(" ", "") and "autoescape false" not in text, tpl
    for f in (REPO / "checker").rglob("*.py"):
        src = f.read_text(encoding="utf-8")
        assert "autoescape=False" not in src, f
        for m in re.finditer(r"Markup\(([^)]*)\)", src):
            # the Markups: empty ones, matplotlib's SVG of the class report, and checker/markup.py's
            # HTML built from escaped pieces (tests/test_lab_text.py proves hostile text inert)
            assert (m.group(1) == '""' or (f.name == "exports.py" and m.group(1) == "svg")
                    or (f.name == "markup.py" and m.group(1) == "out")), (f, m.group(0))


EVIL = '<script>alert(1)</script>"\'><img src=x onerror=alert(2)>'
EVIL_ID = "--><script>alert(3)</script><!--"


def hostile_view(lang: str = "en") -> ClassView:
    """A class view as a tampered gradebook could hold it: markup everywhere, even in
    objective ids (which the chart draws) and lab ids."""
    run = Run(id=1, parent_id=None, kind="grade", started_at="2024-01-01T00:00:00+00:00",
              finished_at=None, status="complete", checker_version="0", labs=("01-hardware",),
              lang=lang, options={})
    report = {"score": 1, "max_score": 3, "objectives": [
        {"id": EVIL_ID, "status": "fail", "points": 2, "earned": 0, "message": EVIL,
         "hints_shown": 3},
        {"id": "dev-kvm", "status": "pass", "points": 1, "earned": 1, "message": EVIL}]}
    rows = []
    for i, status in enumerate(("graded", "unreachable")):
        t = HostTarget(host=f"{EVIL}{i}", spec="ssh://x@h", learner=f"=cmd|'/C calc'!A0{EVIL}",
                       email=f"@SUM(1+1){EVIL}")
        r = StoredResult(run_id=1, host=t.host, lab="01-hardware", status=status, reason=EVIL,
                         score=1 if status == "graded" else None, max_score=3,
                         graded_at="now", duration_s=0.1,
                         report=report if status == "graded" else None)
        rows.append(LearnerRow(target=t, results={"01-hardware": r}))
    return ClassView(run=run, runs=[run], labs=("01-hardware",), rows=rows)


def test_the_class_report_escapes_everything_even_in_the_chart():
    html = to_html(hostile_view())
    assert "<script>" not in html and "<img" not in html
    assert "onerror=alert(2)" in html  # shown, as text
    assert "&lt;script&gt;alert(1)" in html
    svg = ET.fromstring(html[html.index("<svg"):html.index("</svg>") + len("</svg>")])
    assert not [el for el in svg.iter() if el.tag.rsplit("}", 1)[-1] in ("script", "img")]


# --- CSV ---------------------------------------------------------------------------------

@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=40), st.integers(), st.none(),
                 st.lists(st.sampled_from(["=", "+", "-", "@", "\t", "\r", "\n", " ", "1",
                                           "A1", "cmd|", "'"]), max_size=6).map("".join)))
@example(" =1+1")
@example("\n=HYPERLINK(\"http://evil\")")
def test_a_csv_cell_is_never_a_formula(value):
    cell = neutralise(value)
    assert "\n" not in cell and "\r" not in cell
    assert not cell.lstrip().startswith(FORMULA_PREFIXES)


def test_the_csv_export_neutralises_learner_controlled_cells():
    """An identity that would be a formula is never rewritten (Moodle would not know the
    rewritten one): the learner is left out and reported. Feedback is cleaned."""
    from checker.grade.exports import CsvOptions, csv_plan

    view = hostile_view()
    rows = list(csv.reader(io.StringIO(to_csv(view))))
    assert rows == [["email", "01-hardware", "01-hardware feedback"]]
    left = {x.host: x.en for x in csv_plan(view).left_out}
    assert "formula" in left[f"{EVIL}0"] and "not graded" in left[f"{EVIL}1"]
    clean = [HostTarget(**{**r.target.to_dict(), "email": f"u{i}@example.org"})
             for i, r in enumerate(view.rows)]
    view.rows[0].target = clean[0]
    rows = list(csv.reader(io.StringIO(to_csv(view, CsvOptions()))))
    assert len(rows) == 2 and rows[1][0] == "u0@example.org"
    for cell in rows[1]:
        assert not cell.lstrip().startswith(FORMULA_PREFIXES), cell
        assert not cell.startswith("'"), cell


# --- notebooks ---------------------------------------------------------------------------

def test_generated_code_cells_carry_only_the_lab_id():
    from checker.build import lab_notebook

    for lab in all_labs():
        nb = json.loads(lab_notebook(lab))
        generated = [c for c in nb["cells"] if c["cell_type"] == "code"
                     and c.get("id", "").endswith(("-watch", "-check"))]
        assert len(generated) == 4
        for cell in generated:
            tree = ast.parse("".join(cell["source"]))
            consts = {n.value for n in ast.walk(tree) if isinstance(n, ast.Constant)}
            assert consts <= {lab.id, "fr", "en"}, consts


@pytest.mark.parametrize("name", ['01-x"y', "01-x')", "01-x y", "01-X", "01-x;y", "01-é"])
def test_a_lab_id_that_could_break_a_code_cell_is_refused(tmp_path, name):
    d = tmp_path / name
    d.mkdir()
    with pytest.raises(CatalogError):
        load_lab(d)


def test_hostile_lab_titles_stay_in_markdown(tmp_path):
    from checker.build import lab_notebook

    src = (REPO / "labs" / "01-hardware")
    d = tmp_path / "01-hardware"
    d.mkdir()
    evil = '"); __import__("os").system("touch x"); ("'
    toml = (src / "lab.toml").read_text(encoding="utf-8").replace(
        'title.en = "Is the hardware ready for virtualization?"',
        f"title.en = {json.dumps(evil)}", 1)
    assert evil in toml.replace('\\"', '"')
    (d / "lab.toml").write_text(toml, encoding="utf-8")
    for f in ("instructions.fr.md", "instructions.en.md"):
        (d / f).write_text((src / f).read_text(encoding="utf-8"), encoding="utf-8")
    nb = json.loads(lab_notebook(load_lab(d)))
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            assert "__import__" not in "".join(cell["source"])


# --- remote grading: secrets, batch mode, host keys ---------------------------------------

def test_the_run_ssh_config_holds_settings_and_paths_only(tmp_path):
    user_cfg = tmp_path / "prof config"
    user_cfg.write_text("Host *\n  IdentityFile ~/.ssh/id_prof\n  PasswordAuthentication yes\n",
                        encoding="utf-8")
    s = SshSetup(str(user_cfg), timeout=7)
    try:
        lines = [ln for ln in s.config.read_text(encoding="utf-8").splitlines()
                 if ln and not ln.startswith("#")]
        keys = [ln.split()[0] for ln in lines]
        forced = [k for k, _ in FORCED] + ["StrictHostKeyChecking"]
        assert keys == forced + ["ControlPath", "ServerAliveInterval", "ServerAliveCountMax",
                                 "Include", "KexAlgorithms", "SendEnv"]
        assert "BatchMode yes" in lines and "StrictHostKeyChecking yes" in lines
        assert lines[-3] == f'Include "{user_cfg}"'  # by path (quoted: a blank), not copied
        # after the instructor's files (theirs wins), a cheaper key exchange put first, ssh's
        # own list kept ("^": prepended)
        assert lines[-2].startswith("KexAlgorithms ^")
        assert lines[-1] == "SendEnv -*"  # last: SendEnv adds up over every file
        text = s.config.read_text(encoding="utf-8").lower()
        assert "stricthostkeychecking no" not in text and "userknownhostsfile" not in text
        assert "identityfile" not in text and "password" not in text
        wrapper = s.wrapper.read_text(encoding="utf-8")
        assert "StrictHostKeyChecking=yes" in wrapper and f"-F {s.config}" in wrapper
    finally:
        s.close()


def test_testinfra_ssh_command_is_batch_mode_with_host_keys_checked():
    import shutil as sh

    from checker import engine
    from checker.grade.sshconf import WRAPPER_MARK

    engine.close_own_ssh()  # from a process with no ssh set-up of its own
    path = os.environ["PATH"]
    try:
        host = engine.get_host("ssh://alice@127.0.0.1:2222", None, 5)
        from sshd import ssh_argvs

        from checker.probes.shell import REMOTE_SHELL

        argvs = ssh_argvs(host.backend)
        # the remote shell, then (the recorder never says it is ready) the command alone
        assert [a[-1] for a in argvs] == [REMOTE_SHELL, "true"], argvs
        for argv in argvs:
            line = " ".join(argv)
            assert line.startswith("ssh ") and "-o BatchMode=yes" in line
            assert "StrictHostKeyChecking=no" not in line and "/dev/null" not in line
        # the "ssh" that line runs is this process's wrapper, which forces the safe settings
        wrapper = Path(sh.which("ssh"))
        assert WRAPPER_MARK in wrapper.read_text() and "StrictHostKeyChecking=yes" in \
            wrapper.read_text()
    finally:
        engine.close_own_ssh()
    assert os.environ["PATH"] == path  # nothing of it left in this process


def test_a_password_in_a_host_spec_is_refused_and_never_echoed(tmp_path):
    with pytest.raises(TargetError) as e:
        from_specs(["ssh://alice:S3cr3t-pw@pc12"])
    assert "S3cr3t-pw" not in str(e.value)
    for args in (("check", "01", "--host", "ssh://alice:S3cr3t-pw@127.0.0.1:1"),
                 ("grade", "01", "--hosts", "ssh://alice:S3cr3t-pw@127.0.0.1:1", "--db",
                  str(tmp_path / "gb.sqlite"))):
        r = run_virtlab(*args, cwd=tmp_path)
        assert r.returncode == 2
        assert "S3cr3t-pw" not in r.stdout + r.stderr
    assert b"S3cr3t-pw" not in (tmp_path / "gb.sqlite").read_bytes()


@pytest.mark.integration
def test_grading_keeps_no_secret_and_runs_ssh_in_batch_mode(sshd, tmp_path, scratch_cwd):
    """A real class graded with a logging ``ssh`` first on PATH: every ssh started (testinfra's
    and the run's) uses the run's config; none turns host-key checking off; neither the
    gradebook, the exports nor the output hold key material; a learner name made to inject
    (``virtlab_learner``) runs nothing on the learner's host."""
    from sshd import LearnerUsers

    users = LearnerUsers(sshd)
    try:
        good, other = users.add("sec1", groups=("kvm",)), users.add("sec2")
        bindir = tmp_path / "bin"
        bindir.mkdir()
        logs = tmp_path / "ssh-calls"
        logs.mkdir()
        real = "/usr/bin/ssh"
        # logs each ssh's argv, then the settings it will really use (ssh -G); one file per
        # call (the workers run ssh concurrently)
        (bindir / "ssh").write_text(
            "#!/bin/sh\n"
            f"f=$(mktemp {logs}/call.XXXXXX)\n"
            "{ printf 'A'; for a in \"$@\"; do printf '\\037%s' \"$a\"; done; echo; } >> \"$f\"\n"
            f"{real} -G \"$@\" 2>/dev/null | grep -iE "
            "'^(batchmode|stricthostkeychecking|userknownhostsfile|globalknownhostsfile) ' "
            "| sed 's/^/G /' >> \"$f\"\n"
            f"exec {real} \"$@\"\n", encoding="utf-8")
        (bindir / "ssh").chmod(0o755)
        evil = f"x'; touch {TOKEN}-learner; '"
        inv = tmp_path / "classe.yml"
        inv.write_text(
            "all:\n  hosts:\n"
            f"    pc1:\n      ansible_host: 127.0.0.1\n      ansible_port: {sshd.port}\n"
            f"      ansible_user: {good}\n"
            f"    pc2:\n      ansible_host: 127.0.0.1\n      ansible_port: {sshd.port}\n"
            f"      ansible_user: {other}\n      virtlab_learner: {json.dumps(evil)}\n",
            encoding="utf-8")
        db = tmp_path / "gb.sqlite"
        env = {"PATH": f"{bindir}:{os.environ['PATH']}"}
        r = run_virtlab("grade", "01", "--inventory", str(inv), "--ssh-config",
                        str(sshd.ssh_config), "--db", str(db), "--csv", str(tmp_path / "g.csv"),
                        "--json", str(tmp_path / "c.json"), env=env, cwd=scratch_cwd)
        assert r.returncode == 0, r.stdout + r.stderr
        calls: list[tuple[list[str], dict[str, str]]] = []
        for one in sorted(logs.iterdir()):
            for ln in one.read_text().splitlines():
                if ln.startswith("A"):
                    calls.append((ln.split("\x1f")[1:], {}))
                elif ln.startswith("G ") and calls:
                    k, _, v = ln[2:].partition(" ")
                    calls[-1][1][k.lower()] = v
        # (not the masters' "-O exit", nor "-Q kex": ssh's own list of key exchanges, asked
        # locally, no connection)
        graded = [(argv, eff) for argv, eff in calls if "-O" not in argv and "-Q" not in argv]
        assert any("-Q" in argv for argv, _ in calls)  # the query is among the logged calls
        # every host is graded over ssh (its facts come in one exchange, then the lab's own)
        assert len(graded) >= 2, calls
        for argv, eff in graded:
            i = argv.index("-F")  # the run's own config, first
            assert Path(argv[i + 1]).name == "ssh_config" and "/vlg-" in argv[i + 1]
            # what ssh really applies: batch mode, host keys checked against known_hosts
            assert eff.get("batchmode") == "yes", (argv, eff)
            assert eff["stricthostkeychecking"] in ("true", "ask", "yes"), (argv, eff)
            assert eff["userknownhostsfile"] == str(sshd.known_hosts), (argv, eff)
            assert "stricthostkeychecking=no" not in " ".join(argv).lower()
        # no key material anywhere the run wrote or printed
        key = (sshd.client_key.read_text().splitlines())
        body = [ln for ln in key if ln and "PRIVATE KEY" not in ln]
        stored = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.is_file())
        for secret in [b"PRIVATE KEY", *(ln.encode() for ln in body)]:
            assert secret not in stored
            assert secret.decode() not in r.stdout + r.stderr
        doc = json.loads((tmp_path / "c.json").read_text(encoding="utf-8"))
        learners = {x["learner"] for x in doc["learners"]}
        assert learners == {good, evil}
        home = users.home(other)
        assert markers(scratch_cwd, home, users.home(good), *search_dirs()) == []
    finally:
        users.remove_all()
