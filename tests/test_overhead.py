"""What a run does not repeat or load: unchanged inputs are not read again for their
checksums, figures of an identical design or contrast are drawn once, Nipype's own
reports are not written, a cached rerun does not import the plotting libraries and a run
refused for its settings does not import nilearn's GLM (scikit-learn)."""

import os
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from nipype.interfaces.utility import IdentityInterface
from nipype.pipeline import engine as pe

from glm_workflows.core import figures
from glm_workflows.execution.graph import graph_summary
from glm_workflows.inputs import checks
from glm_workflows.inputs.runs import RunInputs
from glm_workflows.outputs import provenance


def _run(bold, events):
    return RunInputs(subject="01", task="t", bold_files=[str(bold)], events_file=str(events),
                     t_r=2.0)


def test_unchanged_inputs_are_not_read_again(tmp_path, monkeypatch):
    """The checksums file keeps each input's sha256 with its size, mtime and inode: a rerun
    reads only the files that changed, and records the same checksums."""
    bold, events = tmp_path / "bold.nii", tmp_path / "events.tsv"
    bold.write_bytes(b"scans")
    events.write_text("onset\tduration\ttrial_type\n")
    checksums = tmp_path / "work" / provenance.CHECKSUMS_FILE
    checksums.parent.mkdir()
    first = provenance.input_records([_run(bold, events)], checksums)
    assert first == provenance.input_records([_run(bold, events)])  # as without the file

    read = []
    real_sha256 = provenance.sha256_of
    monkeypatch.setattr(provenance, "sha256_of", lambda p: read.append(p) or real_sha256(p))
    assert provenance.input_records([_run(bold, events)], checksums) == first
    assert read == []
    bold.write_bytes(b"other scans")
    again = provenance.input_records([_run(bold, events)], checksums)
    assert read == [str(bold)]
    assert again[0]["sha256"] == real_sha256(bold) != first[0]["sha256"]
    assert again[1] == first[1]


def test_unreadable_checksums_file_is_ignored(tmp_path):
    """A damaged checksums file only costs reading the inputs again."""
    bold, events = tmp_path / "bold.nii", tmp_path / "events.tsv"
    bold.write_bytes(b"scans")
    events.write_text("onset\n")
    checksums = tmp_path / provenance.CHECKSUMS_FILE
    checksums.write_text("{not json")
    records = provenance.input_records([_run(bold, events)], checksums)
    assert records == provenance.input_records([_run(bold, events)])
    assert str(bold) in provenance.load_checksums(checksums)


def _first(value):
    return value


def _nested_workflow():
    """Two sub-workflows, one holding a third; connections into, out of and between them,
    one through a function."""
    def identity(name):
        return pe.Node(IdentityInterface(fields=["x"]), name=name)

    top = pe.Workflow(name="top_wf")
    subs = []
    for label in ("a", "b"):
        sub = pe.Workflow(name=f"{label}_wf")
        inputnode, work, outputnode = (identity(n) for n in ("inputnode", "work", "outputnode"))
        sub.connect([(inputnode, work, [("x", "x")]), (work, outputnode, [("x", "x")])])
        subs.append(sub)
    inner = pe.Workflow(name="inner_wf")
    inner.add_nodes([identity("deep")])
    subs[1].connect(subs[1].get_node("work"), "x", inner, "deep.x")
    source = identity("source")
    top.connect([(source, subs[0], [("x", "inputnode.x")]),
                 (subs[0], subs[1], [(("outputnode.x", _first), "inputnode.x")]),
                 (subs[1], identity("sink"), [("inner_wf.deep.x", "x")])])
    return top


def test_graph_summary_names_nipypes_flat_graph():
    """The graph summary, read without flattening a deep copy, is the graph Nipype
    flattens the nested workflows into."""
    workflow = _nested_workflow()
    flat = workflow._create_flat_graph()
    assert graph_summary(workflow) == {
        "Nodes": sorted(node.fullname for node in flat.nodes()),
        "Edges": sorted([u.fullname, v.fullname] for u, v in flat.edges()),
    }
    assert "top_wf.b_wf.inner_wf.deep" in graph_summary(workflow)["Nodes"]


