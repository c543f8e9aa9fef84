"""The archived runs behind today's results and defaults are what their sweep specs build now.

Each archive under ``docs/results/`` keeps every run's ``config.gin``. A default changed in a gin file
(a task's target KL, the Gaussian's initial std) must leave these runs reproducible: the spec that made
them pins the value they ran. Here every archived run's config is rebuilt from its spec and compared
line by line, as ``genpo sweep`` does before it resumes a folder. Archives made before a binding was
renamed cannot be rebuilt byte for byte and are not listed.
"""

from __future__ import annotations

from pathlib import Path

import attrs
import pytest

from genpo.experiments.runner import config_difference
from genpo.experiments.spec import load_spec, plan

ROOT = Path(__file__).resolve().parents[1]

# archive folder -> the spec that made it (several archives may share a spec: one per task)
ARCHIVES = {
    "docs/results/study_v3/halfcheetah": "sweeps/study_v3/mujoco.toml",
    "docs/results/study_v3/hopper": "sweeps/study_v3/mujoco.toml",
    "docs/results/study_v3/walker2d": "sweeps/study_v3/mujoco.toml",
    "docs/results/study_v3/ant": "sweeps/study_v3/mujoco.toml",
    "docs/results/study_v3/humanoid": "sweeps/study_v3/mujoco.toml",
    "docs/results/study_v3/ant_diagnostics": "sweeps/study_v3/mujoco.toml",
    "docs/results/study_v3/ant_fresh_seeds": "sweeps/study_v3/ant_fresh_seeds.toml",
    "docs/results/study_v3/halfcheetah_ten_seeds": "sweeps/study_v3/halfcheetah_ten_seeds.toml",
    "docs/results/study_v3/halfcheetah_trainer_gap": "sweeps/study_v3/halfcheetah_trainer_gap.toml",
    "docs/results/study_v3/halfcheetah_trainer_choices": "sweeps/study_v3/halfcheetah_trainer_choices.toml",
    "docs/results/study_v3/gaussian_as_rsl_rl": "sweeps/study_v3/gaussian_as_rsl_rl.toml",
    "docs/results/study_v3/wall_time_pairs": "sweeps/study_v3/wall_time_pairs.toml",
    "docs/results/tuning/trust_region_units": "sweeps/tuning/trust_region_units.toml",
    "docs/results/tuning/value_clip": "sweeps/tuning/value_clip.toml",
    "docs/results/tuning/ant_trust_region": "sweeps/tuning/ant_trust_region.toml",
    "docs/results/tuning/ant_initial_spread": "sweeps/tuning/ant_initial_spread.toml",
}


def archived_jobs(archive: str, spec_path: str):
    """The spec's jobs whose run directory the archive holds, pointed at the archived copy."""
    spec = load_spec(ROOT / spec_path)
    out = Path(spec.out)
    for job in plan(spec):
        archived = ROOT / archive / job.run_dir.relative_to(out)
        if (archived / "config.gin").is_file():
            yield attrs.evolve(job, run_dir=archived)


@pytest.mark.parametrize(("archive", "spec_path"), ARCHIVES.items(), ids=list(ARCHIVES))
def test_every_archived_run_is_rebuilt_by_its_spec(archive, spec_path, monkeypatch):
    monkeypatch.chdir(ROOT)  # specs name gin files and run folders relative to the repository
    jobs = list(archived_jobs(archive, spec_path))
    assert jobs, f"{archive} holds no run of {spec_path}"
    stale = {job.label: difference for job in jobs if (difference := config_difference(job)) is not None}
    assert not stale, f"{spec_path} no longer builds what {archive} ran: {stale}"


def jobs_of_ant():
    return archived_jobs("docs/results/study_v3/ant", "sweeps/study_v3/mujoco.toml")


def test_a_changed_default_without_a_pin_is_caught(monkeypatch):
    """The check above sees a default moved under an archived run: dropping the Ant arms' pins of what
    they ran (the Gaussian's init std 1.0, GenPO's noise scale 1) makes the task files' 0.35 and 0.7
    apply, and the runs are reported stale."""
    monkeypatch.chdir(ROOT)
    job = next(job for job in jobs_of_ant() if job.variant.name == "ant.gaussian")
    unpinned = attrs.evolve(job, bindings=tuple(binding for binding in job.bindings if "init_std" not in binding))
    assert unpinned.bindings != job.bindings
    assert config_difference(job) is None
    expected = "the run has 'gaussian.init_std = 1.0' where the spec now gives 'gaussian.init_std = 0.35'"
    assert config_difference(unpinned) == expected
    genpo_job = next(job for job in jobs_of_ant() if job.variant.name == "ant.genpo_kl0.01")
    genpo_unpinned = attrs.evolve(genpo_job, bindings=tuple(binding for binding in genpo_job.bindings if "noise_scale" not in binding))
    assert config_difference(genpo_job) is None
    assert "actor.genpo.noise_scale = 0.7" in config_difference(genpo_unpinned)
