"""``genpo sweep``: spec parsing and grid expansion, resuming, failure isolation, statistics, report."""

from __future__ import annotations

import json
import math
import shutil
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from conftest import TINY_BINDINGS

from genpo.builders.config import GIN_DIR
from genpo.cli import main
from genpo.experiments import statistics
from genpo.experiments.runner import config_difference, run_sweep, train_command
from genpo.experiments.spec import expand_grid, load_spec, parse_spec, plan

pytestmark = pytest.mark.xdist_group("sweep")  # the subprocess runs share 2 cores: keep them off both workers


def toml_list(values):
    return "[" + ", ".join(json.dumps(value) for value in values) + "]"


VARIANT = '[[variants]]\nname = "a"\nconfig = "tasks/pendulum.gin"\n'


def write_spec(tmp_path, body, *, seeds=(0, 1), iterations=2, name="spec.toml"):
    text = f"out = {json.dumps(str(tmp_path / 'out'))}\nseeds = {list(seeds)}\niterations = {iterations}\n"
    text += f"bindings = {toml_list(TINY_BINDINGS)}\n" + textwrap.dedent(body)
    path = tmp_path / name
    path.write_text(text)
    return load_spec(path)


# ------------------------------------------------------------------------------------- spec and grid
def test_grid_expands_to_the_cartesian_product():
    variants = expand_grid(
        {
            "config": "tasks/pendulum.gin",
            "prefix": "g",
            "values": {"coupling.genpo.p": [0.7, 0.9], "flow.dummy_action.num_steps": [2, 5, 10], "lr_controller.kl_adaptive.target_kl": ["0.02"]},
        }
    )
    assert len(variants) == 2 * 3 * 1
    names = [variant.name for variant in variants]
    assert names[0] == "g-p=0.7_num_steps=2_target_kl=0.02"
    assert len(set(names)) == 6
    assert variants[-1].bindings == ("coupling.genpo.p = 0.9", "flow.dummy_action.num_steps = 10", "lr_controller.kl_adaptive.target_kl = 0.02")
    assert all(variant.config.name == "pendulum.gin" for variant in variants)


def test_grid_keeps_full_keys_when_short_names_collide_and_formats_gin_values():
    variants = expand_grid(
        {"config": "tasks/pendulum.gin", "values": {"coupling.genpo.p": [0.5], "coupling.affine.p": [0.6]}, "prefix": ""}
    )
    assert [variant.name for variant in variants] == ["coupling.genpo.p=0.5_coupling.affine.p=0.6"]
    variants = expand_grid(
        {"config": "tasks/pendulum.gin", "values": {"flow.dummy_action.coupling": ["@coupling.leapfrog()"], "x.y": [[64, 64], True]}}
    )
    assert [variant.bindings[1] for variant in variants] == ["x.y = (64, 64)", "x.y = True"]
    assert variants[0].name == "pendulum-coupling=coupling.leapfrog_y=64-64"


def test_spec_combines_variants_and_grid(tmp_path):
    spec = write_spec(
        tmp_path,
        """
        [[variants]]
        name = "genpo"
        config = "tasks/pendulum.gin"

        [[variants]]
        name = "raw_time"
        config = "ablations/time_embedding_raw.gin"
        bindings = ["readout.linear.alpha = 0.3"]

        [grid]
        config = "tasks/pendulum.gin"
        [grid.values]
        "coupling.genpo.p" = [0.7, 0.9]
        """,
        seeds=(0, 1, 2),
    )
    assert [variant.name for variant in spec.variants] == ["genpo", "raw_time", "pendulum-p=0.7", "pendulum-p=0.9"]
    jobs = plan(spec)
    assert len(jobs) == 4 * 3
    job = next(job for job in jobs if job.variant.name == "raw_time" and job.seed == 2)
    assert job.run_dir == tmp_path / "out" / "raw_time" / "seed2"
    command = train_command(job)
    assert command[3:5] == ["train", str(job.variant.config)]
    assert ["--seed", "2"] == command[command.index("--seed") : command.index("--seed") + 2]
    assert ["--iterations", "2"] == command[command.index("--iterations") : command.index("--iterations") + 2]
    assert command[-2:] == ["--gin", "genpo.run.num_threads = 1"]
    assert command[-4:-2] == ["--gin", "readout.linear.alpha = 0.3"]  # variant bindings after the spec's


def test_env_steps_budget_rounds_up_to_whole_iterations(tmp_path):
    text = f'out = "{tmp_path}"\nenv_steps = 300\n[[variants]]\nname = "a"\nconfig = "tasks/pendulum.gin"\n'
    text += 'bindings = ["genpo.build_env.num_envs = 16", "genpo.trainer.steps_per_env = 8"]\n'
    assert plan(parse_spec(text))[0].iterations == 3  # 300 / 128 -> 3


