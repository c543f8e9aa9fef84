"""Whether this CPU multiplies bfloat16 natively, and a warning when a bf16 network runs on one that does not.

bf16 autocast pays on CPUs with AVX512-BF16 or AMX (e.g. AMD Zen 4, Intel Cooper Lake / Sapphire Rapids):
oneDNN's matmuls then run at twice the fp32 rate. Elsewhere oneDNN converts to fp32 and back, so the
same setting is slower than fp32; the warning names the binding that turns it off.
"""

from __future__ import annotations

import functools
import warnings
from pathlib import Path

NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


@functools.cache
def cpu_has_native_bf16() -> bool | None:
    """True / False from the Linux CPU flags; None where they cannot be read (other systems)."""
    try:
        flags = Path("/proc/cpuinfo").read_text().split()
    except OSError:
        return None
    return any(flag in flags for flag in NATIVE_BF16_FLAGS)


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
