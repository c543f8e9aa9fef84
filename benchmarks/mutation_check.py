"""Mutation check: do the fast tests notice small, plausible bugs in the core files?

Each mutation replaces one exact snippet of one file (it must occur exactly once) in a scratch copy of
the repository and runs the fast tests that cover that file (one torch thread, no xdist); the mutation
is *killed* when one of them fails ("error" or "timeout" when pytest could not run them or they hung:
counted as killed, shown apart). Every test selection is first run on the unmutated copy and must pass.
Prints one line per mutation and the kill rate, then each survivor. Not part
of the test suite (it runs the targeted tests once per mutation: minutes).

    .venv/bin/python -m benchmarks.mutation_check            # every mutation
    .venv/bin/python -m benchmarks.mutation_check --only ppo_min_to_max rollout_reset_bootstrap
    .venv/bin/python -m benchmarks.mutation_check --list

The kill rate and the reasons for the survivors are kept in docs/testing.md.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import attrs

ROOT = Path(__file__).resolve().parents[1]


@attrs.frozen
class Mutation:
    name: str
    path: str  # repo-relative
    old: str
    new: str
    tests: tuple[str, ...]  # pytest arguments: files or ``file::test`` ids, then at most one ``-k`` (it filters them all)


ENV_CONTRACT = ("tests/test_contracts.py", "-k", "env")
REFERENCE = ("tests/test_reference.py",)
PPO_LOSS = ("tests/test_ppo_loss.py", "tests/test_contracts.py::test_loss_at_ratio_one")

MUTATIONS = [
    # ---- the rollout and the trainer
    Mutation("rollout_reset_bootstrap", "genpo/training/rollout.py", 'prefix="final_"', 'prefix=""', ("tests/test_rollout.py",)),
    Mutation(
        "rollout_flags_swapped",
        "genpo/training/rollout.py",
        "terminated=terminated.unsqueeze(-1),\n                truncated=truncated.unsqueeze(-1),",
        "terminated=truncated.unsqueeze(-1),\n                truncated=terminated.unsqueeze(-1),",
        ("tests/test_rollout.py",),
    ),
    Mutation(
        "rollout_scaler_resets_on_termination_only",
        "genpo/training/rollout.py",
        "self.reward_scaler(reward, done)",
        "self.reward_scaler(reward, terminated)",
        ("tests/test_rollout.py", *REFERENCE),
    ),
    Mutation(
        "trainer_no_gradient_clipping",
        "genpo/training/trainer.py",
        'nn.utils.clip_grad_norm_(group["params"], settings.max_grad_norm)',
        "pass",
        ("tests/test_trainer.py", "-k", "clip"),
    ),
    Mutation(
        "trainer_lr_never_set",
        "genpo/training/trainer.py",
        "self._set_learning_rate(self.lr_controller.step(kl, self.iteration))",
        "self.lr_controller.step(kl, self.iteration)",
        REFERENCE,
    ),
    Mutation(
        "trainer_minibatch_off_by_one",
        "genpo/training/trainer.py",
        "permutation[index * minibatch_size : (index + 1) * minibatch_size]",
        "permutation[index * minibatch_size : (index + 1) * minibatch_size - 1]",
        REFERENCE,
    ),
    Mutation(
        "episodes_length_double_counted",
        "genpo/training/episodes.py",
        "self.episode_length += 1",
        "self.episode_length += 2",
        REFERENCE,
    ),
    Mutation(
        "pooled_moments_drop_spread_of_means",
        "genpo/training/data_parallel.py",
        "variance = (counts * (variances + (means - mean).pow(2))).sum(0) / total",
        "variance = (counts * variances).sum(0) / total",
        ("tests/test_data_parallel.py", "-k", "pooled"),
    ),
    # ---- envs
    Mutation(
        "env_final_observation_is_reset",
        "genpo/envs/_batched.py",
        '"final_observation": final_observation,',
        '"final_observation": _where_rows(done, reset_observation, final_observation),',
        ENV_CONTRACT,
    ),
    Mutation(
        "mujoco_reset_observation_not_read",
        "genpo/envs/mujoco_locomotion.py",
        "            reset_observation[torch.from_numpy(done).to(self.device)] = self._to_torch(self._observation(done))\n",
        "",
        ("tests/test_contracts.py", "-k", "env and (hopper or halfcheetah)"),
    ),
    Mutation(
        "mujoco_time_limit_off_by_one",
        "genpo/envs/mujoco_locomotion.py",
        "truncated = self._episode_step >= self.max_episode_steps",
        "truncated = self._episode_step > self.max_episode_steps",
        ("tests/test_contracts.py", "-k", "env and (hopper or halfcheetah)"),
    ),
    Mutation(
        "env_truncated_and_terminated",
        "genpo/envs/_batched.py",
        '"truncated": truncated & ~terminated,',
        '"truncated": truncated,',
        ENV_CONTRACT,
    ),
    Mutation(
        "env_time_limit_off_by_one",
        "genpo/envs/_batched.py",
        "truncated = elapsed_steps >= self.max_episode_steps",
        "truncated = elapsed_steps > self.max_episode_steps",
        ENV_CONTRACT,
    ),
    Mutation(
        "env_counter_kept_after_time_out",
        "genpo/envs/_batched.py",
        "self._elapsed_steps = torch.where(done, 0, elapsed_steps)",
        "self._elapsed_steps = torch.where(terminated, 0, elapsed_steps)",
        ENV_CONTRACT,
    ),
    Mutation(
        "env_generator_not_restored",
        "genpo/envs/_batched.py",
        'self.generator.set_state(state["generator"].cpu())',
        "pass",
        ENV_CONTRACT,
    ),
    # ---- advantage estimation
    Mutation(
        "gae_done_and_terminated_swapped",
        "genpo/components/advantages/gae.py",
        '("next", "done"), ("next", "terminated")]',
        '("next", "terminated"), ("next", "done")]',
        ("tests/test_contracts.py", "-k", "advantage"),
    ),
    Mutation(
        "gae_not_standardised",
        "genpo/components/advantages/gae.py",
        "(rollout[key].std() + 1e-8)",
        "1.0",
        ("tests/test_contracts.py", "-k", "advantage"),
    ),
    # ---- the PPO loss
    Mutation(
        "ppo_min_to_max",
        "genpo/components/losses/ppo.py",
        "surrogate = torch.minimum(ratio * advantage, clipped_ratio * advantage)",
        "surrogate = torch.maximum(ratio * advantage, clipped_ratio * advantage)",
        PPO_LOSS,
    ),
    Mutation(
        "ppo_upper_clip_sign",
        "genpo/components/losses/ppo.py",
        "torch.maximum(ratio, 1.0 - epsilon), 1.0 + epsilon)",
        "torch.maximum(ratio, 1.0 - epsilon), 1.0 - epsilon)",
        PPO_LOSS,
    ),
    Mutation(
        "ppo_value_clip_max_to_min",
        "genpo/components/losses/ppo.py",
        "loss = torch.maximum(loss, (clipped - target).pow(2))",
        "loss = torch.minimum(loss, (clipped - target).pow(2))",
        PPO_LOSS,
    ),
    Mutation(
        "ppo_entropy_sign",
        "genpo/components/losses/ppo.py",
        'out["loss_entropy"] = -self.entropy_coefficient * entropy',
        'out["loss_entropy"] = self.entropy_coefficient * entropy',
        PPO_LOSS,
    ),
    Mutation(
        "ppo_compression_dropped",
        "genpo/components/losses/ppo.py",
        'out["loss_compression"] = self.compression_coefficient * compression',
        'out["compression_term"] = (self.compression_coefficient * compression).detach()',
        (*PPO_LOSS[:1], *REFERENCE),
    ),
    Mutation(
        "compression_mean_not_sum",
        "genpo/components/losses/compression.py",
        "return difference.pow(2).sum(-1)",
        "return difference.pow(2).mean(-1)",
        ("tests/test_ppo_loss.py", *REFERENCE),
    ),
    # ---- entropy and KL estimators
    Mutation("kl_k1_sign", "genpo/components/estimators/kl.py", "(old_log_prob - log_prob).mean()", "(log_prob - old_log_prob).mean()", ("tests/test_contracts.py", "-k", "kl")),
    Mutation("kl_k3_sign", "genpo/components/estimators/kl.py", "(torch.expm1(log_ratio) - log_ratio)", "(torch.expm1(log_ratio) + log_ratio)", ("tests/test_contracts.py", "-k", "kl")),
    Mutation("entropy_sample_log_prob_sign", "genpo/components/estimators/entropy.py", "return -log_prob.mean()", "return log_prob.mean()", ("tests/test_contracts.py", "-k", "entropy")),
    Mutation(
        "entropy_monte_carlo_sign",
        "genpo/components/estimators/entropy.py",
        'return -actor.sample(fresh.clone(False))["action_log_prob"].mean()',
        'return actor.sample(fresh.clone(False))["action_log_prob"].mean()',
        ("tests/test_contracts.py", "-k", "entropy"),
    ),
    Mutation("entropy_analytic_sum", "genpo/components/estimators/entropy.py", "return entropy.mean()", "return entropy.sum()", ("tests/test_contracts.py", "-k", "entropy")),
    Mutation(
        "knn_dimension_factor_dropped",
        "genpo/components/estimators/knn_entropy.py",
        "return offset.item() + log_unit_ball + dim * log_distance.mean(-1)",
        "return offset.item() + log_unit_ball + log_distance.mean(-1)",
        ("tests/test_contracts.py", "-k", "entropy"),
    ),
    # ---- lr controllers, normalisers, reward scaling
    Mutation(
        "kl_adaptive_threshold",
        "genpo/components/optim/lr_controllers.py",
        "if kl > 2.0 * self.target_kl:",
        "if kl > 0.5 * self.target_kl:",
        ("tests/test_lr_controllers.py", "tests/test_contracts.py", "-k", "lr_controller"),
    ),
    Mutation(
        "linear_decay_progress",
        "genpo/components/optim/lr_controllers.py",
        "progress = min(iteration / self.decay_iterations, 1.0)",
        "progress = max(iteration / self.decay_iterations, 1.0)",
        ("tests/test_lr_controllers.py", "tests/test_contracts.py", "-k", "lr_controller"),
    ),
    Mutation(
        "lr_controller_state_not_restored",
        "genpo/components/optim/lr_controllers.py",
        'self.learning_rate = float(state["learning_rate"])',
        "pass",
        ("tests/test_contracts.py", "-k", "lr_controller"),
    ),
    Mutation(
        "moments_drop_between_batch_term",
        "genpo/components/normalizers/running_moments.py",
        " + delta.pow(2) * self.count * batch_count / total",
        "",
        ("tests/test_contracts.py", *REFERENCE, "-k", "normalizer or reward_scaler or reference"),
    ),
    Mutation(
        "normalizer_adds_mean",
        "genpo/components/normalizers/observation.py",
        "((observation - mean) / (std + self.epsilon))",
        "((observation + mean) / (std + self.epsilon))",
        ("tests/test_contracts.py", *REFERENCE, "-k", "normalizer or reference"),
    ),
    Mutation(
        "return_scaler_never_resets",
        "genpo/components/normalizers/reward.py",
        "self.discounted_return.masked_fill_(done, 0.0)",
        "pass",
        ("tests/test_contracts.py", *REFERENCE, "-k", "reward_scaler or reference"),
    ),
    # ---- couplings, flows, actors, networks
    Mutation("leapfrog_never_alternates", "genpo/components/couplings/leapfrog.py", "return step % 2 == 0", "return True", ("tests/test_couplings.py", "-k", "leapfrog")),
    Mutation(
        "coupling_inverse_mixing_sign",
        "genpo/components/couplings/genpo_euler.py",
        "second = (second - (1.0 - self.p) * first) / self.p",
        "second = (second + (1.0 - self.p) * first) / self.p",
        ("tests/test_couplings.py", "-k", "inverse_undoes and genpo"),
    ),
    Mutation(
        "coupling_log_det_one_mixing",
        "genpo/components/couplings/genpo_euler.py",
        "return 2.0 * half_dim * math.log(self.p)",
        "return half_dim * math.log(self.p)",
        ("tests/test_couplings.py", "-k", "step_log_det and genpo"),
    ),
    Mutation(
        "affine_inverse_log_det_sign",
        "genpo/components/couplings/affine.py",
        "return (target - shift) * (-log_scale).exp(), log_scale.sum(-1)",
        "return (target - shift) * (-log_scale).exp(), -log_scale.sum(-1)",
        ("tests/test_couplings.py", "-k", "affine and log_det"),
    ),
    Mutation(
        "flow_time_step",
        "genpo/components/flows/dummy_action_flow.py",
        "self.dt = 1.0 / num_steps",
        "self.dt = 1.0 / (num_steps + 1)",
        REFERENCE,
    ),
    Mutation(
        "genpo_actor_log_det_sign",
        "genpo/components/actors/genpo_flow.py",
        "        noise, log_det = self._invert(tensordict)\n        return standard_normal_log_prob(noise) - log_det",
        "        noise, log_det = self._invert(tensordict)\n        return standard_normal_log_prob(noise) + log_det",
        ("tests/test_actors.py", "-k", "genpo"),
    ),
    Mutation(
        "readout_ignores_y",
        "genpo/components/actors/readout.py",
        "return self.alpha * x + (1.0 - self.alpha) * y",
        "return self.alpha * x + (1.0 - self.alpha) * x",
        ("tests/test_contracts.py", "-k", "readout"),
    ),
    Mutation(
        "gaussian_log_std_sign",
        "genpo/components/actors/gaussian.py",
        "        noise, log_std = self._noise_and_log_std(tensordict)\n        return standard_normal_log_prob(noise) - log_std.sum(-1)",
        "        noise, log_std = self._noise_and_log_std(tensordict)\n        return standard_normal_log_prob(noise) + log_std.sum(-1)",
        ("tests/test_actors.py", "tests/test_contracts.py", "-k", "gaussian or entropy or loss"),
    ),
    Mutation(
        "critic_never_learns",
        "genpo/components/networks/critic.py",
        "return self.net(observation)",
        "return self.net(observation).detach()",
        REFERENCE,
    ),
    Mutation(
        "velocity_ignores_observation_and_time",
        "genpo/components/networks/velocity_network.py",
        "return self.trunk(self.first_activation(self.half_projection(half) + context))",
        "return self.trunk(self.first_activation(self.half_projection(half)))",
        REFERENCE,
    ),
    Mutation(
        "time_embedding_sin_twice",
        "genpo/components/networks/time_embedding.py",
        "torch.cat([angles.sin(), angles.cos()], dim=-1)",
        "torch.cat([angles.sin(), angles.sin()], dim=-1)",
        REFERENCE,
    ),
    Mutation(
        "rk4_weights",
        "genpo/components/ode_solvers.py",
        "weights = (1.0 / 6.0, 1.0 / 3.0, 1.0 / 3.0, 1.0 / 6.0)",
        "weights = (1.0 / 6.0, 1.0 / 6.0, 1.0 / 3.0, 1.0 / 3.0)",
        ("tests/test_ode_solvers.py",),
    ),
]


def scratch_copy(destination: Path) -> None:
    """The repository's tracked and untracked-but-not-ignored files, copied to ``destination``."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"], cwd=ROOT, capture_output=True, check=True
    ).stdout.decode().split("\0")
    for relative in filter(None, listed):
        source = ROOT / relative
        if source.is_file():
            target = destination / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)


