"""What the permutation interfaces (:class:`~.group.PermutationChunk`,
:class:`~.group.CombinePermutations`) pass to the core and record in their sidecar, from
their shared inputs."""

from __future__ import annotations

from nipype.interfaces.base import isdefined

from glm_workflows.core.mesh import layout_mesh_source
from glm_workflows.core.mesh_permutations import TFCE_E, TFCE_H, TFCE_STEPS
from glm_workflows.core.surfaces import read_layout

from ._group_design import load_group_design


def permutation_args(inputs) -> tuple[list, dict]:
    """The positional and keyword arguments shared by the chunk and combine functions."""
    threshold = inputs.cluster_forming_p if isdefined(inputs.cluster_forming_p) else None
    args = [list(inputs.input_maps), load_group_design(inputs.design_file), inputs.mask_file,
            inputs.contrast]
    kwargs = {"n_perm": inputs.n_perm, "two_sided": inputs.two_sided,
              "threshold": threshold, "tfce": inputs.tfce}
    if isdefined(inputs.layout_file):
        kwargs["layout"] = read_layout(inputs.layout_file)
    return args, kwargs


def block_args(inputs) -> dict:
    """The exchangeability blocks of the permutations, as ``permutation_chunk`` takes
    them (none: nilearn's sequence)."""
    if not isdefined(inputs.blocks):
        return {}
    return {"blocks": list(inputs.blocks),
            "whole_blocks": bool(inputs.whole_blocks) if isdefined(inputs.whole_blocks)
            else False}


def permutation_record(inputs, kwargs) -> dict:
    """How the permutations were drawn (and, on a mesh, its clusters and TFCE), for the
    permutations sidecar."""
    record = _blocks_record(inputs)
    if "layout" in kwargs:
        record.update({"Mesh": kwargs["layout"]["Mesh"],
                       "MeshSource": layout_mesh_source(kwargs["layout"]),
                       "Clusters": "connected vertices of the mesh (faces), in the mask, "
                                   "per hemisphere; sizes in vertices",
                       "TFCEParameters": {"E": TFCE_E, "H": TFCE_H, "Steps": TFCE_STEPS,
                                          "Extent": "vertices"}})
    return record


def _blocks_record(inputs) -> dict:
    """How the permutations were drawn, for the permutations sidecar."""
    blocks = block_args(inputs)
    if not blocks:
        return {"Method": "sign flips (intercept-only designs) or row shuffles, as "
                          "nilearn's non_parametric_inference(n_jobs=1)"}
    return {"ExchangeabilityBlocks": blocks["blocks"],
            "WholeBlocks": blocks["whole_blocks"],
            "Method": "sign flips of whole blocks (where nilearn flips signs: "
                      "glm_workflows.core.permutation_problem.sign_flip_test), or row shuffles "
                      + ("of whole blocks" if blocks["whole_blocks"] else "within blocks")
                      + " (glm_workflows.core.permutations.block_draws)"}

