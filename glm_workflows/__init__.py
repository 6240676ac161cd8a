"""First-level fMRI statistics (the General Linear Model) as Nipype workflows."""

__version__ = "0.1.0"
