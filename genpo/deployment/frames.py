"""Frames of the first env of a batch for ``genpo play --video``: MuJoCo tasks rendered offscreen, the
pure-torch tasks (pendulum, two_goals) drawn with matplotlib from their observations."""

from __future__ import annotations

import math

import numpy as np
import torch

from genpo.envs.base import BatchedEnv, env_name

DEFAULT_SIZE = (480, 272)  # width, height: multiples of 16, as H.264 encoders want


def innermost(env: BatchedEnv) -> BatchedEnv:
    """The simulator under the env seam's wrappers (action clipping, episode offsets)."""
    while "env" in vars(env):
        env = vars(env)["env"]
    return env


class FrameSource:
    """``frames(observation [B, obs_dim]) -> RGB frame [H, W, 3] uint8`` of env 0, after reset or a step."""

    def __call__(self, observation: torch.Tensor) -> np.ndarray:
        raise NotImplementedError

    def close(self) -> None:
        """Release what rendering holds (a GL context, a figure)."""


def frame_source(env: BatchedEnv, width: int = DEFAULT_SIZE[0], height: int = DEFAULT_SIZE[1]) -> FrameSource:
    """The frame source for ``env``'s task; fails naming the env where there is none."""
    from genpo.envs.mujoco_locomotion import MujocoLocomotionEnv
    from genpo.envs.pendulum import PendulumEnv
    from genpo.envs.two_goals import TwoGoalsEnv

    simulator = innermost(env)
    if isinstance(simulator, MujocoLocomotionEnv):
        return MujocoFrames(simulator, width, height)
    if isinstance(simulator, PendulumEnv):
        return PendulumFrames(width, height)
    if isinstance(simulator, TwoGoalsEnv):
        return TwoGoalsFrames(width, height)
    raise ValueError(
        f"play --video: no renderer for {env_name(simulator)} (renders the MuJoCo locomotion tasks, pendulum and "
        "two_goals); play it without --video"
    )


class MujocoFrames(FrameSource):
    """Env 0's simulator state, rendered offscreen with a camera tracking the torso."""

    def __init__(self, env, width: int, height: int):
        from genpo.envs.mujoco_rendering import OffscreenRenderer

        self.env = env
        self.renderer = OffscreenRenderer(env.model, width, height)

    def __call__(self, observation: torch.Tensor) -> np.ndarray:
        return self.renderer.render(self.env.qpos[0], self.env.qvel[0])

    def close(self) -> None:
        self.renderer.close()


class _PlotFrames(FrameSource):
    """A matplotlib figure (no pyplot, no display) redrawn into an RGB array per frame."""

    def __init__(self, width: int, height: int):
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        self.figure = Figure(figsize=(width / 100, height / 100), dpi=100)
        self.canvas = FigureCanvasAgg(self.figure)
        self.axes = self.figure.add_axes((0, 0, 1, 1))
        self.axes.set_axis_off()
        self.steps = 0

    def frame(self) -> np.ndarray:
        self.canvas.draw()
        return np.asarray(self.canvas.buffer_rgba())[..., :3].copy()


class PendulumFrames(_PlotFrames):
    """The pendulum's rod from its observation ``[cos th, sin th, thdot]`` (th = 0 is upright)."""

    def __init__(self, width: int, height: int):
        super().__init__(width, height)
        self.axes.set_xlim(-1.2 * width / height, 1.2 * width / height)
        self.axes.set_ylim(-1.2, 1.2)
        self.axes.set_aspect("equal")
        (self.rod,) = self.axes.plot([0, 0], [0, 1], lw=8, color="tab:red", solid_capstyle="round")
        self.axes.plot([0], [0], "o", color="black")
        self.label = self.axes.text(0.02, 0.95, "", transform=self.axes.transAxes, va="top")

    def __call__(self, observation: torch.Tensor) -> np.ndarray:
        cos, sin, speed = observation[0, :3].tolist()
        self.rod.set_data([0, sin], [0, cos])
        self.label.set_text(f"step {self.steps}  angle {math.degrees(math.atan2(sin, cos)):+.0f} deg  speed {speed:+.2f}")
        self.steps += 1
        return self.frame()


class TwoGoalsFrames(_PlotFrames):
    """The arena (wall with two gaps, two goals) and the agent's path from its position observations."""

    def __init__(self, width: int, height: int):
        from matplotlib.patches import Circle

        from genpo.envs import two_goals as task

        super().__init__(width, height)
        (low_x, low_y), (high_x, high_y) = task.ARENA_LOW, task.ARENA_HIGH
        self.axes.set_xlim(low_x, high_x)
        self.axes.set_ylim(low_y, high_y)
        self.axes.set_aspect("equal")
        edges = [low_y, -task.GAP_Y - task.GAP_HALF_WIDTH, -task.GAP_Y + task.GAP_HALF_WIDTH,
                 task.GAP_Y - task.GAP_HALF_WIDTH, task.GAP_Y + task.GAP_HALF_WIDTH, high_y]
        for bottom, top in zip(edges[::2], edges[1::2], strict=True):
            self.axes.plot([task.WALL_X, task.WALL_X], [bottom, top], lw=4, color="black")
        for y in (task.GAP_Y, -task.GAP_Y):
            self.axes.add_patch(Circle((task.GOAL_X, y), task.GOAL_RADIUS, color="tab:green", alpha=0.5))
        (self.path,) = self.axes.plot([], [], color="tab:blue", lw=1)
        (self.agent,) = self.axes.plot([], [], "o", color="tab:blue")
        self.xs: list[float] = []
        self.ys: list[float] = []

    def __call__(self, observation: torch.Tensor) -> np.ndarray:
        x, y = observation[0, :2].tolist()
        self.xs.append(x)
        self.ys.append(y)
        self.path.set_data(self.xs, self.ys)
        self.agent.set_data([x], [y])
        return self.frame()
