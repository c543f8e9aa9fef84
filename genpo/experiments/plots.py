"""Learning curves of many variants: mean return with its bootstrap band, as PNG (matplotlib's Agg
backend) or on a given axis."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from genpo.experiments.statistics import DEFAULT_CONFIDENCE, VariantStats


def panel_groups(stats: Sequence[VariantStats]) -> dict[str, list[VariantStats]]:
    """Variants grouped by the part of their name before the first dot (``hopper.genpo`` -> ``hopper``),
    so a sweep over several tasks draws one panel per task; names without a dot share one panel."""
    groups: dict[str, list[VariantStats]] = {}
    for entry in stats:
        groups.setdefault(entry.name.partition(".")[0] if "." in entry.name else "", []).append(entry)
    return groups


def plot_curves(stats: Sequence[VariantStats], x: str, path: Path, confidence: float = DEFAULT_CONFIDENCE) -> None:
    """Mean return per variant against ``x`` (env_steps or wall_time) with its bootstrap CI band, one
    panel per :func:`panel_groups` group (returns of different tasks do not share a scale)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = panel_groups(stats)
    figure, axes = plt.subplots(1, len(groups), figsize=(7 * len(groups), 4.5), squeeze=False)
    for axis, (group, entries) in zip(axes[0], groups.items()):
        draw_curves(axis, entries, x, confidence)
        if group:
            axis.set_title(group)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def draw_curves(axis, stats: Sequence[VariantStats], x: str, confidence: float = DEFAULT_CONFIDENCE) -> None:
    """:func:`plot_curves` onto a given matplotlib axis (for figures with several panels)."""
    for entry in stats:
        band = entry.curves.get(x)
        if band is None:
            continue
        marker = "o" if band.grid.size == 1 else None
        (line,) = axis.plot(band.grid, band.mean, marker=marker, label=f"{entry.name} (n={entry.runs})")
        axis.fill_between(band.grid, band.low, band.high, color=line.get_color(), alpha=0.2, linewidth=0)
    axis.set_xlabel("env steps" if x == "env_steps" else "training wall time (s)")
    axis.set_ylabel(f"episode return (mean, {100 * confidence:g}% bootstrap CI)")
    axis.grid(alpha=0.3)
    if axis.get_legend_handles_labels()[0]:
        axis.legend(fontsize="small")
