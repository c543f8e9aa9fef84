"""Experiments over many runs: ``genpo sweep`` and the statistics of its report.

- :mod:`~genpo.experiments.spec`: the TOML spec (attrs schema and validation), grid expansion, each
  variant's iteration budget and the plan of (variant, seed) jobs;
- :mod:`~genpo.experiments.runner`: one ``genpo train`` process per job, the resume decision
  (:func:`~genpo.experiments.runner.job_state`), parallelism and signals;
- :mod:`~genpo.experiments.statistics`: final returns (the one definition, ``final_return``), IQM with
  stratified bootstrap CIs, curves on a common grid (numpy only);
- :mod:`~genpo.experiments.plots`: the curves as PNGs;
- :mod:`~genpo.experiments.report`: ``report.md``, its table, the curve files;
- :mod:`~genpo.experiments.command`: what ``genpo sweep`` prints and returns.

Nothing is imported here, so that ``import genpo.experiments.statistics`` stays numpy-only.
"""
