"""The composition layer: the only place gin meets code.

``build_actor`` / ``build_critic`` / ``build_env`` / ``build_trainer`` wire registered classes from gin
bindings. Every registered component is exposed to gin as ``@<kind>.<name>`` (e.g. ``@coupling.genpo``).
"""

from genpo.builders.actor import build_actor, build_critic
from genpo.builders.config import GIN_DIR, parse_config
from genpo.builders.env import build_env
from genpo.builders.experiment import build_trainer, new_experiment, resume_experiment

__all__ = [
    "GIN_DIR",
    "build_actor",
    "build_critic",
    "build_env",
    "build_trainer",
    "new_experiment",
    "parse_config",
    "resume_experiment",
]
