"""The deformation MD checked against DFT at snapshots of its path."""

from __future__ import annotations

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


def md_section(
    md: dict,
    sv: dict,
    component: str,
    strain_label: str,
    out_dir: Path,
    blocks: list,
    figures: list,
) -> dict[str, dict]:
    blocks.append(("h", 2, "Deformation MD checked against DFT"))
    blocks.append(
        (
            "p",
            "Each run's first-seed model drives its own deformation MD (Langevin NVT, constant "
            "strain rate). "
            f"Lines: σ_{component} from the potential along the path (the virial, static part: "
            "no kinetic term; the MD tables also hold the total stress with the kinetic "
            "ideal-gas part, −2E_kin/3V on the diagonal); circles: DFT stress at snapshots of "
            "that path, evenly spaced in strain, computed with exactly the dataset's DFT "
            "settings; crosses: the model's static stress on the same snapshots, so model and "
            "DFT are compared like for like. Stress in GPa, tension positive. The table checks "
            "each model on the snapshots of every run's path (the same frames for all runs).",
        )
    )
    if any(v is not None for v in md.values()):
        fig, ax = plt.subplots(figsize=(7.2, 4.8))
        for i, (run, df) in enumerate(md.items()):
            if df is not None:
                draw_stress_strain(
                    ax,
                    df,
                    _own_snapshots(sv.get(run), run),
                    component,
                    label=run,
                    color=f"C{i}",
                    strain_label=strain_label,
                )
        ax.legend(fontsize=7)
        ax.set_title("Stress–strain along the deformation MD")
        fig.tight_layout()
        save_figure(fig, out_dir / "stress_strain.png")
        figures.append("stress_strain.png")
        blocks.append(("img", "stress-strain curves", "stress_strain.png"))
    summaries = {}
    rows = []
    for run in md:
        df = sv.get(run)
        if df is None:
            rows.append([run, "missing", "—", "—", "—", "—", "—"])
            continue
        s = stress_validation_summary(df)
        summaries[run] = s
        rows.append(
            [
                run,
                f"{s['n_ok']}/{s['n_snapshots']}",
                fmt(s[f"mae_{component}_GPa"]),
                fmt(s[f"max_error_{component}_GPa"]),
                fmt(s["mae_GPa"]),
                fmt(s["max_error_GPa"]),
                ", ".join(s["missing"]) or "none",
            ]
        )
    blocks.append(
        (
            "table",
            [
                "run",
                "snapshots with DFT",
                f"MAE σ_{component} (GPa)",
                f"max σ_{component} (GPa)",
                "MAE all (GPa)",
                "max all (GPa)",
                "missing DFT labels",
            ],
            rows,
        )
    )
    if summaries:
        blocks.append(
            ("p", "Per stress component, model static stress vs DFT on the snapshots (GPa):")
        )
        comp_rows = []
        for run, s in summaries.items():
            for stat, name in (("mae", "MAE"), ("max_error", "max")):
                comp_rows.append(
                    [run, name, *[fmt(s[f"{stat}_{c}_GPa"]) for c in VOIGT_COMPONENTS]]
                )
        blocks.append(("table", ["run", "error", *[f"σ_{c}" for c in VOIGT_COMPONENTS]], comp_rows))
    return summaries
