"""The deformation MD checked against DFT at snapshots of its path."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from dft2mlip.io import save_figure
from dft2mlip.report.figures import plt
from dft2mlip.report.format import fmt
from dft2mlip.validate.deform import draw_stress_strain, stress_validation_summary
from dft2mlip.validate.metrics import VOIGT_COMPONENTS


def _own_snapshots(table: pd.DataFrame | None, run: str) -> pd.DataFrame | None:
    """The rows of a stress-validation table that are snapshots of ``run``'s own MD path."""
    if table is None or "structure_id" not in table:
        return table
    return table[table["structure_id"].astype(str).str.startswith(f"{run}__snap")]


def snapshot_paths(sv: dict) -> list[str]:
    """The runs whose MD path gave the DFT snapshots (``<run>__snapNN`` ids), in order."""
    from dft2mlip.dag.structures import md_run_of

    ids = [str(s) for t in sv.values() if t is not None and "structure_id" in t
           for s in t["structure_id"]]  # fmt: skip
    return list(dict.fromkeys(md_run_of(s) for s in ids if "__snap" in s))


@dataclass
class MdData:
    """The deformation-MD section's data: the stress component shown, whether the figure was
    drawn, and each run's stress-validation summary (None: its table is missing)."""

    component: str
    figure: str | None
    summaries: dict[str, dict | None]
    snapshot_runs: list[str]

    @property
    def rows(self) -> list[list[str]]:
        """Per run: snapshots with DFT, MAE and max error of the component and of all."""
        c, rows = self.component, []
        for run, s in self.summaries.items():
            if s is None:
                rows.append([run, "missing", "—", "—", "—", "—", "—"])
                continue
            rows.append([run, f"{s['n_ok']}/{s['n_snapshots']}", fmt(s[f"mae_{c}_GPa"]),
                         fmt(s[f"max_error_{c}_GPa"]), fmt(s["mae_GPa"]), fmt(s["max_error_GPa"]),
                         ", ".join(s["missing"]) or "none"])  # fmt: skip
        return rows

    @property
    def component_rows(self) -> list[list[str]]:
        """Per run, MAE and max error of every Voigt component."""
        return [[run, name, *[fmt(s[f"{stat}_{c}_GPa"]) for c in VOIGT_COMPONENTS]]
                for run, s in self.summaries.items() if s is not None
                for stat, name in (("mae", "MAE"), ("max_error", "max"))]  # fmt: skip


def md_figure(md: dict, sv: dict, component: str, strain_label: str, out_dir: Path) -> str | None:
    """Every run's stress–strain curve with its own DFT snapshots; the file name, or None."""
    if not any(v is not None for v in md.values()):
        return None
    fig, ax = plt.subplots(figsize=(7.2, 4.8))
    for i, (run, df) in enumerate(md.items()):
        if df is not None:
            draw_stress_strain(ax, df, _own_snapshots(sv.get(run), run), component, label=run,
                               color=f"C{i}", strain_label=strain_label)  # fmt: skip
    ax.legend(fontsize=7)
    ax.set_title("Stress–strain along the deformation MD")
    fig.tight_layout()
    save_figure(fig, out_dir / "stress_strain.png")
    return "stress_strain.png"


def md_section(md: dict, sv: dict, component: str, strain_label: str, out_dir: Path,
               blocks: list, figures: list) -> dict[str, dict]:  # fmt: skip
    """The deformation MD checked against DFT (worded by ``templates/sections/md.j2``); returns
    each run's stress-validation summary."""
    figure = md_figure(md, sv, component, strain_label, out_dir)
    figures.extend([figure] if figure else [])
    summaries = {run: stress_validation_summary(sv[run]) if sv.get(run) is not None else None
                 for run in md}  # fmt: skip
    blocks.append(("section", "md", MdData(component, figure, summaries, snapshot_paths(sv))))
    return {run: s for run, s in summaries.items() if s is not None}
