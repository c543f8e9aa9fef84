"""Where a run came from: the code, the packages, the machine and the numerics it ran with.

:func:`record_provenance` adds a ``provenance`` entry to ``run.json`` when a run starts and one more
to ``resumes`` each time it is resumed (a resume may run elsewhere): genpo's version, the git commit of
the checkout genpo was imported from (with its uncommitted changes stored beside ``run.json`` as a
patch; no git entry outside a checkout), the versions of the packages that decide the numbers, the CPU
model and the flags that change bf16/fp32 speed and rounding, torch's thread count, the precision each
network ran in, the device, and the command line. Paths are written relative to the working
directory: nothing here names the machine's folders.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import json
import os
import platform
import shlex
import subprocess
import sys
from collections.abc import Iterator, Mapping
from importlib import metadata
from pathlib import Path

import torch
from torch import nn

from genpo.training.atomic_files import atomic_write_text
from genpo.training.run_directory import RUN_RECORD_FILE, update_run_entries

GIT_DIFF_FILE = "git_diff.patch"
PACKAGED_GIN = Path(__file__).resolve().parents[1] / "gin"
# Distribution names of the packages whose versions change a run's numbers.
PACKAGES = {
    "torch": "torch",
    "torchrl": "torchrl",
    "tensordict": "tensordict",
    "gin": "gin-config",
    "gymnasium": "gymnasium",
    "mujoco": "mujoco",
    "numpy": "numpy",
    "rsl_rl": "rsl-rl-lib",
}
# CPU flags that decide how fast (and, for bf16, whether natively) the networks' matmuls run.
NUMERICS_FLAGS = ("avx512_bf16", "amx_bf16", "avx512f", "avx2")
# The fields a sweep report compares: the CPU across a table's runs, the precision within a variant's.
COMPARED_FIELDS = ("cpu", "precision")

_command: contextvars.ContextVar[str | None] = contextvars.ContextVar("genpo_command", default=None)


@contextlib.contextmanager
def invocation(command: str) -> Iterator[None]:
    """Record ``command`` (e.g. ``genpo train tasks/pendulum.gin``) as the command line of the runs
    started or resumed inside."""
    token = _command.set(command)
    try:
        yield
    finally:
        _command.reset(token)


def command_line(argv: list[str] | None = None, cwd: Path | None = None) -> str:
    """The command (set by :func:`invocation`, else ``sys.argv``) with absolute paths made relative to
    the working directory."""
    given = _command.get()
    if given is not None:
        return given
    argv = list(sys.argv if argv is None else argv)
    if argv and Path(argv[0]).name in ("genpo", "cli.py", "__main__.py"):
        argv[0] = "genpo"
    return shlex.join(relative_path(arg, cwd) for arg in argv)


def relative_path(text: str, cwd: Path | None = None) -> str:
    """``text`` relative to ``cwd`` when it is an absolute path (also after ``--flag=``), else unchanged; a
    config shipped with genpo by its name under the packaged ``gin/`` folder (as ``genpo train`` finds it)."""
    flag, sep, value = text.partition("=") if text.startswith("--") else ("", "", text)
    if not os.path.isabs(value):
        return text
    path = Path(value)
    relative = str(path.relative_to(PACKAGED_GIN)) if path.is_relative_to(PACKAGED_GIN) else os.path.relpath(path, cwd or Path.cwd())
    return f"{flag}{sep}{relative}"


# -------------------------------------------------------------------------------------- pieces
def package_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name, distribution in PACKAGES.items():
        try:
            versions[name] = metadata.version(distribution)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


@functools.cache
def cpu_description() -> dict:
    """The CPU model and which of :data:`NUMERICS_FLAGS` it has (None where /proc/cpuinfo is absent)."""
    model, flags = None, None
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        lines = []
    for line in lines:
        key, _, value = line.partition(":")
        if key.strip() == "model name" and model is None:
            model = value.strip()
        elif key.strip() == "flags" and flags is None:
            present = set(value.split())
            flags = {flag: flag in present for flag in NUMERICS_FLAGS}
    model = model or platform.processor() or platform.machine()
    return {"model": model, "flags": flags, "logical_cores": os.cpu_count()}


def _dtype_name(dtype) -> str:
    return str(dtype).removeprefix("torch.")


def network_precision(networks: Mapping[str, nn.Module]) -> dict[str, str]:
    """The dtype each network's layers ran in: for every submodule with an ``autocast_dtype`` (e.g. a flow's
    velocity network) that dtype as resolved for its device, followed by what was asked for where that
    differs (``bfloat16 (auto)``), else its parameters' dtype; keyed by the submodule's path."""
    precision: dict[str, str] = {}
    for name, network in networks.items():
        modules = {f"{name}.{path}" if path else name: module for path, module in network.named_modules()}
        autocast = {path: module.autocast_dtype for path, module in modules.items() if hasattr(module, "autocast_dtype")}
        parameter = next(network.parameters(), None)
        stored = _dtype_name(parameter.dtype) if parameter is not None else "float32"
        if not autocast:
            precision[name] = stored
        for path, dtype in autocast.items():
            precision[path] = stored if dtype is None else _dtype_name(dtype)
            requested = getattr(modules[path], "requested_autocast_dtype", None)
            if isinstance(requested, str) and requested != dtype:
                precision[path] += f" ({requested})"
    return precision


def trainer_networks(trainer) -> dict[str, nn.Module]:
    """The actor and critic of a genpo trainer, or of the rsl_rl runner a baseline trainer wraps."""
    owner = trainer
    if not isinstance(getattr(trainer, "actor", None), nn.Module):
        owner = getattr(getattr(trainer, "runner", None), "alg", None)
    return {name: module for name in ("actor", "critic") if isinstance(module := getattr(owner, name, None), nn.Module)}


def git_state(source: Path | None = None) -> tuple[dict, str] | None:
    """(commit, dirty) and the uncommitted diff of the git checkout holding ``source`` (default: the
    genpo package); None outside a checkout or without git."""
    source = source or Path(__file__).resolve().parents[1]

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(source), *args], capture_output=True, text=True, check=True, timeout=30
        ).stdout

    try:
        commit = git("rev-parse", "HEAD").strip()
        diff = git("diff", "HEAD", "--no-color", "--no-ext-diff")
        untracked = git("ls-files", "--others", "--exclude-standard").split("\n")
    except (OSError, subprocess.SubprocessError):
        return None
    untracked = [name for name in untracked if name]
    return {"commit": commit, "dirty": bool(diff or untracked), "untracked_files": len(untracked)}, diff


# -------------------------------------------------------------------------------------- the record
def collect_provenance(run_dir: Path, *, trainer, device: str, diff_file: str = GIT_DIFF_FILE) -> dict:
    """The provenance of the process about to train ``trainer`` on ``device``; writes the uncommitted
    diff to ``run_dir / diff_file`` when there is one."""
    import genpo

    provenance: dict = {"genpo": genpo.__version__, "git": None}
    git = git_state()
    if git is not None:
        info, diff = git
        if diff:
            atomic_write_text(Path(run_dir) / diff_file, diff)
            info["diff_file"] = diff_file
        provenance["git"] = info
    provenance.update(
        versions=package_versions(),
        cpu=cpu_description(),
        torch_threads=torch.get_num_threads(),
        threads_requested=getattr(getattr(trainer, "threads", None), "requested", None),
        device=str(device),
        precision=network_precision(trainer_networks(trainer)),
        command=command_line(),
    )
    return provenance


def record_provenance(run_dir: str | Path, *, trainer, device: str, resumed_at: int | None = None) -> dict:
    """Add this process's provenance to the run's ``run.json``: as ``provenance`` for a new run, or as an
    entry of ``resumes`` (with the iteration it resumed at, its diff in ``git_diff.iteration_<n>.patch``)."""
    run_dir = Path(run_dir)
    if resumed_at is None:
        provenance = collect_provenance(run_dir, trainer=trainer, device=device)
        update_run_entries(run_dir, lambda entries: entries.update(provenance=provenance))
    else:
        diff_file = f"git_diff.iteration_{resumed_at}.patch"
        provenance = collect_provenance(run_dir, trainer=trainer, device=device, diff_file=diff_file)
        entry = {"iteration": resumed_at, "provenance": provenance}
        update_run_entries(run_dir, lambda entries: entries.setdefault("resumes", []).append(entry))
    return provenance


def read_provenance(run_dir: str | Path) -> dict | None:
    """The provenance the run started with (None for a run recorded without one)."""
    try:
        return json.loads((Path(run_dir) / RUN_RECORD_FILE).read_text()).get("provenance")
    except (OSError, json.JSONDecodeError, AttributeError):
        return None


def comparison_key(provenance: dict | None) -> dict[str, str] | None:
    """What must agree between runs compared in one table (:data:`COMPARED_FIELDS`): the CPU (model and
    numerics flags) across the table, the networks' precision across the runs of one variant; each as
    one text."""
    if provenance is None:
        return None
    cpu = provenance.get("cpu") or {}
    flags = cpu.get("flags") or {}
    present = ",".join(flag for flag, has in flags.items() if has)
    precision = provenance.get("precision") or {}
    return {
        "cpu": f"{cpu.get('model')} [{present or 'none'}]" if flags else str(cpu.get("model")),
        "precision": ", ".join(f"{name}: {dtype}" for name, dtype in sorted(precision.items())),
    }