@pytest.fixture
def design():
    frame_times = np.arange(20) * 2.0
    return pd.DataFrame({"a": np.sin(frame_times), "b": np.cos(frame_times),
                         "drift_1": np.linspace(-1, 1, 20), "constant": 1.0},
                        index=frame_times)


def test_design_and_contrast_figures_are_drawn_once(design, tmp_path, monkeypatch):
    """The same design or contrast gives the same bytes without drawing again; the bytes
    are those of a new drawing; another design is drawn."""
    figures._DRAWN.clear()
    figures.plot_design(design, tmp_path / "design1.png")
    assert figures.plot_design_correlation(design, tmp_path / "correlation1.png")
    figures.plot_contrast(np.array([[1.0, -1.0, 0, 0]]), design.columns, "aMinusB",
                          tmp_path / "contrast1.png")

    def no_drawing(*args):
        raise AssertionError("drawn again")

    for name in ("_design_png", "_correlation_png", "_contrast_png"):
        monkeypatch.setattr(figures, name, no_drawing)
    figures.plot_design(design.copy(), tmp_path / "design2.png")
    assert figures.plot_design_correlation(design.copy(), tmp_path / "correlation2.png")
    figures.plot_contrast(np.array([[1.0, -1.0, 0, 0]]), list(design.columns), "aMinusB",
                          tmp_path / "contrast2.png")
    with pytest.raises(AssertionError, match="drawn again"):
        figures.plot_design(design * 2, tmp_path / "design3.png")
    monkeypatch.undo()

    figures._DRAWN.clear()
    figures.plot_design(design, tmp_path / "design3.png")
    for kind in ("design", "correlation", "contrast"):
        assert (tmp_path / f"{kind}1.png").read_bytes() == (tmp_path / f"{kind}2.png").read_bytes()
    assert (tmp_path / "design3.png").read_bytes() == (tmp_path / "design1.png").read_bytes()


def test_correlation_of_drifts_only_is_remembered_as_no_figure(design, tmp_path):
    """No regressor but drifts and constant: no figure, the first time and the next."""
    figures._DRAWN.clear()
    drifts = design[["drift_1", "constant"]]
    for _ in range(2):
        assert not figures.plot_design_correlation(drifts, tmp_path / "none.png")
    assert not (tmp_path / "none.png").exists()


def _python(code: str) -> str:
    """Run ``code`` in a fresh interpreter; return what it printed."""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, "NIPYPE_NO_ET": "1"}, check=True)
    return done.stdout.strip().splitlines()[-1]


@pytest.mark.slow
def test_cached_rerun_imports_no_plotting_and_nipype_writes_no_reports(tiny_bids_dir, tmp_path):
    """A rerun whose nodes all come from the cache (but the sink) loads neither matplotlib,
    nilearn's GLM (the design check is kept in the work directory) nor scipy.stats; no
    node folder holds a Nipype report. The first run, which draws every figure, loads
    neither ``matplotlib.pyplot`` nor nilearn's plotting (its figures are composed as
    pixels). Changed events are checked again."""
    bids = tmp_path / "bids"
    shutil.copytree(tiny_bids_dir, bids, symlinks=True)
    argv = ["--bids-dir", str(bids), "--task", "tiny", "--subject", "01",
            "--contrast", "aMinusB=a - b", "--output-dir", str(tmp_path / "out"),
            "--work-dir", str(tmp_path / "work")]
    code = ("import sys, contextlib, io\nfrom glm_workflows.cli import main\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n    code = main({argv!r})\n"
            "print(code, *(name in sys.modules for name in "
            "('matplotlib', 'nilearn.glm', 'scipy.stats', 'matplotlib.pyplot', "
            "'nilearn.plotting')))")
    assert _python(code.format(argv=argv)) == "0 True True True False False"
    # --recheck: Nipype checks every node (else the run's stamp answers, importing nothing)
    assert _python(code.format(argv=[*argv, "--recheck"])) == "0 False False False False False"
    assert not list((tmp_path / "work").rglob("_report"))
    assert (tmp_path / "work" / provenance.CHECKSUMS_FILE).exists()
    assert (tmp_path / "work" / checks.DESIGN_CHECKS_FILE).exists()

    events = next(bids.glob("sub-01/func/*_events.tsv"))
    events.unlink()  # a symlink into the shared fixture: replace it, do not write through
    events.write_text("onset\tduration\ttrial_type\n0\tten\ta\n")
    refused = subprocess.run([sys.executable, "-m", "glm_workflows.cli", *argv],
                             capture_output=True, text=True)
    assert refused.returncode == 2
    assert f"{events}: column 'duration'" in refused.stderr


