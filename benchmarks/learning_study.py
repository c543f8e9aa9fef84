"""The learning study: GenPO, genpo's Gaussian PPO and rsl_rl's PPO at equal env-step budgets.

One sweep spec per task in ``sweeps/study/`` (HalfCheetah, Hopper and the two-goal task with 5 seeds,
Walker2d and Ant with 3; 512k env steps per MuJoCo run, 328k on the two-goal task), plus
follow-ups: GenPO's compression sample fraction (HalfCheetah), its entropy bonus and target KL
(Hopper), its entropy bonus (two goals), the genpo Gaussian's differences from rsl_rl switched one
at a time (HalfCheetah) and the Gaussian's initial std (Ant). The rsl_rl variant is rsl-rl-lib's ``OnPolicyRunner`` configured
from the same Gaussian gin config (``genpo train --trainer rsl_rl``).

    .venv/bin/python -m benchmarks.learning_study          # summarise the runs present (seconds)
    .venv/bin/python -m benchmarks.learning_study --run    # first train what is missing (resumable;
                                                           #   about 100 min on 2 cores from scratch)
    .venv/bin/python -m benchmarks.learning_study --out docs/results/study

The summary (``OUT/summary.md``): per task and variant the final return
(``genpo.experiments.statistics.final_return``: the mean of a run's last ``last_k`` logged training
returns, ``last_k`` from the spec) as IQM with a 95% stratified bootstrap
CI and as mean ± std over seeds, the return AUC, the mean training seconds per run, the first
variant's (GenPO's) seconds over the variant's and the mean return when the fastest variant's
training time had elapsed (equal wall time); on the two-goal
task the dominant-mode share of the final episodes, (1 + |mean mode|) / 2 (1: every episode through
one gap; 0.5: both gaps equally), and which gap each seed chose. Beside it ``curves.png`` (per task,
return against env steps and against wall time), ``follow_ups.png`` (the same for the follow-ups) and
each sweep's own report in ``OUT/<sweep>/``.
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

from genpo.experiments import statistics
from genpo.experiments.plots import draw_curves
from genpo.experiments.report import CURVE_PLOTS, CURVES_CSV, REPORT_FILE, collect_runs
from genpo.experiments.spec import load_spec, plan

ROOT = Path(__file__).resolve().parents[1]
TASKS = ("halfcheetah", "hopper", "two_goals", "walker2d", "ant")
FOLLOW_UPS = (
    "halfcheetah_gaussian_vs_rsl_rl", "halfcheetah_compression", "hopper_genpo", "two_goals_entropy", "ant_gaussian_init_std",
)  # fmt: skip
SWEEPS = TASKS + FOLLOW_UPS
TITLES = {
    "halfcheetah": "HalfCheetah",
    "hopper": "Hopper",
    "two_goals": "Two goals",
    "walker2d": "Walker2d",
    "ant": "Ant",
    "halfcheetah_gaussian_vs_rsl_rl": "HalfCheetah, genpo Gaussian vs rsl_rl",
    "hopper_genpo": "Hopper, GenPO entropy bonus and target KL",
    "halfcheetah_compression": "HalfCheetah, GenPO compression fraction",
    "two_goals_entropy": "Two goals, GenPO entropy bonus",
    "ant_gaussian_init_std": "Ant, Gaussian initial std",
}
MODE_KEY = "info/mode"


def spec_path(name: str) -> Path:
    return ROOT / "sweeps" / "study" / f"{name}.toml"


def run_sweeps(names: list[str]) -> None:
    """``genpo sweep`` each spec in turn (each skips its finished runs)."""
    for name in names:
        print(f"== sweep {name}", flush=True)
        subprocess.run([sys.executable, "-m", "genpo.cli", "sweep", str(spec_path(name))], check=False)


def mode_summary(records: list[statistics.RunRecord], last_k: int) -> str:
    """Dominant-mode share of the final episodes (mean over seeds) and each seed's gap."""
    shares, gaps = [], []
    for record in records:
        mode = statistics.final_return(record.rows, last_k, key=MODE_KEY)  # the final value of the mode column
        if not math.isfinite(mode):
            continue
        shares.append((1 + abs(mode)) / 2)
        gaps.append("upper" if mode > 0 else "lower" if mode < 0 else "none")
    if not shares:
        return "n/a"
    return f"{sum(shares) / len(shares):.2f} ({', '.join(gaps)})"


def return_at(entry: statistics.VariantStats, seconds: float) -> str:
    """The variant's mean training return after ``seconds`` of training (its wall-time curve)."""
    band = entry.curves.get("wall_time")
    if band is None or seconds < band.grid[0]:
        return "n/a"  # no episode finished yet
    if seconds > band.grid[-1] and entry.train_seconds > seconds * 1.05:
        return "n/a"  # beyond the range all seeds cover, and the variant had not finished by then
    return f"{float(np.interp(seconds, band.grid, band.mean)):.1f}"  # past the grid: the final value


