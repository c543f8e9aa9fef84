"""The report of ``genpo tune``: ``OUT/report.md`` from the study database, with the validation curves
from the validation runs when they are present.

Sections: the protocol (contenders, tasks, seeds, budget, objective, rule), the budget each contender
used, the search history of each contender, parameter importances, the chosen configurations, and the
validation: per task IQM final return with stratified bootstrap CIs, the normalised score over the
validation tasks, the probability of improvement between contenders, performance profiles
(``performance_profile.png``/``.csv``) and learning curves per env step and per wall time
(``validation_env_steps.png``, ``validation_wall_time.png``).
"""

from __future__ import annotations

import math
import shlex
import warnings
from pathlib import Path

import numpy as np

from genpo.experiments import statistics
from genpo.experiments.plots import plot_curves
from genpo.experiments.report import _portable, format_number, shown_command
from genpo.experiments.spec import plan
from genpo.experiments.statistics import RunRecord
from genpo.experiments.tune import (
    VALIDATION_ATTR,
    VALIDATION_DIR,
    counted_trials,
    import_optuna,
    load_study,
    study_name,
    validation_sweep,
)
from genpo.experiments.tune_spec import SELECTION_RULES, TuneSpec
from genpo.training.run_logger import METRICS_FILE, read_metrics

REPORT_FILE = "report.md"
HISTORY_PLOT = "search_history.png"
PROFILE_PLOT = "performance_profile.png"
PROFILE_CSV = "performance_profile.csv"
CURVE_PLOTS = {"env_steps": "validation_env_steps.png", "wall_time": "validation_wall_time.png"}
PROFILE_POINTS = 41


def _number(value, digits: int = 3) -> str:
    return format_number(value if isinstance(value, int | float) else math.nan, digits)


def _ci(point: float, low: float, high: float, digits: int = 3) -> str:
    return f"{_number(point, digits)} [{_number(low, digits)}, {_number(high, digits)}]"


def _value(value: object) -> str:
    return f"{value:.4g}" if isinstance(value, float) else repr(value) if isinstance(value, str) else str(value)


# ----------------------------------------------------------------------------------------- sections
def protocol_section(spec: TuneSpec) -> list[str]:
    budget = f"{spec.iterations} iterations" if spec.iterations is not None else f"{spec.env_steps} env steps"
    validation_budget = (
        f"{spec.validation.iterations} iterations" if spec.validation.iterations is not None
        else f"{spec.validation.env_steps} env steps" if spec.validation.env_steps is not None else budget
    )  # fmt: skip
    references = ", ".join(f"{task} {value:g}" for task, value in spec.references.items())
    lines = [
        "## Protocol (fixed with the study before its first trial)",
        "",
        f"- Contenders: {', '.join(contender.name for contender in spec.contenders)}; each gets {spec.trials} trials, "
        f"every run {budget}.",
        f"- Tuning: tasks {', '.join(spec.tuning.tasks)}, seeds {list(spec.tuning.seeds)}.",
        f"- Validation (never used in tuning): tasks {', '.join(spec.validation.tasks)}, seeds {list(spec.validation.seeds)}, "
        f"{validation_budget} per run.",
        f"- Objective: mean over the tuning tasks of the IQM final return (mean of the last {spec.last_k} logged returns "
        f"of a run) over the task's reference ({references}).",
        f"- Search: Optuna TPE sampler ({spec.sampler_startup_trials} random trials first), "
        + (f"median pruner after {spec.pruner_startup_trials} trials" if spec.pruner == "median" else "no pruner")
        + f", the objective reported at {spec.pruning_points} evenly spaced points of each run's budget.",
        f"- Selection rule `{spec.selection}`: {SELECTION_RULES[spec.selection]}.",
        "",
        "| contender | searched binding | space | default |",
        "|---|---|---|---|",
    ]
    for contender in spec.contenders:
        for dimension in contender.search:
            default = "" if dimension.default is None else _value(dimension.default)
            lines.append(f"| {contender.name} | `{dimension.binding}` | {dimension.describe()} | {default} |")
    return lines


