"""Invertible coupling steps on the dummy action pair (x, y).

Every module here is imported by ``genpo.components`` (discovery), which registers its couplings. Each
registered coupling must state in its own class body whether its log-det depends on the state: the
GenPO actor's closed-form entropy and the coupling tests rely on that declaration.
"""

from genpo.registry import require_attribute

require_attribute(
    "coupling",
    "state_independent_log_det",
    bool,
    "True when every step's log|det| is constant_log_det(d), whatever the observation, state and weights "
    "(the actor then has a closed-form entropy); False when shear/unshear return state-dependent terms",
)
