"""``genpo export``: a run's policy as one self-contained ONNX and/or TorchScript graph plus a JSON card.

The graph is :class:`~genpo.deployment.graph.PolicyGraph` traced on CPU in float32: observation
normalisation, the actor's N flow steps unrolled, its readout and the run's action clipping. Tracing
records tensor operations only, so nothing of genpo (gin, TensorDicts, the registry) is left in it;
constant folding turns everything that does not depend on the inputs (the step-time embeddings and their
projections through the velocity network's first layer) into constants. The batch dimension is dynamic.
``noise="zero"`` bakes the deterministic policy (one input); ``noise="input"`` makes the base noise a
second input, ``noise`` [B, noise_dim] (standard normal for the stochastic policy).

A run trained with a reduced-precision velocity network (``velocity_network.mlp.autocast_dtype``) is
exported in float32 all the same (onnxruntime's CPU kernels have no bfloat16 activations, and float32
is what a robot stack expects): the same weights, evaluated without autocast. The card records the
training precision and how far the float32 graph's actions are from the run's own policy.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import warnings
from pathlib import Path

import torch

import genpo
from genpo.builders.evaluation import restore_policy
from genpo.deployment.graph import PolicyGraph, ZeroNoisePolicyGraph
from genpo.deployment.policy import check_genpo_run, policy_of
from genpo.training.run_directory import read_config
from genpo.training.run_folder import check_output_folder

FORMATS = ("onnx", "torchscript", "both")
NOISE_INPUTS = ("zero", "input")
ONNX_FILE = "policy.onnx"
TORCHSCRIPT_FILE = "policy.pt"
CARD_FILE = "policy.json"
EXPORT_DIR = "exported"
# Trace and check on batches other than 1, so that no size-1 broadcast is baked into the graph.
_TRACE_BATCH, _CHECK_BATCH = 3, 5
_CHECK_TOLERANCE = 1e-5


class ExportError(ValueError):
    """A policy that cannot be exported as asked; the message names the actor and the reason."""


def export_run(
    run_dir: str | Path,
    *,
    format: str = "both",
    noise: str = "zero",
    out: str | Path | None = None,
    checkpoint: str | Path = "latest",
) -> dict:
    """Export the run's policy to ``out`` (default ``RUN_DIR/exported/``): ``policy.onnx`` and/or
    ``policy.pt`` and ``policy.json`` (dims, inputs, clipping, checkpoint, the run's config text, versions).
    Returns the card written to ``policy.json``."""
    if format not in FORMATS:
        raise ValueError(f"export: format must be one of {', '.join(FORMATS)}, got {format!r}")
    if noise not in NOISE_INPUTS:
        raise ValueError(f"export: noise must be one of {', '.join(NOISE_INPUTS)}, got {noise!r}")
    run_dir = Path(run_dir)
    check_genpo_run(run_dir, "export")
    check_output_folder(run_dir / EXPORT_DIR if out is None else out, "--out")
    restored = restore_policy(run_dir, num_envs=1, checkpoint=checkpoint, device="cpu")
    restored.env.close()
    policy = policy_of(restored)
    graph = policy.graph
    check_exportable(graph)
    module = (graph if noise == "input" else ZeroNoisePolicyGraph(graph)).eval()
    check = example_inputs(module, graph, _CHECK_BATCH)
    with torch.no_grad():
        run_actions = module(*check)
        trained_autocast = float32_networks(graph.actor)
        deviation = (module(*check) - run_actions).abs().max().item()
    out = run_dir / EXPORT_DIR if out is None else Path(out)
    out.mkdir(parents=True, exist_ok=True)
    files = {}
    if format in ("torchscript", "both"):
        files["torchscript"] = _write_torchscript(module, graph, out / TORCHSCRIPT_FILE, policy.actor_name)
    if format in ("onnx", "both"):
        files["onnx"] = _write_onnx(module, graph, out / ONNX_FILE, policy.actor_name)
    config_file, _ = read_config(run_dir)
    card = {
        "actor": policy.actor_name,
        "observation_dim": graph.observation_dim,
        "action_dim": graph.action_dim,
        "noise_dim": graph.noise_dim,
        "noise": noise,
        "inputs": ["observation"] if noise == "zero" else ["observation", "noise"],
        "outputs": ["action"],
        "dtype": "float32",
        "trained_autocast_dtype": trained_autocast,
        "max_deviation_from_run_policy": deviation,
        "action_clip": graph.clip,
        "checkpoint": _relative(restored.checkpoint, run_dir),
        "checkpoint_iteration": restored.iteration,
        "files": files,
        "genpo_version": genpo.__version__,
        "torch_version": torch.__version__,
        "config": Path(config_file).read_text(),
    }
    (out / CARD_FILE).write_text(json.dumps(card, indent=2) + "\n")
    return card


def float32_networks(actor: torch.nn.Module) -> str | None:
    """Switch off autocast in every part of ``actor`` that runs under it; returns the dtype it ran in."""
    dtypes = set()
    for part in actor.modules():
        if getattr(part, "autocast_dtype", None) is not None:
            dtypes.add(part.autocast_dtype)
            part.autocast_dtype = None
    return ", ".join(sorted(dtypes)) or None


def check_exportable(graph: PolicyGraph) -> None:
    """Refuse, naming the actor and the reason, an actor one of whose parts declares ``export_unsupported``."""
    for name, part in graph.actor.named_modules():
        reason = getattr(part, "export_unsupported", None)
        if reason:
            where = f" ({name}: {type(part).__name__})" if name else ""
            raise ExportError(f"actor {_actor_name(graph)}{where} cannot be exported: {reason}")


def example_inputs(module: torch.nn.Module, graph: PolicyGraph, batch: int) -> tuple[torch.Tensor, ...]:
    generator = torch.Generator().manual_seed(batch)
    observation = torch.randn(batch, graph.observation_dim, generator=generator)
    if isinstance(module, ZeroNoisePolicyGraph):
        return (observation,)
    return observation, torch.randn(batch, graph.noise_dim, generator=generator)


def _write_torchscript(module: torch.nn.Module, graph: PolicyGraph, path: Path, actor: str) -> str:
    with torch.no_grad(), _quiet():
        try:
            traced = torch.jit.freeze(torch.jit.trace(module, example_inputs(module, graph, _TRACE_BATCH), check_trace=False))
        except Exception as error:  # tracing reports many error types; the message names the cause
            raise ExportError(f"actor {actor} cannot be exported to TorchScript: {_first_line(error)}") from error
        check = example_inputs(module, graph, _CHECK_BATCH)
        _check_same(actor, "TorchScript", traced(*check), module(*check))
    traced.save(str(path))
    return path.name


def _write_onnx(module: torch.nn.Module, graph: PolicyGraph, path: Path, actor: str) -> str:
    inputs = example_inputs(module, graph, _TRACE_BATCH)
    names = ["observation", "noise"][: len(inputs)]
    batch = torch.export.Dim("batch")
    with torch.no_grad(), _quiet():
        try:
            program = torch.onnx.export(
                module,
                inputs,
                dynamo=True,
                input_names=names,
                output_names=["action"],
                dynamic_shapes=tuple({0: batch} for _ in inputs),
                verbose=False,
            )
            program.save(str(path))
        except ImportError as error:
            raise ImportError(f"export to ONNX needs the deploy extra (pip install -e '.[deploy]'): {error}") from None
        except Exception as error:  # the exporter wraps its failures in several types
            raise ExportError(f"actor {actor} cannot be exported to ONNX: {_first_line(error)}") from error
        check = example_inputs(module, graph, _CHECK_BATCH)
        _check_same(actor, "ONNX", _run_onnx(path, names, check), module(*check))
    return path.name


def _run_onnx(path: Path, names: list[str], inputs: tuple[torch.Tensor, ...]) -> torch.Tensor:
    try:
        import onnxruntime
    except ImportError:
        raise ImportError("checking the ONNX export needs onnxruntime (the deploy extra: pip install -e '.[deploy]')") from None
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (action,) = session.run(None, {name: value.numpy() for name, value in zip(names, inputs, strict=True)})
    return torch.from_numpy(action)


def _check_same(actor: str, kind: str, exported: torch.Tensor, eager: torch.Tensor) -> None:
    difference = (exported - eager).abs().max().item()
    if not difference <= _CHECK_TOLERANCE:
        raise ExportError(
            f"actor {actor}: the {kind} graph differs from the policy by {difference:.3g} on a fresh batch "
            f"(> {_CHECK_TOLERANCE}); its trace does not generalise"
        )


@contextlib.contextmanager
def _quiet():
    """Silence the exporters' progress lines and tracer warnings (failures still raise)."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def _actor_name(graph: PolicyGraph) -> str:
    return getattr(graph.actor, "registered_name", type(graph.actor).__name__)


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}"


def _relative(path: Path, root: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(root.resolve()))
    except ValueError:
        return Path(path).name
