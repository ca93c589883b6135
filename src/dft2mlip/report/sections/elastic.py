"""Elastic constants: DFT vs every model, clamped and relaxed ion."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
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


#: each protocol's title (its table's and its figure panel's)
PROTOCOL_TITLES = {"clamped_ion": "Clamped ion", "relaxed_ion": "Relaxed ion"}


@dataclass
class ProtocolTable:
    """One protocol's elastic table: the relaxation threshold shown (eV/Å, or words), the runs,
    one formatted row per quantity, the warnings (label, kind "cubic" or "unstable", tensor)."""

    protocol: str
    fmax: object
    runs: list[str]
    rows: list[list[str]]
    warnings: list[tuple[str, str, Mapping]] = field(default_factory=list)

    @property
    def title(self) -> str:
        return PROTOCOL_TITLES[self.protocol]


@dataclass
class ElasticData:
    """The elastic section's data: the strain magnitude (None: unknown), whether the reference
    cell was relaxed with DFT and whether its record exists, both protocols' tables."""

    strain_magnitude: float | None
    relaxed: bool
    has_reference: bool
    tables: list[ProtocolTable]
    figure: str = "elastic.png"

    @property
    def cubic_warn_rel(self) -> float:
        """Relative deviation from cubic symmetry above which a tensor is flagged."""
        return CUBIC_WARN_REL


def _elastic_cells(key: str, dft: dict | None, models: dict) -> list[str]:
    row = [fixed(dft.get(key)) if dft else "missing"]
    for m in models.values():
        if m is None:
            row.append("missing")
            continue
        cell = fixed(m.get(key))
        if dft and dft.get(key):
            cell += f" ({100.0 * (m[key] - dft[key]) / dft[key]:+.1f}%)"
        row.append(cell)
    return row


def protocol_table(protocol: str, dft: dict | None, models: dict) -> ProtocolTable:
    """One protocol's table and warnings (tensors not cubic, or not positive definite)."""
    fmax = dft.get("relax_fmax_eV_per_A") if dft else None
    fmax = fmax or next((m.get("relax_fmax_eV_per_A") for m in models.values()
                         if m and m.get("relax_fmax_eV_per_A")), "the configured")  # fmt: skip
    rows = [[f"{name} (GPa)", *_elastic_cells(key, dft, models)]
            for key, name in ELASTIC_QUANTITIES]  # fmt: skip
    warnings = []
    for label, c in [("DFT", dft), *models.items()]:
        if c is not None and not c["is_cubic"]:
            warnings.append((label, "cubic", c))
        if c is not None and not c["positive_definite"]:
            warnings.append((label, "unstable", c))
    return ProtocolTable(protocol, fmax, list(models), rows, warnings)


def mean_errors(dft: dict | None, models: dict) -> dict[str, float]:
    """Each run's mean |% error| over C11, C12, C44 (empty without DFT)."""
    errors = {}
    if dft:
        for run, m in models.items():
            if m is not None:
                errs = [abs(m[k] - dft[k]) / abs(dft[k]) for k in ("C11", "C12", "C44") if dft[k]]
                errors[run] = 100.0 * float(np.mean(errs)) if errs else float("nan")
    return errors


def elastic_figure(tensors: dict, out_dir: Path) -> str:
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
        ax.set_title(PROTOCOL_TITLES[protocol])
        ax.legend(fontsize=8)
    axes[0].set_ylabel("GPa")
    fig.suptitle("Elastic constants and moduli: DFT vs each model")
    fig.tight_layout()
    save_figure(fig, out_dir / "elastic.png")
    return "elastic.png"


def elastic_section(
    tensors: dict, out_dir: Path, blocks: list, figures: list, reference: Mapping | None = None
) -> dict:
    """Both elastic tables and the figure (worded by ``templates/sections/elastic.j2``);
    returns {protocol: {run: mean |% error|}}."""
    dft = tensors["clamped_ion"][0] or tensors["relaxed_ion"][0]
    strain = dft["strain_magnitude"] if dft and "strain_magnitude" in dft else None
    relaxed = bool(reference and reference.get("relaxed") and reference.get("status") == "ok")
    tables = [protocol_table(p, *tensors[p]) for p in ("clamped_ion", "relaxed_ion")]
    figures.append(elastic_figure(tensors, out_dir))
    blocks.append(("section", "elastic", ElasticData(strain, relaxed, bool(reference), tables)))
    return {p: mean_errors(*tensors[p]) for p in ("clamped_ion", "relaxed_ion")}
