"""The analysis specification: one frozen, validated object per analysis, its builders
(a model file, Python) and its serialisations (JSON, BIDS Stats Models)."""
