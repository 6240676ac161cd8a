"""Running an analysis: :func:`~.analysis.run_analysis` (collect, check, plan, build, run,
publish), Nipype's plugins with progress lines (:mod:`.plugins`), SLURM array submissions
(:mod:`.slurm_array`, :mod:`.submit`) and interrupts (:mod:`.interrupts`)."""

from .._moved import moved_attribute


def __getattr__(name):
    return moved_attribute(__name__, name)
