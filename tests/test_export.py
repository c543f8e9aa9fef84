"""genpo export: for every registered actor, the ONNX graph (onnxruntime) and the TorchScript module, loaded
in a fresh process that never imports genpo, give load_policy's actions; unexportable input fails in one line."""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from genpo import registry
from genpo.builders import GIN_DIR
from genpo.cli import main
from genpo.deployment.export import ExportError, export_run
from genpo.deployment.policy import load_policy

onnx = pytest.importorskip("onnx", reason="needs the deploy extra")
pytest.importorskip("onnxruntime", reason="needs the deploy extra")

ACTORS = registry.names("actor")
BATCHES = (1, 64)
TOLERANCE = 1e-5
CLIP = "genpo.build_env.clip_actions = 0.8"  # inside the graph: some tiny-policy actions exceed it

# Runs in a fresh interpreter: only numpy, onnxruntime and torch; fails if anything imported genpo.
DEPLOYED = r"""
import sys
import numpy as np
import onnxruntime
import torch

folder, inputs, outputs = sys.argv[1:]
data = np.load(inputs)
results = {}
for mode in ("input", "zero"):
    session = onnxruntime.InferenceSession(f"{folder}/{mode}/policy.onnx", providers=["CPUExecutionProvider"])
    module = torch.jit.load(f"{folder}/{mode}/policy.pt")
    for batch in (1, 64):
        feeds = {"observation": data[f"observation_{batch}"]}
        if mode == "input":
            feeds["noise"] = data[f"noise_{batch}"]
        results[f"onnx_{mode}_{batch}"] = session.run(None, feeds)[0]
        with torch.no_grad():
            results[f"torchscript_{mode}_{batch}"] = module(*(torch.from_numpy(value) for value in feeds.values())).numpy()
leaked = sorted(name for name in sys.modules if name == "genpo" or name.startswith("genpo."))
assert not leaked, leaked
np.savez(outputs, **results)
"""


def scheme_config(name: str) -> str:
    return str(GIN_DIR / "ablations" / f"scheme_{name}.gin")


def trained_run(make_tiny_experiment, run_dir, config, extra=()):
    """A tiny run after one iteration (so the observation normaliser has statistics), checkpointed."""
    trainer, _ = make_tiny_experiment(run_dir, config=config, extra=[*extra, "genpo.run.iterations = 1"])
    trainer.train(1, quiet=True)
    trainer.save()
    return run_dir


@pytest.mark.parametrize("name", ACTORS)
def test_exported_graphs_give_load_policy_actions_without_genpo(name, tmp_path, make_tiny_experiment):
    run = trained_run(make_tiny_experiment, tmp_path / "run", scheme_config(name), [CLIP])
    for noise in ("input", "zero"):
        export_run(run, noise=noise, out=tmp_path / "exported" / noise)
    policy = load_policy(run, device="cpu")
    generator = torch.Generator().manual_seed(0)
    inputs, expected = {}, {}
    for batch in BATCHES:
        observation = 3.0 * torch.randn(batch, policy.observation_dim, generator=generator)
        noise = torch.randn(batch, policy.noise_dim, generator=generator)
        inputs |= {f"observation_{batch}": observation.numpy(), f"noise_{batch}": noise.numpy()}
        expected[f"input_{batch}"] = policy(observation, noise=noise).numpy()
        expected[f"zero_{batch}"] = policy(observation).numpy()
    np.savez(tmp_path / "inputs.npz", **inputs)
    subprocess.run(
        [sys.executable, "-c", DEPLOYED, str(tmp_path / "exported"), str(tmp_path / "inputs.npz"), str(tmp_path / "out.npz")],
        check=True,
        cwd=tmp_path,
        timeout=120,
    )
    results = np.load(tmp_path / "out.npz")
    for key, action in expected.items():
        assert np.abs(action).max() <= 0.8
        for runtime in ("onnx", "torchscript"):
            deployed = results[f"{runtime}_{key}"]
            assert deployed.shape == action.shape, (runtime, key)
            assert np.abs(deployed - action).max() <= TOLERANCE, (runtime, key)


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")
def test_the_graph_has_the_time_projections_folded_and_a_dynamic_batch(tmp_path, make_tiny_experiment):
    """GenPO's sinusoidal time embedding leaves no trace: its step projections are constants."""
    run = trained_run(make_tiny_experiment, tmp_path / "run", scheme_config("genpo"))
    export_run(run, noise="zero")
    model = onnx.load(run / "exported" / "policy.onnx")
    operations = {node.op_type for node in model.graph.node}
    assert not operations & {"Sin", "Cos", "Range"}, operations
    assert model.graph.input[0].type.tensor_type.shape.dim[0].dim_param  # a named, dynamic batch dimension
    module = torch.jit.load(run / "exported" / "policy.pt")
    assert "aten::sin" not in str(module.graph) and "aten::arange" not in str(module.graph)