def test_a_variant_can_have_its_own_budget(tmp_path):
    """A cheap baseline run to 2B beside contenders at B (read at B through report_env_steps)."""
    bindings = 'bindings = ["genpo.build_env.num_envs = 16", "genpo.trainer.steps_per_env = 8"]\n'
    text = f'out = "{tmp_path}"\nenv_steps = 300\n' + VARIANT + bindings
    text += '[[variants]]\nname = "b"\nconfig = "tasks/pendulum.gin"\nenv_steps = 600\n' + bindings
    text += '[[variants]]\nname = "c"\nconfig = "tasks/pendulum.gin"\niterations = 7\n'
    assert [job.iterations for job in plan(parse_spec(text))] == [3, 5, 7]  # 300 / 128, 600 / 128
    with pytest.raises(ValueError, match="variant 'b': give at most one budget"):
        parse_spec(text.replace("env_steps = 600", "env_steps = 600\niterations = 2"))
    with pytest.raises(ValueError, match="variant 'c': iterations must be a positive integer, got 0"):
        parse_spec(text.replace("iterations = 7", "iterations = 0"))


@pytest.mark.parametrize(
    "text, message",
    [
        ('seeds = [0]\niterations = 1\n[[variants]]\nname = "a"\nconfig = "tasks/pendulum.gin"\n', "'out'"),
        ('out = "x"\n[[variants]]\nname = "a"\nconfig = "tasks/pendulum.gin"\n', "exactly one budget"),
        ('out = "x"\niterations = 1\n', "no variants"),
        ('out = "x"\niterations = 1\n[[variants]]\nname = "a b"\nconfig = "tasks/pendulum.gin"\n', "safe directory name"),
        ('out = "x"\niterations = 1\nseed = [1]\n[[variants]]\nname = "a"\nconfig = "tasks/pendulum.gin"\n', "unknown keys"),
    ],
    ids=["no_out", "no_budget", "no_variants", "bad_name", "typo"],
)
def test_bad_spec_fails_naming_the_problem(text, message):
    with pytest.raises(ValueError, match=message):
        parse_spec(text)


@pytest.mark.parametrize(
    "settings, message",
    [
        ("iterations = 0", "iterations must be a positive integer, got 0"),
        ("env_steps = -5", "env_steps must be a positive integer, got -5"),
        ("iterations = 1\nthreads_per_run = 1.5", "threads_per_run must be a positive integer, got 1.5"),
        ("iterations = 1\nlast_k = true", "last_k must be a positive integer, got True"),
        ("iterations = 1\nbootstrap_resamples = 0", "bootstrap_resamples must be a positive integer"),
        ("iterations = 1\nconfidence = 1", r"confidence must be a float in \(0, 1\), got 1"),
        ("iterations = 1\nseeds = [1, 1]", r"seeds repeat: \[1, 1\]"),
        ("iterations = 1\nseeds = 3", "seeds must be a non-empty list of integers, got 3"),
        ("iterations = 1\nreport_env_steps = [0]", r"report_env_steps must be a list of positive numbers, got \[0\]"),
        ("iterations = 1\nreport_train_seconds = 60", "report_train_seconds must be a list of positive numbers, got 60"),
    ],
    ids=[
        "iterations", "env_steps", "threads", "last_k", "resamples", "confidence", "repeated_seeds", "seeds_type",
        "report_env_steps", "report_train_seconds",
    ],  # fmt: skip
)
def test_bad_setting_fails_naming_the_file_and_the_key(settings, message):
    with pytest.raises(ValueError, match=f"^my_spec.toml: {message}"):
        parse_spec(f'out = "x"\n{settings}\n{VARIANT}', "my_spec.toml")


def test_spec_built_in_code_is_validated_like_a_parsed_one():
    from genpo.experiments.spec import SweepSpec, Variant

    variant = Variant("a", Path("tasks/pendulum.gin"))
    spec = SweepSpec(path="s.toml", text="", out="x", seeds=[0, 1], variants=[variant], iterations=2)
    assert (spec.seeds, spec.out, spec.last_k) == ((0, 1), Path("x"), 3)
    with pytest.raises(ValueError, match="s.toml: last_k must be a positive integer"):
        SweepSpec(path="s.toml", text="", out="x", seeds=[0], variants=[variant], iterations=2, last_k=0)
    with pytest.raises(ValueError, match="s.toml: variant 'a': trainer must be one of"):
        SweepSpec(path="s.toml", text="", out="x", seeds=[0], variants=[Variant("a", Path("c"), (), "sb3")], iterations=2)


def test_sigterm_interrupts_the_sweep_like_ctrl_c_and_the_handler_is_restored():
    import os
    import signal
    import time

    from genpo.experiments.runner import terminate_as_interrupt

    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt, match="signal 15"):
        with terminate_as_interrupt():
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)  # the handler raises as soon as the signal arrives
    assert signal.getsignal(signal.SIGTERM) == before


# ------------------------------------------------------------------------------------------ statistics
def test_iqm_of_known_arrays():
    assert statistics.iqm([1, 2, 3, 4, 5, 6, 7, 8]) == pytest.approx(4.5)  # trims 2 from each end: mean(3..6)
    assert statistics.iqm([0, 1, 2, 3, 100]) == pytest.approx(2.0)  # trims 1 from each end
    assert statistics.iqm([1.0, 2.0, 6.0]) == pytest.approx(3.0)  # fewer than 4: the plain mean
    assert statistics.iqm(np.array([[4, 1, 3, 2], [8, 5, 7, 6]]), axis=1) == pytest.approx([2.5, 6.5])


