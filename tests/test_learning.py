"""Learning tests: small fixed budgets that must actually learn (asserted on return, never on time).

Bars are set from many seeds, not one: float rounding differs between CPUs (an AMD EPYC and an Intel
Xeon give different runs from the same seed), so a bar with no margin over one seed is a coin flip.
"""

import pytest

from genpo.builders import new_experiment
from genpo.training.run_logger import final_return, finite_returns, read_metrics

# Pendulum episodes are 200 steps and all 256 envs reset together, so at 32 steps per iteration a
# return (the mean of 256 episodes) is logged only every ~6 iterations: at 7, 13, ..., 44, 50, 57.
# The final return is the mean of the last 2 logged ones (512 episodes that ended over roughly the last
# 13 iterations): one logged return alone can dip (Gaussian seed 5 here: -199 then -392 at iteration 57),
# and more than 2 reach back into the swing-up phase, which some seeds are still in at iteration 44
# (Gaussian seed 4: -768, -589, -392, -259 at iterations 38-57).
FINAL_LOGGED = 2

# Where -500 sits (1024 episodes of hand-written controllers, this env): zero torque -1213, uniform
# random -1229, a PD controller that balances only within ~45 degrees of upright (no swing-up) -1073,
# an energy-pumping swing-up + PD -149. Above -500 the policy must swing up in most episodes.
PENDULUM_SWUNG_UP = -500.0

# Per seed on an AMD EPYC (one torch thread), mean of the last 2 logged returns. A bar on the last
# logged return alone (-250) fails on some CPUs: seed 0's Gaussian run ends at -262.9 on the EPYC and
# above -250 on an Intel Xeon.
#   GenPO, 50 iterations, without the paper's entropy term (genpo's default), seeds 0-4:
#     -296.6 -234.3 -216.1 -222.2 -214.3; worst -296.6 (seed 0), bar -500: margin 203. (With the
#     paper's term, seeds 0-7: -200.0 -185.3 -244.0 -199.7 -179.1 -198.2 -197.8 -172.2.) The budget is
#     50, not the task's 60: the longest test in the suite (~85 s here against 106-113 s).
#   Gaussian, 60 iterations, seeds 0-15: -246.4 -228.7 -216.2 -220.4 -325.5 -295.7 -220.0 -229.6
#     -309.8 -203.6 -202.1 -215.5 -237.1 -198.1 -202.9 -190.6
#     worst -325.5 (seed 4), bar -500: margin 175 (~13 s a run, so the task's 60 iterations are kept;
#     at 50 its worst seed is -490).
PENDULUM_BUDGETS = {"tasks/pendulum.gin": 50, "tasks/pendulum_gaussian.gin": 60}

# The first logged return (iteration 7) over all 24 runs above: -1147.4 to -1419.5; bar -900, margin 247.
LOOKS_RANDOM = -900.0


@pytest.mark.slow
@pytest.mark.parametrize("config", list(PENDULUM_BUDGETS))
def test_pendulum_swing_up_is_learned_within_budget(tmp_path, config):
    """Random play scores about -1200; both policies must learn to swing up and balance in the budget.

    Asserted on the mean of the last 2 logged returns against -500, far below every seed measured and
    far above any policy that does not swing up (see the constants above for the per-seed numbers).
    """
    trainer, _ = new_experiment(tmp_path / "run", [config], ["genpo.run.seed = 0"])
    summary = trainer.train(PENDULUM_BUDGETS[config], quiet=True)
    rows = read_metrics(tmp_path / "run" / "metrics.csv")
    returns = finite_returns(rows)
    assert returns[0] < LOOKS_RANDOM, f"the first episodes should look random, got {returns[0]:.1f}"
    assert len(returns) > FINAL_LOGGED, returns
    final = final_return(rows, last_k=FINAL_LOGGED)
    assert final >= PENDULUM_SWUNG_UP, (final, returns, summary)
