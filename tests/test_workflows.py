"""The first-level workflow on the real data: seed numbers and caching.

Runs share one Nipype cache, in order: the seed run, an identical rerun, a new alpha,
other height controls, an added contrast. What ran and what was cached is read from
Nipype's result files (``node_record``), never from timings.
"""

import json
from pathlib import Path

import nibabel as nb
import numpy as np
import pandas as pd
import pytest

from glm_workflows.execution.plugins import run_workflow
from glm_workflows.settings import SEED_CONTRASTS, InferenceSettings
from glm_workflows.workflows.first_level import init_first_level_wf

PREFIX = "sub-01_task-auditory"
#: The seed's five cluster peaks (mm) and z values, from the nilearn tutorial.
SEED_PEAKS = [((60, 0, 36), 10.08), ((-63, -6, 42), 9.99), ((66, 15, 27), 8.77),
              ((33, -6, 12), 7.23), ((-60, -21, 33), 5.74)]


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("work")


def run_seed(cache, spm_scans, spm_events, output_dir, contrasts=SEED_CONTRASTS, **inference):
    """Build and run the seed workflow (same name, same cache); return node records."""
    workflow = init_first_level_wf(t_r=7.0, output_dir=str(output_dir), subject="01",
                                   task="auditory", name="seed_wf", contrasts=contrasts,
                                   inference=InferenceSettings(**inference))
    workflow.inputs.inputnode.bold_files = spm_scans
    workflow.inputs.inputnode.events_file = spm_events
    records = run_workflow(workflow, work_dir=cache, printer=lambda line: None)
    return {r.name: r for r in records}


def ran(records):
    return {name for name, r in records.items() if not r.cached}


def threshold_of(output_dir, contrast="activeMinusRest"):
    sidecar = Path(output_dir) / "sub-01" / \
        f"{PREFIX}_contrast-{contrast}_stat-z_desc-thresholded_statmap.json"
    return json.loads(sidecar.read_text())


@pytest.fixture(scope="module")
def seed_run(cache, spm_scans, spm_events, tmp_path_factory):
    """The seed analysis: fdr 0.05, cluster threshold 10, table minimum 20 voxels."""
    output_dir = tmp_path_factory.mktemp("seed_out")
    records = run_seed(cache, spm_scans, spm_events, output_dir)
    return output_dir, records


def branch(contrast: str) -> set:
    """The nodes of one contrast's branch."""
    return {f"estimate_{contrast}", f"inference_{contrast}_wf.threshold",
            f"inference_{contrast}_wf.table", f"sink_{contrast}"}


SINKS = {"sink", *(f"sink_{name}" for name, _, _ in SEED_CONTRASTS)}


def test_factory_builds_a_valid_graph(tmp_path):
    """Every connection of the factory's graph is valid (nothing is run); one branch of
    plain nodes per contrast."""
    workflow = init_first_level_wf(t_r=7.0, output_dir=str(tmp_path), subject="01",
                                   task="auditory")
    graph = workflow._create_flat_graph()
    names = {node.fullname.split(".", 1)[1] for node in graph.nodes()
             if not node.name.endswith(("inputnode", "outputnode"))}  # removed at run time
    assert names == {"concatenate", "design", "fit", "sink",
                     *branch("activeMinusRest"), *branch("effectsOfInterest")}


@pytest.mark.slow
def test_a_run_given_as_one_4d_file_is_not_copied(tiny_bids_dir, tmp_path):
    """A run that is one 4D file has no concatenate node: design and fit read the
    file itself (no uncompressed copy of the run in the work directory), and its maps
    are those of the same run concatenated first."""
    bold = str(next(tiny_bids_dir.glob("sub-01/func/*_bold.nii.gz")))
    events = str(next(tiny_bids_dir.glob("sub-01/func/*_events.tsv")))
    maps = {}
    for bold_is_4d in (True, False):
        workflow = init_first_level_wf(t_r=2.0, output_dir=str(tmp_path / f"out{bold_is_4d}"),
                                       subject="01", task="tiny", contrasts=[("a", "t", ["a"])],
                                       bold_is_4d=bold_is_4d)
        names = {node.name for node in workflow._create_flat_graph().nodes()}
        assert ("concatenate" in names) is not bold_is_4d
        inputnode = workflow.get_node("inputnode")
        inputnode.inputs.bold_files = [bold]
        inputnode.inputs.events_file = events
        run_workflow(workflow, work_dir=tmp_path / f"work{bold_is_4d}")
        z = next((tmp_path / f"out{bold_is_4d}").rglob("*contrast-a_stat-z_statmap.nii.gz"))
        maps[bold_is_4d] = nb.load(z).get_fdata()
    assert not list((tmp_path / "workTrue").rglob("bold.nii"))
    np.testing.assert_array_equal(maps[True], maps[False])


