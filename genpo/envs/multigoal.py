"""The multi-goal point mass of Soft Q-Learning (Haarnoja et al., ICML 2017, its didactic example), batched in torch.

Definition (the authors' code, github.com/haarnoja/softqlearning, ``softqlearning/environments/
multigoal.py`` and ``examples/multigoal_sql.py``, commit b801266):

- state and observation: the 2-D position, in ``[-7, 7]^2``; it starts at ``N(0, 0.1^2 I)`` (clipped);
- action: a velocity, clipped to ``[-1, 1]^2``; ``next = clip(position + action, -7, 7)``;
- reward ``-(30 ||a||^2 + 1 * min_g ||next - g||^2)`` with ``a`` the clipped action and ``g`` the four
  goals ``(+-5, 0)``, ``(0, +-5)``; plus 10 when ``min_g ||next - g|| < 1``, which ends the episode;
- a time limit of 30 steps (the example's ``max_path_length``).

Why: the four goals are equally good, so from the origin the optimal behaviour has four modes (in the
paper SQL's trajectories reach all four goals, DDPG's commit to one).

``exploring_starts`` (not in the paper; default 0): the fraction of episodes that start uniformly in the
square ``[-w, w]^2`` (``w = exploring_start_half_width``, default 5: the square the goals span) instead
of at the origin. An on-policy method values a first step by the current policy's behaviour after it,
and a policy that drives to one goal from everywhere makes every other first step worse
(``benchmarks/multigoal_first_step.py``); starts spread over the square teach the way to the nearest
goal from more states, so the first steps from the origin come closer in value. Evaluation keeps the
origin: ``tasks/multigoal.gin`` binds ``eval/genpo.build_env.exploring_starts = 0.0``.

``episode_info`` holds ``goal_reached`` and one indicator per goal (``goal_east`` (+5, 0),
``goal_west``, ``goal_north`` (0, +5), ``goal_south``), so the trainer's per-iteration averages give
how often each goal is taken.
"""

from __future__ import annotations

import torch
from tensordict import TensorDict

from genpo.envs._batched import TensorStateEnv
from genpo.registry import register

GOAL_DISTANCE = 5.0
GOALS = ((GOAL_DISTANCE, 0.0), (-GOAL_DISTANCE, 0.0), (0.0, GOAL_DISTANCE), (0.0, -GOAL_DISTANCE))
GOAL_NAMES = ("goal_east", "goal_west", "goal_north", "goal_south")
GOAL_THRESHOLD = 1.0
POSITION_BOUND = 7.0
VELOCITY_BOUND = 1.0
INIT_SIGMA = 0.1


@register("env", "multigoal")
class MultiGoalEnv(TensorStateEnv):
    """Batched multi-goal point mass (see the module docstring for the definition and its source)."""

    observation_dim = 2
    action_dim = 2

    def __init__(
        self,
        num_envs: int,
        *,
        seed: int = 0,
        device: str | torch.device = "cpu",
        max_episode_steps: int = 30,
        goal_reward: float = 10.0,
        action_cost: float = 30.0,
        distance_cost: float = 1.0,
        exploring_starts: float = 0.0,
        exploring_start_half_width: float = GOAL_DISTANCE,
    ):
        if not 0.0 <= exploring_starts <= 1.0:
            raise ValueError(f"MultiGoalEnv: exploring_starts must be in [0, 1], got {exploring_starts!r}")
        if not 0.0 < exploring_start_half_width <= POSITION_BOUND:
            raise ValueError(
                f"MultiGoalEnv: exploring_start_half_width must be in (0, {POSITION_BOUND}], got {exploring_start_half_width!r}"
            )
        super().__init__(num_envs, seed=seed, device=device, max_episode_steps=max_episode_steps)
        self.exploring_starts = exploring_starts
        self.exploring_start_half_width = exploring_start_half_width
        self.goal_reward = goal_reward
        self.action_cost = action_cost
        self.distance_cost = distance_cost
        self._goals = torch.tensor(GOALS, device=self.device)

    def _initial_state(self) -> TensorDict:
        noise = torch.randn(self.num_envs, 2, generator=self.generator, device=self.device)
        position = (INIT_SIGMA * noise).clamp(-POSITION_BOUND, POSITION_BOUND)
        if self.exploring_starts > 0.0:  # the draws happen only then, so the default keeps the paper's stream
            uniform = torch.rand(self.num_envs, 3, generator=self.generator, device=self.device)
            spread = uniform[:, 0] < self.exploring_starts
            square = self.exploring_start_half_width * (2.0 * uniform[:, 1:] - 1.0)
            position = torch.where(spread[:, None], square, position)
        return TensorDict({"position": position}, batch_size=[self.num_envs], device=self.device)

    def _observe(self, state: TensorDict) -> torch.Tensor:
        return state["position"]

    def _transition(self, state: TensorDict, action: torch.Tensor):
        position = state["position"]
        velocity = action.to(position.dtype).clamp(-VELOCITY_BOUND, VELOCITY_BOUND)
        next_position = (position + velocity).clamp(-POSITION_BOUND, POSITION_BOUND)
        squared_distance = (next_position[:, None, :] - self._goals).pow(2).sum(-1)  # [B, 4]
        nearest = squared_distance.min(dim=-1)
        terminated = nearest.values < GOAL_THRESHOLD**2
        cost = self.action_cost * velocity.pow(2).sum(-1) + self.distance_cost * nearest.values
        reward = -cost + self.goal_reward * terminated
        reached = torch.nn.functional.one_hot(nearest.indices, len(GOALS)).float() * terminated[:, None]
        info = {"goal_reached": terminated.float(), **dict(zip(GOAL_NAMES, reached.unbind(-1)))}
        episode_info = TensorDict(info, batch_size=[self.num_envs], device=self.device)
        next_state = TensorDict({"position": next_position}, batch_size=[self.num_envs], device=self.device)
        return next_state, reward.float(), terminated, episode_info
