"""Nipype graphs, ``init_*_wf`` factories: a run's model (:mod:`.first_level`), fixed
effects (:mod:`.fixed_effects`), the group level (:mod:`.group`), thresholds and reports
(:mod:`.inference`), the whole study walked from its plan (:mod:`.study`) and the wiring
lists of map outputs (:mod:`.ports`)."""
