"""The lab catalogue: malformed labs are refused with a message naming the file and the
field, labs are found by id or number, and the labs present honour the catalogue contract
(the design's labs.md, kept in the repository as tests/golden/catalogue-labs.md: every lab
and objective it names is present under the same id; labs and objectives may be added)."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

from checker.catalog import CatalogError, UnknownLab, all_labs, load_lab, resolve
from checker.engine import load_checks

REPO = Path(__file__).resolve().parent.parent
LABS = REPO / "labs"
SOURCE = LABS / "01-hardware"
# The catalogue contract: a copy of the design notes' labs.md (its source is named at its
# top). To compare the copy with a newer design file, point VIRTLAB_DESIGN_LABS_MD at it.
VENDORED_LABS_MD = Path(__file__).parent / "golden" / "catalogue-labs.md"


def parse_catalogue(text: str) -> dict[str, list[str]]:
    """{lab id: [objective ids]} from the '## NN-slug — ...' sections and their tables."""
    out: dict[str, list[str]] = {}
    current: str | None = None
    for line in text.splitlines():
        m = re.match(r"^## (\d{2}-[a-z0-9]+(?:-[a-z0-9]+)*)\b", line)
        if m:
            current = m.group(1)
            out[current] = []
            continue
        if line.startswith("## "):
            current = None
        if current is None:
            continue
        m = re.match(r"^\|\s*([a-z0-9]+(?:-[a-z0-9]+)*)\s*\|", line)
        if m and m.group(1) != "id":
            out[current].append(m.group(1))
    return out


def catalogue() -> dict[str, list[str]]:
    return parse_catalogue(VENDORED_LABS_MD.read_text(encoding="utf-8"))


# --- a scratch labs folder ---------------------------------------------------------------

@pytest.fixture
def labs_root(tmp_path, monkeypatch) -> Path:
    root = tmp_path / "labs"
    root.mkdir()
    monkeypatch.setenv("VIRTLAB_LABS", str(root))
    return root


def copy_lab(root: Path, name: str = "01-hardware") -> Path:
    dst = root / name
    shutil.copytree(SOURCE, dst, ignore=shutil.ignore_patterns("__pycache__"))
    if name != "01-hardware":
        toml = dst / "lab.toml"
        toml.write_text(toml.read_text(encoding="utf-8").replace(
            'id = "01-hardware"', f'id = "{name}"', 1), encoding="utf-8")
    return dst


def edit(lab: Path, old: str, new: str, file: str = "lab.toml") -> Path:
    f = lab / file
    text = f.read_text(encoding="utf-8")
    assert old in text, f"test setup: {old!r} not in {f}"
    f.write_text(text.replace(old, new, 1), encoding="utf-8")
    return f


def refused(lab: Path, *fragments: str) -> str:
    with pytest.raises(CatalogError) as e:
        load_lab(lab)
    msg = str(e.value)
    for frag in fragments:
        assert frag in msg, f"{frag!r} not in {msg!r}"
    return msg


def test_a_scratch_copy_of_a_real_lab_loads(labs_root):
    lab = load_lab(copy_lab(labs_root))
    assert lab.id == "01-hardware" and lab.number == 1 and lab.slug == "hardware"
    assert [o.id for o in lab.objectives][:2] == ["cpu-virt-flags", "kvm-modules"]


def test_missing_field_names_the_file_and_the_field(labs_root):
    lab = copy_lab(labs_root)
    f = edit(lab, 'section = "8.1.1 KVM et QEMU', 'sectio = "8.1.1 KVM et QEMU')
    refused(lab, str(f), "'section'")


def test_missing_objective_title_in_english_names_the_objective(labs_root):
    lab = copy_lab(labs_root)
    f = edit(lab, 'title.en = "Modules kvm and kvm_intel or kvm_amd are loaded"\n', "")
    refused(lab, str(f), "objectives[1] (kvm-modules).title.en")


def test_wrong_type_names_the_file_and_the_field(labs_root):
    lab = copy_lab(labs_root)
    f = edit(lab, "points = 3", 'points = "3"')
    refused(lab, str(f), "objectives[0] (cpu-virt-flags).points", "'3'")


def test_objective_id_of_the_wrong_shape_is_refused(labs_root):
    lab = copy_lab(labs_root)
    f = edit(lab, 'id = "dev-kvm"', 'id = "Dev KVM"')
    refused(lab, str(f), "objectives[2].id")


def test_bad_toml_names_the_file_and_the_line(labs_root):
    lab = copy_lab(labs_root)
    f = edit(lab, 'id = "kvm-modules"', 'id = "kvm-modules')
    refused(lab, str(f), "not valid TOML", "line")


def test_lab_id_must_be_its_folder_name(labs_root):
    lab = copy_lab(labs_root)
    f = edit(lab, 'id = "01-hardware"', 'id = "01-hardwar"')
    refused(lab, str(f), "'id'", "01-hardware")


def test_duplicate_objective_id_is_refused(labs_root):
    lab = copy_lab(labs_root)
    f = edit(lab, 'id = "dev-kvm"', 'id = "kvm-modules"')
    refused(lab, str(f), "'kvm-modules' appears twice")


@pytest.mark.parametrize("lang", ["fr", "en"])
def test_missing_instructions_file_is_named(labs_root, lang):
    lab = copy_lab(labs_root)
    (lab / f"instructions.{lang}.md").unlink()
    refused(lab, str(lab / f"instructions.{lang}.md"), "missing")


def test_missing_lab_toml_is_named(labs_root):
    lab = copy_lab(labs_root)
    (lab / "lab.toml").unlink()
    refused(lab, str(lab / "lab.toml"), "missing")


def test_an_objective_without_a_check_is_refused(labs_root):
    lab_dir = copy_lab(labs_root)
    edit(lab_dir, '@objective("dev-kvm")\n', "", file="checks/test_hardware.py")
    with pytest.raises(CatalogError) as e:
        load_checks(load_lab(lab_dir))
    assert str(lab_dir / "lab.toml") in str(e.value) and "dev-kvm" in str(e.value)


def test_a_check_for_an_unknown_objective_is_refused(labs_root):
    lab_dir = copy_lab(labs_root)
    f = edit(lab_dir, '@objective("dev-kvm")', '@objective("dev-kvmm")',
             file="checks/test_hardware.py")
    with pytest.raises(CatalogError) as e:
        load_checks(load_lab(lab_dir))
    assert str(f) in str(e.value) and "dev-kvmm" in str(e.value)


def test_a_check_module_that_does_not_import_is_named(labs_root):
    lab_dir = copy_lab(labs_root)
    f = edit(lab_dir, "from checker.dsl import objective",
             "from checker.dsl import objectiv", file="checks/test_hardware.py")
    with pytest.raises(CatalogError) as e:
        load_checks(load_lab(lab_dir))
    assert str(f) in str(e.value) and "ImportError" in str(e.value)


# --- resolving ---------------------------------------------------------------------------

@pytest.mark.parametrize("query", ["04", "4", "04-create-vm", "create-vm", " 04 "])
def test_resolve_by_number_full_id_or_slug(labs_root, query):
    copy_lab(labs_root, "01-hardware")
    copy_lab(labs_root, "04-create-vm")
    assert resolve(query).id == "04-create-vm"


@pytest.mark.parametrize("query", ["9", "09-nothing", "hardwar", "", "01-hardware-x", "-1"])
def test_unknown_lab_lists_the_valid_ids(labs_root, query):
    copy_lab(labs_root, "01-hardware")
    copy_lab(labs_root, "04-create-vm")
    with pytest.raises(UnknownLab) as e:
        resolve(query)
    assert e.value.valid == ["01-hardware", "04-create-vm"]
    assert "01-hardware, 04-create-vm" in str(e.value)


def test_a_malformed_lab_does_not_block_resolving_another(labs_root):
    copy_lab(labs_root, "01-hardware")
    broken = copy_lab(labs_root, "04-create-vm")
    edit(broken, "points = 3", "points = -3")
    assert resolve("1").id == "01-hardware"
    with pytest.raises(CatalogError):
        resolve("4")
    with pytest.raises(CatalogError):
        all_labs()


def test_two_labs_with_one_number_are_refused(labs_root):
    copy_lab(labs_root, "04-create-vm")
    copy_lab(labs_root, "04-other")
    with pytest.raises(CatalogError, match="two labs numbered 04"):
        resolve("4")


def test_missing_labs_folder_says_how_to_point_at_one(tmp_path, monkeypatch):
    monkeypatch.setenv("VIRTLAB_LABS", str(tmp_path / "nowhere"))
    with pytest.raises(CatalogError, match="VIRTLAB_LABS"):
        all_labs()


def test_an_edited_lab_is_reloaded(labs_root):
    lab_dir = copy_lab(labs_root)
    assert resolve("1").objective("dev-kvm").points == 2
    f = edit(lab_dir,
             "points = 2\nsection = \"8.1.1 Vérification de l'installation\"\n"
             "title.fr = \"/dev/kvm",
             "points = 5\nsection = \"8.1.1 Vérification de l'installation\"\n"
             "title.fr = \"/dev/kvm")
    st = f.stat()
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    assert resolve("1").objective("dev-kvm").points == 5


# --- the real labs -----------------------------------------------------------------------

def real_labs():
    return [p for p in sorted(LABS.iterdir()) if re.match(r"^\d{2}-", p.name)]


@pytest.mark.parametrize("lab_dir", real_labs(), ids=lambda p: p.name)
def test_every_real_lab_loads_with_french_and_english_and_a_check_per_objective(lab_dir):
    lab = load_lab(lab_dir)
    for text in (lab.title, lab.summary):
        assert text.fr.strip() and text.en.strip()
    for o in lab.objectives:
        assert o.title.fr.strip() and o.title.en.strip(), o.id
        assert o.hint.fr.strip() and o.hint.en.strip(), o.id
        assert o.section.startswith("8.1"), (o.id, o.section)
        assert o.title.fr != o.title.en, f"{o.id}: the French title is not translated"
    for lang in ("fr", "en"):
        assert lab.instructions(lang).strip()
    checks = load_checks(lab)
    assert set(checks) == {o.id for o in lab.objectives}


def test_the_catalogue_contract_parses():
    cat = catalogue()
    assert list(cat)[:2] == ["01-hardware", "02-install-kvm"] and list(cat) == sorted(cat)
    assert cat["01-hardware"] == ["cpu-virt-flags", "kvm-modules", "dev-kvm", "host-resources"]
    assert all(cat.values())


def test_every_catalogue_lab_is_present_with_every_catalogue_objective():
    """Ids are never dropped or renamed; a lab folder the catalogue does not name (a new
    lab) and objectives it does not name (added ones) are fine."""
    import tomllib

    present = {p.name: p for p in real_labs()}
    assert present, "no lab in labs/"
    for lab_id, objectives in catalogue().items():
        assert lab_id in present, (
            f"catalogue lab {lab_id} is missing or renamed in labs/ ({VENDORED_LABS_MD})")
        # Read the ids straight from lab.toml: this test is about the contract only.
        raw = tomllib.loads((present[lab_id] / "lab.toml").read_text(encoding="utf-8"))
        have = [o.get("id") for o in raw.get("objectives", [])]
        dropped = [oid for oid in objectives if oid not in have]
        assert not dropped, f"{lab_id}: catalogue objectives missing or renamed: {dropped}"

