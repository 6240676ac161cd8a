"""The interfaces are thin, fully described shells over the core."""

import nibabel as nb
import numpy as np
import pytest
from nipype.interfaces.base import BaseInterfaceInputSpec, TraitedSpec

from glm_workflows import interfaces
from glm_workflows.core.contrasts import contrast_matrix
from glm_workflows.core.estimates import compute_contrast, load_fitted_glm

INHERITED = set(BaseInterfaceInputSpec.class_trait_names()) | set(TraitedSpec.class_trait_names())
SPECS = [(name, kind, getattr(getattr(interfaces, name), kind))
         for name in interfaces.__all__ for kind in ("input_spec", "output_spec")]


@pytest.mark.parametrize("name, kind, spec", SPECS, ids=[f"{n}.{k}" for n, k, _ in SPECS])
def test_every_trait_has_a_description(name, kind, spec):
    """Each input and output says what it is."""
    own = [t for t in spec.class_trait_names() if t not in INHERITED]
    assert own, f"{name}.{kind} declares no trait"
    undescribed = [t for t in own if not spec.class_traits()[t].desc]
    assert not undescribed, f"{name}.{kind}: no desc for {undescribed}"


@pytest.fixture(scope="module")
def small_run(tmp_path_factory, seed_bold, seed_design):
    """A 16x16x16 crop of the real run around the left auditory peak (-63, -6, 42) mm,
    fast to fit, its design TSV, and a FitGLM result."""
    folder = tmp_path_factory.mktemp("small")
    crop = seed_bold.slicer[44:60, 21:37, 28:44, :]
    crop.to_filename(folder / "bold.nii.gz")
    seed_design.to_csv(folder / "design.tsv", sep="\t", index=False)
    fit_dir = folder / "fit"
    fit_dir.mkdir()
    result = interfaces.FitGLM(bold_file=str(folder / "bold.nii.gz"),
                               design_file=str(folder / "design.tsv")).run(cwd=str(fit_dir))
    return folder, result.outputs


def _cwd(path):
    path.mkdir(parents=True, exist_ok=True)
    return str(path)


def _fit_inputs(outputs):
    return dict(betas=outputs.betas, dispersion=outputs.dispersion, ar1=outputs.ar1,
                mask_file=outputs.mask_file, model_sidecar=outputs.model_sidecar)


def test_estimate_contrast_interface_equals_core(small_run, tmp_path):
    """EstimateContrast writes the maps the core computes from the same files."""
    _, fit_outputs = small_run
    result = interfaces.EstimateContrast(
        contrast_name="activeMinusRest", stat_type="t", contrast_rows=["active - rest"],
        **_fit_inputs(fit_outputs)).run(cwd=str(tmp_path))
    fit = load_fitted_glm(betas=fit_outputs.betas, dispersion=fit_outputs.dispersion,
                          ar1=fit_outputs.ar1, mask=fit_outputs.mask_file,
                          sidecar=fit_outputs.model_sidecar)
    expected = compute_contrast(fit, contrast_matrix(["active - rest"], fit.columns), "t")
    np.testing.assert_array_equal(nb.load(result.outputs.z).get_fdata(),
                                  expected["z"].get_fdata())
    assert result.outputs.contrast_name == "activeMinusRest"
    assert result.outputs.stat_type == "t"


def test_estimate_contrast_unknown_column(small_run, tmp_path):
    """An unknown column fails with the list of available columns."""
    _, fit_outputs = small_run
    node = interfaces.EstimateContrast(contrast_name="bad", contrast_rows=["activ - rest"],
                                       **_fit_inputs(fit_outputs))
    with pytest.raises(ValueError, match="unknown column 'activ'; available columns: active, "
                                         "rest, drift_1"):
        node.run(cwd=str(tmp_path))


def test_weight_vector_rows(small_run, tmp_path):
    """Rows may be given as weight lists from Python."""
    _, fit_outputs = small_run
    weights = [1.0, -1.0] + [0.0] * 9
    by_weights = interfaces.EstimateContrast(
        contrast_name="w", contrast_rows=[weights], **_fit_inputs(fit_outputs)
    ).run(cwd=_cwd(tmp_path / "w"))
    by_name = interfaces.EstimateContrast(
        contrast_name="e", contrast_rows=["active - rest"], **_fit_inputs(fit_outputs)
    ).run(cwd=_cwd(tmp_path / "e"))
    np.testing.assert_array_equal(nb.load(by_weights.outputs.stat).get_fdata(),
                                  nb.load(by_name.outputs.stat).get_fdata())


def test_concatenate_interface_refuses_other_shape(tmp_path, spm_scans):
    """ConcatenateImages names the scan whose shape differs."""
    odd = tmp_path / "odd.nii"
    nb.Nifti1Image(np.zeros((64, 64, 32), np.int16), nb.load(spm_scans[0]).affine).to_filename(odd)
    with pytest.raises(ValueError, match=r"odd\.nii: shape \(64, 64, 32\) differs"):
        interfaces.ConcatenateImages(in_files=[spm_scans[0], str(odd)]).run(cwd=str(tmp_path))


