"""Two goals behind two gaps: a small, fast task whose optimal policy is bimodal.

Geometry (units are arbitrary; y is up)::

                      wall x = 1
                         |
        gap (1, +0.5)    :     * upper goal (1.5, +0.5)
                         |
    start ~ (0, 0)  ->   |
                         |
        gap (1, -0.5)    :     * lower goal (1.5, -0.5)
                         |

A point agent starts uniformly within 0.05 of the origin (per axis). The action is a velocity command in
``[-1, 1]^2`` (clipped), scaled by ``MAX_SPEED`` (0.1 per step); the arena is clamped to
``x in [-0.5, 2]``, ``y in [-1.5, 1.5]``. A wall at ``x = 1`` blocks every move that crosses it outside
the two gaps (centres ``y = +-0.5``, half-width 0.1): a blocked move keeps its x and still slides in y.
Reaching a goal (within 0.15 of its centre) terminates the episode with a bonus of 1; episodes are
truncated after 50 steps. The observation is the position (2-D).

Reward: potential-based shaping ``phi(next) - phi(now)`` with ``phi = -`` the path length to the
nearer goal (via its gap while in front of the wall), plus the goal bonus. Undiscounted, an episode's
return is ``phi(end) - phi(start)`` (+ 1 at a goal), whichever goal is taken: about 2.5 at either goal.

Why it is multimodal: the task is mirror-symmetric in y, so going through the upper gap and going through
the lower gap are two distinct optimal behaviours of equal value, and from the start the optimal action
distribution has two separated modes (up-right and down-right). A unimodal Gaussian policy must either
collapse onto one mode or average them; the average heads straight along ``y ~ 0`` into the wall and
never reaches a goal (return about 0.6). ``episode_info`` reports ``goal_reached`` (1 where the episode
ended at a goal) and ``mode`` (+1 upper goal, -1 lower goal, 0 none) so training can log how often each
mode is used.
"""

from __future__ import annotations

import torch
from tensordict import TensorDict

from genpo.envs._batched import TensorStateEnv
from genpo.registry import register

WALL_X = 1.0
GAP_Y = 0.5
GAP_HALF_WIDTH = 0.1
GOAL_X = 1.5
GOAL_RADIUS = 0.15
GOAL_BONUS = 1.0
MAX_SPEED = 0.1
START_HALF_WIDTH = 0.05
ARENA_LOW = (-0.5, -1.5)
ARENA_HIGH = (2.0, 1.5)
UPPER, LOWER = 1, -1


def scripted_action(observation: torch.Tensor, mode: int | torch.Tensor) -> torch.Tensor:
    """A policy that reaches the upper (``mode=+1``) or lower (``mode=-1``) goal; ``mode`` may be per env.

    Heads for a point just behind the chosen gap while in front of the wall, then for the goal, at full
    speed along the straight line (the command is scaled so its largest component is at most 1 and the
    last move lands on the waypoint instead of overshooting).
    """
    position = observation[:, :2]
    side = torch.as_tensor(mode, dtype=position.dtype, device=position.device).expand(position.shape[0])
    in_front = position[:, 0] < WALL_X
    waypoint_x = torch.where(in_front, WALL_X + MAX_SPEED / 2, GOAL_X)
    waypoint = torch.stack([waypoint_x, side * GAP_Y], dim=-1)
    command = (waypoint - position) / MAX_SPEED
    return command / command.abs().amax(dim=-1, keepdim=True).clamp(min=1.0)


@register("env", "two_goals")
class TwoGoalsEnv(TensorStateEnv):
    """Batched two-gap, two-goal point navigation (see the module docstring for geometry and reward)."""

    observation_dim = 2
    action_dim = 2

    def __init__(
        self, num_envs: int, *, seed: int = 0, device: str | torch.device = "cpu", max_episode_steps: int = 50
    ):
        super().__init__(num_envs, seed=seed, device=device, max_episode_steps=max_episode_steps)
        self._goals = torch.tensor([[GOAL_X, GAP_Y], [GOAL_X, -GAP_Y]], device=self.device)
        self._gaps = torch.tensor([[WALL_X, GAP_Y], [WALL_X, -GAP_Y]], device=self.device)
        self._arena_low = torch.tensor(ARENA_LOW, device=self.device)
        self._arena_high = torch.tensor(ARENA_HIGH, device=self.device)

    def _initial_state(self) -> TensorDict:
        unit = torch.rand(self.num_envs, 2, generator=self.generator, device=self.device)
        position = (2 * unit - 1) * START_HALF_WIDTH
        return TensorDict({"position": position}, batch_size=[self.num_envs], device=self.device)

    def _observe(self, state: TensorDict) -> torch.Tensor:
        return state["position"]

    def _transition(self, state: TensorDict, action: torch.Tensor):
        position = state["position"]
        velocity = action.to(position.dtype).clamp(-1.0, 1.0) * MAX_SPEED
        proposed = torch.maximum(torch.minimum(position + velocity, self._arena_high), self._arena_low)
        next_position = self._block_at_wall(position, proposed)

        goal_distance = (next_position[:, None, :] - self._goals).norm(dim=-1)  # [B, 2]: upper, lower
        at_goal = goal_distance <= GOAL_RADIUS
        terminated = at_goal.any(dim=-1)
        shaping = self._distance_to_nearer_goal(position) - self._distance_to_nearer_goal(next_position)
        reward = shaping + GOAL_BONUS * terminated
        mode = UPPER * at_goal[:, 0].float() + LOWER * at_goal[:, 1].float()
        episode_info = TensorDict(
            {"goal_reached": terminated.float(), "mode": mode}, batch_size=[self.num_envs], device=self.device
        )
        next_state = TensorDict({"position": next_position}, batch_size=[self.num_envs], device=self.device)
        return next_state, reward, terminated, episode_info

    @staticmethod
    def _block_at_wall(position: torch.Tensor, proposed: torch.Tensor) -> torch.Tensor:
        """``proposed`` with its x reset to the old x where the move crosses the wall outside a gap."""
        x, y = position.unbind(-1)
        proposed_x, proposed_y = proposed.unbind(-1)
        crosses = (x < WALL_X) != (proposed_x < WALL_X)
        dx = proposed_x - x
        fraction = (WALL_X - x) / torch.where(crosses, dx, torch.ones_like(dx))
        crossing_y = y + fraction * (proposed_y - y)
        blocked = crosses & ((crossing_y.abs() - GAP_Y).abs() > GAP_HALF_WIDTH)
        return torch.stack([torch.where(blocked, x, proposed_x), proposed_y], dim=-1)

    def _distance_to_nearer_goal(self, position: torch.Tensor) -> torch.Tensor:
        """Path length to the nearer goal: through its gap while in front of the wall, else straight."""
        straight = (position[:, None, :] - self._goals).norm(dim=-1)
        via_gap = (position[:, None, :] - self._gaps).norm(dim=-1) + (GOAL_X - WALL_X)
        in_front = position[:, :1] < WALL_X
        return torch.where(in_front, via_gap, straight).amin(dim=-1)
