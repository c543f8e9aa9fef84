"""A run directory is safe to share and to touch from two terminals: opening a run never runs code from
it, genpo deletes only what it wrote, one process writes a run at a time, metrics.csv survives a crash,
and every bad path, size or fault fails in one line naming the culprit."""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
from pathlib import Path

import gin
import pytest
import torch
from conftest import GENPO_CONFIG, TINY_BINDINGS
from test_fault_injection import start_child, wait_for_line
from test_gin_configs import RUNNABLE
from test_run_directory import run_cli, tiny, train
from test_sweep import VARIANT, write_spec

from genpo.builders.config import parse_config
from genpo.builders.safe_config import UnsafeConfigError, check_run_config
from genpo.deployment.policy import load_policy
from genpo.experiments.command import main as sweep_main
from genpo.experiments.runner import run_job
from genpo.experiments.spec import plan
from genpo.training.errors import RunWriteError
from genpo.training.run_directory import config_fingerprint
from genpo.training.run_lock import SWEEP_LOCK_FILE, RunLock, RunLockedError
from genpo.training.run_logger import read_metrics

pytestmark = pytest.mark.xdist_group("fault_injection")  # the child processes share 2 cores


def one_line(err: str) -> str:
    """The single line of a failing command's stderr (fails when there are more, or a traceback)."""
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A finished 1-iteration tiny Pendulum run (copy it before changing it)."""
    run_dir = tmp_path_factory.mktemp("trained") / "run"
    code, _, err = train(run_dir, 1)
    assert code == 0, err
    return run_dir


def copy_run(trained: Path, tmp_path: Path) -> Path:
    run_dir = tmp_path / "run"
    shutil.copytree(trained, run_dir)
    return run_dir


@pytest.fixture
def read_only_folder(tmp_path) -> Path:
    """A folder nobody here can write: a chmod 555 folder, or (as root, whom modes do not stop) /proc/self."""
    if os.geteuid() != 0:
        folder = tmp_path / "read-only"
        folder.mkdir()
        folder.chmod(0o555)
        yield folder
        folder.chmod(0o755)
        return
    if not os.path.isdir("/proc/self") or os.access("/proc/self", os.W_OK):
        pytest.skip("no read-only folder available to root here")
    yield Path("/proc/self")


# ------------------------------------------------------------------------------ opening a run runs no code
PAYLOADS = {
    "dynamic registration and os.system": (
        "from __gin__ import dynamic_registration\nimport os\n", "genpo.run.seed = @os.system()\n", 1,
    ),
    "import this": ("import this\n", "", 1),
    "a reference to os.system without an import": ("", "run.seed = @os.system()\n", None),
}


def plant(run_dir: Path, head: str, binding: str, marker: Path) -> Path:
    """Prepend ``head`` and append ``binding`` (its command touching ``marker``) to the run's config.gin
    and update run.json's fingerprint, as an attacker sharing the run would."""
    config = run_dir / "config.gin"
    binding = binding.replace("@os.system()", f"@os.system()\nos.system.command = 'touch {marker}'") if binding else ""
    text = head + config.read_text() + binding
    config.write_text(text)
    record = json.loads((run_dir / "run.json").read_text())
    record["config_sha256"] = config_fingerprint(text)
    (run_dir / "run.json").write_text(json.dumps(record))
    return config


@pytest.mark.parametrize("payload", list(PAYLOADS))
def test_a_planted_config_runs_no_code_in_any_command_that_opens_the_run(tmp_path, trained, payload):
    head, binding, line = PAYLOADS[payload]
    run_dir = copy_run(trained, tmp_path)
    marker = tmp_path / "pwned"
    config = plant(run_dir, head, binding, marker)
    for argv in (
        ("evaluate", run_dir, "--episodes", 1),
        ("play", run_dir),
        ("export", run_dir, "--out", tmp_path / "exported"),
        ("train", "--resume", run_dir, "--iterations", 1, "--quiet"),
    ):
        code, out, err = run_cli(*argv)
        assert code == 2, (argv, out, err)
        message = one_line(err)
        assert f"{config}:" in message and "refused" in message, message
        if line is not None:
            assert f"{config}:{line}:" in message
        assert "Beautiful is better than ugly" not in out + err
    with pytest.raises(UnsafeConfigError, match="refused"):
        load_policy(run_dir)
    assert not marker.exists()
    assert not (tmp_path / "exported").exists()


