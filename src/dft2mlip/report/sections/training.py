"""The training runs: loss weights per epoch and the loss stored with each model."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dft2mlip.io import save_figure
from dft2mlip.report.figures import plt
from dft2mlip.report.format import as_float, fmt

WEIGHT_COLUMNS = {"energy": "weight_energy", "forces": "weight_forces", "stress": "weight_stress"}


def weights_section(histories: dict, out_dir: Path, blocks: list, figures: list, descriptions):
    blocks.append(("h", 2, "Training runs and loss weights"))
    blocks.append(
        (
            "p",
            "Each run trains the same architecture on the same data; they differ only in how the "
            "energy (E), force (F) and stress (S) loss terms are weighted. Adaptive schemes "
            "recompute the weights every epoch from each term's learning progress; fixed schemes "
            "keep them constant.",
        )
    )
    if descriptions:
        blocks.append(("ul", [f"**{k}**: {v}" for k, v in descriptions.items()]))
    available = {k: h for k, h in histories.items() if h is not None}
    if not available:
        blocks.append(("p", "No training history is available."))
        return
    rows = []
    for run, h in available.items():
        last = h.iloc[-1]
        rows.append([run, str(len(h)), *[fmt(last.get(col)) for col in WEIGHT_COLUMNS.values()]])
    blocks.append(("table", ["run", "epochs", "final w_E", "final w_F", "final w_S"], rows))
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
    figures.append("loss_weights.png")
    blocks.append(("img", "loss weights vs epoch", "loss_weights.png"))


def loss_record_section(records: dict, blocks: list) -> None:
    """The loss each model was trained with, read back from the record stored with it
    (``model.loss.json``, the same as in ``model.pt`` and the MACE export)."""
    have = {run: r for run, r in records.items() if r is not None}
    if not have:
        return
    blocks.append(("h", 3, "The loss stored with each model"))
    blocks.append(
        (
            "p",
            "Read from `model.loss.json` beside each model (the same record is in `model.pt` and "
            "in the MACE export as `dft2mlip_loss`, with the weight of every epoch). Reference "
            "losses are the first-epoch MSEs the terms are divided by under `normalise: initial`.",
        )
    )
    rows = []
    for run, r in have.items():
        refs = r.get("reference_losses") or {}
        final = r.get("final_weights") or {}
        options = ", ".join(f"{k}={v}" for k, v in (r.get("options") or {}).items())
        rows.append(
            [
                run,
                f"{r.get('scheme')}" + (f" ({options})" if options else ""),
                str(r.get("normalise")),
                " / ".join(f"{as_float(refs.get(c)):.2g}" for c in WEIGHT_COLUMNS) if refs else "—",
                " / ".join(fmt(final.get(c)) for c in WEIGHT_COLUMNS),
                str(r.get("model_epoch", "—")),
            ]
        )
    header = ["run", "scheme", "normalise", "L_ref E / F / S", "final w E / F / S", "model epoch"]
    blocks.append(("table", header, rows))
