"""The closing summary says which statistic was thresholded: |z| for two-sided maps."""

import json

from glm_workflows.report.summary import _threshold_summary


def test_two_sided_threshold_is_on_the_absolute_z(tmp_path):
    table = tmp_path / "clusters.tsv"
    table.write_text("Cluster ID\tX\tY\tZ\tPeak Stat\tCluster Size (mm3)\n"
                     "1\t0\t0\t0\t-5.0\t27\n")
    for two_sided, statistic in ((True, "|z| > 3.291"), (False, "z > 3.291")):
        sidecar = tmp_path / f"{two_sided}.json"
        sidecar.write_text(json.dumps({"HeightControl": "fpr", "Alpha": 0.001,
                                       "Threshold": 3.2905, "TwoSided": two_sided}))
        head = _threshold_summary(sidecar, table, "run")[0]
        assert head == f"\nrun: fpr alpha=0.001 -> {statistic}, 1 cluster(s)"