def test_building_a_workflow_does_not_ask_the_network_for_nipypes_version():
    """Nipype's first interface asks etelemetry (over the network) for Nipype's latest
    version unless ``NIPYPE_NO_ET`` is set; importing the package sets it, so a workflow is
    built without the request, even in a process whose environment did not set it."""
    code = ("import os, sys\nos.environ.pop('NIPYPE_NO_ET', None)\n"
            "from glm_workflows.workflows.first_level import init_first_level_wf\n"
            "from nipype.interfaces.utility import IdentityInterface\n"
            "IdentityInterface(fields=['x'])\n"
            "print(os.environ.get('NIPYPE_NO_ET'), 'etelemetry' in sys.modules)")
    assert _python(code) == "1 False"


def test_bad_settings_are_refused_before_nilearn_is_imported():
    """A run refused for its settings stops before importing nilearn's GLM (and with it
    scikit-learn, about a second)."""
    code = ("import sys, contextlib, io\nfrom glm_workflows.cli import main\n"
            "with contextlib.redirect_stderr(io.StringIO()):\n    code = main(['--alpha', '2'])\n"
            "print(code, 'nilearn.glm' in sys.modules, 'sklearn' in sys.modules)")
    assert _python(code) == "2 False False"


def test_forked_study_checks_import_nilearns_design_once(tmp_path):
    """Checking a study in forked processes with no design kept imports nilearn's design
    functions once, in this process (the workers inherit them); with every design kept
    from an earlier run, not at all."""
    code = (
        "import sys\nfrom glm_workflows.inputs import checks\n"
        "from glm_workflows.inputs.bids import find_bids_runs\n"
        "from glm_workflows.settings import DEFAULT_MODEL\n"
        "from glm_workflows.synthetic import write_tiny_bids\n"
        f"root, work = {str(tmp_path / 'bids')!r}, {str(tmp_path / 'work')!r}\n"
        "if len(sys.argv) == 1:\n    write_tiny_bids(root, ['01', '02', '03'])\n"
        "runs = find_bids_runs(root, 'tiny')\n"
        "kept = checks.load_design_checks(work)\n"
        "checks.validate_runs(runs, [DEFAULT_MODEL.design()] * 3,\n"
        "                     [('aMinusB', 't', ('a - b',))], design_checks=kept,\n"
        f"                     warnings=[], output_dir={str(tmp_path / 'out')!r},\n"
        "                     confounds=None, min_kept_volumes=10, n_procs=2,\n"
        "                     parallel_from=1)\n"
        "checks.save_design_checks(work, kept)\n"
        "print(bool(kept), 'nilearn.glm.first_level' in sys.modules)\n")
    assert _python(code) == "True True"
    done = subprocess.run([sys.executable, "-c", code, "again"], capture_output=True,
                          text=True, check=True)
    assert done.stdout.split() == ["True", "False"]
