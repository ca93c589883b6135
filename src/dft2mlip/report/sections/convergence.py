"""The DFT convergence evidence: every study CSV as a table and a plot."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from dft2mlip.io import save_figure
from dft2mlip.report.artifacts import Missing
from dft2mlip.report.figures import plt
from dft2mlip.report.format import fmt


def convergence_section(
    folder: str | Path | None, out_dir: Path, blocks: list, figures: list, missing: Missing
) -> None:
    """Every CSV of the DFT convergence study, as a table and a plot, when the study ran."""
    blocks.append(("h", 2, "DFT convergence evidence"))
    files = sorted(Path(folder).glob("*.csv")) if folder and Path(folder).is_dir() else []
    if not files:
        blocks.append(
            (
                "p",
                "No convergence study was run for this report (no CSV in "
                f"`{folder or 'results/convergence'}`): the DFT settings are the configured "
                "ones, not chosen from stress, force and energy tolerances.",
            )
        )
        return
    blocks.append(
        (
            "p",
            "The DFT settings were checked for convergence of stress, forces and energy against "
            "the tightest settings tried; each table below is one study file (values as written "
            "by the study; units in the column names).",
        )
    )
    chosen_path = Path(folder) / "chosen_settings.json"
    if chosen_path.is_file():
        try:
            chosen = json.loads(chosen_path.read_text())
            errors = ", ".join(f"{k} {fmt(v)}" for k, v in chosen.get("errors", {}).items())
            tols = ", ".join(f"{k} {fmt(v)}" for k, v in chosen.get("tolerances", {}).items())
            text = (
                f"**Chosen settings** ({chosen.get('engine', '?')}): cutoff "
                f"{fmt(chosen.get('cutoff'))}, k-spacing {fmt(chosen.get('kspacing_per_A'))} "
                f"1/Å (point `{chosen.get('point', '?')}`, reference "
                f"`{chosen.get('reference', '?')}`): errors {errors or '—'} within the "
                f"tolerances {tols or '—'}."
            )
            if chosen.get("warning"):
                text += f" Warning: {chosen['warning']}"
            blocks.append(("p", text))
        except Exception as err:  # noqa: BLE001 - a broken file is named, not fatal
            missing.failed("convergence choice", chosen_path, err)
    study_png = sorted(Path(folder).glob("*.png"))
    fig, axes = plt.subplots(1, len(files), figsize=(5.0 * len(files), 3.8), squeeze=False)
    for ax, path in zip(axes[0], files, strict=True):
        try:
            df = pd.read_csv(path)
        except Exception as err:  # noqa: BLE001 - a broken file is named, not fatal
            missing.failed("convergence study", path, err)
            ax.set_axis_off()
            continue
        blocks.append(("p", f"**{path.stem}** (`{path.name}`, {len(df)} rows):"))
        shown = df.head(30)
        blocks.append(
            (
                "table",
                list(shown.columns),
                [[fmt(v) for v in row] for row in shown.itertuples(index=False)],
            )
        )
        numeric = [c for c in df.columns if pd.api.types.is_numeric_dtype(df[c])]
        x = df.columns[0]
        ys = [
            c
            for c in numeric
            if c != x and any(k in c.lower() for k in ("err", "delta", "diff", "dev"))
        ]
        ys = ys or [c for c in numeric if c != x][:3]
        for col in ys:
            y = np.abs(df[col].to_numpy(dtype=float))
            ax.plot(df[x], np.where(y > 0, y, np.nan), marker="o", label=col)
        if ys and (np.abs(df[ys].to_numpy(dtype=float)) > 0).any():
            ax.set_yscale("log")
        ax.set_xlabel(str(x))
        ax.set_title(path.stem)
        ax.legend(fontsize=7)
    fig.tight_layout()
    if study_png:  # the study's own figure (tolerances, chosen point) when it wrote one
        plt.close(fig)
        shutil.copyfile(study_png[0], out_dir / "convergence.png")
    else:
        save_figure(fig, out_dir / "convergence.png")
    figures.append("convergence.png")
    blocks.append(("img", "DFT convergence study", "convergence.png"))
