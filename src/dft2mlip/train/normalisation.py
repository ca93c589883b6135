"""What each loss term is divided and multiplied by before the weights apply
(``training.runs.<run>.normalise``; the modes are described in :mod:`dft2mlip.train.weighting`).

- :func:`count_factors`: m_k of ``normalise: counts``, each term's number of label components
  per training structure over their mean across the weighted terms;
- :func:`variance_refs`: the references of ``normalise: variance``, the mean square of each
  quantity's training labels.

``initial`` measures its references on the initial model in the trainer (it needs the model).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any


def label_counts(train_data: Sequence[Any]) -> dict[str, float]:
    """Mean number of label components per training structure: energy 1, forces 3 N, stress 6
    (each counted only where the structure carries that label).

    Parameters
    ----------
    train_data : sequence of mace AtomicData
        Training graphs with ``positions`` and the per-config ``energy_weight``,
        ``forces_weight``, ``stress_weight`` (0 = label missing).
    """
    if not train_data:
        raise ValueError("normalise: counts needs at least one training structure")
    totals = {"energy": 0.0, "forces": 0.0, "stress": 0.0}
    for d in train_data:
        totals["energy"] += float(float(d.energy_weight) > 0)
        totals["forces"] += 3.0 * d.positions.shape[0] * float(float(d.forces_weight) > 0)
        totals["stress"] += 6.0 * float(float(d.stress_weight) > 0)
    return {k: v / len(train_data) for k, v in totals.items()}


def count_factors(counts: Mapping[str, float], components: Iterable[str]) -> dict[str, float]:
    """m_k = n_k / mean_j n_j over ``components`` (the weighted terms); the m_k average to 1, so
    equal weights keep the loss's scale.

    Raises
    ------
    ValueError
        A weighted term without any label component in the training set.
    """
    comps = tuple(components)
    empty = [k for k in comps if not counts.get(k, 0.0) > 0]
    if empty:
        raise ValueError(f"normalise: counts: the training set has no {empty} labels")
    mean = sum(counts[k] for k in comps) / len(comps)
    return {k: counts[k] / mean for k in comps}


def variance_refs(scales: Mapping[str, float], components: Iterable[str]) -> dict[str, float]:
    """References of ``normalise: variance``: scale_k², the mean square of the training labels
    (:func:`dft2mlip.train.trainer.label_scales`; floored there), per weighted component."""
    refs = {}
    for k in components:
        scale = scales.get(k, math.nan)
        if not (math.isfinite(scale) and scale > 0):
            raise ValueError(f"normalise: variance: the training set has no {k} labels")
        refs[k] = scale**2
    return refs
