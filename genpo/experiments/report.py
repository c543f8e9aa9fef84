"""A sweep's report: ``OUT/report.md`` (the results table, the runs' CPUs and precisions with a warning
when they differ, unfinished and failed runs, the commands, the spec), ``curves_env_steps.png``,
``curves_wall_time.png`` and ``curves.csv``.

The numbers come from :mod:`genpo.experiments.statistics` over each run's ``metrics.csv`` rows, so a
report covers finished and partial runs alike.
"""

from __future__ import annotations

import json
import math
import os
import shlex
from collections.abc import Iterable, Sequence
from pathlib import Path

from genpo.experiments import statistics
from genpo.experiments.evaluation import evaluation_return
from genpo.experiments.plots import plot_curves
from genpo.builders.config import GIN_DIR
from genpo.experiments.runner import job_state, run_status, train_command
from genpo.experiments.spec import Job, SweepSpec, Variant, plan
from genpo.experiments.statistics import DEFAULT_CONFIDENCE, RunRecord, VariantStats
from genpo.training.provenance import COMPARED_FIELDS, comparison_key, read_provenance
from genpo.training.run_logger import METRICS_FILE, SUMMARY_FILE, read_metrics

REPORT_FILE = "report.md"
CURVE_PLOTS = {"env_steps": "curves_env_steps.png", "wall_time": "curves_wall_time.png"}
CURVES_CSV = "curves.csv"


# ---------------------------------------------------------------------------------------- tables
def format_number(value: float, digits: int = 2) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def results_table(stats: Sequence[VariantStats], confidence: float = DEFAULT_CONFIDENCE) -> str:
    """Markdown table: variant, runs, final mean +- std, IQM [CI], return AUC, mean train seconds."""
    percent = f"{100 * confidence:g}%"
    lines = [
        f"| variant | runs | final return mean ± std | IQM [{percent} CI] | return AUC | mean train s |",
        "|---|---|---|---|---|---|",
    ]
    for entry in stats:
        lines.append(
            f"| {entry.name} | {entry.runs} | {format_number(entry.mean)} ± {format_number(entry.std)} | "
            f"{format_number(entry.iqm)} [{format_number(entry.iqm_low)}, {format_number(entry.iqm_high)}] | "
            f"{format_number(entry.auc)} | {format_number(entry.train_seconds, 1)} |"
        )
    return "\n".join(lines)


def _scores_cells(entry: statistics.FinalReturns) -> str:
    """``runs | mean ± std | IQM [low, high]`` of the finite values."""
    runs = sum(math.isfinite(value) for value in entry.finals)
    return (
        f"{runs} | {format_number(entry.mean)} ± {format_number(entry.std)} | "
        f"{format_number(entry.iqm)} [{format_number(entry.iqm_low)}, {format_number(entry.iqm_high)}]"
    )


def budget_table(rows: Sequence[tuple[str, statistics.BudgetStats]], confidence: float = DEFAULT_CONFIDENCE) -> str:
    """Markdown table of final returns cut at budgets: variant, budget, runs that reached it, mean +- std, IQM [CI]."""
    percent = f"{100 * confidence:g}%"
    lines = [
        f"| variant | at | runs | final return mean ± std | IQM [{percent} CI] |",
        "|---|---|---|---|---|",
    ]
    for name, entry in rows:
        at = f"{entry.budget:g} env steps" if entry.axis == "env_steps" else f"{entry.budget:g} train s"
        lines.append(f"| {name} | {at} | {_scores_cells(entry)} |")
    return "\n".join(lines)


def evaluation_table(rows: Sequence[tuple[str, statistics.FinalReturns]], confidence: float = DEFAULT_CONFIDENCE) -> str:
    """Markdown table of the runs' evaluation returns: variant, runs evaluated, mean +- std, IQM [CI]."""
    percent = f"{100 * confidence:g}%"
    lines = [f"| variant | runs | evaluation return mean ± std | IQM [{percent} CI] |", "|---|---|---|---|"]
    lines += [f"| {name} | {_scores_cells(entry)} |" for name, entry in rows]
    return "\n".join(lines)


def curves_csv_text(stats: Sequence[VariantStats]) -> str:
    """Long-format CSV of every variant's mean curve and band: variant, x, grid, mean, low, high."""
    lines = ["variant,x,grid,mean,low,high"]
    for entry in stats:
        for x, band in entry.curves.items():
            for values in zip(band.grid, band.mean, band.low, band.high, strict=True):
                lines.append(f"{entry.name},{x}," + ",".join(f"{value:.6g}" for value in values))
    return "\n".join(lines) + "\n"


