"""An aliased-state task whose optimal memoryless policy is a 50/50 mixture of two separated actions.

A hidden side ``s`` in {left, right} (uniform at reset) is never observed: the observation is the
constant 1 (every state aliased). The action is a point in the plane; the *right disc* has centre
``(+1, 0)``, the *left disc* ``(-1, 0)``, both of radius 0.5. An action inside the disc of the current
side earns 1 and flips the side; anything else earns 0 and leaves it. Episodes are truncated after
``T = 20`` steps (no termination).

Optimal return (undiscounted), derived. A memoryless policy is one action distribution; let ``a`` and
``b`` be its probabilities of landing in the right and the left disc (``a + b <= 1``: the discs are
disjoint) and ``q_t = P(s_t = right)``, ``q_0 = 1/2``. Then

    r_t = q_t a + (1 - q_t) b = (a + b)/2 + (q_t - 1/2)(a - b),   q_{t+1} = q_t (1 - a) + (1 - q_t) b.

``(q_t - 1/2)(a - b) <= 0`` for every t: at t = 0 it is 0, and
``(a - b)(q_{t+1} - 1/2) = -(a - b)^2/2 + (1 - a - b)(a - b)(q_t - 1/2) <= 0``. So every step earns at
most ``(a + b)/2 <= 1/2``, and ``a = b = 1/2`` earns exactly 1/2 at every step (``q_t`` stays 1/2):

    V* = T/2 = 10  (discounted: (1 - gamma^T) / (2 (1 - gamma))).

It is attained only by putting half the mass in each disc: ``T/2`` needs ``a + b = 1`` and
``r_1 = (a + b - (a - b)^2)/2 = 1/2``, so ``a = b``. A deterministic policy (``a, b`` in {0, 1})
earns at most 1/2 per episode. Every Gaussian puts mass outside the discs, so ``a + b < 1`` and it earns
strictly less than ``T/2``; the best one (a search over mean and diagonal std, tests/envs/test_aliased.py)
is centred with std about (0.95, 0) and earns about 4.85.

``episode_info``: ``right_share`` and ``left_share``, the fractions of the episode's actions that landed in
each disc (a good bimodal policy: both near 0.5).
"""

from __future__ import annotations

import torch
from tensordict import TensorDict

from genpo.envs._batched import TensorStateEnv
from genpo.registry import register

RIGHT_CENTRE = (1.0, 0.0)
LEFT_CENTRE = (-1.0, 0.0)
RADIUS = 0.5


def expected_return(right: float, left: float, steps: int = 20, gamma: float = 1.0) -> float:
    """Exact expected (discounted) return of a policy landing in the right / left disc with these
    probabilities (the recursion of the module docstring)."""
    q, total = 0.5, 0.0
    for t in range(steps):
        total += gamma**t * (q * right + (1.0 - q) * left)
        q = q * (1.0 - right) + (1.0 - q) * left
    return total


@register("env", "aliased")
class AliasedEnv(TensorStateEnv):
    """Hidden side, constant observation, reward for the disc of the side (see the module docstring)."""

    observation_dim = 1
    action_dim = 2

    def __init__(self, num_envs: int, *, seed: int = 0, device: str | torch.device = "cpu", max_episode_steps: int = 20):
        super().__init__(num_envs, seed=seed, device=device, max_episode_steps=max_episode_steps)
        self._right = torch.tensor(RIGHT_CENTRE, device=self.device)
        self._left = torch.tensor(LEFT_CENTRE, device=self.device)

    def _initial_state(self) -> TensorDict:
        right = torch.rand(self.num_envs, generator=self.generator, device=self.device) < 0.5
        zeros = torch.zeros(self.num_envs, device=self.device)
        state = {"right": right, "steps": zeros, "in_right": zeros, "in_left": zeros}
        return TensorDict(state, batch_size=[self.num_envs], device=self.device)

    def _observe(self, state: TensorDict) -> torch.Tensor:
        return torch.ones(self.num_envs, 1, device=self.device)

    def _transition(self, state: TensorDict, action: torch.Tensor):
        action = action.float()
        in_right = (action - self._right).norm(dim=-1) < RADIUS
        in_left = (action - self._left).norm(dim=-1) < RADIUS
        hit = torch.where(state["right"], in_right, in_left)
        steps = state["steps"] + 1
        next_state = TensorDict(
            {
                "right": state["right"] ^ hit,
                "steps": steps,
                "in_right": state["in_right"] + in_right,
                "in_left": state["in_left"] + in_left,
            },
            batch_size=[self.num_envs],
            device=self.device,
        )
        episode_info = TensorDict(
            {"right_share": next_state["in_right"] / steps, "left_share": next_state["in_left"] / steps},
            batch_size=[self.num_envs],
            device=self.device,
        )
        terminated = torch.zeros(self.num_envs, dtype=torch.bool, device=self.device)
        return next_state, hit.float(), terminated, episode_info