@pytest.mark.slow
def test_seed_run_computes_every_node(seed_run):
    """A cold run executes 3 model nodes (concatenate, design, fit, which also writes the
    mean image and the diagnostics) and the model's sink, and 4 nodes per contrast
    (estimate, threshold, table, sink)."""
    _, records = seed_run
    assert len(ran(records)) == 4 + 4 * len(SEED_CONTRASTS)
    assert all(r.status == "end" for r in records.values())


@pytest.mark.slow
def test_seed_fdr_threshold_and_cluster_table(seed_run):
    """fdr 0.05 gives ~2.952 and the seed's five clusters and peaks."""
    output_dir, _ = seed_run
    settings = threshold_of(output_dir)
    assert settings["HeightControl"] == "fdr" and settings["Alpha"] == 0.05
    assert settings["ClusterThreshold"] == 10 and settings["TwoSided"] is False
    assert abs(settings["Threshold"] - 2.952) < 0.03
    table = pd.read_csv(
        Path(output_dir) / "sub-01" / f"{PREFIX}_contrast-activeMinusRest_clusters.tsv",
        sep="\t", dtype={"Cluster ID": str})
    assert table["Cluster ID"].str.fullmatch(r"\d+").sum() == 5
    coords = table[["X", "Y", "Z"]].to_numpy(float)
    for peak, z_value in SEED_PEAKS:
        distance = np.linalg.norm(coords - np.array(peak), axis=1)
        close = (distance <= 3.0) & (np.abs(table["Peak Stat"] - z_value) <= 0.15)
        assert close.any(), f"seed peak {peak} z={z_value} not in the table"
    assert table["Peak Stat"].max() == pytest.approx(10.07, abs=0.01)


@pytest.mark.slow
def test_seed_outputs_are_bids_named_and_consistent(seed_run):
    """Every documented output exists and the thresholded map agrees with its threshold."""
    output_dir, _ = seed_run
    folder = Path(output_dir) / "sub-01"
    names = {p.name for p in folder.iterdir()}
    for suffix in ("desc-mean_bold.nii.gz", "desc-brain_mask.nii.gz", "design.tsv", "design.png"):
        assert f"{PREFIX}_{suffix}" in names
    for contrast, stat in (("activeMinusRest", "t"), ("effectsOfInterest", "F")):
        for kind in ("effect", "variance", stat, "z", "p"):
            assert f"{PREFIX}_contrast-{contrast}_stat-{kind}_statmap.nii.gz" in names
    assert not any(name.startswith(".") for name in names)
    sidecar = json.loads((folder / f"{PREFIX}_contrast-effectsOfInterest_statmap.json").read_text())
    assert sidecar["StatisticType"] == "F" and sidecar["DegreesOfFreedom"] == 85
    assert sidecar["ContrastWeights"][1][:3] == [0, 1, 0]
    design = json.loads((folder / f"{PREFIX}_design.json").read_text())
    assert design["RepetitionTime"] == 7.0 and design["NumberOfScans"] == 96
    assert design["HighPass"] == 1 / 160 and design["HRFModel"] == "spm"
    description = json.loads((Path(output_dir) / "dataset_description.json").read_text())
    assert description["DatasetType"] == "derivative"
    assert "SoftwareVersions" not in description  # BIDS keys only: the sidecars have them
    assert sidecar["SoftwareVersions"]["nilearn"]
    z = nb.load(folder / f"{PREFIX}_contrast-activeMinusRest_stat-z_statmap.nii.gz").get_fdata()
    thresholded = nb.load(
        folder / f"{PREFIX}_contrast-activeMinusRest_stat-z_desc-thresholded_statmap.nii.gz"
    ).get_fdata()
    kept = thresholded != 0
    assert kept.sum() > 300  # the five clusters alone hold 322 voxels
    assert thresholded[kept].min() > threshold_of(output_dir)["Threshold"]
    np.testing.assert_array_equal(thresholded[kept], z[kept])
    mask = nb.load(folder / f"{PREFIX}_desc-brain_mask.nii.gz").get_fdata()
    assert mask.sum() == 62073


