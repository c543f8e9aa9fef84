"""Why an on-policy policy commits to one goal on the multi-goal task: the value of the first step.

PPO evaluates the current policy: the advantage of a first step toward goal g is the return of that
step *followed by the current policy*. If the rest of the policy drives to one goal from everywhere
near the start, a first step toward any other goal is worth less, and an entropy bonus at the start
state cannot pay for spreading the first step (Soft Q-Learning backs up the soft-optimal value instead,
so each direction is valued by the best behaviour after it).

For each trained run this measures, from the task's start distribution: the policy's own episodes, and
episodes whose first action is forced to a step toward each goal (the length of the policy's mean first
step), after which the policy acts (``--noise``, default ``random``, the trained stochastic policy).
Per first step: the mean return and the share of episodes ending at each goal. Two summaries: how
often the policy *follows* a forced first step (the mean over the four directions of the share of
episodes ending at the goal the step pointed to: 1 for a policy that heads for the nearest goal from
everywhere, 0.25 for one that drives to a single goal whatever the first step) and the range of the
four forced steps' returns (0 when the first steps are worth the same).

    python -m benchmarks.multigoal_first_step runs/sweeps/study/multigoal_weight/genpo-entropy_coefficient=0.1/seed0
"""

from __future__ import annotations

import argparse
import json

import torch

import genpo
from genpo.envs.multigoal import GOAL_NAMES, GOALS, MultiGoalEnv

FIRST_STEPS = ("policy", *GOAL_NAMES)


@torch.no_grad()
def first_step_values(run_dir: str, *, episodes: int, noise: str, seed: int) -> dict[str, dict[str, float]]:
    """Per first step (the policy's own, then a forced step toward each goal): mean return and goal shares."""
    policy = genpo.load_policy(run_dir, noise=noise, seed=seed)
    groups = len(FIRST_STEPS)
    env = MultiGoalEnv(groups * episodes, seed=seed)
    observation = env.reset()["observation"]
    own_first = policy(observation).clamp(-1.0, 1.0)
    step_length = own_first.norm(dim=-1).mean()
    directions = torch.tensor(GOALS) / 5.0
    action = torch.cat([own_first[:episodes], (step_length * directions).repeat_interleave(episodes, dim=0)])
    returns = torch.zeros(env.num_envs)
    finished = torch.zeros(env.num_envs, dtype=torch.bool)
    goals = torch.zeros(env.num_envs, len(GOAL_NAMES))
    for _ in range(env.max_episode_steps):
        result = env.step(action)
        active = ~finished
        returns += result["reward"] * active
        done = (result["terminated"] | result["truncated"]) & active
        info = result["episode_info"]
        goals[done] = torch.stack([info[name][done] for name in GOAL_NAMES], dim=-1)
        finished |= done
        if finished.all():
            break
        action = policy(result["observation"])
    report = {}
    for index, name in enumerate(FIRST_STEPS):
        rows = slice(index * episodes, (index + 1) * episodes)
        report[name] = {
            "return": returns[rows].mean().item(),
            **{goal: goals[rows, g].mean().item() for g, goal in enumerate(GOAL_NAMES)},
        }
    report["policy"]["first_step_length"] = step_length.item()
    forced_returns = [report[goal]["return"] for goal in GOAL_NAMES]
    report["summary"] = {
        "follows_first_step": sum(report[goal][goal] for goal in GOAL_NAMES) / len(GOAL_NAMES),
        "forced_return_range": max(forced_returns) - min(forced_returns),
    }
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", help="genpo run directories trained on the multigoal task")
    parser.add_argument("--episodes", type=int, default=256, help="episodes per first step")
    parser.add_argument("--noise", default="random", help="policy noise after the first step (zero, fixed, random)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print one JSON object per run")
    args = parser.parse_args()
    for run in args.runs:
        report = first_step_values(run, episodes=args.episodes, noise=args.noise, seed=args.seed)
        if args.json:
            print(json.dumps({"run": run, **report}))
            continue
        print(f"{run} (policy's mean first step {report['policy']['first_step_length']:.3f})")
        print(f"  {'first step':<12}{'return':>9}" + "".join(f"{goal[5:]:>7}" for goal in GOAL_NAMES))
        for name in FIRST_STEPS:
            row = report[name]
            shares = "".join(f"{row[goal]:>7.2f}" for goal in GOAL_NAMES)
            print(f"  {name.removeprefix('goal_'):<12}{row['return']:>9.1f}{shares}")
        summary = report["summary"]
        print(f"  follows the first step {summary['follows_first_step']:.2f}, forced returns span {summary['forced_return_range']:.1f}")


if __name__ == "__main__":
    main()
