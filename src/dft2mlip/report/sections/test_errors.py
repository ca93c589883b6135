"""Test-set errors per run, their bar chart and the parity plots."""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dft2mlip.io import save_figure
from dft2mlip.report.figures import plt
from dft2mlip.report.format import as_float, fmt, safe_name

TEST_METRICS = [
    # (key in metrics json, column header, unit)
    ("energy_mae_meV_per_atom", "E MAE", "meV/atom"),
    ("energy_rmse_meV_per_atom", "E RMSE", "meV/atom"),
    ("forces_mae_meV_per_A", "F MAE", "meV/Å"),
    ("forces_rmse_meV_per_A", "F RMSE", "meV/Å"),
    ("stress_mae_GPa", "S MAE", "GPa"),
    ("stress_rmse_GPa", "S RMSE", "GPa"),
]


@dataclass
class TestErrorsData:
    """The test-error section's data: per run the structure count and each metric (formatted;
    "missing" when its metrics are), the bar chart (None: no metrics), the parity plots
    (run -> file name)."""

    rows: list[list[str]]
    figure: str | None = None
    parity: dict[str, str] = field(default_factory=dict)

    __test__ = False  # not a pytest class

    @property
    def metric_headers(self) -> list[str]:
        """The metrics' column headers, in :data:`TEST_METRICS` order."""
        return [f"{h} ({u})" for _, h, u in TEST_METRICS]


def test_errors_figure(have: dict, out_dir: Path) -> str:
    """``test_errors.png``: MAE and RMSE bars per run, one panel per component."""
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.6))
    runs = list(have)
    x = np.arange(len(runs))
    for ax, (comp, unit) in zip(
        axes, [("energy", "meV/atom"), ("forces", "meV/Å"), ("stress", "GPa")], strict=True
    ):
        keys = [k for k, _, u in TEST_METRICS if k.startswith(comp)]
        for j, key in enumerate(keys):
            vals = [as_float(have[r].get(key)) for r in runs]
            ax.bar(x + (j - 0.5) * 0.38, vals, width=0.38, label=key.split("_")[1].upper())
        ax.set_xticks(x, runs)
        ax.set_ylabel(f"{comp} error ({unit})")
        ax.legend(fontsize=8)
    fig.suptitle("Test-set errors per run")
    fig.tight_layout()
    save_figure(fig, out_dir / "test_errors.png")
    return "test_errors.png"


def copy_parity(parity: dict, out_dir: Path) -> dict[str, str]:
    """Each run's parity plot copied beside the report: run -> file name."""
    names = {}
    for run, p in parity.items():
        if p is None:
            continue
        name = f"parity_{safe_name(run)}.png"
        if p.resolve() != (out_dir / name).resolve():
            shutil.copyfile(p, out_dir / name)
        names[run] = name
    return names


def test_errors_section(metrics: dict, parity: dict, out_dir: Path, blocks: list, figures: list):
    """Every run's test-set errors, their bar chart and the parity plots (worded by
    ``templates/sections/test_errors.j2``)."""
    rows = [[run, "missing"] + ["—"] * len(TEST_METRICS) if m is None
            else [run, fmt(m.get("n_structures"))] + [fmt(m.get(k)) for k, _, _ in TEST_METRICS]
            for run, m in metrics.items()]  # fmt: skip
    have = {k: m for k, m in metrics.items() if m is not None}
    data = TestErrorsData(rows, test_errors_figure(have, out_dir) if have else None)
    data.parity = copy_parity(parity, out_dir)
    figures.extend(([data.figure] if data.figure else []) + list(data.parity.values()))
    blocks.append(("section", "test_errors", data))
