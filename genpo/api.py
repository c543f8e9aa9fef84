"""The Python API: ``genpo.train`` / ``genpo.resume`` a run from a notebook or script, and read it back as a
:class:`Run` (its config, metrics, provenance, policy and evaluation). See docs/python_api.md.

Each call does what ``genpo train`` does (the same run directory, checkpoints, logs and ``run.json``), in
this process: gin is cleared before a run is built, and training runs in the calling thread (Ctrl-C
stops it after the iteration in flight, with a checkpoint, as on the command line).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path

import gin

from genpo.training.provenance import invocation, read_provenance, relative_path
from genpo.training.run_directory import CONFIG_FILE, RUN_RECORD_FILE, iterations_to_run, read_config
from genpo.training.run_logger import METRICS_FILE, SUMMARY_FILE, read_metrics

TRAINERS = ("genpo", "rsl_rl")


class Run:
    """A run directory, read on demand (a run still training shows the rows logged so far)."""

    def __init__(self, run_dir: str | Path):
        self.run_dir = Path(run_dir)
        read_config(self.run_dir)  # one clear error for a folder that is not a run

    def __repr__(self) -> str:
        return f"Run({str(self.run_dir)!r})"

    @property
    def config(self) -> str:
        """The gin config the run trains (``config.gin``)."""
        return (self.run_dir / CONFIG_FILE).read_text()

    @property
    def record(self) -> dict:
        """``run.json``: the trainer, the config's fingerprint, the iteration target and the provenance."""
        return json.loads((self.run_dir / RUN_RECORD_FILE).read_text())

    @property
    def provenance(self) -> dict | None:
        return read_provenance(self.run_dir)

    @property
    def iterations(self) -> int:
        """The iterations trained (the last metrics row's)."""
        rows = self.metrics
        return int(rows[-1]["iteration"]) if rows else 0

    @property
    def metrics(self) -> list[dict[str, float]]:
        """One dict per iteration (``metrics.csv``: ``iteration``, ``env_steps``, ``return_mean``, losses, ...)."""
        return read_metrics(self.run_dir / METRICS_FILE)

    def dataframe(self):
        """:attr:`metrics` as a pandas DataFrame (needs pandas)."""
        try:
            import pandas
        except ImportError:
            raise ImportError("Run.dataframe needs pandas (pip install pandas); Run.metrics gives the same rows as dicts") from None
        return pandas.DataFrame(self.metrics)

    @property
    def summary(self) -> dict | None:
        """``summary.json`` of the last training call (None before one finished)."""
        path = self.run_dir / SUMMARY_FILE
        return json.loads(path.read_text()) if path.is_file() else None

    def load_policy(self, **options):
        """The trained policy, ``observation [B, obs_dim] -> action [B, action_dim]``; ``options`` as for
        :func:`genpo.load_policy` (``checkpoint``, ``noise``, ``device``, ``seed``)."""
        from genpo.deployment.policy import load_policy

        return load_policy(self.run_dir, **options)

    def evaluate(
        self, *, episodes: int = 10, noise: str = "zero", seed: int = 12345, checkpoint: str | Path = "latest", device: str | None = None
    ) -> dict:
        """What ``genpo evaluate`` prints: the mean and std return of ``episodes`` episodes (one per env of the
        eval-scoped env) of a checkpoint's policy, by default the deterministic one (``noise='zero'``)."""
        from genpo.experiments.evaluation import evaluator

        _, record = read_config(self.run_dir)
        return evaluator(record.trainer)(
            self.run_dir, episodes=episodes, noise=noise, seed=seed, checkpoint=checkpoint, device=device
        )


def train(
    config: str | Path,
    *,
    bindings: Sequence[str] = (),
    out: str | Path | None = None,
    seed: int = 0,
    iterations: int | None = None,
    trainer: str = "genpo",
    overwrite: bool = False,
    quiet: bool = True,
) -> Run:
    """Train a new run of ``config`` (a file, or a name under the packaged ``gin/``, e.g.
    ``tasks/pendulum.gin``) with extra gin ``bindings``, into ``out`` (default ``runs/<config>-<time>``);
    ``iterations`` overrides the config's ``genpo.run.iterations`` (as ``--iterations`` does). Returns the
    finished :class:`Run`.

    ``trainer='rsl_rl'`` trains a Gaussian config with rsl_rl instead (the bench extra). ``quiet=False``
    shows a progress bar."""
    new, _ = _entry_points(trainer)
    bindings = [*bindings, f"genpo.run.seed = {int(seed)}"]
    if iterations is not None:
        bindings.append(f"genpo.run.iterations = {int(iterations)}")
    out = Path(out) if out is not None else Path("runs") / f"{Path(config).stem}-{time.strftime('%Y%m%d-%H%M%S')}"
    call = f"genpo.train({relative_path(str(config))!r}, bindings={list(bindings)!r}, out={relative_path(str(out))!r})"
    gin.clear_config()
    with invocation(call):
        built, settings = new(out, [config], bindings, overwrite=overwrite)
        built.train(settings.iterations, quiet=quiet)
    return Run(out)


def resume(run_dir: str | Path, *, iterations: int | None = None, quiet: bool = True) -> Run:
    """Continue the run in ``run_dir`` from its latest checkpoint: to its iteration target, or
    ``iterations`` more. Returns the :class:`Run`."""
    run_dir = Path(run_dir)
    _, record = read_config(run_dir)
    _, resume_run = _entry_points(record.trainer)
    gin.clear_config()
    with invocation(f"genpo.resume({relative_path(str(run_dir))!r}, iterations={iterations!r})"):
        built, _, record = resume_run(run_dir, allow_config_change=False, bindings=())
        more, _ = iterations_to_run(run_dir, record, built.iteration, iterations)
        if more:
            built.train(more, quiet=quiet)
    return Run(run_dir)


def _entry_points(trainer: str):
    if trainer not in TRAINERS:
        raise ValueError(f"genpo.train: trainer must be one of {', '.join(TRAINERS)}, got {trainer!r}")
    if trainer == "rsl_rl":
        from genpo.baselines import rsl_rl

        return rsl_rl.new_experiment, rsl_rl.resume_experiment
    from genpo.builders.experiment import new_experiment, resume_experiment

    return new_experiment, resume_experiment
