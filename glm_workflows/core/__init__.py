"""Numeric core: plain functions on arrays and images.

Nothing in this sub-package imports Nipype, so it can be tested and reused on its own.
"""