def budget_section(spec: TuneSpec, studies: dict) -> list[str]:
    optuna = import_optuna()
    lines = [
        "## Budget used",
        "",
        "Trials counted against the budget (a trial queued again after its process stopped counts once); env steps "
        "and training seconds summed over the trials' runs (a pruned trial stops early).",
        "",
        "| contender | trials | complete | pruned | failed | env steps | train s |",
        "|---|---|---|---|---|---|---|",
    ]
    for contender in spec.contenders:
        trials = counted_trials(studies[contender.name].get_trials(deepcopy=False))
        count = {state: sum(trial.state == state for trial in trials) for state in optuna.trial.TrialState}
        env_steps = sum(trial.user_attrs.get("env_steps", 0.0) for trial in trials)
        seconds = sum(trial.user_attrs.get("train_seconds", 0.0) for trial in trials)
        states = optuna.trial.TrialState
        lines.append(
            f"| {contender.name} | {len(trials)} | {count[states.COMPLETE]} | {count[states.PRUNED]} | {count[states.FAIL]} | "
            f"{env_steps:.0f} | {seconds:.1f} |"
        )
    return lines


def history_section(spec: TuneSpec, studies: dict) -> list[str]:
    lines = ["## Search history", "", f"![objective per trial]({HISTORY_PLOT})"]
    for contender in spec.contenders:
        bindings = [dimension.binding for dimension in contender.search]
        lines += [
            "",
            f"### {contender.name} (study `{study_name(spec, contender)}`)",
            "",
            "| trial | state | " + " | ".join(f"`{binding}`" for binding in bindings) + " | objective | "
            + " | ".join(f"{task} IQM" for task in spec.tuning.tasks) + " | env steps |",
            "|---|---|" + "---|" * len(bindings) + "---|" + "---|" * len(spec.tuning.tasks) + "---|",
        ]
        for trial in counted_trials(studies[contender.name].get_trials(deepcopy=False)):
            finals = trial.user_attrs.get("task_finals", {})
            iqms = []
            for task in spec.tuning.tasks:
                scored = [value for value in finals.get(task, []) if math.isfinite(value)]
                iqms.append(format_number(statistics.iqm(scored)) if scored else "n/a")
            value = trial.value if trial.value is not None else (
                trial.intermediate_values[max(trial.intermediate_values)] if trial.intermediate_values else math.nan
            )  # fmt: skip
            cells = [_value(trial.params.get(binding, "")) for binding in bindings]
            state = trial.state.name.lower()
            if trial.state.name == "PRUNED":
                state += f" at {max(trial.intermediate_values)}/{spec.pruning_points}"
            lines.append(
                f"| {trial.number} | {state} | " + " | ".join(cells) + f" | {_number(value)} | " + " | ".join(iqms)
                + f" | {trial.user_attrs.get('env_steps', 0.0):.0f} |"
            )
    return lines


def importance_section(spec: TuneSpec, studies: dict) -> list[str]:
    """PED-ANOVA importances (Optuna's evaluator, deterministic, meant for few trials) over each contender's
    completed trials: how much each binding's distribution in the top trials differs from all trials'."""
    optuna = import_optuna()
    lines = [
        "## Parameter importances",
        "",
        "PED-ANOVA over the completed trials (Optuna's `PedAnovaImportanceEvaluator`: how far each binding's values in the "
        "top 10% of trials are from its values in all trials; normalised to sum 1).",
        "",
    ]
    for contender in spec.contenders:
        try:
            with warnings.catch_warnings(record=True) as caught:  # too few trials: said in the report, not on stderr
                warnings.simplefilter("always")
                importances = optuna.importance.get_param_importances(
                    studies[contender.name], evaluator=optuna.importance.PedAnovaImportanceEvaluator()
                )
        except (RuntimeError, ValueError) as error:
            lines.append(f"- {contender.name}: n/a ({str(error).splitlines()[0]})")
            continue
        shown = ", ".join(f"`{binding}` {value:.2f}" for binding, value in importances.items()) or "n/a (no searched binding varied)"
        note = f" ({str(caught[0].message).rstrip('.')})" if caught else ""
        lines.append(f"- {contender.name}: {shown}{note}")
    return lines


def chosen_section(spec: TuneSpec, records: dict) -> list[str]:
    percent = f"{100 * spec.confidence:g}%"
    lines = [
        "## Chosen configurations",
        "",
        f"| contender | trial | objective [{percent} CI] | why | bindings |",
        "|---|---|---|---|---|",
    ]
    for contender in spec.contenders:
        record = records.get(contender.name)
        if record is None:
            lines.append(f"| {contender.name} | n/a | n/a | not chosen yet (the tuning has not ended) | |")
            continue
        bindings = "<br>".join(f"`{binding}`" for binding in record["bindings"]) or "(the config as it is)"
        lines.append(
            f"| {contender.name} | {record['trial']} | {_ci(record['objective'], record['low'], record['high'])} | "
            f"{record['reason']} | {bindings} |"
        )
    return lines


