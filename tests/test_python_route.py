"""Python is a route of its own: ``glm_workflows.run_analysis(spec, execution)`` runs a
model file as the command line does (same maps, relative paths from the working
directory, the report written), refuses a misspelt contrast before any folder exists,
and builds the seed workflow with the node names and input hashes of the factory called
directly (a work directory of an earlier version stays cached)."""

from pathlib import Path

import nibabel as nb
import numpy as np
import pytest

import glm_workflows
from glm_workflows.core.errors import InputError
from glm_workflows.settings import ExecutionSettings
from glm_workflows.spec.analysis import (
    AnalysisSpec,
    Contrast,
    Edge,
    InputSpec,
    MetaModel,
    Node,
    RunModel,
)

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "models"


def test_model_file_from_python_equals_the_command_line(seed_cli, bids_dir, tmp_path,
                                                        monkeypatch, capsys):
    """``run_analysis(read_model(...), ExecutionSettings(...))`` with relative folders:
    the seed's maps, as ``--model`` gives them (tests/test_stats_models.py), and the
    report."""
    root, _, _ = seed_cli
    monkeypatch.chdir(tmp_path)
    spec = glm_workflows.read_model(EXAMPLES / "auditory_smdl.json", bids_dir=str(bids_dir))
    code = glm_workflows.run_analysis(spec, ExecutionSettings(output_dir="out",
                                                              work_dir="work"))
    assert code == 0
    printed = capsys.readouterr()
    assert "activeMinusRest: fdr alpha=0.05 -> z > 2.931, 5 cluster(s)" in printed.out
    assert "nipype" not in printed.out.lower() + printed.err.lower()  # its log is quiet
    ours = sorted((tmp_path / "out" / "sub-01").glob("*_contrast-*_statmap.nii.gz"))
    assert len(ours) == 12
    for path in ours:
        np.testing.assert_array_equal(
            nb.load(path).get_fdata(),
            nb.load(root / "out" / "sub-01" / path.name).get_fdata(), err_msg=path.name)
    assert "Model file (BIDS Stats Models): auditory" in \
        (tmp_path / "out" / "sub-01.html").read_text()


def _seed_spec(data_dir, contrasts) -> AnalysisSpec:
    return AnalysisSpec(
        InputSpec(data_dir=str(data_dir)),
        (Node("Run", "run", RunModel(), group_by=("run", "subject"), contrasts=contrasts),
         Node("Subject", "subject", MetaModel(), group_by=("subject", "contrast"))),
        (Edge("run", "subject"),))


def test_misspelt_contrast_refused_before_any_folder(data_dir, tmp_path):
    spec = _seed_spec(data_dir, (Contrast("activeMinusRst", "t", ("active - rst",)),))
    execution = ExecutionSettings(output_dir=str(tmp_path / "out"),
                                  work_dir=str(tmp_path / "work"))
    with pytest.raises(InputError, match="activeMinusRst") as raised:
        glm_workflows.run_analysis(spec, execution)
    assert len(str(raised.value).splitlines()) == 1 and "rst" in str(raised.value)
    assert not (tmp_path / "out").exists() and not (tmp_path / "work").exists()


def _hashes(workflow) -> dict:
    """Every node's name and the hash of its inputs (what Nipype's cache is keyed on)."""
    return {node.fullname: node.inputs.get_hashval(hash_method="content")[1]
            for node in workflow._get_all_nodes()}


def _edges(workflow) -> list:
    """Every connection of the flattened graph: source node, destination node, fields."""
    flat = workflow._create_flat_graph()
    return sorted((u.fullname, v.fullname, sorted(map(str, data["connect"])))
                  for u, v, data in flat.edges(data=True))


