"""Every file name the package writes, checked against the BIDS schema itself
(``bidsschematools.schema.load_schema()``), not against names spelled here.

Representative analyses write into output folders: a raw BIDS study with sessions under
a model of Run, Session, Subject and Dataset nodes (residuals saved), the group level of
the same maps again with a two-sample design and permutations (``--from-derivatives``),
and an fMRIPrep-derivatives study (``space-``, fMRIPrep confounds) with a group level.
Each file below ``sub-*/`` or ``group/`` must be ``<entity>-<label>_..._<suffix><ext>``:

* every entity key is a schema entity, or one of the statistical entities of BEP041 and
  FitLins (:data:`STAT_ENTITIES`);
* the entities come in the schema's order (``rules.entities``), the statistical ones
  after every schema entity but ``desc``, which stays last (FitLins:
  ``contrast-<c>_stat-<s>_desc-merged_statmap``);
* each label matches the schema's format of its entity (``label``, ``index``);
* the suffix is a schema suffix or one of :data:`STAT_SUFFIXES`;
* the extension is a schema extension;
* a file with ``sub-`` (and ``ses-``) lies in ``sub-<label>/`` (``ses-<label>/``).

The files at the root and their folders are the schema's own (``dataset_description.json``,
``logs/``) or listed in :data:`ROOT_FILES`. See docs/outputs.md, "Names and the BIDS schema".
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from bidsschematools.schema import load_schema

from glm_workflows.cli import main
from glm_workflows.synthetic import (
    write_fmriprep_derivatives,
    write_participants,
    write_tiny_bids,
)

pytestmark = pytest.mark.slow  # three CLI analyses

ROOT = Path(__file__).resolve().parents[1]
SESSION_MODEL = ROOT / "examples" / "models" / "session_smdl.json"

SCHEMA = load_schema()
#: Short name (``sub``) -> the schema's entity object.
ENTITIES = {entity["name"]: entity for entity in SCHEMA.objects.entities.values()}
#: The schema's entity order, as short names.
SCHEMA_ORDER = [SCHEMA.objects.entities[key]["name"] for key in SCHEMA.rules.entities]
#: BEP041 (statistical model derivatives) and FitLins: the BIDS Stats Models node, the
#: contrast and the statistic of a map, in this order, all with label values.
STAT_ENTITIES = ("node", "contrast", "stat")
#: The allowed order: the schema's without ``desc``, the statistical entities, ``desc``.
ORDER = [*(name for name in SCHEMA_ORDER if name != "desc"), *STAT_ENTITIES, "desc"]
#: Suffixes of statistical derivatives, beside the schema's (docs/outputs.md gives the
#: source of each): BEP041 / nilearn's save_glm_to_bids / FitLins.
STAT_SUFFIXES = {"statmap", "design", "clusters", "timeseries", "provenance"}
#: Files at the output folder's root that are not BIDS names: the reports (fMRIPrep's
#: ``sub-<label>.html`` convention), the index, the group page, the records' listing.
ROOT_FILES = re.compile(r"sub-[0-9a-zA-Z]+\.html|index\.html|group\.html|provenance\.json")


def _pattern(entity: str) -> str:
    fmt = ENTITIES[entity]["format"] if entity in ENTITIES else "label"
    return SCHEMA.objects.formats[fmt]["pattern"]


def _extensions() -> list[str]:
    values = {ext["value"] for ext in SCHEMA.objects.extensions.values()}
    return sorted((v for v in values if v and not v.endswith("/") and "*" not in v),
                  key=len, reverse=True)  # .nii.gz before .gz


def name_problems(path: Path, root: Path) -> list[str]:
    """What is wrong with the name of ``path`` (relative to ``root``), per the schema."""
    name, folders = path.name, path.relative_to(root).parts[:-1]
    extension = next((e for e in _extensions() if name.endswith(e)), None)
    if extension is None:
        return [f"{name}: extension not in the schema"]
    *pairs, suffix = name[:-len(extension)].split("_")
    problems = []
    if suffix not in {s["value"] for s in SCHEMA.objects.suffixes.values()} | STAT_SUFFIXES:
        problems.append(f"suffix {suffix!r} neither the schema's nor a statistical one")
    keys = []
    for pair in pairs:
        key, sep, label = pair.partition("-")
        if not sep or key not in ORDER:
            problems.append(f"{pair!r}: not a known entity")
            continue
        if not re.fullmatch(_pattern(key), label):
            problems.append(f"{pair!r}: label not of the schema's format {_pattern(key)!r}")
        keys.append(key)
    if keys != sorted(keys, key=ORDER.index) or len(set(keys)) != len(keys):
        problems.append(f"entities {keys} not in the schema's order")
    labels = dict(pair.partition("-")[::2] for pair in pairs)
    expected = [f"{key}-{labels[key]}" for key in ("sub", "ses") if key in labels]
    if expected and list(folders) != expected:
        problems.append(f"in {'/'.join(folders)}, not {'/'.join(expected)}")
    return [f"{path.relative_to(root)}: {p}" for p in problems]


def all_problems(out: Path) -> list[str]:
    """Every problem of every file name in the output folder ``out``."""
    problems, checked = [], 0
    core = {rule["path"] for rule in SCHEMA.rules.files.common.core.values() if "path" in rule}
    for path in sorted(out.rglob("*")):
        relative = path.relative_to(out)
        if relative.parts[0] == "logs" and "logs" in core or path.is_dir() \
                or relative.parts[0].startswith("."):  # the lock: hidden, as BIDS ignores
            continue
        if len(relative.parts) == 1:
            if not (path.name in core or ROOT_FILES.fullmatch(path.name)):
                problems.append(f"{path.name}: not a BIDS root file nor a report")
            continue
        problems += name_problems(path, out)
        checked += 1
    assert checked, f"no file checked in {out}"
    return problems


def test_the_checks_refuse_bad_names(tmp_path):
    """The checks themselves: each kind of fault is found."""
    bad = {"sub-01/sub-01_foo-1_bold.nii.gz": "not a known entity",
           "sub-01/sub-01_run-x_bold.nii.gz": "label not of the schema's format",
           "sub-01/task-a_sub-01_bold.nii.gz": "not in the schema's order",
           "sub-01/sub-01_desc-a_contrast-b_statmap.nii.gz": "not in the schema's order",
           "sub-01/sub-01_task-a_zmap.nii.gz": "suffix 'zmap'",
           "sub-01/sub-01_task-a_bold.nii.zip": "extension not in the schema",
           "sub-01/sub-01_ses-1_task-a_bold.nii.gz": "in sub-01, not sub-01/ses-1"}
    for relative, fault in bad.items():
        path = tmp_path / relative
        problems = name_problems(path, tmp_path)
        assert any(fault in p for p in problems), (relative, problems)
    good = tmp_path / "sub-01" / "ses-1" / \
        "sub-01_ses-1_task-a_run-1_space-MNI_contrast-c_stat-z_desc-x_statmap.nii.gz"
    assert name_problems(good, tmp_path) == []


@pytest.fixture(scope="module")
def sessions_study(tmp_path_factory):
    """The raw study with sessions, under the session model (residuals saved), then
    its group level alone again, two-sample with permutations: the output folder."""
    root = tmp_path_factory.mktemp("bids_names_sessions")
    subjects = ("01", "02", "03", "04")
    bids = write_tiny_bids(root / "bids", subjects, runs=2, sessions=("post", "pre"),
                           n_scans=30)
    write_participants(bids, subjects)
    out = root / "out"
    assert main(["--bids-dir", str(bids), "--model", str(SESSION_MODEL), "--output-dir",
                 str(out), "--work-dir", str(root / "work"), "--save-residuals", "-q"]) == 0
    assert main(["--from-derivatives", str(out), "--bids-dir", str(bids), "--task", "tiny",
                 "--group", "two-sample", "--group-column", "group", "--permutations", "20",
                 "--output-dir", str(out), "--work-dir", str(root / "work"), "-q"]) == 0
    return out


@pytest.fixture(scope="module")
def fmriprep_study(tmp_path_factory):
    """An fMRIPrep-derivatives study (space-, confounds) with a group level."""
    root = tmp_path_factory.mktemp("bids_names_fmriprep")
    raw = write_tiny_bids(root / "raw", ("01", "02", "03"), n_scans=30)
    derivatives = write_fmriprep_derivatives(raw, root / "fmriprep")
    out = root / "out"
    assert main(["--bids-dir", str(raw), "--derivatives", str(derivatives), "--task", "tiny",
                 "--contrast", "aMinusB=a - b", "--group", "one-sample", "--output-dir",
                 str(out), "--work-dir", str(root / "work"), "-q"]) == 0
    return out


def test_raw_sessions_and_group_names_follow_the_schema(sessions_study):
    names = {p.name for p in sessions_study.rglob("*")}
    assert any("_ses-pre_" in n and "_run-1_" in n for n in names)  # what is covered
    assert any(n.startswith("task-tiny_contrast-aMinusB") and "logp" in n for n in names)
    assert any("stat-errorts" in n for n in names)
    problems = all_problems(sessions_study)
    assert problems == [], "\n".join(problems)


def test_fmriprep_space_names_follow_the_schema(fmriprep_study):
    names = {p.name for p in fmriprep_study.rglob("*")}
    assert any("_space-MNI152NLin2009cAsym_" in n for n in names)
    assert any(n.endswith("_clusters.json") for n in names)
    problems = all_problems(fmriprep_study)
    assert problems == [], "\n".join(problems)
