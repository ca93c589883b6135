"""Raw, unweighted component losses of a batch (the L_k the weighting schemes see).

- energy: MSE of the energy per atom, (eV/atom)²
- forces: MSE over force components, (eV/Å)²
- stress: MSE over the six ASE Voigt components, (eV/Å³)², only over structures that carry a
  stress label (MACE's per-config ``stress_weight`` is 0 for the others).

Each component is a mean over the labelled items of the batch. :func:`component_sums` returns
the sums and counts behind the means so an epoch mean can be formed over items, not batches.
"""

from __future__ import annotations

from typing import Any

import torch

COMPONENTS = ("energy", "forces", "stress")


def component_sums(
    pred: dict[str, torch.Tensor], batch: Any
) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Per component: (sum of squared errors, number of labelled items) over the batch.

    Parameters
    ----------
    pred : dict
        ``energy`` (n_graphs,) eV, ``forces`` (n_atoms, 3) eV/Å, optionally ``stress``
        (n_graphs, 6) eV/Å³ Voigt.
    batch : mace AtomicData batch
        Labels ``energy``, ``forces``, ``stress`` ((n_graphs, 3, 3)) and per-config weights
        ``energy_weight``, ``forces_weight``, ``stress_weight`` (0 = label missing).
    """
    n_atoms = (batch.ptr[1:] - batch.ptr[:-1]).to(pred["energy"].dtype)
    e_mask = (batch.energy_weight > 0).to(pred["energy"].dtype)
    e_sq = ((pred["energy"] - batch.energy) / n_atoms) ** 2
    out = {"energy": ((e_mask * e_sq).sum(), e_mask.sum())}

    f_mask = (batch.forces_weight > 0).to(pred["forces"].dtype)[batch.batch]
    f_sq = ((pred["forces"] - batch.forces) ** 2).sum(dim=1)
    out["forces"] = ((f_mask * f_sq).sum(), 3.0 * f_mask.sum())

    if "stress" in pred:
        ref = batch.stress.reshape(-1, 3, 3)
        ref_voigt = torch.stack(
            [ref[:, 0, 0], ref[:, 1, 1], ref[:, 2, 2], ref[:, 1, 2], ref[:, 0, 2], ref[:, 0, 1]],
            dim=1,
        )
        s_mask = (batch.stress_weight > 0).to(pred["stress"].dtype)
        s_sq = ((pred["stress"] - ref_voigt) ** 2).sum(dim=1)
        out["stress"] = ((s_mask * s_sq).sum(), 6.0 * s_mask.sum())
    return out


def component_losses(pred: dict[str, torch.Tensor], batch: Any) -> dict[str, torch.Tensor]:
    """Raw MSE per component on a batch (see module docstring for units).

    A component with no labelled item in the batch is a zero tensor that still carries the
    autograd graph, so it contributes nothing to the gradient.
    """
    return {
        k: sse / torch.clamp(count, min=1.0)
        for k, (sse, count) in component_sums(pred, batch).items()
    }