def test_the_card_describes_the_graph(tmp_path, make_tiny_experiment):
    run = trained_run(make_tiny_experiment, tmp_path / "run", scheme_config("gaussian"), [CLIP])
    card = export_run(run, noise="input", format="onnx")
    assert json.loads((run / "exported" / "policy.json").read_text()) == card
    assert (card["actor"], card["observation_dim"], card["action_dim"], card["noise_dim"]) == ("gaussian", 3, 1, 1)
    assert (card["inputs"], card["outputs"], card["action_clip"]) == (["observation", "noise"], ["action"], 0.8)
    assert card["files"] == {"onnx": "policy.onnx"} and not (run / "exported" / "policy.pt").exists()
    assert card["config"] == (run / "config.gin").read_text()
    assert card["checkpoint"] == "checkpoints/latest.pt" and card["checkpoint_iteration"] == 1
    assert card["genpo_version"] == __import__("genpo").__version__


def test_a_bf16_trained_run_exports_in_float32_and_the_card_says_how_far_that_is(tmp_path, make_tiny_experiment):
    bf16 = "velocity_network.mlp.autocast_dtype = 'bfloat16'"
    run = trained_run(make_tiny_experiment, tmp_path / "run", scheme_config("genpo"), [bf16])
    card = export_run(run, noise="input", format="onnx")
    assert (card["dtype"], card["trained_autocast_dtype"]) == ("float32", "bfloat16")
    assert 0 < card["max_deviation_from_run_policy"] < 5e-2  # bf16 matmuls: about 3 significant digits
    policy = load_policy(run, device="cpu")
    observation, noise = torch.randn(64, policy.observation_dim), torch.randn(64, policy.noise_dim)
    import onnxruntime

    session = onnxruntime.InferenceSession(str(run / "exported" / "policy.onnx"), providers=["CPUExecutionProvider"])
    exported = session.run(None, {"observation": observation.numpy(), "noise": noise.numpy()})[0]
    assert np.abs(exported - policy(observation, noise=noise).numpy()).max() < 5e-2


def test_a_float32_run_records_no_training_autocast(tmp_path, make_tiny_experiment):
    run = trained_run(make_tiny_experiment, tmp_path / "run", scheme_config("genpo"))
    card = export_run(run, noise="zero", format="torchscript")
    assert card["trained_autocast_dtype"] is None and card["max_deviation_from_run_policy"] == 0.0


def run_cli(*argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(argument) for argument in argv])
    return code, out.getvalue(), err.getvalue()


def test_cli_export_writes_the_default_folder(tmp_path, make_tiny_experiment):
    run = trained_run(make_tiny_experiment, tmp_path / "run", scheme_config("genpo"))
    code, out, _ = run_cli("export", run, "--format", "torchscript")
    folder = run / "exported"
    assert code == 0 and out.splitlines() == [str(folder / "policy.pt"), str(folder / "policy.json")]


def test_an_actor_that_cannot_be_exported_fails_naming_it_and_why(tmp_path, make_tiny_experiment):
    flow = "actor.genpo.flow = @flow.dummy_action_numeric_log_det"
    make_tiny_experiment(tmp_path / "run", config=scheme_config("genpo"), extra=[flow])
    message = r"actor genpo \(flow: NumericLogDetFlow\) cannot be exported: .*vmap\(jacrev"
    with pytest.raises(ExportError, match=message):
        export_run(tmp_path / "run")
    code, _, err = run_cli("export", tmp_path / "run")
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert err.startswith("genpo export: error: actor genpo (flow: NumericLogDetFlow) cannot be exported")
    assert not (tmp_path / "run" / "exported" / "policy.json").exists()


def test_a_folder_without_a_run_fails_in_one_line(tmp_path):
    code, _, err = run_cli("export", tmp_path)
    assert code == 2 and err.strip() == f"genpo export: error: {tmp_path} is not a genpo run directory (no config.gin)"
    with pytest.raises(SystemExit):  # argparse refuses it
        run_cli("export", tmp_path, "--format", "tflite")
