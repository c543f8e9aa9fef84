"""Gymnasium's v5 MuJoCo locomotion tasks, batched on ``mujoco.batch.Batch``.

Each env reproduces its gymnasium v5 counterpart with default constructor arguments: the same MJCF
(read from the installed gymnasium package), frame skip, reset noise, observation, reward terms,
termination rule and 1000-step time limit. The physics is bit-identical (``Batch`` runs ``mj_step``
per simulation); ``tests/envs/test_mujoco_locomotion.py`` checks the parity step by step.

Gymnasium quirks reproduced on purpose:

- Actions are not clipped: the raw action is written to ``ctrl`` (MuJoCo clamps it to the
  actuator ``ctrlrange`` inside the physics) and the control cost is computed on the raw action.
- Derived quantities (body positions, ``cinert``, ``cvel``, ``qfrc_actuator``) are those ``mj_step``
  leaves behind, i.e. from the last integrator stage of the last substep, not recomputed at the
  new state; ``cfrc_ext`` is ``mj_rnePostConstraint`` run on that data after the step.
- A freshly reset episode observes ``cfrc_ext`` as zeros (``mj_forward`` does not compute it).

One deliberate difference: a step that terminates on the time limit's last step reports
``truncated=False`` (the seam's rule, so it is never bootstrapped) where gymnasium reports both.

Where ``cfrc_ext`` is needed (Ant, Humanoid) the batch keeps one ``MjData`` per simulation
(``persistent=True``) and ``mj_rnePostConstraint`` runs once per simulation after each step: the only
per-env Python loop, as ``Batch`` exposes no way to run it in its own threads.
"""

from __future__ import annotations

import abc
from typing import ClassVar

import mujoco
import numpy as np
import torch
from mujoco.batch import Batch, SimulationError
from tensordict import TensorDict

from genpo.envs._batched import autoreset_output, validate_action
from genpo.envs.mujoco_assets import compile_gymnasium_model
from genpo.envs.base import BatchedEnv
from genpo.registry import register

Ids = slice | np.ndarray  # which simulations: ``slice(None)`` for all, else sorted indices
# MuJoCo's non-finite-or-huge checks (mjtWarning indices); MuJoCo silently resets a sim that fails one
_INSTABILITY_WARNINGS = np.array(
    [int(getattr(mujoco.mjtWarning, f"mjWARN_{kind}")) for kind in ("BADQPOS", "BADQVEL", "BADQACC", "BADCTRL")]
)


