"""What an analysis reads: runs found in BIDS folders and fMRIPrep derivatives
(:mod:`.runs`), the runs a spec selects (:mod:`.collect`), the checks of every run's
design before any work (:mod:`.checks`) and first-level derivatives read back for a
group analysis (:mod:`.derivatives`). No Nipype."""

from .._moved import moved_attribute


def __getattr__(name):
    return moved_attribute(__name__, name)