def test_mean_std_and_final_return():
    assert statistics.mean_std([1.0, 2.0, 3.0]) == pytest.approx((2.0, 1.0))
    mean, std = statistics.mean_std([5.0])
    assert mean == 5.0 and math.isnan(std)
    rows = [{"return_mean": value} for value in (math.nan, 1.0, 2.0, math.nan, 4.0, 6.0)]
    assert statistics.final_return(rows, last_k=3) == pytest.approx(4.0)
    assert statistics.final_return(rows, last_k=1) == pytest.approx(6.0)
    assert math.isnan(statistics.final_return([{"return_mean": math.nan}]))


def test_bootstrap_ci_covers_the_truth_and_shrinks_with_more_seeds():
    rng = np.random.default_rng(1)
    widths = []
    for seeds in (5, 20, 80):
        scores = rng.normal(10.0, 2.0, size=seeds)
        point, low, high = statistics.stratified_bootstrap_ci(scores, statistics.iqm)
        assert low <= point <= high
        assert low <= 10.0 <= high
        widths.append(high - low)
    assert widths[0] > widths[1] > widths[2]
    # fixed RNG: the same input gives the same interval
    assert statistics.stratified_bootstrap_ci([1.0, 2.0, 3.0, 9.0]) == statistics.stratified_bootstrap_ci([1.0, 2.0, 3.0, 9.0])


def test_stratified_bootstrap_resamples_within_each_stratum():
    scores = np.array([[0.0, 100.0], [1.0, 101.0], [2.0, 102.0]])  # runs x 2 strata
    _, low, high = statistics.stratified_bootstrap_ci(scores, np.mean, resamples=500)
    # each resample keeps 3 values of each stratum, so its mean stays within [50, 52]
    assert 50.0 <= low <= high <= 52.0


def test_normalized_score_is_the_mean_over_tasks_of_iqm_over_reference():
    finals = np.array([[100.0, 10.0], [200.0, 20.0], [300.0, 30.0]])  # runs x tasks
    point, low, high = statistics.normalized_score_ci(finals, [200.0, 10.0], resamples=500)
    assert point == pytest.approx((1.0 + 2.0) / 2)
    assert low < point < high
    # each task's runs are resampled within the task: the extremes are all-low and all-high draws
    assert low >= (0.5 + 1.0) / 2 and high <= (1.5 + 3.0) / 2
    with pytest.raises(ValueError, match="one reference per task"):
        statistics.normalized_score_ci(finals, [1.0])
    with pytest.raises(ValueError, match="non-zero"):
        statistics.normalized_score_ci(finals, [1.0, 0.0])


def test_curves_interpolate_to_a_common_grid_with_a_band():
    runs = [
        statistics.RunRecord(0, [{"env_steps": s, "wall_time": 1.0, "return_mean": s / 10} for s in (10, 20, 30)], 3.0),
        statistics.RunRecord(1, [{"env_steps": s, "wall_time": 2.0, "return_mean": s / 5} for s in (10, 20, 30, 40)], 8.0),
    ]
    stats = statistics.summarize_variant("v", runs, last_k=1)
    band = stats.curves["env_steps"]
    assert band.grid[0] == 10 and band.grid[-1] == 30  # the range both runs cover
    assert band.mean[-1] == pytest.approx((3.0 + 6.0) / 2)
    assert np.all(band.low <= band.mean + 1e-9) and np.all(band.mean <= band.high + 1e-9)
    assert stats.curves["wall_time"].grid[-1] == pytest.approx(3.0)  # cumulative seconds, shortest run
    assert (stats.runs, stats.mean, stats.train_seconds) == (2, pytest.approx(5.5), pytest.approx(5.5))


def test_curves_of_several_tasks_get_one_panel_per_task(tmp_path):
    from matplotlib import image

    from genpo.experiments.plots import panel_groups, plot_curves

    run = statistics.RunRecord(0, [{"env_steps": s, "wall_time": 1.0, "return_mean": s} for s in (10, 20)], 2.0)
    stats = [statistics.summarize_variant(name, [run], last_k=1) for name in ("hopper.genpo", "ant.genpo", "hopper.gaussian")]
    assert {group: [entry.name for entry in entries] for group, entries in panel_groups(stats).items()} == {
        "hopper": ["hopper.genpo", "hopper.gaussian"],
        "ant": ["ant.genpo"],
    }
    assert list(panel_groups([statistics.summarize_variant("genpo", [run], last_k=1)])) == [""]
    plot_curves(stats, "env_steps", tmp_path / "two_panels.png")
    plot_curves(stats[:1], "env_steps", tmp_path / "one_panel.png")
    assert image.imread(tmp_path / "two_panels.png").shape[1] == 2 * image.imread(tmp_path / "one_panel.png").shape[1]


