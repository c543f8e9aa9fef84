"""The contract of every component kind: what the trainer, the loss and the actors may call on it.

Each kind maps to a ``typing.Protocol`` (checked structurally) or a base class (subclassed: the actor,
ODE solver, KL estimator and lr controller bases); the
registry checks a class against its kind's contract when it registers, and the error names the class
and what it lacks. The trainer and the loss are typed against these contracts, never against concrete
components. The env kind's contract is :class:`~genpo.envs.base.BatchedEnv` (registered in
``genpo/envs/base.py``). Behaviour the types cannot state (shapes, exact resume, known answers) is
checked for every registered class by the contract tests (tests/test_contracts.py).
"""

from __future__ import annotations

from typing import Protocol

import torch
from tensordict import TensorDictBase

from genpo.components.actors.base import Actor
from genpo.components.estimators.kl import KLEstimator
from genpo.components.ode_solvers import ODESolver
from genpo.components.optim.lr_controllers import LRController
from genpo.registry import require_contract


class TensorComponent(Protocol):
    """A TensorDict module whose ``forward(td)`` reads ``in_keys`` and writes ``out_keys`` through the
    plain-tensor :meth:`compute` (:class:`~genpo.components.base.TensorDictComponent`)."""

    in_keys: list
    out_keys: list

    def compute(self, *inputs: torch.Tensor): ...

    def forward(self, tensordict: TensorDictBase) -> TensorDictBase: ...


class Critic(TensorComponent, Protocol):
    """``compute(observation [*B, d]) -> state_value [*B, 1]``; ``in_keys[0]`` names the observation it reads."""


class TimeEmbedding(TensorComponent, Protocol):
    """``compute(time [*B, 1]) -> embedding [*B, out_dim]``."""

    out_dim: int


class VelocityNetwork(TensorComponent, Protocol):
    """``compute(half, observation, time) -> velocity`` of one half of the dummy action; the flows call
    :meth:`step_contexts` once per observation and :meth:`velocity` in the inner loop."""

    def step_contexts(self, observation: torch.Tensor, num_steps: int) -> tuple[torch.Tensor, torch.Tensor]: ...

    def velocity(self, half: torch.Tensor, context: torch.Tensor) -> torch.Tensor: ...


class Readout(TensorComponent, Protocol):
    """``compute(dummy_action [*B, 2d]) -> action [*B, d]``."""


class Flow(TensorComponent, Protocol):
    """``compute(observation, noise) -> (dummy_action, log|det|)`` and its exact :meth:`inverse`."""

    def inverse(self, observation: torch.Tensor, dummy_action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]: ...


class Coupling(Protocol):
    """One invertible step on the pair (x, y) (see :class:`~genpo.components.couplings.genpo_euler.GenPOCoupling`)."""

    state_independent_log_det: bool

    def constant_log_det(self, half_dim: int) -> float: ...

    def forward_step(self, x: torch.Tensor, y: torch.Tensor, velocity, dt: float, step: int): ...

    def inverse_step(self, x: torch.Tensor, y: torch.Tensor, velocity, dt: float, step: int): ...


class Normalizer(TensorComponent, Protocol):
    """``update(observation [n, d])`` folds a batch into its statistics; ``compute`` normalises. Its
    statistics live in ``state_dict`` (exact resume)."""

    def update(self, observation: torch.Tensor) -> None: ...


class RewardScaler(Protocol):
    """``forward(reward [B], done [B]) -> scaled reward [B]``, called once per env step in order; its
    running statistics live in ``state_dict``."""

    def forward(self, reward: torch.Tensor, done: torch.Tensor) -> torch.Tensor: ...


class AdvantageEstimator(Protocol):
    """``forward(rollout [T, B])`` reads ``in_keys`` and writes ``out_keys``: ``advantage`` and
    ``value_target`` [T, B, 1]. Built with ``gamma`` and ``normalize`` keywords; a time-out bootstraps
    with ``("next", "state_value")``, a termination does not, and no trace crosses ``done``."""

    in_keys: list
    out_keys: list

    def forward(self, rollout: TensorDictBase) -> TensorDictBase: ...


class EntropyEstimator(Protocol):
    """``forward(actor, minibatch, log_prob) -> scalar entropy estimate``, or None when switched off;
    ``log_prob`` is the current policy's log-likelihood of the stored samples."""

    def forward(self, actor: Actor, tensordict: TensorDictBase, log_prob: torch.Tensor) -> torch.Tensor | None: ...


class Compression(Protocol):
    """``forward(actor, minibatch) -> scalar penalty`` on fresh samples; :meth:`check_actor` refuses an
    actor it cannot act on, when the run is built."""

    def check_actor(self, actor: Actor) -> None: ...

    def forward(self, actor: Actor, tensordict: TensorDictBase) -> torch.Tensor: ...


class ExplorationSchedule(Protocol):
    """:meth:`check_actor` refuses an actor it cannot drive, when the run is built; :meth:`apply` sets the
    actor's exploration for the rollout after ``iteration`` completed iterations (a function of the
    iteration alone, so a resumed run needs no state) and returns the value it set."""

    def check_actor(self, actor: Actor) -> None: ...

    def apply(self, actor: Actor, iteration: int) -> float: ...


class Loss(Protocol):
    """``forward(minibatch) -> TensorDict`` whose ``loss_*`` entries sum to the objective and whose
    other entries (``kl_k1``, ``kl_k3``, ...) are detached diagnostics; the entry named ``kl_key`` is
    the KL that drives the learning rate. :meth:`start_update` runs before each update's first
    minibatch, with the parameters still those of the rollout policy."""

    kl_key: str

    def start_update(self) -> None: ...

    def forward(self, tensordict: TensorDictBase) -> TensorDictBase: ...


CONTRACTS: dict[str, type] = {
    "actor": Actor,
    "advantage": AdvantageEstimator,
    "compression": Compression,
    "coupling": Coupling,
    "critic": Critic,
    "entropy_estimator": EntropyEstimator,
    "exploration_schedule": ExplorationSchedule,
    "flow": Flow,
    "kl_estimator": KLEstimator,
    "loss": Loss,
    "lr_controller": LRController,
    "normalizer": Normalizer,
    "ode_solver": ODESolver,
    "readout": Readout,
    "reward_scaler": RewardScaler,
    "time_embedding": TimeEmbedding,
    "velocity_network": VelocityNetwork,
}

for _kind, _contract in CONTRACTS.items():
    require_contract(_kind, _contract)
