"""Sources as BIDS URIs and a dataset_description.json as BIDS-Derivatives asks: every
URI an output's sidecar gives resolves, through the folder's DatasetLinks, to a file that
exists; the BIDS version is the schema's."""

import json
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

from glm_workflows.cli import main
from glm_workflows.core.bids_uris import bids_uri, bids_uris
from glm_workflows.core.derivatives import dataset_description
from glm_workflows.synthetic import write_fmriprep_derivatives, write_tiny_bids


def _dataset(folder: Path, kind: str | None) -> Path:
    folder.mkdir(parents=True)
    description = {"Name": folder.name, "BIDSVersion": "1.9.0"}
    if kind:
        description["DatasetType"] = kind
    (folder / "dataset_description.json").write_text(json.dumps(description))
    return folder


def test_each_source_names_its_dataset(tmp_path):
    raw = _dataset(tmp_path / "ds", None)
    prep = _dataset(tmp_path / "derivatives" / "fmri-prep", "derivative")
    other = _dataset(tmp_path / "elsewhere" / "fmriprep", "derivative")
    (tmp_path / "loose").mkdir()
    out = tmp_path / "out"
    sources = [raw / "sub-01" / "func" / "e.tsv", prep / "sub-01" / "b.nii.gz",
               other / "sub-01" / "b.nii.gz", tmp_path / "loose" / "x.img",
               out / "sub-01" / "m.nii.gz", "sub-02/n.nii.gz"]
    uris, links = bids_uris([str(s) for s in sources], out)
    assert uris == ["bids:raw:sub-01/func/e.tsv", "bids:fmriprep:sub-01/b.nii.gz",
                    "bids:fmriprep2:sub-01/b.nii.gz", (tmp_path / "loose" / "x.img").as_uri(),
                    "bids::sub-01/m.nii.gz", "bids::sub-02/n.nii.gz"]
    assert links == {"raw": raw.as_uri(), "fmriprep": prep.as_uri(),
                     "fmriprep2": other.as_uri()}
    assert bids_uri(str(prep / "a.tsv"), out, links) == "bids:fmriprep:a.tsv"  # same link


def test_an_output_folder_inside_the_raw_dataset(tmp_path):
    """The BIDS-App layout (``<ds>/derivatives/glm``) written through a staging folder:
    the raw files stay ``raw``'s, the folder's own maps are ``bids::``, before the
    folder has a description of its own."""
    from glm_workflows.core.naming import STAGING_PREFIX

    raw = _dataset(tmp_path / "ds", None)
    staging = raw / "derivatives" / "glm" / f"{STAGING_PREFIX}host-1-abc"
    staging.mkdir(parents=True)
    uris, links = bids_uris([str(raw / "sub-01" / "func" / "b.nii.gz"),
                             str(raw / "derivatives" / "glm" / "sub-01" / "m.nii.gz")], staging)
    assert uris == ["bids:raw:sub-01/func/b.nii.gz", "bids::sub-01/m.nii.gz"]
    assert links == {"raw": raw.as_uri()}


def test_the_description_is_bids_derivatives():
    from bidsschematools.schema import load_schema

    description = dataset_description({"raw": "file:///data/ds"})
    assert description["BIDSVersion"] == str(load_schema().bids_version)
    assert description["DatasetType"] == "derivative"
    assert description["DatasetLinks"] == {"raw": "file:///data/ds"}
    assert description["SourceDatasets"] == [{"URL": "file:///data/ds"}]
    generated = description["GeneratedBy"][0]
    assert generated["Name"] == "glm-workflows" and set(generated) <= {"Name", "Version",
                                                                       "CodeURL"}
    allowed = set(load_schema().objects.metadata) | {"Name", "BIDSVersion", "DatasetType",
                                                     "GeneratedBy", "SourceDatasets",
                                                     "DatasetLinks"}
    assert set(description) <= allowed  # no key of our own


def _resolve(uri: str, root: Path, links: dict) -> Path:
    if uri.startswith("file://"):
        return Path(unquote(urlparse(uri).path))
    _, name, path = uri.split(":", 2)
    base = root if name == "" else Path(unquote(urlparse(links[name]).path))
    return base / path


@pytest.mark.slow
def test_every_source_of_a_study_resolves(tmp_path):
    """Runs (raw events, fMRIPrep images), a subject's runs combined and the group level:
    every ``Sources`` URI of every sidecar resolves to an existing file."""
    raw = write_tiny_bids(tmp_path / "raw", ("01", "02", "03"), runs=2)
    prep = write_fmriprep_derivatives(raw, tmp_path / "derivatives" / "fmriprep")
    out = tmp_path / "out"
    assert main(["--bids-dir", str(raw), "--derivatives", str(prep), "--task", "tiny",
                 "--contrast", "aMinusB=a - b", "--group", "one-sample",
                 "--output-dir", str(out), "--work-dir", str(tmp_path / "work")]) == 0
    description = json.loads((out / "dataset_description.json").read_text())
    links = description["DatasetLinks"]
    assert links == {"raw": raw.absolute().as_uri(), "fmriprep": prep.absolute().as_uri()}
    kinds = set()
    for sidecar in out.rglob("*.json"):
        content = json.loads(sidecar.read_text())
        if not isinstance(content, dict) or "Sources" not in content:
            continue
        for uri in content["Sources"]:
            assert uri.startswith(("bids:", "file://")), (sidecar.name, uri)
            assert _resolve(uri, out, links).is_file(), (sidecar.name, uri)
            kinds.add(uri.split(":")[1])
    assert kinds == {"raw", "fmriprep", ""}  # runs' inputs, and maps of this folder