def budget_run(seed: int, returns: list[float], steps_per_iteration: int = 100, seconds: float = 2.0):
    rows = [
        {"iteration": i + 1, "env_steps": steps_per_iteration * (i + 1), "wall_time": seconds, "return_mean": value}
        for i, value in enumerate(returns)
    ]
    return statistics.RunRecord(seed, rows, seconds * len(rows))


def test_rows_within_cuts_a_run_at_env_steps_or_training_seconds():
    run = budget_run(0, [1.0, 2.0, 3.0, 4.0])
    assert [row["iteration"] for row in statistics.rows_within(run.rows, "env_steps", 200)] == [1, 2]
    assert [row["iteration"] for row in statistics.rows_within(run.rows, "env_steps", 250)] == [1, 2]
    assert [row["iteration"] for row in statistics.rows_within(run.rows, "train_seconds", 6.0)] == [1, 2, 3]
    assert statistics.rows_within(run.rows, "env_steps", 401) is None  # never reached
    with pytest.raises(ValueError, match="axis must be one of"):
        statistics.rows_within(run.rows, "iterations", 2)


def test_final_return_at_a_budget_reads_each_run_there_and_leaves_out_short_runs():
    long_runs = [budget_run(0, [0.0, 10.0, 20.0, 30.0]), budget_run(1, [0.0, 20.0, 40.0, 60.0])]
    short = budget_run(2, [5.0])
    entry = statistics.summarize_at_budget([*long_runs, short], "env_steps", 200, last_k=1)
    assert entry.finals == [10.0, 20.0] and entry.mean == pytest.approx(15.0)
    assert entry.iqm_low <= entry.iqm <= entry.iqm_high
    by_time = statistics.summarize_at_budget(long_runs, "train_seconds", 6.0, last_k=2)
    assert by_time.finals == [pytest.approx(15.0), pytest.approx(30.0)]


def test_report_reads_every_variant_at_the_spec_budgets(tmp_path):
    from genpo.experiments.report import write_report

    spec = parse_spec(
        f'out = "{tmp_path}"\nseeds = [0, 1]\niterations = 4\nlast_k = 1\n'
        "report_env_steps = [200]\nreport_train_seconds = [6.0]\n" + VARIANT
    )
    for job, returns in zip(plan(spec), ([0.0, 10.0, 20.0, 30.0], [0.0, 20.0, 40.0, 60.0]), strict=True):
        job.run_dir.mkdir(parents=True)
        lines = ["iteration,env_steps,wall_time,return_mean"]
        lines += [f"{i + 1},{100 * (i + 1)},2.0,{value}" for i, value in enumerate(returns)]
        (job.run_dir / "metrics.csv").write_text("\n".join(lines) + "\n")
    report = write_report(spec, "genpo sweep spec.toml").read_text()
    budgets = report.split("## At other budgets")[1]
    assert "| a | 200 env steps | 2 | 15.00 ± 7.07 |" in budgets
    assert "| a | 6 train s | 2 | 30.00 ± 14.14 |" in budgets


def test_a_report_rebuild_redraws_a_figure_only_when_its_data_changed(tmp_path):
    from genpo.experiments.report import write_report

    spec = parse_spec(f'out = "{tmp_path}"\nseeds = [0, 1]\niterations = 4\nlast_k = 1\n' + VARIANT)

    def write_runs(scale: float) -> None:
        for job, returns in zip(plan(spec), ([0.0, 10.0, 20.0, 30.0], [0.0, 20.0, 40.0, 60.0]), strict=True):
            job.run_dir.mkdir(parents=True, exist_ok=True)
            lines = ["iteration,env_steps,wall_time,return_mean"]
            lines += [f"{i + 1},{100 * (i + 1)},2.0,{scale * value}" for i, value in enumerate(returns)]
            (job.run_dir / "metrics.csv").write_text("\n".join(lines) + "\n")

    figures = [tmp_path / "curves_env_steps.png", tmp_path / "curves_wall_time.png", tmp_path / "curves.csv"]
    write_runs(1.0)
    write_report(spec, "genpo sweep spec.toml")
    first = {path: (path.stat().st_mtime_ns, path.read_bytes()) for path in figures}
    write_report(spec, "genpo sweep spec.toml")
    assert {path: (path.stat().st_mtime_ns, path.read_bytes()) for path in figures} == first
    figures[0].unlink()
    write_report(spec, "genpo sweep spec.toml")
    assert figures[0].is_file() and figures[1].stat().st_mtime_ns == first[figures[1]][0]
    write_runs(2.0)
    write_report(spec, "genpo sweep spec.toml")
    assert all(path.read_bytes() != first[path][1] for path in figures[1:])