def test_the_config_genpo_writes_for_every_shipped_config_passes_the_restricted_reader(tmp_path):
    config = tmp_path / "config.gin"
    for shipped in RUNNABLE:
        gin.clear_config()
        parse_config([shipped], ["genpo.run.iterations = 2", "eval/genpo.build_env.num_envs = 3"])
        config.write_text(gin.config_str())
        check_run_config(config)  # raises, naming the line, if refused


@pytest.mark.parametrize(
    ("text", "culprit"),
    [
        ("include 'tasks/pendulum.gin'\n", "`include 'tasks/pendulum.gin'` refused"),
        ("GAMMA = 0.99\ngin.config.external_configurable.name = 'x'\n", "not one of genpo's configurables"),
        ("GAMMA = 0.99\nrun.seed = %os.environ\n", "neither a macro nor a gin constant"),
    ],
    ids=["include", "gin-internal", "foreign-constant"],
)
def test_the_restricted_reader_names_the_line_of_what_it_refuses(tmp_path, text, culprit):
    config = tmp_path / "config.gin"
    config.write_text(text)
    with pytest.raises(UnsafeConfigError) as refused:
        check_run_config(config)
    assert str(refused.value).startswith(f"{config}:{text.count(chr(10))}: ") and culprit in str(refused.value)


def test_a_malicious_checkpoint_is_refused_without_advice_to_load_it_unsafely(tmp_path, trained):
    run_dir = copy_run(trained, tmp_path)
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    latest = run_dir / "checkpoints" / "latest.pt"
    latest.unlink()  # a hard link to the iteration file: replace, do not write through it
    torch.save({"format": "genpo-checkpoint-v1", "actor": Payload()}, latest)
    code, _, err = run_cli("evaluate", run_dir, "--episodes", 1)
    message = one_line(err)
    assert code == 2 and f"checkpoint {latest}" in message and "not loaded" in message
    assert "weights_only" not in message
    latest.unlink()
    iteration_file = next((run_dir / "checkpoints").glob("*.pt"))
    latest.write_bytes(iteration_file.read_bytes()[:1000])  # truncated
    code, _, err = run_cli("evaluate", run_dir, "--episodes", 1)
    assert code == 2 and "corrupt or truncated" in one_line(err) and "weights_only" not in err
    assert not marker.exists()


# ------------------------------------------------------------------------------ genpo deletes only what it wrote
def test_overwrite_refuses_a_folder_that_holds_no_run_and_deletes_nothing(tmp_path):
    folder = tmp_path / "thesis"
    (folder / "data").mkdir(parents=True)
    (folder / "thesis.txt").write_text("three years")
    (folder / "data" / "raw.bin").write_bytes(b"\x00\x01")
    (folder / "metrics.csv").write_text("not genpo's\n")
    for extra in ((), ("--overwrite",)):
        code, out, err = run_cli("train", GENPO_CONFIG, "--out", folder, "--iterations", 1, "--quiet", *extra, *tiny())
        message = one_line(err)
        assert code == 2 and "holds no genpo run" in message and "data/, metrics.csv, thesis.txt" in message
        assert "run directory:" not in out
    assert (folder / "thesis.txt").read_text() == "three years" and (folder / "data" / "raw.bin").is_file()
    assert sorted(path.name for path in folder.iterdir()) == ["data", "metrics.csv", "thesis.txt"]