def test_seed_graph_keeps_its_node_names_and_hashes(data_dir, tmp_path):
    """The seed workflow built on run_analysis' path (spec -> prepare -> the plan's graph
    walked by init_analysis_wf) has the node names and input hashes of ``init_glm_wf``
    called with the settings the command line passed it before the spec (so a rerun on
    an old work directory stays cached)."""
    from glm_workflows.cli import spec_from_args
    from glm_workflows.execution.prepare import prepare
    from glm_workflows.inputs.bids import find_spm_auditory
    from glm_workflows.settings import (
        DEFAULT_CONFOUNDS,
        DEFAULT_GROUP,
        DEFAULT_INFERENCE,
        DEFAULT_MODEL,
        SEED_CONTRASTS,
    )
    from glm_workflows.workflows.study import init_analysis_wf, init_glm_wf

    out = tmp_path / "out"
    spec, execution = spec_from_args(["--data-dir", str(data_dir), "--output-dir", str(out),
                                      "--work-dir", str(tmp_path / "work")])
    assert spec == _seed_spec(data_dir, tuple(Contrast(*c) for c in SEED_CONTRASTS))
    ours = init_analysis_wf(prepare(spec, execution))
    before = init_glm_wf([find_spm_auditory(str(data_dir))], output_dir=out,
                         contrasts=list(SEED_CONTRASTS), model=DEFAULT_MODEL,
                         inference=DEFAULT_INFERENCE, confounds=DEFAULT_CONFOUNDS,
                         skipped={}, group=DEFAULT_GROUP, group_plans=[],
                         participants_file=None, n_chunks=1)
    assert sorted(ours.list_node_names()) == sorted(before.list_node_names())
    ours_hashes, before_hashes = _hashes(ours), _hashes(before)
    assert len(ours_hashes) > 10 and ours_hashes == before_hashes
    assert _edges(ours) == _edges(before)


@pytest.mark.slow
def test_study_graph_keeps_its_node_names_edges_and_hashes(split_bids_dir, tmp_path):
    """Two subjects x two runs with a one-sample group level: the graph walked from the
    plan (spec -> prepare -> init_analysis_wf) is the one ``init_glm_wf`` builds from
    explicit settings (the call the command line made before the spec): node names,
    connections and input hashes."""
    from glm_workflows.cli import spec_from_args
    from glm_workflows.execution.prepare import prepare
    from glm_workflows.inputs.bids import find_bids_runs
    from glm_workflows.settings import DEFAULT_CONFOUNDS, DEFAULT_INFERENCE, DEFAULT_MODEL
    from glm_workflows.workflows.study import GroupPlan, init_analysis_wf, init_glm_wf

    out = tmp_path / "out"
    contrast = ("activeMinusRest", "t", ("active - rest",))
    spec, execution = spec_from_args([
        "--bids-dir", str(split_bids_dir), "--task", "auditory", "--output-dir", str(out),
        "--work-dir", str(tmp_path / "work"), "--contrast", "activeMinusRest=active - rest",
        "--group", "one-sample"])
    plan = prepare(spec, execution)
    assert [level for level, _ in plan.nodes] == ["Run", "Subject", "Dataset"]
    ours = init_analysis_wf(plan)
    runs = find_bids_runs(str(split_bids_dir), "auditory")
    assert [r.label for r in runs] == [p.run.label for p in plan.runs]
    before = init_glm_wf(runs, output_dir=out, contrasts=[contrast], model=DEFAULT_MODEL,
                         inference=DEFAULT_INFERENCE, confounds=DEFAULT_CONFOUNDS,
                         mem_gb=plan.mem_gb, skipped={}, group=spec.group_settings(),
                         group_plans=[GroupPlan("activeMinusRest", ("activeMinusRest",),
                                                ("01", "02"), ((None, "intercept"),))],
                         participants_file=None, n_chunks=1)
    assert sorted(ours.list_node_names()) == sorted(before.list_node_names())
    assert any(name.startswith("group_activeMinusRest_wf") for name in ours.list_node_names())
    ours_hashes = _hashes(ours)
    assert len(ours_hashes) > 50 and ours_hashes == _hashes(before)
    assert _edges(ours) == _edges(before)


def test_model_design_node_value_unchanged(bids_dir):
    """A model file's design reaches the DesignMatrix node as the JSON value the command
    line gave it before the spec (``run_node_json`` of the model's Run node), with the
    same nilearn settings: its cache key is unchanged."""
    from glm_workflows.core.model_design import run_node_json
    from glm_workflows.core.stats_model_read import read_stats_model

    path = EXAMPLES / "auditory_smdl.json"
    model = read_stats_model(path)
    settings = glm_workflows.read_model(path, bids_dir=str(bids_dir)).model_settings()
    assert settings.run_node == run_node_json(model.root)
    assert (settings.hrf_model, settings.drift_model, settings.high_pass) == (
        model.root.hrf.model if model.root.hrf else "spm", "cosine", model.root.high_pass)