def test_report_warns_when_the_runs_of_a_table_differ_in_cpu_or_precision(tmp_path):
    from genpo.experiments.report import write_report

    spec = parse_spec(f'out = "{tmp_path}"\nseeds = [0, 1]\niterations = 2\n' + VARIANT)
    cpus = ["Intel Xeon", "AMD EPYC"]
    for job, cpu in zip(plan(spec), cpus, strict=True):
        job.run_dir.mkdir(parents=True)
        (job.run_dir / "metrics.csv").write_text("iteration,env_steps,wall_time,return_mean\n1,100,1.0,5.0\n")
        provenance = {"cpu": {"model": cpu, "flags": {"avx512_bf16": cpu == "AMD EPYC"}}, "precision": {"actor": "float32"}}
        (job.run_dir / "run.json").write_text(json.dumps({"provenance": provenance}))
    report = write_report(spec, "genpo sweep spec.toml").read_text()
    assert "**Warning: the runs compared here differ in cpu**" in report
    assert "| a | 1 | AMD EPYC [avx512_bf16] | actor: float32 |" in report.split("## Provenance")[1]
    second = plan(spec)[1].run_dir / "run.json"
    second.write_text((plan(spec)[0].run_dir / "run.json").read_text())
    report = write_report(spec, "genpo sweep spec.toml").read_text()
    assert "Warning" not in report and "| a | 2 | Intel Xeon [none] | actor: float32 |" in report


def _write_run(job, precision: dict[str, str]) -> None:
    job.run_dir.mkdir(parents=True)
    (job.run_dir / "metrics.csv").write_text("iteration,env_steps,wall_time,return_mean\n1,100,1.0,5.0\n")
    provenance = {"cpu": {"model": "Intel Xeon", "flags": {"avx512_bf16": True}}, "precision": precision}
    (job.run_dir / "run.json").write_text(json.dumps({"provenance": provenance}))


def test_report_warns_on_precision_only_within_a_variant(tmp_path):
    """Two variants with different networks (a flow, a Gaussian) differ in precision by design; the
    runs of one variant must not."""
    from genpo.experiments.report import write_report

    spec = parse_spec(f'out = "{tmp_path}"\nseeds = [0, 1]\niterations = 2\n' + VARIANT + VARIANT.replace('"a"', '"b"'))
    flow, gaussian = {"actor.flow.velocity_network": "float32"}, {"actor": "float32"}
    for job in plan(spec):
        _write_run(job, flow if job.variant.name == "a" else gaussian)
    assert "Warning" not in write_report(spec, "genpo sweep spec.toml").read_text()
    second_a = next(job for job in plan(spec) if job.variant.name == "a" and job.seed == 1)
    shutil.rmtree(second_a.run_dir)
    _write_run(second_a, {"actor.flow.velocity_network": "bfloat16"})
    report = write_report(spec, "genpo sweep spec.toml").read_text()
    assert "**Warning: the runs compared here differ in precision of a**" in report


# ------------------------------------------------------------------------------------------ real sweeps
@pytest.fixture(scope="module")
def resumed_sweep(tmp_path_factory):
    """A tiny real sweep (2 variants x 2 seeds x 2 iterations), run, one run set back to its
    iteration-0 checkpoint as if killed early (no summary), run again."""
    tmp_path = tmp_path_factory.mktemp("sweep")
    spec = write_spec(
        tmp_path,
        """
        [[variants]]
        name = "genpo"
        config = "tasks/pendulum.gin"

        [[variants]]
        name = "gaussian"
        config = "tasks/pendulum_gaussian.gin"
        """,
    )
    first = run_sweep(spec, max_parallel=2)
    metrics = {job.label: job.run_dir / "metrics.csv" for job in plan(spec)}
    stamps = {label: path.stat().st_mtime_ns for label, path in metrics.items()}
    killed = spec.out / "gaussian" / "seed1"
    (killed / "summary.json").unlink()
    shutil.copyfile(killed / "checkpoints" / "iteration_0000000.pt", killed / "checkpoints" / "latest.pt")
    events = []
    second = run_sweep(spec, max_parallel=2, on_event=lambda event, job, result: events.append((event, job.label)))
    code = main(["sweep", str(spec.path), "--report-only"])
    return spec, first, second, events, stamps, metrics, code


def test_sweep_runs_everything_then_reruns_only_the_unfinished_run(resumed_sweep):
    spec, first, second, events, stamps, metrics, _ = resumed_sweep
    assert [result.status for result in first] == ["ok"] * 4
    assert sorted(events) == sorted(
        [("skip", "genpo/seed0"), ("skip", "genpo/seed1"), ("skip", "gaussian/seed0"), ("start", "gaussian/seed1"), ("done", "gaussian/seed1")]
    )
    assert [result.status for result in second] == ["skipped", "skipped", "skipped", "ok"]
    for label, path in metrics.items():
        changed = path.stat().st_mtime_ns != stamps[label]
        assert changed == (label == "gaussian/seed1"), label
    rerun = spec.out / "gaussian" / "seed1"
    assert json.loads((rerun / "summary.json").read_text())["iterations"] == 2
    assert len((rerun / "metrics.csv").read_text().splitlines()) == 1 + 2  # resumed from iteration 0, not appended


