"""Matplotlib for the report's figures (headless), and the figures every report leaves."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from dft2mlip.io import save_figure  # noqa: E402

#: figures write_report always leaves in its folder (a placeholder when the data are missing),
#: so that a workflow can declare them as outputs for ``snakemake --report``
REPORT_FIGURES = (
    "dataset.png",
    "convergence.png",
    "loss_weights.png",
    "test_errors.png",
    "elastic.png",
    "stress_strain.png",
    "pareto.png",
)

__all__ = ["REPORT_FIGURES", "placeholder_figure", "plt"]


def placeholder_figure(path: Path, text: str) -> None:
    """A small PNG that says why a figure has no data."""
    fig, ax = plt.subplots(figsize=(6.4, 1.6))
    ax.text(0.5, 0.5, text, ha="center", va="center", wrap=True)
    ax.set_axis_off()
    save_figure(fig, path, dpi=80)
