"""The persisted fit reproduces nilearn's contrasts exactly (no Nipype)."""

import numpy as np
import pandas as pd
import pytest
from nilearn.glm.first_level import FirstLevelModel

from glm_workflows.core.contrasts import contrast_matrix
from glm_workflows.core.glm import (
    compute_contrast,
    fit_glm,
    load_fitted_glm,
    save_fitted_glm,
)

OUTPUTS = {"z": "z_score", "stat": "stat", "p": "p_value", "effect": "effect_size",
           "variance": "effect_variance"}


@pytest.fixture(scope="module")
def persisted_ar1(tmp_path_factory, seed_bold, seed_design):
    """AR(1) fit written to files and read back."""
    paths = save_fitted_glm(fit_glm(seed_bold, seed_design), tmp_path_factory.mktemp("fit"))
    return load_fitted_glm(**paths)


def _assert_same_contrasts(fit, model, columns):
    for rows, stat_type in ((["active - rest"], "t"), (["active", "rest"], "F")):
        matrix = contrast_matrix(rows, columns, stat_type)
        ours = compute_contrast(fit, matrix, stat_type)
        theirs = model.compute_contrast(matrix if stat_type == "F" else matrix[0],
                                        stat_type=stat_type, output_type="all")
        for key, name in OUTPUTS.items():
            np.testing.assert_allclose(ours[key].get_fdata(), theirs[name].get_fdata(),
                                       rtol=1e-12, atol=1e-12, err_msg=f"{stat_type} {key}")


def test_ar1_contrasts_equal_nilearn(persisted_ar1, nilearn_seed_model, seed_design):
    """t and F maps from the files equal FirstLevelModel.compute_contrast (AR(1))."""
    np.testing.assert_array_equal(persisted_ar1.mask,
                                  nilearn_seed_model.masker_.mask_img_.get_fdata() > 0)
    assert persisted_ar1.mask.sum() == 62073
    assert persisted_ar1.df_residuals == 96 - 11
    assert len(persisted_ar1.noise_bins) > 10
    _assert_same_contrasts(persisted_ar1, nilearn_seed_model, list(seed_design.columns))


def test_ols_contrasts_equal_nilearn(tmp_path, seed_bold, seed_design, spm_events):
    """Same for the OLS noise model: a single noise bin."""
    paths = save_fitted_glm(fit_glm(seed_bold, seed_design, noise_model="ols"), tmp_path)
    fit = load_fitted_glm(**paths)
    assert len(fit.noise_bins) == 1
    model = FirstLevelModel(t_r=7, noise_model="ols", standardize=False, hrf_model="spm",
                            drift_model="cosine", high_pass=1 / 160)
    model.fit(seed_bold, events=pd.read_csv(spm_events, sep="\t"))
    _assert_same_contrasts(fit, model, list(seed_design.columns))
