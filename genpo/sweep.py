"""Former home of ``genpo sweep``, now :mod:`genpo.experiments`; kept for the imports that still use it
(``tests/test_rsl_rl_baseline.py``). New code imports from :mod:`genpo.experiments.spec` and
:mod:`genpo.experiments.runner`."""

from genpo.experiments.runner import train_command
from genpo.experiments.spec import parse_spec, plan

__all__ = ["parse_spec", "plan", "train_command"]