def _scores(spec: TuneSpec, record: dict) -> np.ndarray:
    """``[seeds, tasks]`` validation final returns over each task's reference."""
    columns = [np.asarray(record["tasks"][task]["finals"], dtype=float) / spec.references[task] for task in spec.validation.tasks]
    return np.stack(columns, axis=1)


def validation_section(spec: TuneSpec, records: dict) -> list[str]:
    percent = f"{100 * spec.confidence:g}%"
    options = {"resamples": spec.bootstrap_resamples, "confidence": spec.confidence}
    lines = [
        "## Validation",
        "",
        "Each contender's chosen configuration on the validation tasks and seeds. Final return = mean of the last "
        f"{spec.last_k} logged returns of a run; IQM with a {percent} stratified percentile bootstrap CI "
        f"({spec.bootstrap_resamples} resamples, fixed RNG); normalised = over the task's reference.",
        "",
        f"| contender | task | runs | IQM final return [{percent} CI] | normalised IQM | mean env steps | mean train s |",
        "|---|---|---|---|---|---|---|",
    ]
    for contender in spec.contenders:
        record = records.get(contender.name)
        if record is None:
            continue
        for task in spec.validation.tasks:
            entry = record["tasks"][task]
            finals = [value for value in entry["finals"] if math.isfinite(value)]
            point, low, high = statistics.stratified_bootstrap_ci(finals, statistics.iqm, **options) if finals else (math.nan,) * 3
            lines.append(
                f"| {contender.name} | {task} | {len(finals)} | {_ci(point, low, high, 1)} | {_number(point / spec.references[task])} | "
                f"{_number(float(np.nanmean(entry['env_steps'])), 0)} | {_number(float(np.nanmean(entry['train_seconds'])), 1)} |"
            )
    complete = {name: record for name, record in records.items() if np.all(np.isfinite(_scores(spec, record)))}
    if complete:
        lines += [
            "",
            f"Score over the validation tasks (mean over tasks of the normalised IQM, stratified bootstrap {percent} CI):",
            "",
            f"| contender | score [{percent} CI] |",
            "|---|---|",
        ]
        for name, record in complete.items():
            scores = _scores(spec, record)
            lines.append(f"| {name} | {_ci(*statistics.normalized_score_ci(scores, [1.0] * scores.shape[1], **options))} |")
    names = list(complete)
    if len(names) > 1:
        lines += [
            "",
            f"Probability of improvement P(X > Y) on the normalised final returns, averaged over the validation tasks "
            f"(X's and Y's seeds resampled independently per task, {percent} CI):",
            "",
            f"| X | Y | P(X > Y) [{percent} CI] |",
            "|---|---|---|",
        ]
        for index, first in enumerate(names):
            for second in names[index + 1:]:
                result = statistics.probability_of_improvement_ci(_scores(spec, complete[first]), _scores(spec, complete[second]), **options)
                lines.append(f"| {first} | {second} | {_ci(*result)} |")
    if complete:
        write_profiles(spec, {name: _scores(spec, record) for name, record in complete.items()})
        lines += [
            "",
            f"Performance profiles (fraction of validation runs whose normalised final return exceeds tau, {percent} CI): "
            f"![performance profiles]({PROFILE_PLOT}), `{PROFILE_CSV}`.",
        ]
    return lines