def test_overwrite_of_a_run_deletes_genpos_files_and_keeps_the_users(tmp_path, trained):
    run_dir = copy_run(trained, tmp_path)
    (run_dir / "notes.txt").write_text("mine")
    code, _, err = run_cli("train", GENPO_CONFIG, "--out", run_dir, "--iterations", 2, "--quiet", "--overwrite", *tiny())
    assert code == 0, err
    assert (run_dir / "notes.txt").read_text() == "mine"
    assert [row["iteration"] for row in read_metrics(run_dir / "metrics.csv")] == [1, 2]


def test_a_symbolic_link_is_refused_as_out_in_one_line(tmp_path, trained):
    real = copy_run(trained, tmp_path)
    link = tmp_path / "link"
    link.symlink_to(real)
    before = sorted(path.name for path in real.iterdir())
    code, _, err = run_cli("train", GENPO_CONFIG, "--out", link, "--iterations", 1, "--quiet", "--overwrite", *tiny())
    assert code == 2 and "is a symbolic link" in one_line(err)
    assert sorted(path.name for path in real.iterdir()) == before


@pytest.mark.parametrize("beside", ["nothing", "a failed run"])
def test_a_sweep_leaves_a_folder_holding_a_users_file_alone(tmp_path, trained, beside):
    spec = write_spec(tmp_path, VARIANT, seeds=(0,), iterations=2)  # more than the trained run's 1
    (job,) = plan(spec)
    if beside == "a failed run":  # a run the sweep would restart from scratch
        shutil.copytree(trained, job.run_dir)
        (job.run_dir / "sweep_run.json").write_text(json.dumps({"returncode": 1}))
    job.run_dir.mkdir(parents=True, exist_ok=True)
    before = sorted(path.name for path in job.run_dir.iterdir())
    (job.run_dir / "precious.txt").write_text("keep")
    result = run_job(job)
    assert result.status == "failed" and "precious.txt" in result.stderr_tail and "not started" in result.stderr_tail
    assert sorted(path.name for path in job.run_dir.iterdir()) == sorted([*before, "precious.txt"])


# ------------------------------------------------------------------------------ one writer per run directory
def test_a_second_writer_fails_at_once_naming_the_holder_and_the_lock_goes_with_a_killed_holder(tmp_path):
    run_dir = tmp_path / "run"
    bindings = [argument for binding in TINY_BINDINGS for argument in ("--gin", binding)]
    holder = start_child(["train", GENPO_CONFIG, "--out", str(run_dir), "--iterations", "4", "--quiet", *bindings], "collection", 2)
    try:
        wait_for_line(holder, "FAULT_POINT")
        seconds = [
            start_child(["train", "--resume", str(run_dir), "--quiet"]),
            start_child(["train", GENPO_CONFIG, "--out", str(run_dir), "--overwrite", "--quiet", *bindings]),
        ]
        for second in seconds:
            out, err = second.communicate(timeout=120)
            message = one_line(err)
            assert second.returncode == 2 and f"{run_dir} is in use" in message and f"PID {holder.pid}" in message
            assert "started 20" in message and "run directory:" not in out
        assert holder.poll() is None  # still training, untouched
        assert [row["iteration"] for row in read_metrics(run_dir / "metrics.csv")] == [1]
    finally:
        holder.kill()
        holder.communicate(timeout=60)
    assert holder.returncode == -signal.SIGKILL
    with RunLock(run_dir):  # the kernel released the killed holder's lock
        pass
    code, _, err = run_cli("train", "--resume", run_dir, "--quiet")
    assert code == 0, err
    assert [row["iteration"] for row in read_metrics(run_dir / "metrics.csv")] == [1, 2, 3, 4]