def run_tests(tests: tuple[str, ...], scratch: Path, timeout: float) -> str:
    """'passed', 'failed' (a test failed), 'error' (pytest could not run them: collection, import) or
    'timeout'."""
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(scratch), "PYTHONDONTWRITEBYTECODE": "1"}
    command = [sys.executable, "-m", "pytest", "-x", "-q", "-n", "0", "-p", "no:cacheprovider", *tests]
    try:
        result = subprocess.run(command, cwd=scratch, env=environment, capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return "timeout"
    return {0: "passed", 1: "failed"}.get(result.returncode, "error")


def run_mutation(mutation: Mutation, scratch: Path, timeout: float) -> tuple[str, float]:
    """'killed' (a test failed), 'error' or 'timeout' (the tests did not pass either: counted as killed,
    and shown so that a mutation that only breaks imports can be told apart) or 'survived'; and the
    seconds taken."""
    path = scratch / mutation.path
    original = path.read_text()
    path.write_text(original.replace(mutation.old, mutation.new))
    start = time.perf_counter()
    try:
        outcome = {"passed": "survived", "failed": "killed"}.get(run_tests(mutation.tests, scratch, timeout), "error")
    finally:
        path.write_text(original)
    return outcome, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", help="names of the mutations to run (default: all)")
    parser.add_argument("--list", action="store_true", help="list the mutations and their tests, run nothing")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per mutation")
    args = parser.parse_args()
    mutations = [m for m in MUTATIONS if not args.only or m.name in args.only]
    for mutation in mutations:
        count = (ROOT / mutation.path).read_text().count(mutation.old)
        if count != 1:
            raise SystemExit(f"mutation {mutation.name}: the snippet occurs {count} times in {mutation.path}, expected once")
    if args.list:
        for mutation in mutations:
            print(f"{mutation.name:42s} {mutation.path}  ->  {' '.join(mutation.tests)}")
        return
    killed = 0
    survivors = []
    with tempfile.TemporaryDirectory(prefix="genpo-mutation-") as directory:
        scratch = Path(directory)
        scratch_copy(scratch)
        # every test selection must pass on the unmutated copy, or a "kill" would mean nothing
        for tests in dict.fromkeys(mutation.tests for mutation in mutations):
            baseline = run_tests(tests, scratch, args.timeout)
            if baseline != "passed":
                raise SystemExit(f"the unmutated tests {' '.join(tests)} did not pass ({baseline}): fix them first")
        print(f"baseline: {len(set(m.tests for m in mutations))} test selections pass unmutated", flush=True)
        for mutation in mutations:
            outcome, seconds = run_mutation(mutation, scratch, args.timeout)
            print(f"{outcome:8s} {seconds:6.1f} s  {mutation.name}  ({mutation.path})", flush=True)
            if outcome == "survived":
                survivors.append(mutation)
            else:
                killed += 1
    print(f"\nkilled {killed} of {len(mutations)} mutations ({100.0 * killed / len(mutations):.0f} %)")
    for mutation in survivors:
        print(f"survivor: {mutation.name} in {mutation.path}: {mutation.old!r} -> {mutation.new!r}")


if __name__ == "__main__":
    main()
