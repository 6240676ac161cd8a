"""What the benchmarks' plain nilearn loops write per run, as the command line does with
its defaults: the contrast's maps, the thresholded map and the cluster table."""

from __future__ import annotations

from pathlib import Path

#: The command line's default thresholds (``glm_workflows.settings.DEFAULT_INFERENCE``), as
#: nilearn's ``threshold_stats_img`` arguments, and the tables' smallest cluster.
INFERENCE = dict(alpha=0.05, height_control="fdr", cluster_threshold=10)
TABLE_MIN_CLUSTER_SIZE = 20


def write_contrast_outputs(model, contrast: str, stem: Path):
    """Compute ``contrast`` on a fitted ``FirstLevelModel`` and write, under ``stem``, its
    effect, variance, t, z and p maps, the thresholded z map and the cluster table; return
    the thresholded map and its threshold."""
    from nilearn.glm import threshold_stats_img
    from nilearn.reporting import get_clusters_table

    maps = model.compute_contrast(contrast, output_type="all")
    for key, name in (("effect_size", "effect"), ("effect_variance", "variance"),
                      ("stat", "t"), ("z_score", "z"), ("p_value", "p")):
        maps[key].to_filename(f"{stem}_stat-{name}_statmap.nii.gz")
    thresholded, threshold = threshold_stats_img(
        maps["z_score"], mask_img=model.masker_.mask_img_, **INFERENCE)
    thresholded.to_filename(f"{stem}_stat-z_desc-thresholded_statmap.nii.gz")
    get_clusters_table(thresholded, threshold, TABLE_MIN_CLUSTER_SIZE).to_csv(
        f"{stem}_clusters.tsv", sep="\t", index=False)
    return thresholded, threshold
