"""Elastic constants: DFT vs every model, clamped and relaxed ion."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from dft2mlip.io import save_figure
from dft2mlip.report.figures import plt
from dft2mlip.report.format import as_float, fixed
from dft2mlip.validate.elastic import CUBIC_WARN_REL

ELASTIC_QUANTITIES = [
    ("C11", "C11"),
    ("C12", "C12"),
    ("C44", "C44"),
    ("bulk_modulus_GPa", "B (VRH)"),
    ("shear_modulus_GPa", "G (VRH)"),
]


_PROTOCOL_TEXT = {
    "clamped_ion": (
        "Clamped ion",
        "the atoms stay at the positions scaled with the cell (no internal relaxation)",
    ),
    "relaxed_ion": (
        "Relaxed ion",
        "in each fixed strained cell the atoms are relaxed until max |F| per atom is below "
        "{fmax} eV/Å (pw.x BFGS for DFT, ASE BFGS for the models), so the internal-strain "
        "contribution is included; this is the tensor to compare with experiment",
    ),
}


def _elastic_table(protocol: str, dft: dict | None, models: dict, blocks: list) -> dict[str, float]:
    """One protocol's table; returns each run's mean |% error| over C11, C12, C44."""
    title, how = _PROTOCOL_TEXT[protocol]
    fmax = dft.get("relax_fmax_eV_per_A") if dft else None
    fmax = fmax or next(
        (
            m.get("relax_fmax_eV_per_A")
            for m in models.values()
            if m and m.get("relax_fmax_eV_per_A")
        ),
        "the configured",
    )
    blocks.append(("h", 3, f"{title} (GPa)"))
    blocks.append(("p", f"{title}: {how.format(fmax=fmax)}."))
    header = ["quantity", "DFT"] + list(models)
    rows = []
    for key, name in ELASTIC_QUANTITIES:
        row = [f"{name} (GPa)", fixed(dft.get(key)) if dft else "missing"]
        for m in models.values():
            if m is None:
                row.append("missing")
                continue
            cell = fixed(m.get(key))
            if dft and dft.get(key):
                cell += f" ({100.0 * (m[key] - dft[key]) / dft[key]:+.1f}%)"
            row.append(cell)
        rows.append(row)
    blocks.append(("table", header, rows))
    warnings = []
    for label, c in [("DFT", dft), *models.items()]:
        if c is None:
            continue
        if not c["is_cubic"]:
            warnings.append(
                f"{label}: the tensor deviates from cubic symmetry by "
                f"{c['cubic_deviation_GPa']:.2f} GPa "
                f"({100 * c['cubic_deviation_rel']:.1f}% of C11, "
                f"above {100 * CUBIC_WARN_REL:.0f}%); C11/C12/C44 are averages, see the JSON for "
                "the full tensor."
            )
        if not c["positive_definite"]:
            warnings.append(
                f"{label}: the tensor is not positive definite (smallest eigenvalue "
                f"{c['min_eigenvalue_GPa']:.1f} GPa): mechanically unstable."
            )
    if warnings:
        blocks.append(("p", f"**Warnings ({title.lower()}):**"))
        blocks.append(("ul", warnings))
    errors = {}
    if dft:
        for run, m in models.items():
            if m is not None:
                errs = [abs(m[k] - dft[k]) / abs(dft[k]) for k in ("C11", "C12", "C44") if dft[k]]
                errors[run] = 100.0 * float(np.mean(errs)) if errs else float("nan")
    return errors


def _elastic_figure(tensors: dict, out_dir: Path, figures: list, blocks: list) -> None:
    """Grouped bars of C11, C12, C44, B, G: DFT and every run, one panel per protocol."""
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.0), sharey=True)
    for ax, protocol in zip(axes, ("clamped_ion", "relaxed_ion"), strict=True):
        dft, models = tensors[protocol]
        sources = [("DFT", dft), *models.items()]
        width = 0.8 / max(len(sources), 1)
        x = np.arange(len(ELASTIC_QUANTITIES))
        for j, (name, c) in enumerate(sources):
            vals = [as_float(c.get(k)) if c else np.nan for k, _ in ELASTIC_QUANTITIES]
            hatch = "//" if name == "DFT" else None
            ax.bar(x + (j - (len(sources) - 1) / 2) * width, vals, width, label=name, hatch=hatch)
        ax.set_xticks(x, [n for _, n in ELASTIC_QUANTITIES])
        ax.set_title(_PROTOCOL_TEXT[protocol][0])
        ax.legend(fontsize=8)
    axes[0].set_ylabel("GPa")
    fig.suptitle("Elastic constants and moduli: DFT vs each model")
    fig.tight_layout()
    save_figure(fig, out_dir / "elastic.png")
    figures.append("elastic.png")
    blocks.append(("img", "elastic constants DFT vs models", "elastic.png"))


def elastic_section(
    tensors: dict, out_dir: Path, blocks: list, figures: list, reference: Mapping | None = None
) -> dict:
    """Both elastic tables and the figure; returns {protocol: {run: mean |% error|}}."""
    blocks.append(("h", 2, "Elastic constants"))
    dft = tensors["clamped_ion"][0] or tensors["relaxed_ion"][0]
    delta = f" = {dft['strain_magnitude']:g}" if dft and "strain_magnitude" in dft else ""
    relaxed = bool(reference and reference.get("relaxed") and reference.get("status") == "ok")
    cell = "the DFT-relaxed cell" if relaxed else "the configured cell, not relaxed with DFT"
    cell += "; see Reference cell" if reference else ""
    blocks.append(
        (
            "p",
            f"The reference cell ({cell}) is strained by "
            f"±δ{delta} along each of the six Voigt directions and C is the least-squares slope "
            "of stress vs strain (with a fitted residual stress of the reference cell). DFT and "
            "every model use the same strained cells, the same fit and, for relaxed ion, the "
            "same force threshold; the DFT stresses use exactly the dataset's settings. "
            "Percentages are (model − DFT)/DFT. B and G are Voigt–Reuss–Hill averages.",
        )
    )
    errors = {}
    for protocol in ("clamped_ion", "relaxed_ion"):
        dft_p, models_p = tensors[protocol]
        errors[protocol] = _elastic_table(protocol, dft_p, models_p, blocks)
    _elastic_figure(tensors, out_dir, figures, blocks)
    return errors