def test_report_has_every_variant_and_the_plots(resumed_sweep):
    spec, *_, code = resumed_sweep
    assert code == 0
    report = (spec.out / "report.md").read_text()
    rows = results_rows(report)
    assert [row.split("|")[1].strip() for row in rows] == ["genpo", "gaussian"]
    assert all(row.split("|")[2].strip() == "2" for row in rows)
    assert "genpo sweep" in report and "--report-only" in report and "tasks/pendulum_gaussian.gin" in report
    # commands as a reader types them: no interpreter or config path of this machine
    assert "- gaussian: `genpo train tasks/pendulum_gaussian.gin --out " in report
    assert sys.executable not in report and str(GIN_DIR) not in report and str(Path.cwd()) not in report.split("## Spec")[0]
    for name in ("curves_env_steps.png", "curves_wall_time.png", "curves.csv"):
        assert (spec.out / name).stat().st_size > 0


def results_rows(report: str) -> list[str]:
    """The rows of the report's results table (the one before its first section)."""
    table = report.split("\n## ")[0]
    return [line for line in table.splitlines() if line.startswith("| ") and not line.startswith("| variant")]


def test_archive_keeps_the_metrics_and_rebuilds_the_same_report(resumed_sweep, tmp_path, monkeypatch):
    spec, *_ = resumed_sweep
    monkeypatch.chdir(tmp_path)
    archive = tmp_path / "archive"
    assert main(["sweep", str(spec.path), "--report-only", "--archive", str(archive)]) == 0
    command = (archive / "report.md").read_text().split("## Command")[1].split("Each run")[0]
    assert "--archive archive" in command and str(tmp_path) not in command  # paths under the cwd shown relative
    kept = sorted(str(path.relative_to(archive)) for path in archive.rglob("*") if path.is_file())
    runs = [f"{variant}/seed{seed}" for variant in ("genpo", "gaussian") for seed in (0, 1)]
    expected = [f"{run}/{name}" for run in runs for name in ("config.gin", "metrics.csv", "run.json", "summary.json")]
    assert kept == sorted([*expected, "report.md", "curves.csv", "curves_env_steps.png", "curves_wall_time.png"])
    original = results_rows((spec.out / "report.md").read_text())
    assert results_rows((archive / "report.md").read_text()) == original
    (archive / "report.md").unlink()
    assert main(["sweep", str(spec.path), "--report-only", "--out", str(archive)]) == 0
    assert results_rows((archive / "report.md").read_text()) == original
    with pytest.raises(SystemExit, match="--archive needs --report-only"):
        main(["sweep", str(spec.path), "--archive", str(archive)])


def test_report_written_outside_the_working_directory_shows_no_absolute_path(resumed_sweep, tmp_path, monkeypatch):
    spec, *_ = resumed_sweep
    (tmp_path / "repo").mkdir()
    monkeypatch.chdir(tmp_path / "repo")
    archive = tmp_path / "scratch" / "archive"
    assert main(["sweep", str(spec.path), "--report-only", "--archive", str(archive)]) == 0
    report = (archive / "report.md").read_text().split("```toml")[0]  # the spec's own text is quoted verbatim
    assert str(tmp_path) not in report and str(spec.out.parent) not in report
    assert "--archive ../scratch/archive" in report
    assert "--out ../scratch/archive/gaussian/seed" in report


def copied_sweep(resumed_sweep, tmp_path) -> tuple[Path, str]:
    """A copy of the finished sweep's folder and the spec text that points at it (to edit and re-plan)."""
    spec, *_ = resumed_sweep
    out = tmp_path / "out"
    shutil.copytree(spec.out, out)
    return out, spec.text.replace(json.dumps(str(spec.out)), json.dumps(str(out)))


def test_finished_runs_are_evaluated_once_and_the_evaluation_is_reported_and_archived(resumed_sweep, tmp_path, capsys):
    out, text = copied_sweep(resumed_sweep, tmp_path)
    text = text.replace("[[variants]]", "evaluation_episodes = 3\n[[variants]]", 1)
    path = tmp_path / "evaluated.toml"
    path.write_text(text)
    assert main(["sweep", str(path), "--report-only"]) == 0
    assert capsys.readouterr().out.count("eval  ") == 4
    stored = json.loads((out / "gaussian" / "seed1" / "evaluation.json").read_text())
    assert (stored["episodes"], stored["noise"], stored["checkpoint_iteration"]) == (3, "zero", 2)
    assert str(tmp_path) not in json.dumps(stored)  # archived: no path of this machine
    assert main(["evaluate", str(out / "gaussian" / "seed1"), "--episodes", "3"]) == 0
    assert json.loads(capsys.readouterr().out)["return_mean"] == pytest.approx(stored["return_mean"], rel=1e-6)
    returns = [json.loads((out / variant / f"seed{seed}" / "evaluation.json").read_text())["return_mean"] for variant in ("genpo", "gaussian") for seed in (0, 1)]
    evaluation = (out / "report.md").read_text().split("## Evaluation")[1]
    assert f"| gaussian | 2 | {np.mean(returns[2:]):.2f} ± {np.std(returns[2:], ddof=1):.2f} |" in evaluation
    stamp = (out / "genpo" / "seed0" / "evaluation.json").stat().st_mtime_ns
    archive = tmp_path / "archive"
    assert main(["sweep", str(path), "--report-only", "--archive", str(archive)]) == 0
    assert "eval  " not in capsys.readouterr().out  # current evaluations are reused
    assert (out / "genpo" / "seed0" / "evaluation.json").stat().st_mtime_ns == stamp
    assert (archive / "genpo" / "seed0" / "evaluation.json").is_file()
    assert (archive / "report.md").read_text().split("## Evaluation")[1].split("##")[0] == evaluation.split("##")[0]


