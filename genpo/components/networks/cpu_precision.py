"""Whether this machine multiplies bfloat16 natively, the ``'auto'`` precision that follows from it, and a
warning when a bf16 network runs where it is emulated.

bf16 autocast pays on CPUs with AVX512-BF16 or AMX (e.g. AMD Zen 4, Intel Cooper Lake / Sapphire Rapids):
oneDNN's matmuls then run at twice the fp32 rate. Elsewhere (e.g. AMD Zen 3, AVX2 only) oneDNN converts
to fp32 and back, so the same network runs about 11x slower than in fp32 (docs/performance.md). On CUDA,
bf16 is native from compute capability 8.0 (Ampere) on. ``'auto'`` therefore picks bf16 exactly where it
is native and fp32 everywhere else, so one config is fast on every machine.
"""

from __future__ import annotations

import functools
import warnings
from pathlib import Path

import torch

NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")
AUTO = "auto"


@functools.cache
def cpu_has_native_bf16() -> bool | None:
    """True / False from the Linux CPU flags; None where they cannot be read (other systems)."""
    try:
        flags = Path("/proc/cpuinfo").read_text().split()
    except OSError:
        return None
    return any(flag in flags for flag in NATIVE_BF16_FLAGS)


def native_bf16(device_type: str) -> bool | None:
    """Whether ``device_type`` ('cpu', 'cuda') multiplies bf16 natively; None where it cannot be told."""
    if device_type == "cpu":
        return cpu_has_native_bf16()
    if device_type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported(including_emulation=False)
    return None


@functools.cache
def resolve_autocast_dtype(requested: str | None, device_type: str) -> str | None:
    """The autocast dtype a network set to ``requested`` runs in on ``device_type``: ``'auto'`` becomes
    ``'bfloat16'`` where bf16 is native and None (fp32) elsewhere; any other value is kept as given."""
    if requested != AUTO:
        return requested
    return "bfloat16" if native_bf16(device_type) else None


def precision_reason(device_type: str) -> str:
    """Why ``'auto'`` chose what it chose on ``device_type``, in a few words for the start-up line."""
    native = native_bf16(device_type)
    if device_type == "cpu":
        if native:
            flags = Path("/proc/cpuinfo").read_text().split()
            return f"this CPU multiplies bf16 natively ({', '.join(f for f in NATIVE_BF16_FLAGS if f in flags)})"
        if native is False:
            return f"this CPU has no {' or '.join(NATIVE_BF16_FLAGS)}: bf16 would be emulated"
        return "this CPU's flags cannot be read"
    return f"bf16 is {'native' if native else 'not native'} on this {device_type} device"


@functools.cache
def warn_if_bf16_is_emulated(owner: str) -> None:
    """Warn once per ``owner`` when bf16 autocast is about to run on a CPU without native bf16 matmuls."""
    if cpu_has_native_bf16() is False:
        warnings.warn(
            f"{owner}: bf16 autocast on a CPU without {' or '.join(NATIVE_BF16_FLAGS)}: its matmuls are emulated "
            f"and slower than fp32; bind velocity_network.mlp.autocast_dtype = None to run in fp32",
            RuntimeWarning,
            stacklevel=3,
        )


def describe_precision(model: torch.nn.Module) -> str | None:
    """One line on the precision ``model``'s autocast-capable networks run in and why; None without any."""
    networks = [m for m in model.modules() if hasattr(m, "requested_autocast_dtype")]
    if not networks:
        return None
    parts = []
    for requested, resolved, device_type in sorted(
        {(str(n.requested_autocast_dtype), str(n.autocast_dtype), n.half_projection.weight.device.type) for n in networks}
    ):
        ran = {"None": "fp32", "bfloat16": "bf16", "float16": "fp16"}[resolved]
        why = f"'auto': {precision_reason(device_type)}" if requested == AUTO else "as configured"
        parts.append(f"velocity network in {ran} ({why})")
    return "; ".join(parts)