def test_threshold_and_table_interfaces(small_run, tmp_path):
    """ThresholdMap records its settings; ClusterTable writes the nilearn columns."""
    import json

    import pandas as pd

    _, fit_outputs = small_run
    contrast = interfaces.EstimateContrast(
        contrast_name="activeMinusRest", contrast_rows=["active - rest"],
        **_fit_inputs(fit_outputs)).run(cwd=_cwd(tmp_path / "c"))
    threshold = interfaces.ThresholdMap(
        z_map=contrast.outputs.z, height_control="none", threshold=3.0,
        cluster_threshold=0).run(cwd=_cwd(tmp_path / "t"))
    assert threshold.outputs.threshold == 3.0
    settings = json.loads(open(threshold.outputs.threshold_json).read())
    assert settings == {"HeightControl": "none", "Alpha": None, "Threshold": 3.0,
                        "ClusterThreshold": 0, "TwoSided": False, "NoSurvivingVoxels": False}
    table = interfaces.ClusterTable(z_map=contrast.outputs.z, stat_threshold=3.0,
                                    min_cluster_size=0).run(cwd=_cwd(tmp_path / "k"))
    frame = pd.read_csv(table.outputs.table, sep="\t")
    assert list(frame.columns) == ["Cluster ID", "X", "Y", "Z", "Peak Stat",
                                   "Cluster Size (mm3)"]
    assert frame.loc[0, ["X", "Y", "Z"]].tolist() == [-63.0, -6.0, 42.0]
    assert frame.loc[0, "Peak Stat"] > 9


def test_fit_glm_defaults_to_ar1():
    """The interface's default noise model is AR(1), as its description says."""
    from glm_workflows.interfaces import FitGLM

    assert FitGLM().inputs.noise_model == "ar1"


def test_fit_glm_warns_of_non_finite_samples(small_run, tmp_path):
    """FitGLM's ``warnings`` output: empty for the int16 crop; for the crop as float32 with
    NaN in three volumes of one voxel of nilearn's mask, one line with the counts, which
    model.json records too."""
    import json

    from nilearn.masking import compute_epi_mask

    folder, clean = small_run
    assert clean.warnings == []
    img = nb.load(folder / "bold.nii.gz")
    data = np.asarray(img.dataobj, dtype=np.float32)
    mask = nb.load(clean.mask_file).get_fdata() > 0
    voxel = tuple(np.argwhere(mask)[mask.sum() // 2])
    data[voxel + (slice(10, 13),)] = np.nan
    bold = tmp_path / "bold.nii.gz"
    nb.Nifti1Image(data, img.affine).to_filename(bold)
    assert compute_epi_mask(str(bold)).get_fdata()[voxel] > 0  # nilearn fits the voxel
    result = interfaces.FitGLM(bold_file=str(bold), design_file=str(folder / "design.tsv"),
                               noise_model="ols").run(cwd=_cwd(tmp_path / "fit"))
    assert result.outputs.warnings == [
        f"{bold}: 1 voxel(s) of the mask in 3 volume(s) had non-finite samples (NaN/Inf); "
        "set to 0, as nilearn does"]
    sidecar = json.loads(open(result.outputs.model_sidecar).read())
    assert (sidecar["NonFiniteVoxels"], sidecar["NonFiniteVolumes"]) == (1, 3)


def test_contrast_map_traits_are_namings_table():
    """Every interface that outputs a contrast's maps has exactly naming's CONTRAST_MAPS,
    from the one shared output spec (their names are the cache keys and the ports)."""
    from glm_workflows.interfaces._ports import ContrastMapsOutputSpec

    from glm_workflows.core.naming import CONTRAST_MAPS

    assert sorted(ContrastMapsOutputSpec.class_trait_names()) == sorted(
        [*CONTRAST_MAPS, *TraitedSpec.class_trait_names()])
    givers = [name for name in interfaces.__all__
              if "effect" in getattr(interfaces, name).output_spec.class_trait_names()]
    assert givers == ["EstimateContrast", "FixedEffects", "GroupModel"]
    for name in givers:
        spec = getattr(interfaces, name).output_spec
        assert issubclass(spec, ContrastMapsOutputSpec), name
        assert set(CONTRAST_MAPS) <= set(spec.class_trait_names()), name


def test_sink_inputs_are_namings_tables():
    """The sinks take one input per output name of naming's tables (and describe it)."""
    from glm_workflows.interfaces.derivatives import INPUT_DESCRIPTIONS

    from glm_workflows.core.naming import CONTRAST_OUTPUTS, GROUP_OUTPUTS, MODEL_OUTPUTS

    sink = interfaces.DerivativesSink.input_spec.class_trait_names()
    assert set(MODEL_OUTPUTS) | set(CONTRAST_OUTPUTS) <= set(sink)
    assert set(INPUT_DESCRIPTIONS) <= set(MODEL_OUTPUTS) | set(CONTRAST_OUTPUTS)
    assert set(GROUP_OUTPUTS) <= set(interfaces.GroupSink.input_spec.class_trait_names())