def write_profiles(spec: TuneSpec, scores: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    every = np.concatenate([array.reshape(-1) for array in scores.values()])
    taus = np.linspace(min(0.0, every.min()), max(every.max(), 1e-9) * 1.05, PROFILE_POINTS)
    rows = ["contender,tau,fraction,low,high"]
    figure, axis = plt.subplots(figsize=(6, 4))
    for name, array in scores.items():
        profile, low, high = statistics.performance_profile_ci(array, taus, resamples=spec.bootstrap_resamples, confidence=spec.confidence)
        (line,) = axis.plot(taus, profile, label=name)
        axis.fill_between(taus, low, high, color=line.get_color(), alpha=0.2, linewidth=0)
        rows += [f"{name},{tau:.6g},{value:.6g},{lo:.6g},{hi:.6g}" for tau, value, lo, hi in zip(taus, profile, low, high, strict=True)]
    axis.set_xlabel("normalised final return tau")
    axis.set_ylabel("fraction of runs with score > tau")
    axis.grid(alpha=0.3)
    axis.legend(fontsize="small")
    figure.tight_layout()
    figure.savefig(spec.out / PROFILE_PLOT, dpi=100)
    plt.close(figure)
    (spec.out / PROFILE_CSV).write_text("\n".join(rows) + "\n")


def write_history_plot(spec: TuneSpec, studies: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6, 4))
    for contender in spec.contenders:
        trials = [trial for trial in counted_trials(studies[contender.name].get_trials(deepcopy=False)) if trial.value is not None]
        if not trials:
            continue
        numbers = [trial.number for trial in trials]
        values = [trial.value for trial in trials]
        (line,) = axis.plot(numbers, values, "o", label=contender.name)
        axis.plot(numbers, np.maximum.accumulate(values), color=line.get_color(), alpha=0.6)
    axis.set_xlabel("trial")
    axis.set_ylabel("objective (points: trials; line: best so far)")
    axis.grid(alpha=0.3)
    if axis.get_legend_handles_labels()[0]:
        axis.legend(fontsize="small")
    figure.tight_layout()
    figure.savefig(spec.out / HISTORY_PLOT, dpi=100)
    plt.close(figure)


def curves_section(spec: TuneSpec, records: dict) -> list[str]:
    """Validation learning curves per env step and per wall time, from the validation runs present."""
    if not records or not (spec.out / VALIDATION_DIR).is_dir():
        return []
    jobs = plan(validation_sweep_from_records(spec, records))
    stats = []
    for task in spec.validation.tasks:
        for contender in spec.contenders:
            runs = [
                RunRecord(job.seed, rows, math.nan)
                for job in jobs
                if job.variant.name == f"{contender.name}.{task}" and (rows := read_metrics(job.run_dir / METRICS_FILE))
            ]
            if runs:
                stats.append(statistics.summarize_variant(f"{task}.{contender.name}", runs, last_k=spec.last_k, resamples=spec.bootstrap_resamples, confidence=spec.confidence))
    if not stats:
        return []
    for x, filename in CURVE_PLOTS.items():
        plot_curves(stats, x, spec.out / filename, spec.confidence)
    return ["", f"![validation return per env step]({CURVE_PLOTS['env_steps']})", f"![validation return per wall time]({CURVE_PLOTS['wall_time']})"]


def validation_sweep_from_records(spec: TuneSpec, records: dict):
    from genpo.experiments.tune import Choice

    choices = [
        Choice(contender, records[contender.name]["trial"], records[contender.name]["params"], math.nan, math.nan, math.nan, "")
        for contender in spec.contenders
        if contender.name in records
    ]
    return validation_sweep(spec, choices)


# ------------------------------------------------------------------------------------------- report
def write_tune_report(spec: TuneSpec, storage, command: str) -> Path:
    """``OUT/report.md`` from the studies in ``storage`` (and the validation runs' curves when present)."""
    studies = {contender.name: load_study(spec, storage, contender) for contender in spec.contenders}
    records = {name: study.user_attrs[VALIDATION_ATTR] for name, study in studies.items() if VALIDATION_ATTR in study.user_attrs}
    spec.out.mkdir(parents=True, exist_ok=True)
    write_history_plot(spec, studies)
    storage_text = spec.storage if not spec.storage.startswith("sqlite:///") else f"sqlite:///{_relative(spec.storage.removeprefix('sqlite:///'))}"
    sections = [
        f"# Tuning report: {spec.path.name}",
        "",
        f"Studies `{spec.study}.<contender>` in `{storage_text}` (open with Optuna's tools, e.g. "
        f"`optuna trials --storage {storage_text} --study-name {study_name(spec, spec.contenders[0])}`).",
        "",
        *protocol_section(spec),
        "",
        *budget_section(spec, studies),
        "",
        *history_section(spec, studies),
        "",
        *importance_section(spec, studies),
        "",
        *chosen_section(spec, records),
        "",
        *validation_section(spec, records),
        *curves_section(spec, records),
        "",
        "## Command",
        "",
        "```",
        shown_command(shlex.split(command)),
        "```",
        "",
        "## Spec",
        "",
        "```toml",
        spec.text.rstrip(),
        "```",
        "",
    ]
    path = spec.out / REPORT_FILE
    path.write_text("\n".join(sections))
    return path


def _relative(path: str) -> str:
    """A database path as the report shows it: no path of this machine."""
    return _portable(path)
