"""The study's plan, made before any work and without Nipype: the frozen
:class:`~.study.StudyPlan` (runs, contrasts, subjects, group plans, memory) and the
planning helpers. :func:`glm_workflows.execution.prepare.prepare` checks the data and
makes it."""