def write_curves(stats: Sequence[VariantStats], out: Path, confidence: float) -> None:
    """``curves.csv`` and the curve PNGs drawn from it. A PNG is drawn again only when the data in
    ``curves.csv`` changed (or the PNG is missing), so rebuilding an archived report leaves its committed
    figures untouched: git then holds one version of a figure per change of its data."""
    text = curves_csv_text(stats)
    csv_path = out / CURVES_CSV
    unchanged = csv_path.is_file() and csv_path.read_text() == text
    for x, filename in CURVE_PLOTS.items():
        if not (unchanged and (out / filename).is_file()):
            plot_curves(stats, x, out / filename, confidence)
    if not unchanged:
        csv_path.write_text(text)


# ------------------------------------------------------------------------------------------ runs
def collect_runs(job_list: Iterable[Job]) -> list[RunRecord]:
    """The jobs' runs that have metrics (finished or partial)."""
    records = []
    for job in job_list:
        rows = read_metrics(job.run_dir / METRICS_FILE)
        if not rows:
            continue
        try:
            seconds = float(json.loads((job.run_dir / SUMMARY_FILE).read_text())["train_seconds"])
        except (FileNotFoundError, json.JSONDecodeError, KeyError, TypeError, ValueError):
            seconds = sum(row.get("wall_time", 0.0) for row in rows if math.isfinite(row.get("wall_time", math.nan)))
        records.append(RunRecord(job.seed, rows, seconds))
    return records


def variant_stats(spec: SweepSpec, variant: Variant, jobs: Sequence[Job]) -> VariantStats:
    """The statistics of one variant's runs, with the spec's ``last_k`` and bootstrap settings."""
    return statistics.summarize_variant(
        variant.name,
        collect_runs(job for job in jobs if job.variant.name == variant.name),
        last_k=spec.last_k,
        resamples=spec.bootstrap_resamples,
        confidence=spec.confidence,
    )


def budget_stats(spec: SweepSpec, jobs: Sequence[Job]) -> list[tuple[str, statistics.BudgetStats]]:
    """Every variant's final returns cut at each of the spec's ``report_env_steps`` / ``report_train_seconds``."""
    budgets = [("env_steps", value) for value in spec.report_env_steps]
    budgets += [("train_seconds", value) for value in spec.report_train_seconds]
    rows = []
    for axis, budget in budgets:
        for variant in spec.variants:
            runs = collect_runs(job for job in jobs if job.variant.name == variant.name)
            entry = statistics.summarize_at_budget(
                runs, axis, budget, last_k=spec.last_k, resamples=spec.bootstrap_resamples, confidence=spec.confidence
            )
            rows.append((variant.name, entry))
    return rows


def evaluation_stats(spec: SweepSpec, jobs: Sequence[Job]) -> list[tuple[str, statistics.FinalReturns]]:
    """Every variant's stored evaluation returns (runs without a matching ``evaluation.json`` left out)."""
    rows = []
    for variant in spec.variants:
        returns = [evaluation_return(job.run_dir, spec) for job in jobs if job.variant.name == variant.name]
        scores = statistics.FinalReturns.scores(
            returns, resamples=spec.bootstrap_resamples, confidence=spec.confidence, seed=statistics.DEFAULT_SEED
        )
        rows.append((variant.name, statistics.FinalReturns(**scores)))
    return rows


def provenance_table(spec: SweepSpec, jobs: Sequence[Job]) -> tuple[str, list[str]]:
    """Markdown table of the runs' CPUs and network precisions (from each ``run.json``'s provenance):
    variant, runs, CPU, precision; and what makes the table's runs not from one setting: ``cpu`` when
    any two runs differ in CPU, ``precision of <variant>`` when the runs of one variant differ in
    precision. Variants may differ in precision from each other: that is part of what a variant
    configures (a Gaussian has no velocity network), and the table shows it."""
    lines = ["| variant | runs | CPU [numerics flags] | precision |", "|---|---|---|---|"]
    cpus: set[str] = set()
    differing: list[str] = []
    for variant in spec.variants:
        counts: dict[tuple[str, str], int] = {}
        for job in jobs:
            if job.variant.name != variant.name or not (job.run_dir / METRICS_FILE).is_file():
                continue
            key = comparison_key(read_provenance(job.run_dir)) or dict.fromkeys(COMPARED_FIELDS, "not recorded")
            cpus.add(key["cpu"])
            counts[(key["cpu"], key["precision"])] = counts.get((key["cpu"], key["precision"]), 0) + 1
        lines += [f"| {variant.name} | {count} | {cpu} | {precision} |" for (cpu, precision), count in counts.items()]
        if len({precision for _, precision in counts}) > 1:
            differing.append(f"precision of {variant.name}")
    if len(cpus) > 1:
        differing.insert(0, "cpu")
    return "\n".join(lines), differing