class MujocoLocomotionEnv(BatchedEnv):
    """Shared machinery: batched stepping, reward assembly, auto-reset, error checks, state.

    Subclasses are declarative: class attributes for the model and reward weights, plus
    :meth:`_observation`, and where the task needs them :meth:`_forward_position`,
    :meth:`_is_healthy` and :meth:`_contact_cost`.

    Beyond the seam's arguments: ``num_threads`` for the batch (None: all cores),
    ``max_episode_steps`` (gymnasium's 1000 by default; shorter in tests) and ``dtype`` of the
    observations and rewards (float64 gives the simulator's values unrounded, for exact comparisons).
    """

    xml_file: ClassVar[str]
    frame_skip: ClassVar[int]
    reset_noise_scale: ClassVar[float]
    velocity_noise: ClassVar[str]  # "uniform" in [-scale, scale], or "normal" with std scale
    forward_reward_weight: ClassVar[float] = 1.0
    ctrl_cost_weight: ClassVar[float]
    healthy_reward: ClassVar[float] = 0.0
    uses_contact_forces: ClassVar[bool] = False
    derived_fields: ClassVar[tuple[str, ...]] = ()  # MjData outputs the observation or reward reads

    def __init__(
        self,
        num_envs: int,
        *,
        seed: int = 0,
        device: str | torch.device = "cpu",
        num_threads: int | None = None,
        max_episode_steps: int = 1000,
        dtype: torch.dtype = torch.float32,
    ):
        if num_envs < 1:
            raise ValueError(f"{type(self).__name__}: num_envs must be >= 1, got {num_envs}")
        self.num_envs = num_envs
        self.device = torch.device(device)
        self.max_episode_steps = max_episode_steps
        self.dtype = dtype
        self.model = compile_gymnasium_model(self.xml_file)
        self.dt = self.model.opt.timestep * self.frame_skip
        self.action_dim = self.model.nu
        self._batch = Batch(self.model, num_envs, num_threads or 0, persistent=self.uses_contact_forces)
        self._qpos, self._qvel, self._ctrl = self._batch.qpos, self._batch.qvel, self._batch.ctrl
        self._derived = {name: self._batch.bind(name) for name in self.derived_fields}
        self._scratch = mujoco.MjData(self.model) if self.uses_contact_forces else None
        self._contact_forces = np.zeros((num_envs, self.model.nbody, 6))
        self._rng = np.random.default_rng(seed)
        self._episode_step = np.zeros(num_envs, dtype=np.int64)
        self._x_position = np.zeros(num_envs)
        self._started = False  # by reset() or load_state_dict()
        self.observation_dim = self._observation(slice(0, 1)).shape[1]

    # -- task pieces -------------------------------------------------------------------------

    @abc.abstractmethod
    def _observation(self, ids: Ids) -> np.ndarray:
        """The float64 observation [len(ids), observation_dim] of simulations ``ids``."""

    def _forward_position(self, ids: Ids) -> np.ndarray:
        """The x coordinate whose change per ``dt`` is the forward velocity (the root's by default)."""
        return self._qpos[ids, 0]

    def _is_healthy(self) -> np.ndarray:
        """Per env: whether the episode may go on (tasks without termination: always)."""
        return np.ones(self.num_envs, dtype=bool)

    def _contact_cost(self) -> np.ndarray | float:
        return 0.0

    # -- BatchedEnv --------------------------------------------------------------------------

    def reset(self) -> TensorDict:
        """Start every episode from the model's initial state plus gymnasium's reset noise."""
        return self._start_all(*self._reset_noise(self.num_envs))

    def reset_to(self, qpos: np.ndarray, qvel: np.ndarray) -> TensorDict:
        """Start every episode from the given state ([num_envs, nq], [num_envs, nv], or one row for all),
        as gymnasium's ``reset`` followed by ``set_state``: no noise, counters restart."""
        return self._start_all(np.asarray(qpos, np.float64), np.asarray(qvel, np.float64))

    def step(self, action: torch.Tensor) -> TensorDict:
        validate_action(self, action)
        if not self._started:
            raise RuntimeError(f"{type(self).__name__}.step called before reset() or load_state_dict()")
        np.copyto(self._ctrl, action.detach().to("cpu", torch.float64).numpy())
        x_before = self._x_position
        self._simulate()
        self._episode_step += 1
        self._x_position = np.array(self._forward_position(slice(None)))  # a copy: the source is live
        x_velocity = (self._x_position - x_before) / self.dt
        final_observation = self._to_torch(self._observation(slice(None)))
        healthy = self._is_healthy()
        rewards = self.forward_reward_weight * x_velocity + healthy * self.healthy_reward
        costs = self.ctrl_cost_weight * np.sum(np.square(self._ctrl), axis=1) + self._contact_cost()
        terminated = ~healthy
        truncated = self._episode_step >= self.max_episode_steps
        reset_observation = final_observation  # read only where done
        done = np.flatnonzero(terminated | truncated)
        if done.size:
            self._start_episodes(done, *self._reset_noise(done.size))
            reset_observation = final_observation.clone()
            reset_observation[torch.from_numpy(done).to(self.device)] = self._to_torch(self._observation(done))
        return autoreset_output(
            final_observation=final_observation,
            reset_observation=reset_observation,
            reward=self._to_torch(rewards - costs),
            terminated=torch.from_numpy(terminated).to(self.device),
            truncated=torch.from_numpy(truncated).to(self.device),
        )

    def set_episode_steps(self, steps: torch.Tensor) -> None:
        self._episode_step = steps.to("cpu", torch.int64).numpy().copy()

    def state_dict(self) -> dict:
        """Simulator rows (time, qpos, qvel, act, warm start, ctrl, ...), counters and RNG state.

        The forward position is kept too: for Ant and Humanoid it is a derived quantity of the last
        step that the state rows cannot reproduce, and the next reward depends on it.
        """
        return {
            "sim_state": self._batch.state.copy(),
            "episode_step": self._episode_step.copy(),
            "x_position": self._x_position.copy(),
            "rng": self._rng.bit_generator.state,
        }

    def load_state_dict(self, state: dict) -> None:
        if state["sim_state"].shape != self._batch.state.shape:
            raise ValueError(
                f"{type(self).__name__}.load_state_dict: sim_state has shape {state['sim_state'].shape}, "
                f"expected {self._batch.state.shape} ({self.num_envs} envs)"
            )
        self._batch.state[...] = state["sim_state"]
        self._episode_step = state["episode_step"].copy()
        self._x_position = state["x_position"].copy()
        self._rng.bit_generator.state = state["rng"]
        self._started = True

    def close(self) -> None:
        self._batch = None

    @property
    def qpos(self) -> np.ndarray:
        """Generalized positions [num_envs, nq], a copy (to inspect or mirror the simulator state)."""
        return self._qpos.copy()

    @property
    def qvel(self) -> np.ndarray:
        """Generalized velocities [num_envs, nv], a copy."""
        return self._qvel.copy()

    # -- machinery ---------------------------------------------------------------------------

    def _reset_noise(self, count: int) -> tuple[np.ndarray, np.ndarray]:
        """Initial (qpos, qvel) for ``count`` episodes, distributed as gymnasium's ``reset_model``."""
        scale = self.reset_noise_scale
        qpos = self.model.qpos0 + self._rng.uniform(-scale, scale, (count, self.model.nq))
        if self.velocity_noise == "normal":
            qvel = scale * self._rng.standard_normal((count, self.model.nv))
        else:
            qvel = self._rng.uniform(-scale, scale, (count, self.model.nv))
        return qpos, qvel

    def _start_all(self, qpos: np.ndarray, qvel: np.ndarray) -> TensorDict:
        self._start_episodes(slice(None), qpos, qvel)
        self._started = True
        return TensorDict({"observation": self._to_torch(self._observation(slice(None)))}, [self.num_envs])

    def _start_episodes(self, ids: Ids, qpos: np.ndarray, qvel: np.ndarray) -> None:
        """``mj_resetData``, set (qpos, qvel), ``mj_forward``: gymnasium's reset, per simulation."""
        batch_ids = None if isinstance(ids, slice) else ids
        self._guarded(self._batch.reset, batch_ids, stage=mujoco.mjtStage.mjSTAGE_NONE)
        self._qpos[ids] = qpos
        self._qvel[ids] = qvel
        self._guarded(self._batch.forward, batch_ids)
        self._contact_forces[ids] = 0.0
        self._episode_step[ids] = 0
        self._x_position[ids] = self._forward_position(ids)

    def _simulate(self) -> None:
        """``frame_skip`` substeps on every simulation; fail, naming the sims, on unstable physics."""
        self._guarded(self._batch.step, nstep=self.frame_skip)
        counts = self._batch.warning[:, _INSTABILITY_WARNINGS, 1]  # [sim, warning]: times raised
        if counts.any():
            sims = np.flatnonzero(counts.any(axis=1))
            kinds = [mujoco.mjtWarning(int(_INSTABILITY_WARNINGS[k])).name for k in np.flatnonzero(counts.any(axis=0))]
            raise FloatingPointError(
                f"{type(self).__name__}: MuJoCo raised {', '.join(kinds)} in simulations {sims.tolist()} "
                "(non-finite or huge position, velocity, acceleration or control): the physics is unstable"
            )
        if self.uses_contact_forces:
            for sim in range(self.num_envs):
                self._batch.get_data(sim, self._scratch)
                mujoco.mj_rnePostConstraint(self.model, self._scratch)
                self._contact_forces[sim] = self._scratch.cfrc_ext

    def _guarded(self, call, *args, **kwargs) -> None:
        """Run a batch call; a MuJoCo error is re-raised naming this env and the failing sims."""
        try:
            call(*args, **kwargs)
        except SimulationError as error:
            raise RuntimeError(
                f"{type(self).__name__}: MuJoCo failed in simulations {error.ids.tolist()}: {error}"
            ) from error

    def _to_torch(self, array: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(array).to(self.device, self.dtype)


class _PlanarEnv(MujocoLocomotionEnv):
    """2-D robots: observe qpos without the root's x, then qvel (clipped to +-velocity_clip if set)."""

    velocity_clip: ClassVar[float | None] = None

    def _observation(self, ids: Ids) -> np.ndarray:
        qvel = self._qvel[ids]
        if self.velocity_clip is not None:
            qvel = np.clip(qvel, -self.velocity_clip, self.velocity_clip)
        return np.concatenate([self._qpos[ids, 1:], qvel], axis=1)


@register("env", "halfcheetah")
class HalfCheetah(_PlanarEnv):
    """HalfCheetah-v5: run forward; never terminates."""

    xml_file = "half_cheetah.xml"
    frame_skip = 5
    reset_noise_scale = 0.1
    velocity_noise = "normal"
    ctrl_cost_weight = 0.1


@register("env", "hopper")
class Hopper(_PlanarEnv):
    """Hopper-v5: hop forward; terminates when it falls, tilts or its state blows up."""

    xml_file = "hopper.xml"
    frame_skip = 4
    reset_noise_scale = 5e-3
    velocity_noise = "uniform"
    ctrl_cost_weight = 1e-3
    healthy_reward = 1.0
    velocity_clip = 10.0

    def _is_healthy(self) -> np.ndarray:
        z, angle = self._qpos[:, 1], self._qpos[:, 2]
        state = np.concatenate([self._qpos[:, 2:], self._qvel], axis=1)
        healthy_state = np.all((-100.0 < state) & (state < 100.0), axis=1)
        return healthy_state & (0.7 < z) & (z < np.inf) & (-0.2 < angle) & (angle < 0.2)


@register("env", "walker2d")
class Walker2d(_PlanarEnv):
    """Walker2d-v5: walk forward; terminates when the torso leaves the height or angle range."""

    xml_file = "walker2d_v5.xml"
    frame_skip = 4
    reset_noise_scale = 5e-3
    velocity_noise = "uniform"
    ctrl_cost_weight = 1e-3
    healthy_reward = 1.0
    velocity_clip = 10.0

    def _is_healthy(self) -> np.ndarray:
        z, angle = self._qpos[:, 1], self._qpos[:, 2]
        return (0.8 < z) & (z < 2.0) & (-1.0 < angle) & (angle < 1.0)


@register("env", "ant")
class Ant(MujocoLocomotionEnv):
    """Ant-v5: walk forward (torso's x); observes contact forces clipped to [-1, 1]."""

    xml_file = "ant.xml"
    frame_skip = 5
    reset_noise_scale = 0.1
    velocity_noise = "normal"
    ctrl_cost_weight = 0.5
    healthy_reward = 1.0
    contact_cost_weight = 5e-4
    uses_contact_forces = True
    derived_fields = ("xpos",)

    def _clipped_contact_forces(self, ids: Ids) -> np.ndarray:
        return np.clip(self._contact_forces[ids], -1.0, 1.0)

    def _observation(self, ids: Ids) -> np.ndarray:
        contact = self._clipped_contact_forces(ids)[:, 1:]
        return np.concatenate([self._qpos[ids, 2:], self._qvel[ids], contact.reshape(len(contact), -1)], axis=1)

    def _forward_position(self, ids: Ids) -> np.ndarray:
        return self._derived["xpos"][ids, 1, 0]  # gymnasium's main_body=1: the torso

    def _is_healthy(self) -> np.ndarray:
        finite = np.isfinite(self._qpos).all(axis=1) & np.isfinite(self._qvel).all(axis=1)
        z = self._qpos[:, 2]
        return finite & (0.2 <= z) & (z <= 1.0)

    def _contact_cost(self) -> np.ndarray:
        contact = self._clipped_contact_forces(slice(None))
        return self.contact_cost_weight * np.sum(np.square(contact), axis=(1, 2))


@register("env", "humanoid")
class Humanoid(MujocoLocomotionEnv):
    """Humanoid-v5: walk forward (mass centre's x); observes com inertia, com velocity, actuator
    forces and contact forces."""

    xml_file = "humanoid.xml"
    frame_skip = 5
    reset_noise_scale = 1e-2
    velocity_noise = "uniform"
    forward_reward_weight = 1.25
    ctrl_cost_weight = 0.1
    healthy_reward = 5.0
    contact_cost_weight = 5e-7
    max_contact_cost = 10.0
    uses_contact_forces = True
    derived_fields = ("xipos", "cinert", "cvel", "qfrc_actuator")

    def _observation(self, ids: Ids) -> np.ndarray:
        qpos = self._qpos[ids]
        rows = len(qpos)
        return np.concatenate(
            [
                qpos[:, 2:],
                self._qvel[ids],
                self._derived["cinert"][ids, 1:].reshape(rows, -1),
                self._derived["cvel"][ids, 1:].reshape(rows, -1),
                self._derived["qfrc_actuator"][ids, 6:],
                self._contact_forces[ids, 1:].reshape(rows, -1),
            ],
            axis=1,
        )

    def _forward_position(self, ids: Ids) -> np.ndarray:
        mass = self.model.body_mass
        return self._derived["xipos"][ids, :, 0] @ mass / mass.sum()

    def _is_healthy(self) -> np.ndarray:
        z = self._qpos[:, 2]
        return (1.0 < z) & (z < 2.0)

    def _contact_cost(self) -> np.ndarray:
        cost = self.contact_cost_weight * np.sum(np.square(self._contact_forces), axis=(1, 2))
        return np.minimum(cost, self.max_contact_cost)
