"""Test-set errors per run, their bar chart and the parity plots."""

from __future__ import annotations

import shutil
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


def test_errors_section(metrics: dict, parity: dict, out_dir: Path, blocks: list, figures: list):
    blocks.append(("h", 2, "Test-set errors"))
    blocks.append(
        (
            "p",
            "Errors on the held-out test structures: energy per atom, every Cartesian force "
            "component, every Voigt stress component (lower is better).",
        )
    )
    header = ["run", "structures"] + [f"{h} ({u})" for _, h, u in TEST_METRICS]
    rows = []
    for run, m in metrics.items():
        if m is None:
            rows.append([run, "missing"] + ["—"] * len(TEST_METRICS))
        else:
            rows.append(
                [run, fmt(m.get("n_structures"))] + [fmt(m.get(k)) for k, _, _ in TEST_METRICS]
            )
    blocks.append(("table", header, rows))
    have = {k: m for k, m in metrics.items() if m is not None}
    if have:
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
        figures.append("test_errors.png")
        blocks.append(("img", "test-set errors per run", "test_errors.png"))
    for run, p in parity.items():
        if p is None:
            continue
        name = f"parity_{safe_name(run)}.png"
        if p.resolve() != (out_dir / name).resolve():
            shutil.copyfile(p, out_dir / name)
        figures.append(name)
        blocks.append(("p", f"Parity plot, run **{run}**:"))
        blocks.append(("img", f"parity {run}", name))
