"""What an analysis writes: the output folder and its records (:mod:`.folders`),
provenance (:mod:`.provenance`, :mod:`.invocation`) and the folder's reports and root
files (:mod:`.publish`). No Nipype."""