def sweep_section(name: str) -> tuple[list[str], list[statistics.VariantStats]]:
    """The markdown table of one sweep and its variants' statistics."""
    spec = load_spec(spec_path(name))
    jobs = plan(spec)
    budget = f"{spec.iterations} iterations" if spec.iterations else f"{spec.env_steps} env steps"
    stats, modes = [], {}
    for variant in spec.variants:
        records = collect_runs(job for job in jobs if job.variant.name == variant.name)
        stats.append(statistics.summarize_variant(variant.name, records, last_k=spec.last_k))
        modes[variant.name] = mode_summary(records, spec.last_k)
    steps = max((entry.curves["env_steps"].grid[-1] for entry in stats if "env_steps" in entry.curves), default=0)
    first_seconds = stats[0].train_seconds
    equal_time = min((entry.train_seconds for entry in stats if math.isfinite(entry.train_seconds)), default=math.nan)
    header = f"| variant | runs | final return IQM [95% CI] | mean ± std | return AUC | train s | time x | return at {equal_time:.0f} s |"
    rule = "|---|---|---|---|---|---|---|---|"
    with_modes = any(value != "n/a" for value in modes.values())
    if with_modes:
        header += " dominant-mode share (gap per seed) |"
        rule += "---|"
    lines = [
        f"## {TITLES.get(name, name)} ({len(spec.seeds)} seeds, {budget}, {steps:,.0f} env steps, k = {spec.last_k})",
        "",
        header,
        rule,
    ]
    for entry in stats:
        ratio = first_seconds / entry.train_seconds if entry.train_seconds else math.nan
        row = (
            f"| {entry.name} | {entry.runs} | {entry.iqm:.1f} [{entry.iqm_low:.1f}, {entry.iqm_high:.1f}] | "
            f"{entry.mean:.1f} ± {entry.std:.1f} | {entry.auc:.1f} | {entry.train_seconds:.0f} | {ratio:.1f} | "
            f"{return_at(entry, equal_time)} |"
        )
        lines.append(row + (f" {modes[entry.name]} |" if with_modes else ""))
    return [*lines, ""], stats


def plot_group(panels: list[tuple[str, list[statistics.VariantStats]]], path: Path) -> None:
    """Return against env steps (top row) and wall time (bottom row), one column per sweep."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(2, len(panels), figsize=(4.2 * len(panels), 7), squeeze=False)
    for column, (name, stats) in enumerate(panels):
        for row, x in enumerate(("env_steps", "wall_time")):
            draw_curves(axes[row][column], stats, x)
            axes[row][column].set_title(TITLES.get(name, name), fontsize="medium")
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)


def summarise(names: list[str], out: Path) -> Path:
    """``OUT/summary.md``, ``OUT/curves.png`` (the tasks), ``OUT/follow_ups.png`` and each sweep's report."""
    out.mkdir(parents=True, exist_ok=True)
    lines = [
        "# Learning study summary",
        "",
        "Final return = mean of a run's last k logged training returns (k per table); IQM with a 95% stratified "
        "bootstrap CI over seeds; train s = mean training seconds per run (iterations only); time x = the first "
        "variant's (GenPO's in the task tables) mean train s over the variant's; return at T s = the mean "
        "training-return curve against wall time at the fastest variant's train s (equal wall time; n/a where a "
        "variant had not logged a return yet). Written by `benchmarks/learning_study.py`.",
        "",
    ]
    groups: dict[str, list] = {"curves.png": [], "follow_ups.png": []}
    for name in names:
        spec = load_spec(spec_path(name))
        if not spec.out.exists():
            continue
        section, stats = sweep_section(name)
        lines += section
        groups["curves.png" if name in TASKS else "follow_ups.png"].append((name, stats))
        copy = out / name
        copy.mkdir(exist_ok=True)
        for filename in (REPORT_FILE, CURVES_CSV, *CURVE_PLOTS.values()):
            if (spec.out / filename).is_file():
                shutil.copy(spec.out / filename, copy / filename)
    for filename, panels in groups.items():
        if panels:
            plot_group(panels, out / filename)
    path = out / "summary.md"
    path.write_text("\n".join(lines))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", action="store_true", help="train the missing runs first (long; resumable)")
    parser.add_argument("--sweeps", nargs="+", default=list(SWEEPS), choices=SWEEPS)
    parser.add_argument("--out", type=Path, default=Path("runs/sweeps/study/summary"))
    args = parser.parse_args()
    os.chdir(ROOT)  # the specs' out paths are relative to the checkout
    if args.run:
        run_sweeps(args.sweeps)
    path = summarise(args.sweeps, args.out)
    print(path.read_text())
    print(f"summary: {path}\nfigures: {args.out / 'curves.png'}, {args.out / 'follow_ups.png'}")


if __name__ == "__main__":
    main()