@pytest.mark.slow
def test_f_contrast_runs_and_thresholds(seed_run):
    """The F contrast writes an F map, a threshold and a non-empty table."""
    output_dir, _ = seed_run
    folder = Path(output_dir) / "sub-01"
    f_map = nb.load(folder / f"{PREFIX}_contrast-effectsOfInterest_stat-F_statmap.nii.gz")
    assert f_map.get_fdata().max() > 50
    settings = threshold_of(output_dir, "effectsOfInterest")
    assert 2.0 < settings["Threshold"] < 4.0
    table = pd.read_csv(folder / f"{PREFIX}_contrast-effectsOfInterest_clusters.tsv", sep="\t")
    assert len(table) > 0 and table["Peak Stat"].max() > 10


@pytest.mark.slow
def test_identical_rerun_recomputes_nothing(seed_run, cache, spm_scans, spm_events):
    """A second identical run reuses every node; only the sink copies files again."""
    output_dir, _ = seed_run
    records = run_seed(cache, spm_scans, spm_events, output_dir)
    assert ran(records) == SINKS  # sinks always copy (as Nipype's DataSink)
    assert len(records) == 4 + 4 * len(SEED_CONTRASTS)


@pytest.mark.slow
def test_new_alpha_reruns_only_thresholds_and_tables(seed_run, cache, spm_scans, spm_events,
                                                     tmp_path):
    """Changing alpha reruns the threshold and table nodes, nothing upstream."""
    records = run_seed(cache, spm_scans, spm_events, tmp_path, alpha=0.01)
    assert ran(records) == SINKS | {f"inference_{name}_wf.{node}" for name, _, _ in SEED_CONTRASTS
                                    for node in ("threshold", "table")}


@pytest.mark.slow
@pytest.mark.parametrize("height_control, alpha, expected", [
    ("fpr", 0.001, 3.090), ("bonferroni", 0.05, 4.797),
])
def test_seed_thresholds(seed_run, cache, spm_scans, spm_events, tmp_path,
                         height_control, alpha, expected):
    """fpr 0.001 gives 3.090 and bonferroni 0.05 gives 4.797 (one-sided)."""
    records = run_seed(cache, spm_scans, spm_events, tmp_path, height_control=height_control,
                       alpha=alpha)
    assert records["fit"].cached
    assert threshold_of(tmp_path)["Threshold"] == pytest.approx(expected, abs=5e-4)


@pytest.mark.slow
def test_added_contrast_does_not_refit(seed_run, cache, spm_scans, spm_events, tmp_path):
    """A new contrast adds one branch; the fit and the other contrasts stay cached."""
    run_seed(cache, spm_scans, spm_events, tmp_path)  # back to the seed settings
    contrasts = [*SEED_CONTRASTS, ("restMinusActive", "t", ("rest - active",))]
    records = run_seed(cache, spm_scans, spm_events, tmp_path, contrasts=contrasts)
    assert ran(records) == SINKS | branch("restMinusActive")
    z_pos = nb.load(tmp_path / "sub-01" /
                    f"{PREFIX}_contrast-activeMinusRest_stat-z_statmap.nii.gz").get_fdata()
    z_neg = nb.load(tmp_path / "sub-01" /
                    f"{PREFIX}_contrast-restMinusActive_stat-z_statmap.nii.gz").get_fdata()
    np.testing.assert_allclose(z_neg, -z_pos, atol=1e-6)


def test_ports_are_the_interfaces_and_namings_names():
    """Each wiring list of glm_workflows.workflows.ports joins an interface's output to a sink input
    that naming's tables define, at every level."""
    from glm_workflows import interfaces
    from glm_workflows.core.naming import CONTRAST_OUTPUTS, GROUP_OUTPUTS
    from glm_workflows.workflows.group import PERMUTATION_OUTPUTS
    from glm_workflows.workflows.inference import init_inference_wf
    from glm_workflows.workflows.ports import (
        INFERENCE_OUTPUTS,
        contrast_to_sink,
        inference_to_sink,
        maps_to_sink,
    )

    outputs = {name: set(getattr(interfaces, name).output_spec.class_trait_names())
               for name in ("EstimateContrast", "FixedEffects", "GroupModel")}
    for figure, givers in ((True, ["EstimateContrast"]),
                           (False, ["FixedEffects", "GroupModel"])):
        for source, target in contrast_to_sink(figure=figure):
            assert target in CONTRAST_OUTPUTS
            assert all(source in outputs[name] for name in givers), source
    for _, target in maps_to_sink() + inference_to_sink():
        assert target in CONTRAST_OUTPUTS and target in GROUP_OUTPUTS, target
    assert set(PERMUTATION_OUTPUTS) <= set(GROUP_OUTPUTS)
    outputnode = init_inference_wf().get_node("outputnode")
    assert tuple(outputnode.inputs.copyable_trait_names()) == INFERENCE_OUTPUTS
    assert maps_to_sink() is not maps_to_sink()  # fresh lists: connect edits its arguments
