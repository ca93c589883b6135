"""The training runs: loss weights per epoch and the loss stored with each model."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from dft2mlip.io import save_figure
from dft2mlip.report.figures import plt
from dft2mlip.report.format import as_float, fmt

WEIGHT_COLUMNS = {"energy": "weight_energy", "forces": "weight_forces", "stress": "weight_stress"}


@dataclass
class WeightsData:
    """The training section's data: each run's description, and per run with a history its
    number of epochs and final weights (formatted); the figure (None: no history)."""

    descriptions: Mapping[str, str] | None
    final_rows: list[list[str]] = field(default_factory=list)
    figure: str | None = None

    @property
    def description_items(self) -> list[str]:
        return [f"**{k}**: {v}" for k, v in (self.descriptions or {}).items()]


@dataclass
class LossRecordData:
    """The loss stored with each model: one formatted row per run with a record."""

    rows: list[list[str]]


def weights_figure(available: dict, out_dir: Path) -> str:
    """``loss_weights.png``: each run's E, F and S weights against the epoch (log scale)."""
    n = len(available)
    fig, axes = plt.subplots(1, n, figsize=(4.2 * n, 3.4), squeeze=False)
    for ax, (run, h) in zip(axes[0], available.items(), strict=True):
        epoch = h["epoch"].to_numpy() if "epoch" in h else np.arange(1, len(h) + 1)
        for (term, col), style in zip(WEIGHT_COLUMNS.items(), ("-", "--", ":"), strict=True):
            if col not in h:
                continue
            w = h[col].to_numpy(dtype=float)
            label = term if np.any(w > 0) else f"{term} (0, not shown)"
            ax.plot(epoch, np.where(w > 0, w, np.nan), ls=style, lw=1.8, label=label)
        ax.set_yscale("log")
        ax.set_xlabel("epoch")
        ax.set_title(run)
        ax.legend(fontsize=8)
    axes[0][0].set_ylabel("loss weight")
    fig.tight_layout()
    save_figure(fig, out_dir / "loss_weights.png")
    return "loss_weights.png"


def weights_section(histories: dict, out_dir: Path, blocks: list, figures: list, descriptions):
    """The runs, their final loss weights and the weights' figure (worded by
    ``templates/sections/weights.j2``)."""
    data = WeightsData(descriptions)
    available = {k: h for k, h in histories.items() if h is not None}
    for run, h in available.items():
        final = [fmt(h.iloc[-1].get(col)) for col in WEIGHT_COLUMNS.values()]
        data.final_rows.append([run, str(len(h)), *final])
    if available:
        data.figure = weights_figure(available, out_dir)
        figures.append(data.figure)
    blocks.append(("section", "weights", data))


def loss_record_row(run: str, r: Mapping) -> list[str]:
    """Scheme with options, normalisation, reference losses, final weights, model epoch."""
    refs = r.get("reference_losses") or {}
    final = r.get("final_weights") or {}
    options = ", ".join(f"{k}={v}" for k, v in (r.get("options") or {}).items())
    return [run, f"{r.get('scheme')}" + (f" ({options})" if options else ""),
            str(r.get("normalise")),
            " / ".join(f"{as_float(refs.get(c)):.2g}" for c in WEIGHT_COLUMNS) if refs else "—",
            " / ".join(fmt(final.get(c)) for c in WEIGHT_COLUMNS),
            str(r.get("model_epoch", "—"))]  # fmt: skip


def loss_record_section(records: dict, blocks: list) -> None:
    """The loss each model was trained with, read back from the record stored with it
    (``model.loss.json``, the same as in ``model.pt`` and the MACE export); nothing when no
    run has one (worded by ``templates/sections/loss_record.j2``)."""
    rows = [loss_record_row(run, r) for run, r in records.items() if r is not None]
    if rows:
        blocks.append(("section", "loss_record", LossRecordData(rows)))