def test_runs_of_an_edited_config_are_refused_not_reported_as_the_new_ones(resumed_sweep, tmp_path, capsys):
    out, text = copied_sweep(resumed_sweep, tmp_path)
    path = tmp_path / "edited.toml"
    path.write_text(text.replace('name = "gaussian"', 'name = "gaussian"\nbindings = ["actor.gaussian.init_std = 0.5"]'))
    assert main(["sweep", str(path)]) == 2
    error = capsys.readouterr().err
    assert "2 run(s) in the sweep's folder were made with another config" in error
    assert f"{out / 'gaussian' / 'seed0'}: the run has 'gaussian.init_std = 1.0' where the spec now gives 'gaussian.init_std = 0.5'" in error
    assert "genpo/seed0" not in error
    path.write_text(text.replace("iterations = 2", "iterations = 3"))  # a longer budget extends the runs
    assert [config_difference(job) for job in plan(load_spec(path))] == [None] * 4


def test_a_binding_to_a_declared_default_is_the_same_config_as_none(resumed_sweep, tmp_path):
    """A spec that now binds a parameter its runs left unbound, to the default the component declares
    (a parameter added since, or a moved default pinned back), still owns those runs; any other value
    does not."""
    out, text = copied_sweep(resumed_sweep, tmp_path)
    path = tmp_path / "pinned.toml"
    path.write_text(text.replace('name = "genpo"', 'name = "genpo"\nbindings = ["actor.genpo.noise_scale = 1.0"]'))
    assert "noise_scale" not in (out / "genpo" / "seed0" / "config.gin").read_text()
    assert [config_difference(job) for job in plan(load_spec(path))] == [None] * 4
    path.write_text(text.replace('name = "genpo"', 'name = "genpo"\nbindings = ["actor.genpo.noise_scale = 0.7"]'))
    differences = [config_difference(job) for job in plan(load_spec(path))]
    assert sum(difference is not None for difference in differences) == 2
    assert all("actor.genpo.noise_scale = 0.7" in difference for difference in differences if difference is not None)


def test_bad_evaluation_settings_fail_naming_the_key(tmp_path):
    with pytest.raises(ValueError, match="evaluation_noise must be one of zero, fixed, random"):
        write_spec(tmp_path, 'evaluation_noise = "none"\n[[variants]]\nname = "a"\nconfig = "tasks/pendulum.gin"\n')
    with pytest.raises(ValueError, match="evaluation_episodes"):
        write_spec(tmp_path, 'evaluation_episodes = 0\n[[variants]]\nname = "a"\nconfig = "tasks/pendulum.gin"\n')


def test_failing_run_is_reported_and_the_others_finish(tmp_path, capsys):
    spec = write_spec(
        tmp_path,
        """
        [[variants]]
        name = "good"
        config = "tasks/pendulum.gin"

        [[variants]]
        name = "bad"
        config = "tasks/pendulum.gin"
        bindings = ["coupling.genpo.q = 0.5"]
        """,
        seeds=(0,),
        iterations=1,
    )
    code = main(["sweep", str(spec.path), "--max-parallel", "2"])
    assert code == 1
    captured = capsys.readouterr()
    assert "FAIL  bad/seed0" in captured.err and "doesn't have a parameter named 'q'" in captured.err
    assert json.loads((spec.out / "good" / "seed0" / "summary.json").read_text())["iterations"] == 1
    status = json.loads((spec.out / "bad" / "seed0" / "sweep_run.json").read_text())
    assert status["returncode"] != 0 and "'q'" in status["stderr_tail"]
    report = (spec.out / "report.md").read_text()
    assert "## Failed runs" in report and "bad/seed0" in report and "| good | 1 |" in report and "| bad | 0 |" in report


def test_dry_run_prints_commands_and_runs_nothing(tmp_path, capsys):
    spec = write_spec(tmp_path, '[[variants]]\nname = "a"\nconfig = "tasks/pendulum.gin"\n')
    assert main(["sweep", str(spec.path), "--dry-run"]) == 0
    output = capsys.readouterr().out
    assert output.count("run    a/seed") == 2 and "--seed 1" in output
    assert not spec.out.exists()


