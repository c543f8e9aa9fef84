"""Atomic, safely loadable checkpoints.

Written with :func:`~genpo.training.atomic_files.atomic_write`, so a crash never leaves a
half-written checkpoint under the real name. Loaded with
``torch.load(weights_only=True)``: no code runs from a checkpoint file. numpy arrays (e.g. from an
env's state) are stored as tensors and restored as arrays.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import torch

from genpo.training.atomic_files import atomic_write
from genpo.training.errors import CheckpointError

FORMAT = "genpo-checkpoint-v1"
_NUMPY_TAG = "__numpy_array__"


def save_checkpoint(state: dict, path: str | Path) -> Path:
    """Write ``state`` atomically to ``path``."""
    return atomic_write(path, lambda handle: torch.save({"format": FORMAT, **_encode(state)}, handle))


def load_checkpoint(path: str | Path, required_keys: tuple[str, ...] = ()) -> dict:
    """Read a checkpoint; a missing, corrupt, truncated or foreign file raises :class:`CheckpointError`."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several types for damaged files
        raise CheckpointError(f"checkpoint {path} {_load_failure(error)}") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"checkpoint {path} is not a {FORMAT} file")
    missing = [key for key in required_keys if key not in state]
    if missing:
        raise CheckpointError(f"checkpoint {path} lacks {', '.join(missing)}")
    return _decode(state)


def _load_failure(error: Exception) -> str:
    """Why torch could not load a checkpoint, without torch's advice to load it unsafely: a file that
    holds more than tensors and plain values is refused, never loaded with ``weights_only=False``."""
    message = str(error)
    if "weights_only" in message or "Weights only load failed" in message:
        unsupported = re.search(r"(?:unsupported GLOBAL|Unsupported global: GLOBAL) ([\w.]+)", message)
        what = f" (it refers to {unsupported.group(1)})" if unsupported else ""
        return (
            f"holds objects other than tensors and plain values{what}: not loaded, as loading it could run code "
            "(genpo never writes such a file; it is corrupt or not a genpo checkpoint)"
        )
    first = message.strip().splitlines()[0] if message.strip() else ""
    return f"is corrupt or truncated ({type(error).__name__}: {first[:200]})"


def _encode(value):
    if isinstance(value, np.ndarray):
        return {_NUMPY_TAG: torch.from_numpy(value.copy())}
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return {key: _encode(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_encode(item) for item in value)
    return value


def _decode(value):
    if isinstance(value, dict):
        if set(value) == {_NUMPY_TAG}:
            return value[_NUMPY_TAG].numpy()
        return {key: _decode(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_decode(item) for item in value)
    return value


def load_module_state(module: torch.nn.Module, state: dict, name: str, path: str | Path) -> None:
    """``module.load_state_dict(state)``, with a one-line error naming the first entry that does not
    fit (a config edited after the checkpoint was written) instead of torch's list of mismatches."""
    own = module.state_dict()
    for key, value in state.items():
        if key in own and tuple(own[key].shape) != tuple(value.shape):
            raise CheckpointError(
                f"checkpoint {path} does not fit this config: {name} entry {key!r} has shape "
                f"{list(value.shape)} in the checkpoint and {list(own[key].shape)} in the model built from the config"
            )
    missing, unexpected = sorted(set(own) - set(state)), sorted(set(state) - set(own))
    if missing or unexpected:
        raise CheckpointError(
            f"checkpoint {path} does not fit this config: the checkpoint's {name} "
            + (
                f"lacks {', '.join(missing[:3])}, which the model built from the config has"
                if missing
                else f"has {', '.join(unexpected[:3])}, which the model built from the config lacks"
            )
            + " (was the model changed after the checkpoint was written?)"
        )
    module.load_state_dict(state)


def rng_state() -> dict:
    """torch's global RNG state (and CUDA's where present), for an exact resume."""
    rng = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        rng["cuda"] = torch.cuda.get_rng_state_all()
    return rng


def restore_rng_state(rng: dict) -> None:
    torch.set_rng_state(rng["torch"])
    if "cuda" in rng and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])