# ---------------------------------------------------------------------------------------- report
def write_report(spec: SweepSpec, command: str, jobs: Sequence[Job] | None = None) -> Path:
    """Aggregate every variant's runs into ``OUT/report.md``, the two curve PNGs and ``curves.csv``."""
    jobs = list(jobs) if jobs is not None else plan(spec)
    spec.out.mkdir(parents=True, exist_ok=True)
    stats, notes, failures = [], [], []
    for variant in spec.variants:
        variant_jobs = [job for job in jobs if job.variant.name == variant.name]
        finished = [job for job in variant_jobs if job_state(job)[0] == "finished"]
        for job in variant_jobs:
            status = run_status(job.run_dir)
            if status is not None and status.get("returncode") not in (0, None) and job not in finished:
                failures.append((job, status))
        partial = len(variant_jobs) - len(finished)
        if partial:
            notes.append(f"- {variant.name}: {partial} of {len(variant_jobs)} runs unfinished (partial runs are included in the table)")
        stats.append(variant_stats(spec, variant, variant_jobs))
    write_curves(stats, spec.out, spec.confidence)

    budget = _budget_text(spec.iterations, spec.env_steps)
    own = [f"{variant.name} {_budget_text(variant.iterations, variant.env_steps)}" for variant in spec.variants if variant.has_own_budget]
    if own:
        budget += f" ({', '.join(own)})"
    provenance, differing = provenance_table(spec, jobs)
    sections = [f"# Sweep report: {spec.path.name}", ""]
    if differing:
        sections += [
            f"**Warning: the runs compared here differ in {' and '.join(differing)}** (see Provenance below): "
            "their returns and times are not from one setting.",
            "",
        ]
    sections += [
        f"Seeds {list(spec.seeds)}, budget {budget}; final return = mean of the last {spec.last_k} logged "
        f"`return_mean` values of a run; mean ± sample std across seeds; IQM with a {100 * spec.confidence:g}% "
        f"percentile bootstrap CI ({spec.bootstrap_resamples} resamples over seeds, fixed RNG); return AUC = "
        "mean over the env-step grid of the across-seed mean curve.",
        "",
        results_table(stats, spec.confidence),
        "",
        f"![return vs env steps]({CURVE_PLOTS['env_steps']})",
        f"![return vs wall time]({CURVE_PLOTS['wall_time']})",
        "",
        f"Curves (mean and CI band on a common grid per variant): `{CURVES_CSV}`.",
    ]
    at_budgets = budget_stats(spec, jobs)
    if at_budgets:
        sections += [
            "",
            "## At other budgets",
            "",
            "Each run's final return computed from its metrics up to the budget (env steps, or cumulative "
            "training seconds), as if it had stopped there; runs that did not reach a budget are left out.",
            "",
            budget_table(at_budgets, spec.confidence),
        ]
    if spec.evaluation_episodes is not None:
        sections += [
            "",
            "## Evaluation",
            "",
            f"Each finished run's final policy over {spec.evaluation_episodes} episodes (one per env, from step 0, "
            f"the same env seed for every run) with {spec.evaluation_noise} noise (`evaluation.json` in the run).",
            "",
            evaluation_table(evaluation_stats(spec, jobs), spec.confidence),
        ]
    sections += ["", "## Provenance", "", "The CPU and network precision each run recorded in its `run.json`.", "", provenance]
    if notes:
        sections += ["", "## Unfinished runs", "", *notes]
    if failures:
        sections += ["", "## Failed runs", ""]
        for job, status in failures:
            sections += [
                f"### {job.label} (exit code {status.get('returncode')})",
                "",
                "```",
                status.get("stderr_tail", "").strip() or "(no stderr)",
                "```",
                "",
            ]
    shown = shlex.join(_portable(argument) for argument in shlex.split(command))
    sections += ["", "## Command", "", "From the directory the spec's `out` is relative to:", "", "```", shown, "```"]
    sections += ["", "Each run (first seed):", ""]
    sections += [f"- {variant.name}: `{shown_command(train_command(_first_job(jobs, variant)))}`" for variant in spec.variants]
    sections += ["", f"## Spec ({_portable(str(spec.path))})", "", "```toml", spec.text.rstrip(), "```", ""]
    path = spec.out / REPORT_FILE
    path.write_text("\n".join(sections))
    return path


def _budget_text(iterations: int | None, env_steps: int | None) -> str:
    return f"{iterations} iterations" if iterations is not None else f"{env_steps} env steps"


def shown_command(command: Sequence[str]) -> str:
    """A run's command as a reader types it, with no path of this machine: ``genpo train ...`` for
    ``<python> -m genpo.cli train ...``, configs by their name under the packaged ``gin/`` folder and
    every other path relative to the working directory (``../``-prefixed when outside it)."""
    if list(command[1:3]) == ["-m", "genpo.cli"]:
        command = ["genpo", *command[3:]]
    return shlex.join(_portable(argument) for argument in command)


def _portable(argument: str) -> str:
    path = Path(argument)
    if not path.is_absolute():
        return argument
    if path.is_relative_to(GIN_DIR):
        return str(path.relative_to(GIN_DIR))
    return os.path.relpath(path)


def _first_job(jobs: Sequence[Job], variant: Variant) -> Job:
    return next(job for job in jobs if job.variant.name == variant.name)