def test_a_second_sweep_on_the_same_folder_fails_at_once(tmp_path):
    spec = write_spec(tmp_path, VARIANT, seeds=(0,), iterations=1)
    with RunLock(spec.out, SWEEP_LOCK_FILE):
        with pytest.raises(RunLockedError, match=rf"{spec.out} is in use: sweep folder locked by PID {os.getpid()}"):
            sweep_main(tmp_path / "spec.toml", max_parallel=1, dry_run=False, report_only=False, command="genpo sweep")
    assert not list(spec.out.glob("a/*"))


# ------------------------------------------------------------------------------ metrics.csv after a crash
def test_a_torn_last_line_is_dropped_on_resume_and_integer_columns_stay_integers(tmp_path, trained):
    run_dir = copy_run(trained, tmp_path)
    with open(run_dir / "metrics.csv", "a") as handle:
        handle.write("2")  # a row cut short by a crash
    code, out, err = run_cli("train", "--resume", run_dir, "--iterations", 2, "--quiet")
    assert code == 0, err
    assert "dropped the last line" in out
    assert [row["iteration"] for row in read_metrics(run_dir / "metrics.csv")] == [1, 2, 3]
    first_cells = [line.split(",")[0] for line in (run_dir / "metrics.csv").read_text().splitlines()[1:]]
    assert first_cells == ["1", "2", "3"]
    # a resume that cuts rows rewrites the file: integers stay integers
    code, _, err = run_cli("train", "--resume", run_dir, "--iterations", 1, "--quiet")
    assert code == 0, err
    header, *lines = (run_dir / "metrics.csv").read_text().splitlines()
    env_steps = header.split(",").index("env_steps")
    assert all("." not in line.split(",")[env_steps] for line in lines)


def test_resume_without_metrics_csv_is_refused_in_one_line(tmp_path, trained):
    run_dir = copy_run(trained, tmp_path)
    (run_dir / "metrics.csv").unlink()
    code, _, err = run_cli("train", "--resume", run_dir, "--iterations", 1, "--quiet")
    assert code == 2 and f"{run_dir / 'metrics.csv'} is missing" in one_line(err)


def test_a_run_without_any_checkpoint_starts_again_on_resume(tmp_path, trained):
    run_dir = copy_run(trained, tmp_path)
    for path in (run_dir / "checkpoints").iterdir():
        path.unlink()
    code, out, err = run_cli("train", "--resume", run_dir, "--quiet")
    assert code == 0, err
    assert "holds no checkpoint yet" in out
    assert [row["iteration"] for row in read_metrics(run_dir / "metrics.csv")] == [1]


# ------------------------------------------------------------------------------ values gin cannot store
@pytest.mark.parametrize(
    ("binding", "culprit"),
    [
        ("lr_controller.kl_adaptive.learning_rate = 1e999", "gin binding lr_controller.kl_adaptive.learning_rate (--gin binding) = inf: not a finite number"),
        ("genpo.trainer.max_grad_norm = 1e999", "gin binding genpo.trainer.max_grad_norm (--gin binding) = inf: not a finite number"),
        ("genpo.trainer.max_grad_norm = nan", "--gin 'genpo.trainer.max_grad_norm = nan': cannot parse 'nan' (gin has no non-finite numbers"),
        ("genpo.trainer.max_grad_norm = -inf", "--gin 'genpo.trainer.max_grad_norm = -inf': cannot parse '-inf'"),
        ("critic.mlp.hidden_sizes = (16, 0)", "mlp: hidden_sizes must be positive integers (the width of each layer), got (16, 0)"),
        ("HIDDEN_SIZES = (0,)\nvelocity_network.mlp.hidden_sizes = %HIDDEN_SIZES", "VelocityMLP: hidden_sizes must be positive integers"),
    ],
    ids=["lr-1e999", "max-grad-norm-1e999", "nan", "minus-inf", "zero-width-critic", "zero-width-macro"],
)
def test_a_value_gin_cannot_store_or_a_zero_width_network_is_refused_in_one_line(tmp_path, binding, culprit):
    code, out, err = train(tmp_path / "run", 1, *binding.split("\n"))
    assert code == 2 and culprit in one_line(err)
    assert not (tmp_path / "run").exists()


