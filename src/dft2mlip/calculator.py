"""ASE calculator for a model trained by :func:`dft2mlip.train.trainer.train_run`.

Energy in eV, forces in eV/Å, stress in eV/Å³ as an ASE Voigt 6-vector ``[xx, yy, zz, yz, xz,
xy]``, tension positive (σ = (1/V) ∂E/∂ε; a compressed cell has a negative diagonal).
"""

from __future__ import annotations

import os
from typing import Any

import ase
import numpy as np
import torch
from ase.calculators.calculator import (
    Calculator,
    PropertyNotImplementedError,
    all_changes,
)

from dft2mlip.train import models


def load_model(path: str | os.PathLike, device: str = "cpu") -> tuple[torch.nn.Module, dict]:
    """Load a checkpoint written by the trainer (``torch.load(weights_only=True)``).

    Returns
    -------
    model : torch.nn.Module
        In eval mode, parameter gradients switched off, on ``device``.
    info : dict
        The model metadata (``model_cfg``, ``atomic_numbers``, ``e0s_eV``, ``r_max_A``, ``dtype``,
        ...) plus ``run_name``, ``epoch``, ``val_metrics`` and ``normalisation`` when present.
    """
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise FileNotFoundError(
            f"model checkpoint {path} does not exist; train the run first"
        ) from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != models.CHECKPOINT_FORMAT:
        raise ValueError(
            f"{path} is not a dft2mlip checkpoint (expected format {models.CHECKPOINT_FORMAT!r})"
        )
    metadata = dict(ckpt["metadata"])
    model = models.model_from_metadata(metadata)  # restores torch's default dtype itself
    model.load_state_dict(ckpt["model_state"])
    model.to(device)
    model.eval()
    model.requires_grad_(False)
    for key in ("run_name", "epoch", "val_metrics", "val_score", "normalisation", "weighting"):
        if key in ckpt:
            metadata[key] = ckpt[key]
    return model, metadata


class MLIPCalculator(Calculator):
    """ASE calculator wrapping a trained dft2mlip MACE checkpoint.

    Parameters
    ----------
    model_path : path
        ``model.pt`` written by the trainer.
    device : str
        torch device, e.g. ``"cpu"`` or ``"cuda"``.

    Stress is available for fully periodic cells only.
    """

    implemented_properties = ["energy", "free_energy", "forces", "stress"]

    def __init__(self, model_path: str | os.PathLike, device: str = "cpu", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.model_path = str(model_path)
        self.device = device
        self.model, self.info = load_model(model_path, device=device)
        self.dtype = self.info["dtype"]
        self.r_max = float(self.info["r_max_A"])
        self.atomic_numbers = list(self.info["atomic_numbers"])

    def calculate(
        self,
        atoms: ase.Atoms | None = None,
        properties: list[str] | None = None,
        system_changes: list[str] = all_changes,
    ) -> None:
        """Compute energy (eV), forces (eV/Å) and, for periodic cells, stress (eV/Å³)."""
        properties = properties or ["energy"]
        super().calculate(atoms, properties, system_changes)
        periodic = bool(np.all(self.atoms.pbc)) and self.atoms.cell.rank == 3
        if "stress" in properties and not periodic:
            raise PropertyNotImplementedError("stress needs a fully periodic 3D cell")
        configs = models.atoms_to_configs([self.atoms], with_labels=False)
        data = models.configs_to_data(configs, self.atomic_numbers, self.r_max, self.dtype)
        loader = models.make_loader(data, batch_size=1, shuffle=False)
        batch = models.to_device(next(iter(loader)), self.device)
        # no torch.no_grad(): forces and stress are gradients w.r.t. positions and strain;
        # parameter gradients are off (load_model).
        with models.default_dtype(self.dtype):
            pred = models.predict(self.model, batch, training=False, compute_stress=periodic)
        energy = float(pred["energy"].detach().cpu()[0])
        self.results["energy"] = energy
        self.results["free_energy"] = energy
        self.results["forces"] = pred["forces"].detach().cpu().numpy().astype(float)
        if periodic:
            self.results["stress"] = pred["stress"].detach().cpu().numpy()[0].astype(float)
