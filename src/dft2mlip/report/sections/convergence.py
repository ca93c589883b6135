"""The DFT convergence evidence: every study CSV as a table and a plot."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from dft2mlip.io import save_figure
from dft2mlip.report.artifacts import Missing
from dft2mlip.report.figures import plt
from dft2mlip.report.format import fmt


@dataclass
class StudyTable:
    """One study CSV as the report shows it (its first 30 rows, formatted)."""

    stem: str
    name: str
    n_rows: int
    header: list[str]
    rows: list[list[str]]


@dataclass
class ConvergenceData:
    """The convergence section's data: the folder (None or no CSV: no study), the chosen settings
    (None: no readable choice), each readable study table, the figure."""

    folder: str | None
    chosen: dict | None = None
    tables: list[StudyTable] = field(default_factory=list)
    figure: str | None = None


def read_choice(folder: Path, missing: Missing) -> dict | None:
    """``chosen_settings.json`` with its errors and tolerances as text; None when there is none
    (a study folder whose tables are shown without a choice paragraph, as before the report was
    split) or it is broken (then named in ``missing``)."""
    path = folder / "chosen_settings.json"
    if not path.is_file():
        return None
    try:
        chosen = json.loads(path.read_text())
        errors = ", ".join(f"{k} {fmt(v)}" for k, v in chosen.get("errors", {}).items())
        tols = ", ".join(f"{k} {fmt(v)}" for k, v in chosen.get("tolerances", {}).items())
    except Exception as err:  # noqa: BLE001 - a broken file is named, not fatal
        missing.failed("convergence choice", path, err)
        return None
    return {**chosen, "errors_text": errors or "—", "tolerances_text": tols or "—"}


def read_studies(files: list[Path], missing: Missing) -> list[tuple[Path, pd.DataFrame | None]]:
    """Every study CSV (None where it cannot be read; named in ``missing``)."""
    studies = []
    for path in files:
        try:
            studies.append((path, pd.read_csv(path)))
        except Exception as err:  # noqa: BLE001 - a broken file is named, not fatal
            missing.failed("convergence study", path, err)
            studies.append((path, None))
    return studies


def _plot_study(ax, path: Path, df: pd.DataFrame) -> None:
    """The error-like columns (else the first three numeric ones) against the first column."""
    numeric = [c for c in df.columns if pd.api.types.is_numeric_dtype(df[c])]
    x = df.columns[0]
    ys = [c for c in numeric
          if c != x and any(k in c.lower() for k in ("err", "delta", "diff", "dev"))]  # fmt: skip
    ys = ys or [c for c in numeric if c != x][:3]
    for col in ys:
        y = np.abs(df[col].to_numpy(dtype=float))
        ax.plot(df[x], np.where(y > 0, y, np.nan), marker="o", label=col)
    if ys and (np.abs(df[ys].to_numpy(dtype=float)) > 0).any():
        ax.set_yscale("log")
    ax.set_xlabel(str(x))
    ax.set_title(path.stem)
    ax.legend(fontsize=7)


def convergence_figure(studies: list, folder: Path, out_dir: Path) -> str:
    """``convergence.png``: the study's own figure when it wrote one, else one panel per CSV."""
    study_png = sorted(folder.glob("*.png"))
    if study_png:  # the study's own figure (tolerances, chosen point) when it wrote one
        shutil.copyfile(study_png[0], out_dir / "convergence.png")
        return "convergence.png"
    fig, axes = plt.subplots(1, len(studies), figsize=(5.0 * len(studies), 3.8), squeeze=False)
    for ax, (path, df) in zip(axes[0], studies, strict=True):
        if df is None:
            ax.set_axis_off()
        else:
            _plot_study(ax, path, df)
    fig.tight_layout()
    save_figure(fig, out_dir / "convergence.png")
    return "convergence.png"


def gather_convergence(folder: str | Path | None, out_dir: Path, missing: Missing):
    """The section's data from the study folder (and its figure, drawn or copied)."""
    files = sorted(Path(folder).glob("*.csv")) if folder and Path(folder).is_dir() else []
    if not files:
        return ConvergenceData(folder=str(folder) if folder else None)
    chosen = read_choice(Path(folder), missing)
    studies = read_studies(files, missing)
    tables = [StudyTable(path.stem, path.name, len(df), list(df.head(30).columns),
                         [[fmt(v) for v in row] for row in df.head(30).itertuples(index=False)])
              for path, df in studies if df is not None]  # fmt: skip
    figure = convergence_figure(studies, Path(folder), out_dir)
    return ConvergenceData(str(folder), chosen, tables, figure)


def convergence_section(
    folder: str | Path | None, out_dir: Path, blocks: list, figures: list, missing: Missing
) -> None:
    """Every CSV of the DFT convergence study, as a table and a plot, when the study ran
    (worded by ``templates/sections/convergence.j2``)."""
    data = gather_convergence(folder, out_dir, missing)
    figures.extend([data.figure] if data.figure else [])
    blocks.append(("section", "convergence", data))
