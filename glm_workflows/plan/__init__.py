"""The study's plan, made before any work and without Nipype: the frozen
:class:`~.study.StudyPlan` (runs, contrasts, subjects, group plans, memory) and the
planner that checks the data and makes it (:func:`~.prepare.prepare`)."""
