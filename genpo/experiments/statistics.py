"""Statistics over many runs: final returns, IQM with stratified bootstrap CIs, probability of
improvement, performance profiles, curves on a common grid.

Pure numpy; used by ``genpo sweep`` and ``benchmarks/learning_study.py`` but independent of how the
runs were produced: everything starts from each run's ``metrics.csv`` rows.

Conventions (after rliable, Agarwal et al. 2021):

- final return of a run (the one definition in genpo, :func:`final_return`): the mean of its last
  ``last_k`` finite ``return_mean`` values, ``last_k`` = :data:`DEFAULT_LAST_K` unless a sweep spec
  sets it;
- IQM: the mean of the middle 50% of the scores, trimming ``int(0.25 n)`` from each end (scipy's
  ``trim_mean(x, 0.25)``; with fewer than 4 runs nothing is trimmed and it is the plain mean);
- confidence intervals: percentile bootstrap, runs resampled with replacement independently within
  each stratum (task/column), a fixed RNG seed so that reports are reproducible;
- probability of improvement and performance profiles (run-score distributions) as rliable defines
  them, with CIs from the same stratified bootstrap (X's and Y's runs resampled independently);
- std: the sample std (``ddof=1``) across runs; NaN for a single run.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from genpo.training.run_logger import DEFAULT_LAST_K, RETURN_KEY, final_return  # noqa: F401  (re-exported)

DEFAULT_RESAMPLES = 2000
DEFAULT_CONFIDENCE = 0.95
DEFAULT_SEED = 0
GRID_POINTS = 100


# --------------------------------------------------------------------------------- per-run numbers
def return_curve(rows: Sequence[Mapping[str, float]], x: str = "env_steps", key: str = RETURN_KEY) -> tuple[np.ndarray, np.ndarray]:
    """``(x, return)`` at the iterations that logged a finite return.

    ``x`` is a metrics column (``env_steps``), or ``wall_time`` for the *cumulative* training seconds
    (the column itself holds each iteration's own duration).
    """
    xs, ys = [], []
    elapsed = 0.0
    for row in rows:
        elapsed += row.get("wall_time", 0.0) if math.isfinite(row.get("wall_time", math.nan)) else 0.0
        value = row.get(key, math.nan)
        if math.isfinite(value):
            xs.append(elapsed if x == "wall_time" else row[x])
            ys.append(value)
    return np.asarray(xs, dtype=float), np.asarray(ys, dtype=float)


# ------------------------------------------------------------------------------------- aggregates
def iqm(values: np.ndarray | Sequence[float], axis: int | None = None) -> np.ndarray | float:
    """Interquartile mean: trim ``int(0.25 n)`` values from each end, average the rest (scipy's trim_mean)."""
    array = np.asarray(values, dtype=float)
    if axis is None:
        array, axis = array.reshape(-1), 0
    count = array.shape[axis]
    if count == 0:
        raise ValueError("iqm: no values")
    cut = int(0.25 * count)
    ordered = np.sort(array, axis=axis)
    kept = np.take(ordered, np.arange(cut, count - cut), axis=axis)
    result = kept.mean(axis=axis)
    return float(result) if np.ndim(result) == 0 else result


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample std (``ddof=1``; NaN for one value) of the finite values."""
    array = np.asarray([value for value in values if math.isfinite(value)], dtype=float)
    if array.size == 0:
        return math.nan, math.nan
    return float(array.mean()), float(array.std(ddof=1)) if array.size > 1 else math.nan


def stratified_bootstrap_ci(
    scores: np.ndarray | Sequence[float],
    statistic: Callable[[np.ndarray], float] = iqm,
    *,
    resamples: int = DEFAULT_RESAMPLES,
    confidence: float = DEFAULT_CONFIDENCE,
    seed: int = DEFAULT_SEED,
) -> tuple[float, float, float]:
    """``(point estimate, CI low, CI high)`` of ``statistic`` over ``scores``.

    ``scores`` is ``[runs]`` or ``[runs, strata]`` (e.g. runs x tasks); each resample draws the runs of
    every stratum independently with replacement (rliable's stratified bootstrap) and applies
    ``statistic`` to the whole resampled array. Percentile interval; fixed ``seed``.
    """
    array = _runs_by_tasks(scores, "stratified_bootstrap_ci")
    if not 0 < confidence < 1:
        raise ValueError(f"stratified_bootstrap_ci: confidence must be in (0, 1), got {confidence!r}")
    resampled = _stratified_resamples(array, resamples, np.random.default_rng(seed))
    estimates = np.array([statistic(sample) for sample in resampled])
    low, high = _percentile_interval(estimates, confidence)
    return float(statistic(array)), float(low), float(high)


def _runs_by_tasks(scores: np.ndarray | Sequence[float], what: str) -> np.ndarray:
    """``scores`` as a ``[runs, tasks]`` float array (a 1-D array is one task)."""
    array = np.asarray(scores, dtype=float)
    if array.ndim == 1:
        array = array[:, None]
    if array.ndim != 2 or array.shape[0] == 0:
        raise ValueError(f"{what}: scores must be [runs] or [runs, tasks], got shape {np.shape(scores)}")
    return array


def _stratified_resamples(array: np.ndarray, resamples: int, rng: np.random.Generator) -> np.ndarray:
    """``[resamples, runs, tasks]``: each resample draws the runs of every task (column) independently
    with replacement."""
    runs, strata = array.shape
    indices = rng.integers(0, runs, size=(resamples, runs, strata))
    return np.take_along_axis(array[None].repeat(resamples, axis=0), indices, axis=1)


def _percentile_interval(estimates: np.ndarray, confidence: float) -> tuple[np.ndarray, np.ndarray]:
    tail = 100 * (1 - confidence) / 2
    low, high = np.percentile(estimates, [tail, 100 - tail], axis=0)
    return low, high


def probability_of_improvement(scores_x: np.ndarray | Sequence, scores_y: np.ndarray | Sequence) -> float:
    """P(X > Y) averaged over tasks (rliable's ``probability_of_improvement``): on each task the
    Mann-Whitney U statistic of X's runs against Y's over the number of pairs, i.e. the fraction of
    (x run, y run) pairs in which x scores higher, a tie counting one half.

    ``scores_x`` is ``[runs_x, tasks]``, ``scores_y`` ``[runs_y, tasks]`` (the run counts may differ).
    """
    x = _runs_by_tasks(scores_x, "probability_of_improvement")
    y = _runs_by_tasks(scores_y, "probability_of_improvement")
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"probability_of_improvement: X has {x.shape[1]} tasks, Y {y.shape[1]}")
    pairs_x, pairs_y = x[:, None, :], y[None, :, :]  # [runs_x, runs_y, tasks]
    per_task = (pairs_x > pairs_y).mean(axis=(0, 1)) + 0.5 * (pairs_x == pairs_y).mean(axis=(0, 1))
    return float(per_task.mean())


def probability_of_improvement_ci(
    scores_x: np.ndarray | Sequence,
    scores_y: np.ndarray | Sequence,
    *,
    resamples: int = DEFAULT_RESAMPLES,
    confidence: float = DEFAULT_CONFIDENCE,
    seed: int = DEFAULT_SEED,
) -> tuple[float, float, float]:
    """``(P(X > Y), CI low, CI high)``: X's and Y's runs resampled independently within each task
    (rliable's stratified independent bootstrap), percentile interval, fixed ``seed``."""
    x = _runs_by_tasks(scores_x, "probability_of_improvement_ci")
    y = _runs_by_tasks(scores_y, "probability_of_improvement_ci")
    rng = np.random.default_rng(seed)
    resampled_x, resampled_y = _stratified_resamples(x, resamples, rng), _stratified_resamples(y, resamples, rng)
    estimates = np.array([probability_of_improvement(a, b) for a, b in zip(resampled_x, resampled_y, strict=True)])
    low, high = _percentile_interval(estimates, confidence)
    return probability_of_improvement(x, y), float(low), float(high)


def performance_profile(scores: np.ndarray | Sequence, thresholds: np.ndarray | Sequence[float]) -> np.ndarray:
    """The run-score distribution of rliable's performance profiles: for each threshold tau, the
    fraction of all (run, task) scores above tau (``scores`` normalised so that tasks compare)."""
    array = _runs_by_tasks(scores, "performance_profile")
    taus = np.asarray(thresholds, dtype=float)
    return (array[None, ...] > taus.reshape(-1, 1, 1)).mean(axis=(1, 2))


def performance_profile_ci(
    scores: np.ndarray | Sequence,
    thresholds: np.ndarray | Sequence[float],
    *,
    resamples: int = DEFAULT_RESAMPLES,
    confidence: float = DEFAULT_CONFIDENCE,
    seed: int = DEFAULT_SEED,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(profile, CI low, CI high)`` at each threshold, runs resampled within each task."""
    array = _runs_by_tasks(scores, "performance_profile_ci")
    resampled = _stratified_resamples(array, resamples, np.random.default_rng(seed))
    estimates = np.stack([performance_profile(sample, thresholds) for sample in resampled])
    low, high = _percentile_interval(estimates, confidence)
    return performance_profile(array, thresholds), low, high


def normalized_score_ci(
    finals: np.ndarray | Sequence[Sequence[float]],
    references: Sequence[float],
    *,
    resamples: int = DEFAULT_RESAMPLES,
    confidence: float = DEFAULT_CONFIDENCE,
    seed: int = DEFAULT_SEED,
) -> tuple[float, float, float]:
    """``(score, CI low, CI high)`` of a configuration tuned on several tasks: the mean over tasks of
    its IQM final return divided by the task's reference return (the tuning rule of docs/notebook/results_full.md).

    ``finals`` is ``[runs, tasks]``; the CI resamples the runs of each task independently
    (:func:`stratified_bootstrap_ci`).
    """
    array = np.asarray(finals, dtype=float)
    scale = np.asarray(references, dtype=float)
    if array.ndim != 2 or scale.shape != (array.shape[1],):
        raise ValueError(f"normalized_score_ci: finals must be [runs, tasks] with one reference per task, got {array.shape} and {scale.shape}")
    if not np.all(np.isfinite(scale)) or np.any(scale == 0):
        raise ValueError(f"normalized_score_ci: references must be finite and non-zero, got {list(references)}")
    return stratified_bootstrap_ci(
        array, lambda sample: float(np.mean(iqm(sample, axis=0) / scale)), resamples=resamples, confidence=confidence, seed=seed
    )


def bootstrap_mean_band(
    curves: np.ndarray,
    *,
    resamples: int = DEFAULT_RESAMPLES,
    confidence: float = DEFAULT_CONFIDENCE,
    seed: int = DEFAULT_SEED,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pointwise mean of ``curves [runs, points]`` and a bootstrap CI band (runs resampled as wholes)."""
    curves = np.asarray(curves, dtype=float)
    runs = curves.shape[0]
    rng = np.random.default_rng(seed)
    indices = rng.integers(0, runs, size=(resamples, runs))
    means = curves[indices].mean(axis=1)
    tail = 100 * (1 - confidence) / 2
    low, high = np.percentile(means, [tail, 100 - tail], axis=0)
    return curves.mean(axis=0), low, high


def common_grid(curves: Sequence[tuple[np.ndarray, np.ndarray]], points: int = GRID_POINTS) -> tuple[np.ndarray, np.ndarray]:
    """Interpolate ``(x, y)`` curves onto one grid over the x range all of them cover: ``(grid, [runs, points])``."""
    curves = [(x, y) for x, y in curves if len(x) > 0]
    if not curves:
        return np.empty(0), np.empty((0, 0))
    start = max(float(x[0]) for x, _ in curves)
    stop = min(float(x[-1]) for x, _ in curves)
    if stop <= start:
        # No common range (a few logged points with different wall times): span them all; np.interp
        # holds each run's first/last value outside its own range.
        start = min(float(x[0]) for x, _ in curves)
        stop = max(float(x[-1]) for x, _ in curves)
    grid = np.linspace(start, stop, points) if stop > start else np.array([start])
    return grid, np.stack([np.interp(grid, x, y) for x, y in curves])


# -------------------------------------------------------------------------------------- a variant
@dataclass
class RunRecord:
    """One finished (or partial) run as the analysis sees it."""

    seed: int
    rows: list[dict[str, float]]
    train_seconds: float


BUDGET_AXES = ("env_steps", "train_seconds")


def rows_within(rows: Sequence[Mapping[str, float]], axis: str, budget: float) -> list[Mapping[str, float]] | None:
    """The rows of a run up to ``budget`` on ``axis`` (``env_steps``, or ``train_seconds``: cumulative
    ``wall_time``), i.e. the run as if it had stopped there; None if the run never reached the budget."""
    if axis not in BUDGET_AXES:
        raise ValueError(f"rows_within: axis must be one of {BUDGET_AXES}, got {axis!r}")
    kept, elapsed = [], 0.0
    for row in rows:
        wall_time = row.get("wall_time", math.nan)
        elapsed += wall_time if math.isfinite(wall_time) else 0.0
        position = row.get("env_steps", math.nan) if axis == "env_steps" else elapsed
        if position > budget:
            return kept
        kept.append(row)
        if position == budget:
            return kept
    return None


@dataclass(kw_only=True)
class FinalReturns:
    """Per-run final returns and their mean, sample std and IQM with its bootstrap CI (over the finite ones)."""

    finals: list[float]
    mean: float
    std: float
    iqm: float
    iqm_low: float
    iqm_high: float

    @staticmethod
    def scores(finals: list[float], *, resamples: int, confidence: float, seed: int) -> dict:
        """The fields of a :class:`FinalReturns` for ``finals``."""
        scored = [value for value in finals if math.isfinite(value)]
        mean, std = mean_std(scored)
        point = low = high = math.nan
        if scored:
            point, low, high = stratified_bootstrap_ci(scored, iqm, resamples=resamples, confidence=confidence, seed=seed)
        return {"finals": finals, "mean": mean, "std": std, "iqm": point, "iqm_low": low, "iqm_high": high}


@dataclass(kw_only=True)
class BudgetStats(FinalReturns):
    """Final returns of a variant's runs cut at one budget (runs that did not reach it are left out)."""

    axis: str
    budget: float


def summarize_at_budget(
    runs: Sequence[RunRecord],
    axis: str,
    budget: float,
    *,
    last_k: int = DEFAULT_LAST_K,
    resamples: int = DEFAULT_RESAMPLES,
    confidence: float = DEFAULT_CONFIDENCE,
    seed: int = DEFAULT_SEED,
) -> BudgetStats:
    """Final return (:func:`final_return` of the rows within the budget) mean, std and IQM [CI] over
    the runs that reached ``budget`` on ``axis``: a longer run read at a shorter budget (rsl_rl at 2B
    read at B), or every contender read at the same training seconds."""
    cut = [rows_within(run.rows, axis, budget) for run in runs]
    finals = [final_return(rows, last_k) for rows in cut if rows is not None]
    scores = FinalReturns.scores(finals, resamples=resamples, confidence=confidence, seed=seed)
    return BudgetStats(axis=axis, budget=budget, **scores)


@dataclass
class CurveBand:
    grid: np.ndarray
    mean: np.ndarray
    low: np.ndarray
    high: np.ndarray


@dataclass(kw_only=True)
class VariantStats(FinalReturns):
    name: str
    runs: int
    auc: float  # mean over the env-step grid of the across-seed mean return (area under the curve / span)
    train_seconds: float
    curves: dict[str, CurveBand] = field(default_factory=dict)


def summarize_variant(
    name: str,
    runs: Sequence[RunRecord],
    *,
    last_k: int = DEFAULT_LAST_K,
    resamples: int = DEFAULT_RESAMPLES,
    confidence: float = DEFAULT_CONFIDENCE,
    seed: int = DEFAULT_SEED,
) -> VariantStats:
    """Final-return statistics across seeds and the curves vs env steps and wall time."""
    finals = [final_return(run.rows, last_k) for run in runs]
    curves = {}
    for x in ("env_steps", "wall_time"):
        grid, values = common_grid([return_curve(run.rows, x) for run in runs])
        if grid.size:
            curves[x] = CurveBand(grid, *bootstrap_mean_band(values, resamples=resamples, confidence=confidence, seed=seed))
    auc = float(np.mean(curves["env_steps"].mean)) if "env_steps" in curves else math.nan
    seconds = [run.train_seconds for run in runs if math.isfinite(run.train_seconds)]
    return VariantStats(
        name=name,
        runs=len(runs),
        auc=auc,
        train_seconds=float(np.mean(seconds)) if seconds else math.nan,
        curves=curves,
        **FinalReturns.scores(finals, resamples=resamples, confidence=confidence, seed=seed),
    )