# ------------------------------------------------------------------------------ one line for each bad path or size
def test_a_missing_include_is_one_line(tmp_path):
    config = tmp_path / "task.gin"
    config.write_text("include 'tasks/no_such_task.gin'\n")
    code, _, err = run_cli("train", config, "--out", tmp_path / "run", "--quiet")
    assert code == 2 and f"{config}, line 1: include 'tasks/no_such_task.gin' not found" in one_line(err)


def test_a_num_envs_that_cannot_fit_in_memory_is_named(tmp_path):
    code, _, err = train(tmp_path / "run", 1, f"genpo.build_env.num_envs = {10**13}")
    assert code == 2 and f"build_env: num_envs = {10**13} envs of 'pendulum' do not fit in memory" in one_line(err)


@pytest.mark.parametrize("where", ["existing file", "under a file", "read-only folder"])
def test_an_unusable_out_fails_before_the_build(tmp_path, read_only_folder, where):
    afile = tmp_path / "afile"
    afile.write_text("x")
    out, culprit = {
        "existing file": (afile, f"--out {afile} is a file, not a folder"),
        "under a file": (afile / "run", f"--out {afile / 'run'} cannot be created: {afile} is a file"),
        "read-only folder": (read_only_folder / "run", "is not writable"),
    }[where]
    start = time.monotonic()
    code, stdout, err = run_cli("train", GENPO_CONFIG, "--out", out, "--quiet", *tiny())
    assert code == 2 and culprit in one_line(err) and "run directory:" not in stdout
    assert time.monotonic() - start < 5  # nothing was built
    assert afile.read_text() == "x"


def test_video_and_export_to_an_unwritable_path_fail_before_playing(tmp_path, trained, read_only_folder):
    code, out, err = run_cli("play", trained, "--video", read_only_folder / "episode.gif")
    assert code == 2 and "--video" in one_line(err) and "not writable" in err and "mean return" not in out
    code, _, err = run_cli("export", trained, "--out", read_only_folder / "exported")
    assert code == 2 and "--out" in one_line(err) and "not writable" in err


def test_a_full_disk_mid_run_stops_in_one_line_naming_the_last_good_checkpoint(tmp_path):
    run_dir = tmp_path / "run"
    bindings = [argument for binding in (*TINY_BINDINGS, "genpo.trainer.checkpoint_interval = 1") for argument in ("--gin", binding)]
    child = start_child(["train", GENPO_CONFIG, "--out", str(run_dir), "--iterations", "3", "--quiet", *bindings], "disk-full", 2)
    _, err = child.communicate(timeout=300)
    message = one_line(err)
    assert child.returncode == 2 and f"writing the run failed at iteration 2: No space left on device ({run_dir})" in message
    assert f"last good checkpoint: {run_dir / 'checkpoints' / 'latest.pt'} (iteration 1)" in message
    assert f"genpo train --resume {run_dir}" in message
    code, _, err = run_cli("train", "--resume", run_dir, "--quiet")
    assert code == 0, err
    assert [row["iteration"] for row in read_metrics(run_dir / "metrics.csv")] == [1, 2, 3]


@pytest.mark.filterwarnings("error::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_run_deleted_under_live_training_stops_in_one_line(tmp_path, make_tiny_experiment):
    run_dir = tmp_path / "run"
    trainer, _ = make_tiny_experiment(run_dir)
    iterate = trainer.run_iteration

    def deleting_iteration():
        metrics = iterate()
        if trainer.iteration == 2:
            shutil.rmtree(run_dir)
        return metrics

    trainer.run_iteration = deleting_iteration
    with pytest.raises(RunWriteError) as stopped:
        trainer.train(3, quiet=True)
    message = str(stopped.value)
    assert "\n" not in message and f"the run directory {run_dir} was deleted during training (at iteration 2)" in message