def test_variants_option_keeps_only_the_matching_variants_and_a_pattern_matching_none_fails(tmp_path, capsys):
    spec = write_spec(
        tmp_path,
        "".join(f'[[variants]]\nname = "{name}"\nconfig = "tasks/pendulum.gin"\n' for name in ("ant.genpo", "ant.gaussian", "hopper.genpo")),
    )
    assert main(["sweep", str(spec.path), "--dry-run", "--variants", "ant.*"]) == 0
    output = capsys.readouterr().out
    assert "ant.genpo/seed0" in output and "ant.gaussian/seed1" in output and "hopper" not in output
    assert main(["sweep", str(spec.path), "--dry-run", "--variants", "hopper.genpo", "--variants", "*.gaussian"]) == 0
    output = capsys.readouterr().out
    assert "hopper.genpo/seed0" in output and "ant.gaussian/seed0" in output and "ant.genpo" not in output
    assert main(["sweep", str(spec.path), "--dry-run", "--variants", "walker*"]) == 2
    error = capsys.readouterr().err
    assert "'walker*' matches no variant" in error and "ant.genpo, ant.gaussian, hopper.genpo" in error


def test_job_state_skips_finished_resumes_checkpointed_and_restarts_failed_runs(tmp_path):
    from conftest import TINY_BINDINGS

    from genpo.builders import new_experiment
    from genpo.experiments.runner import job_state

    spec = write_spec(tmp_path, '[[variants]]\nname = "a"\nconfig = "tasks/pendulum.gin"\n', seeds=range(5), iterations=5)
    jobs = plan(spec)
    trained, _ = new_experiment(tmp_path / "trained", ["tasks/pendulum.gin"], list(TINY_BINDINGS))
    trained.train(3, quiet=True)
    for job, returncode in zip(jobs[1:4], (0, 143, 1), strict=True):
        shutil.copytree(tmp_path / "trained", job.run_dir)
        (job.run_dir / "sweep_run.json").write_text(json.dumps({"returncode": returncode}))
    (jobs[0].run_dir).mkdir(parents=True)
    (jobs[0].run_dir / "summary.json").write_text(json.dumps({"iterations": 5}))  # finished
    (jobs[4].run_dir / "checkpoints").mkdir(parents=True)
    (jobs[4].run_dir / "checkpoints" / "latest.pt").write_bytes(b"")  # killed while... nothing loadable
    assert [job_state(job) for job in jobs] == [
        ("finished", None),
        ("resume", 2),  # clean finish of a smaller budget
        ("resume", 2),  # stopped by SIGTERM (checkpointed)
        ("fresh", None),  # failed on its own
        ("fresh", None),  # no loadable checkpoint
    ]
    assert train_command(jobs[1], 2)[-5:] == ["--resume", str(jobs[1].run_dir), "--iterations", "2", "--quiet"]


def test_example_spec_parses():
    spec = load_spec(Path(__file__).resolve().parents[1] / "sweeps" / "pendulum_schemes.toml")
    names = [variant.name for variant in spec.variants]
    assert names[:2] == ["genpo", "gaussian"]
    assert (spec.seeds, spec.iterations, spec.threads_per_run) == ((0, 1, 2), 60, 1)


SWEEPS = Path(__file__).resolve().parents[1] / "sweeps"
SPEC_FILES = sorted(path for path in SWEEPS.rglob("*.toml") if path.relative_to(SWEEPS).parts[0] != "tune")  # tune specs: test_tune.py


@pytest.mark.parametrize("path", SPEC_FILES, ids=[path.stem for path in SPEC_FILES])
def test_every_committed_spec_parses_and_its_bindings_are_valid(path):
    """Every spec in sweeps/ loads, and each variant's config + bindings parse in gin."""
    import gin

    from genpo.builders.config import parse_config

    spec = load_spec(path)
    assert plan(spec)
    for variant in spec.variants:
        gin.clear_config()
        parse_config([variant.config], [*spec.bindings, *variant.bindings])


# ------------------------------------------------------------------------------------------ Ray backend
def test_ray_backend_gives_the_local_backends_report_rows(resumed_sweep, tmp_path):
    """The same spec and seeds as Ray tasks on a Ray instance started here: the same runs and the same
    report rows (but for the training seconds)."""
    pytest.importorskip("ray", reason="the scale extra")
    spec, *_ = resumed_sweep
    out = tmp_path / "ray"
    path = tmp_path / "ray.toml"
    path.write_text(spec.text.replace(json.dumps(str(spec.out)), json.dumps(str(out))))
    assert main(["sweep", str(path), "--backend", "ray", "--cpus-per-run", "1"]) == 0
    for job in plan(spec):
        status = json.loads((out / job.variant.name / job.run_dir.name / "sweep_run.json").read_text())
        assert status["returncode"] == 0 and "--seed" in status["command"]

    def without_seconds(report: Path) -> list[str]:
        return [row.rsplit("|", 2)[0] for row in results_rows(report.read_text())]

    assert without_seconds(out / "report.md") == without_seconds(spec.out / "report.md")
    with pytest.raises(SystemExit, match="--max-parallel is for --backend local"):
        main(["sweep", str(path), "--backend", "ray", "--max-parallel", "2"])
    with pytest.raises(SystemExit, match="--address need --backend ray"):
        main(["sweep", str(path), "--address", "auto"])
