"""Our training loop for a MACE model with energy/forces/stress loss weighting.

One call of :func:`train_run` trains one run spec of ``training.runs`` with a :class:`Trainer`:

- settings: :class:`dft2mlip.train.settings.TrainingSettings` (defaults and checks of every
  ``training:`` key);
- data: extxyz files with ``REF_energy`` (eV), ``REF_forces`` (eV/Å), ``REF_stress`` (eV/Å³,
  ASE Voigt, tension positive); structures without ``REF_stress`` are masked in the stress loss
  (:class:`TrainingData`);
- model: :func:`dft2mlip.train.models.build_model` with E0s fitted to the training energies by
  least squares and scale/shift from the training set (MACE's ``rms_forces_scaling``);
- loss: Σ_k w_k L_k (``normalise: none``) or Σ_k w_k L_k / L_k^ref (``normalise: initial``,
  L_k^ref = mean training loss of the initial model over the training set, frozen; ``counts``:
  the same times each term's share of label components m_k; ``variance``: L_k^ref = mean square
  of the training labels; :mod:`dft2mlip.train.normalisation`); L_k are
  the raw MSEs of :mod:`dft2mlip.train.loss`; weights from :mod:`dft2mlip.train.weighting`,
  updated once per epoch with the epoch-mean (normalised when enabled) training losses;
- optimiser: Adam (amsgrad) with an optional learning-rate schedule (``plateau`` on the
  validation score or ``cosine`` over the epochs), gradient-norm clipping (MACE's default 10),
  optional exponential moving average (EMA) of the parameters used for validation and export,
  optional early stopping when the validation score has not improved for ``patience`` epochs;
  learnable weighting parameters (uncertainty weighting) are trained by the same optimiser;
- model selection: after every epoch the model is scored on the validation set and the best
  one is written to ``model.pt`` (see :func:`validation_score`);
- device: ``auto`` = CUDA when available, else CPU; float32 or float64.

Outputs in ``out_dir``: ``model.pt`` (loads with ``torch.load(..., weights_only=True)``; read it
with :func:`dft2mlip.calculator.load_model`), ``model.model`` (the best model as a whole pickled
torch module, the form MACE's ``MACECalculator`` and ``mace_create_lammps_model`` load),
``model.loss.json`` (the loss the model was trained with: scheme, options, normalisation and
its references, the weights of every epoch; :func:`dft2mlip.train.weighting.loss_record`, also
stored under ``"loss"`` in ``model.pt`` and as ``model.model``'s attribute ``dft2mlip_loss``),
``history.csv`` (one row per epoch) and ``last.pt``: the complete training state after the
latest epoch (:class:`dft2mlip.train.state.TrainingState`). When ``last.pt`` exists and was
written by the same run (same data, model, run and training settings), :func:`train_run`
continues from it, and the result equals an uninterrupted run (bit for bit on CPU).
"""

from __future__ import annotations

import contextlib
import copy
import csv
import dataclasses
import hashlib
import json
import logging
import math
import os
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import ase.io
import numpy as np
import torch

from dft2mlip.io import atomic_write, atomic_write_text
from dft2mlip.train import models
from dft2mlip.train.loss import COMPONENTS, component_sums
from dft2mlip.train.normalisation import count_factors, label_counts, variance_refs
from dft2mlip.train.settings import LR_SCHEDULERS, TrainingSettings
from dft2mlip.train.state import (
    RESUME_FORMAT,
    ParameterEMA,
    TrainingState,
    fresh_interval_acc,
    make_scheduler,
    save_payload,
    seed_everything,
)
from dft2mlip.train.weighting import (
    WeightingScheme,
    loss_record,
    make_weighting,
    normalise_mode,
    update_interval,
)
from dft2mlip.units import EV_PER_A3_TO_GPA

__all__ = [
    "HISTORY_COLUMNS",
    "LOSS_RECORD_NAME",
    "LR_SCHEDULERS",
    "RESUME_FORMAT",
    "ParameterEMA",
    "Trainer",
    "TrainingData",
    "TrainingSettings",
    "evaluate",
    "export_mace_model",
    "label_scales",
    "make_scheduler",
    "resolve_device",
    "seed_everything",
    "train_run",
    "validation_score",
]

log = logging.getLogger(__name__)

#: columns of history.csv, in order
HISTORY_COLUMNS = (
    "epoch",
    "loss_total",
    "loss_energy",
    "loss_forces",
    "loss_stress",
    "weight_energy",
    "weight_forces",
    "weight_stress",
    "val_energy_rmse_meV_per_atom",
    "val_forces_rmse_meV_per_A",
    "val_stress_rmse_GPa",
    "val_score",
    "best",
    "wall_s",
    "lr",
    "cpu_s",
)
#: file name, in the run's output directory, of the JSON loss record (beside ``model.model``)
LOSS_RECORD_NAME = "model.loss.json"
_VAL_KEYS = {
    "energy": "val_energy_rmse_meV_per_atom",
    "forces": "val_forces_rmse_meV_per_A",
    "stress": "val_stress_rmse_GPa",
}
# RMSE conversion from eV/atom, eV/Å, eV/Å³ to the history units
_VAL_UNITS = {"energy": 1000.0, "forces": 1000.0, "stress": EV_PER_A3_TO_GPA}
# floors of the validation-score scales (eV/atom, eV/Å, eV/Å³) for degenerate training sets
_SCALE_FLOORS = {"energy": 1e-4, "forces": 1e-3, "stress": 1e-5}


def resolve_device(device: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; ``cpu``/``cuda``/``cuda:N`` as given."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(
            f"training.device = {device!r} but CUDA is not available; use 'auto' or 'cpu'"
        )
    try:
        return torch.device(device)
    except RuntimeError:
        raise ValueError(
            f"training.device = {device!r} is not a torch device; use auto, cpu or cuda"
        ) from None


def shared_parameters(model: torch.nn.Module) -> list[torch.nn.Parameter]:
    """The last layer shared by every loss term (GradNorm's W): MACE's last product block."""
    return [p for p in model.products[-1].parameters() if p.requires_grad]


def _file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _read_frames(path: str | os.PathLike, what: str) -> list:
    frames = ase.io.read(path, index=":")
    if not frames:
        raise ValueError(f"{what} file {path} holds no structures")
    return frames


def label_scales(train_data: list, e0s: dict[int, float], zs: list[int]) -> dict[str, float]:
    """RMS of the training labels, the yardstick of :func:`validation_score`.

    energy: per-atom energy minus the fitted E0s (eV/atom); forces: force components (eV/Å);
    stress: Voigt components of labelled structures (eV/Å³). Each has a small floor.
    """
    e0 = torch.tensor([e0s[z] for z in zs], dtype=torch.float64)
    e_res, forces, stress = [], [], []
    for d in train_data:
        n = d.positions.shape[0]
        e_ref = float(d.node_attrs.to(torch.float64).sum(0) @ e0)
        e_res.append((float(d.energy) - e_ref) / n)
        forces.append(d.forces.to(torch.float64).reshape(-1))
        if float(d.stress_weight) > 0:
            s = d.stress.reshape(3, 3).to(torch.float64)
            stress.append(models.voigt_from_matrix(s.unsqueeze(0)).reshape(-1))
    rms = {
        "energy": float(np.sqrt(np.mean(np.square(e_res)))),
        "forces": float(torch.sqrt(torch.mean(torch.cat(forces) ** 2))),
        "stress": float(torch.sqrt(torch.mean(torch.cat(stress) ** 2))) if stress else math.nan,
    }
    return {k: max(v, _SCALE_FLOORS[k]) if math.isfinite(v) else v for k, v in rms.items()}


def validation_score(rmse: Mapping[str, float], scales: Mapping[str, float], components) -> float:
    """Mean over ``components`` of RMSE_k / scale_k (dimensionless, lower is better).

    RMSE and scale in the same units (eV/atom, eV/Å, eV/Å³). Dividing each validation RMSE by
    the RMS of that quantity's training labels puts E, F and S on equal relative footing: 1.0
    means "no better than predicting zero", independent of units or which run is scored.
    """
    terms = [rmse[k] / scales[k] for k in components if math.isfinite(rmse.get(k, math.nan))]
    return float(np.mean(terms)) if terms else math.nan


def evaluate(
    model: torch.nn.Module, loader, *, compute_stress: bool, device: torch.device | None = None
) -> dict[str, Any]:
    """Predictions and RMSEs (eV/atom, eV/Å, eV/Å³) on a labelled loader (batches moved to
    ``device`` when given; predictions are returned on that device).

    Returns ``{"rmse": {...}, "energy": (n,), "forces": [(n_i, 3)], "stress": (n, 6)}``; the stress
    RMSE is over structures with a stress label (NaN when none has one).
    """
    sums = {k: 0.0 for k in COMPONENTS}
    counts = {k: 0.0 for k in COMPONENTS}
    energies, forces, stresses = [], [], []
    for batch in loader:
        batch = models.to_device(batch, device)
        pred = models.predict(model, batch, training=False, compute_stress=compute_stress)
        for k, (sse, count) in component_sums(pred, batch).items():
            sums[k] += float(sse.detach())
            counts[k] += float(count)
        energies.append(pred["energy"].detach())
        sizes = (batch.ptr[1:] - batch.ptr[:-1]).tolist()
        forces.extend(torch.split(pred["forces"].detach(), sizes))
        if compute_stress:
            stresses.append(pred["stress"].detach())
    rmse = {k: math.sqrt(sums[k] / counts[k]) if counts[k] > 0 else math.nan for k in COMPONENTS}
    return {
        "rmse": rmse,
        "energy": torch.cat(energies),
        "forces": forces,
        "stress": torch.cat(stresses) if stresses else None,
    }


def _mean_losses(model, loader, compute_stress: bool, device=None) -> dict[str, float]:
    """Mean raw component losses of ``model`` over a loader (no parameter update)."""
    sums: dict[str, float] = {}
    counts: dict[str, float] = {}
    for batch in loader:
        batch = models.to_device(batch, device)
        pred = models.predict(model, batch, training=False, compute_stress=compute_stress)
        for k, (sse, count) in component_sums(pred, batch).items():
            sums[k] = sums.get(k, 0.0) + float(sse.detach())
            counts[k] = counts.get(k, 0.0) + float(count)
    return {k: sums[k] / counts[k] if counts[k] > 0 else math.nan for k in sums}


def _fmt(value: float) -> str:
    return "nan" if not math.isfinite(value) else f"{value:.4g}"


def export_mace_model(
    model: torch.nn.Module, path: str | os.PathLike, *, loss: Mapping[str, Any] | None = None
) -> None:
    """``torch.save`` the whole model on CPU, as ``mace_run_train`` writes ``<name>.model``.

    MACE's ``MACECalculator(model_paths=path)`` and ``mace_create_lammps_model`` read this file
    (pickled module: load it only from a trusted source, ``weights_only=False``). ``loss`` (the
    run's :func:`dft2mlip.train.weighting.loss_record`) travels as the plain-dict attribute
    ``model.dft2mlip_loss``; MACE's tools and TorchScript ignore it.
    """
    if loss is not None:
        model.dft2mlip_loss = models.plain(dict(loss))
    with atomic_write(path) as tmp:
        torch.save(model.to("cpu"), tmp)


# kept under their former names (tests and tools import them from here)
_save_payload = save_payload
_load_resume_state = TrainingState.read


# --------------------------------------------------------------------------------------------
# data and outputs


@dataclasses.dataclass
class TrainingData:
    """Training and validation graphs of one run, with the statistics the model is built from.

    Attributes
    ----------
    train, val : list
        MACE ``AtomicData`` graphs (neighbour lists within ``r_max_A``) in the run's dtype.
    zs : list of int
        Elements of the training set (sorted).
    e0s : dict
        Least-squares isolated-atom energies (eV) per atomic number.
    stats : dict
        ``avg_num_neighbors``, ``shift`` (eV/atom) and ``scale`` (eV/Å), MACE's
        ``rms_forces_scaling``.
    scales : dict
        RMS of the training labels per component (:func:`label_scales`).
    has_stress, val_has_stress : bool
        Whether any training / validation structure carries ``REF_stress``.
    """

    train_path: Path
    val_path: Path
    train: list
    val: list
    zs: list[int]
    e0s: dict[int, float]
    stats: dict[str, float]
    scales: dict[str, float]
    has_stress: bool
    val_has_stress: bool

    @classmethod
    def from_files(
        cls, train_path: Path, val_path: Path, model_cfg: dict, dtype: str, batch_size: int,
        stats_path: Path | None = None,
    ) -> TrainingData:  # fmt: skip
        """Read both extxyz files, fit E0s and build the graphs and statistics (E0s, scale,
        shift, neighbour count, score scales) of ``stats_path`` when given (e.g. generation 0's
        training set, shared by paired active-learning lineages), else of the training set."""
        train_atoms = _read_frames(train_path, "training")
        val_atoms = _read_frames(val_path, "validation")
        models.check_model_cfg(model_cfg)
        r_max = float(model_cfg["r_max_A"])
        zs = sorted({int(z) for a in train_atoms for z in a.numbers})
        train_configs = models.atoms_to_configs(train_atoms, source=str(train_path))
        val_configs = models.atoms_to_configs(val_atoms, source=str(val_path))
        train = models.configs_to_data(train_configs, zs, r_max, dtype)
        fit_configs, fit = train_configs, train
        if stats_path is not None:
            fit_atoms = _read_frames(stats_path, "statistics")
            if {int(z) for a in fit_atoms for z in a.numbers} != set(zs):
                raise ValueError(f"{stats_path} and {train_path} hold different elements")
            fit_configs = models.atoms_to_configs(fit_atoms, source=str(stats_path))
            fit = models.configs_to_data(fit_configs, zs, r_max, dtype)
        e0s = models.fit_e0s(fit_configs, zs)
        loader = models.make_loader(fit, batch_size, shuffle=False)
        return cls(
            train_path=Path(train_path),
            val_path=Path(val_path),
            train=train,
            val=models.configs_to_data(val_configs, zs, r_max, dtype),
            zs=zs,
            e0s=e0s,
            stats=models.data_statistics(loader, e0s, zs),
            scales=label_scales(fit, e0s, zs),
            has_stress=models.has_stress_labels(train_atoms),
            val_has_stress=models.has_stress_labels(val_atoms),
        )


@dataclasses.dataclass(frozen=True)
class RunFiles:
    """The files a run writes in its output directory (see the module docstring)."""

    model: Path
    mace_model: Path
    loss: Path
    history: Path
    state: Path

    @classmethod
    def in_dir(cls, out_dir: Path) -> RunFiles:
        names = ("model.pt", "model.model", LOSS_RECORD_NAME, "history.csv", "last.pt")
        return cls(*(Path(out_dir) / name for name in names))


def _write_history(path: Path, rows: list[dict]) -> None:
    with atomic_write(path) as tmp, open(tmp, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(HISTORY_COLUMNS)
        for row in rows:
            writer.writerow([row[c] for c in HISTORY_COLUMNS])


def _append_history(path: Path, row: dict) -> None:
    with open(path, "a", newline="") as fh:
        csv.writer(fh).writerow([row[c] for c in HISTORY_COLUMNS])


@dataclasses.dataclass
class _EpochLosses:
    """Sums over one epoch's batches (raw SSEs, counts, weights used, total loss)."""

    sums: dict[str, float] = dataclasses.field(
        default_factory=lambda: dict.fromkeys(COMPONENTS, 0.0)
    )
    counts: dict[str, float] = dataclasses.field(
        default_factory=lambda: dict.fromkeys(COMPONENTS, 0.0)
    )
    weights: dict[str, float] = dataclasses.field(
        default_factory=lambda: dict.fromkeys(COMPONENTS, 0.0)
    )
    total: float = 0.0
    n_batches: int = 0

    def raw(self) -> dict[str, float]:
        """Epoch-mean raw component losses (NaN for a component without labels)."""
        return {
            k: self.sums[k] / self.counts[k] if self.counts[k] > 0 else math.nan for k in COMPONENTS
        }


# --------------------------------------------------------------------------------------------
# the trainer


class Trainer:
    """Trains one run: build once, then :meth:`fit` (epochs, validation, checkpoints, export).

    Parameters
    ----------
    data : TrainingData
        Graphs and statistics of the run's training and validation sets.
    out_dir : path
        Receives ``model.pt``, ``model.model``, ``model.loss.json``, ``history.csv``,
        ``last.pt``.
    run_name : str
        Key of the run in ``training.runs`` (errors and logs name it).
    model_cfg, run_cfg : dict
        ``model:`` and ``training.runs.<run_name>`` of the config.
    settings : TrainingSettings
        The shared training settings.
    seed : int
        Seeds model initialisation, shuffling and the weighting scheme.
    """

    def __init__(
        self,
        data: TrainingData,
        out_dir: Path,
        *,
        run_name: str,
        model_cfg: dict,
        run_cfg: dict,
        settings: TrainingSettings,
        seed: int,
    ) -> None:
        self.data, self.run_name, self.settings, self.seed = data, run_name, settings, int(seed)
        self.model_cfg, self.run_cfg = dict(model_cfg), dict(run_cfg)
        self.files = RunFiles.in_dir(Path(out_dir))
        self.device = resolve_device(settings.device)
        weighting = self._make_weighting()
        self.normalise = normalise_mode(run_name, run_cfg)
        self.interval = update_interval(run_name, run_cfg)
        self.factors = {k: 1.0 for k in weighting.components}
        if self.normalise == "counts":
            self.factors.update(count_factors(label_counts(data.train), self.trained))
        self.score_components = tuple(
            c for c in self.trained if c != "stress" or data.val_has_stress
        )
        torch.manual_seed(self.seed)
        self.model = self._build_model()
        stats = data.stats
        self.metadata = models.model_metadata(
            model_cfg,
            data.zs,
            data.e0s,
            stats["avg_num_neighbors"],
            settings.dtype,
            stats["scale"],
            stats["shift"],
        )
        if hasattr(weighting, "to"):
            weighting.to(device=self.device, dtype=models.torch_dtype(settings.dtype))
        self.train_loader = models.make_loader(
            data.train, settings.batch_size, shuffle=True, seed=self.seed
        )
        self.val_loader = models.make_loader(data.val, settings.batch_size, shuffle=False)
        self.state = self._fresh_state(weighting)
        self.shared = shared_parameters(self.model) if weighting.needs_shared_params else []
        self.n_params = sum(p.numel() for p in self.model.parameters())
        self.resumed_from: int | None = None
        self.epoch_times: list[float] = []
        self.fingerprint_value = ""

    # ---- construction

    def _make_weighting(self) -> WeightingScheme:
        weighting = make_weighting(self.run_name, self.run_cfg, COMPONENTS, seed=self.seed)
        # components whose loss enters the optimiser (adaptive weights are always > 0)
        self.trained = tuple(c for c, w in weighting.weights.items() if w > 0)
        if "stress" in self.trained and not self.data.has_stress:
            run = self.run_name
            raise ValueError(
                f"run {run}: the training set {self.data.train_path} has no REF_stress labels "
                f"but the run weighs stress (scheme {weighting.name}); set "
                f"training.runs.{run}.weights.stress to 0 (fixed), training.runs.{run}."
                "components to [energy, forces] (adaptive), or use a dataset with stress labels"
            )
        return weighting

    def _build_model(self) -> torch.nn.Module:
        stats = self.data.stats
        return models.build_model(
            self.model_cfg,
            self.data.zs,
            self.data.e0s,
            stats["avg_num_neighbors"],
            self.settings.dtype,
            scale=stats["scale"],
            shift=stats["shift"],
        ).to(self.device)

    def _fresh_state(self, weighting: WeightingScheme) -> TrainingState:
        s = self.settings
        groups = [{"params": list(self.model.parameters())}]
        if weighting.parameters():
            groups.append({"params": weighting.parameters()})
        optimizer = torch.optim.Adam(groups, lr=s.lr, amsgrad=True)
        scheduler = make_scheduler(
            optimizer,
            s.lr_scheduler,
            epochs=s.epochs,
            factor=s.lr_factor,
            patience=s.lr_patience,
            min_lr=s.min_lr,
        )
        ema = ParameterEMA(list(self.model.parameters()), s.ema_decay) if s.ema_decay > 0 else None
        return TrainingState(
            model=self.model,
            optimizer=optimizer,
            scheduler=scheduler,
            ema=ema,
            weighting=weighting,
            loader_generator=self.train_loader.generator,
            normalise=self.normalise,
            refs={k: 1.0 for k in weighting.components},
        )

    def fingerprint(self) -> str:
        """Hash of everything that determines the result (data, model, run, settings, seed)."""
        payload = {
            "train": _file_sha256(self.data.train_path),
            "stats": self.data.stats,
            "val": _file_sha256(self.data.val_path),
            "model": {k: self.model_cfg[k] for k in models.MODEL_KEYS},
            "run": self.run_cfg,
            "settings": {**self.settings.result_defining(), "seed": self.seed},
        }
        return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()

    # ---- start: resume or normalisation references

    def start(self, resume: bool) -> None:
        """Continue from ``last.pt`` when it belongs to this run, else measure the references
        L_k^ref (``normalise: initial``); rewrite the outputs the state already determines."""
        files = self.files
        payload = (
            TrainingState.read(files.state, self.fingerprint(), self.run_name) if resume else None
        )
        if not resume:
            files.state.unlink(missing_ok=True)
        if payload is not None:
            self.state.restore(payload)
            self.resumed_from = self.state.epoch
            log.info(
                "run %s: resuming from %s after epoch %d",
                self.run_name,
                files.state,
                self.state.epoch,
            )
        elif self.normalise in ("initial", "counts"):
            self.state.refs.update(self._initial_references())
        elif self.normalise == "variance":
            self.state.refs.update(variance_refs(self.data.scales, self.trained))
        # the declared outputs are rewritten from the state (a workflow manager may have removed
        # them when the interrupted attempt failed)
        for stale in (files.model, files.mace_model, files.loss):
            stale.unlink(missing_ok=True)
        if self.state.best_checkpoint is not None:
            save_payload(files.model, self.state.best_checkpoint)
        _write_history(files.history, self.state.history)

    def _initial_references(self) -> dict[str, float]:
        loader = models.make_loader(self.data.train, self.settings.batch_size, shuffle=False)
        initial = _mean_losses(self.model, loader, self.data.has_stress, self.device)
        refs = {}
        for k in self.trained:
            ref = initial.get(k, math.nan)
            if not math.isfinite(ref):
                raise FloatingPointError(f"run {self.run_name}: initial {k} loss is {ref}")
            if ref < 1e-20:
                log.warning(
                    "run %s: initial %s loss %.3g ~ 0, left unnormalised", self.run_name, k, ref
                )
                ref = 1.0
            refs[k] = ref
        log.info("run %s: normalisation references L_ref %s", self.run_name, refs)
        return refs

    # ---- one epoch

    def train_epoch(self, epoch: int) -> _EpochLosses:
        """One pass over the shuffled training set; returns the epoch's loss sums."""
        st = self.state
        self.model.train()
        acc = _EpochLosses()
        for i_batch, batch in enumerate(self.train_loader):
            self._train_batch(models.to_device(batch, self.device), epoch, i_batch, acc)
        if not self.interval:
            raw = acc.raw()
            st.weighting.update({k: raw[k] / st.refs[k] for k in st.weighting.components})
        return acc

    def _train_batch(self, batch: Any, epoch: int, i_batch: int, acc: _EpochLosses) -> None:
        st, weighting = self.state, self.state.weighting
        pred = models.predict(self.model, batch, training=True, compute_stress=self.data.has_stress)
        parts = component_sums(pred, batch)
        counts = {k: float(c) for k, (_, c) in parts.items()}
        losses = {
            k: parts[k][0] / counts[k] / st.refs[k] * self.factors[k]
            for k in weighting.components
            if k in parts and counts[k] > 0
        }
        weights_used = weighting.weights
        total = weighting.combine(losses)
        total_value = float(total.detach())
        if not math.isfinite(total_value):
            raise FloatingPointError(
                f"run {self.run_name}: non-finite loss {total_value} at epoch {epoch}, batch "
                f"{i_batch}; {self.files.model} keeps the best model up to epoch "
                f"{st.best['epoch']} and {self.files.state} the state after epoch {epoch - 1}. "
                "Lower training.lr, set training.clip_grad_norm or use float64."
            )
        if weighting.per_batch:
            weighting.batch_step(losses, self.shared)
        self._step(total)
        for k, (sse, _) in parts.items():
            value = float(sse.detach())
            acc.sums[k] += value
            acc.counts[k] += counts[k]
            if self.interval:
                st.interval_acc["sums"][k] += value
                st.interval_acc["counts"][k] += counts[k]
        for k in COMPONENTS:
            acc.weights[k] += weights_used.get(k, 0.0)
        acc.total += total_value
        acc.n_batches += 1
        if self.interval and not weighting.per_batch:
            self._interval_update()

    def _step(self, total: torch.Tensor) -> None:
        st = self.state
        st.optimizer.zero_grad(set_to_none=True)
        total.backward()
        if self.settings.clip_grad_norm > 0:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.settings.clip_grad_norm)
        st.optimizer.step()
        if st.ema is not None:
            st.ema.update()

    def _interval_update(self) -> None:
        """Weights updated every ``update_interval_batches`` batches (across epochs)."""
        st = self.state
        acc = st.interval_acc
        acc["n"] += 1
        comps = st.weighting.components
        if acc["n"] >= self.interval and all(acc["counts"][k] > 0 for k in comps):
            st.weighting.update({k: acc["sums"][k] / acc["counts"][k] / st.refs[k] for k in comps})
            st.interval_acc = fresh_interval_acc()

    # ---- validation and bookkeeping

    def validate(self, epoch: int) -> tuple[dict[str, float], float, dict[str, Any] | None]:
        """Validation RMSEs (eV/atom, eV/Å, eV/Å³) and score of the (EMA-averaged) model, and
        its checkpoint payload when the score is the best so far (else None)."""
        st = self.state
        self.model.eval()
        with st.ema.averaged() if st.ema is not None else contextlib.nullcontext():
            val = evaluate(self.model, self.val_loader, compute_stress=True, device=self.device)
            rmse = val["rmse"]
            score = validation_score(rmse, self.data.scales, self.score_components)
            if not math.isfinite(score):
                raise FloatingPointError(
                    f"run {self.run_name}: non-finite validation score at epoch {epoch} "
                    f"(RMSEs {rmse}); {self.files.state} holds the state after epoch {epoch - 1}"
                )
            payload = (
                self._checkpoint_payload(epoch, rmse, score) if score < st.best["score"] else None
            )
        return rmse, score, payload

    def _checkpoint_payload(self, epoch: int, rmse: dict, score: float) -> dict[str, Any]:
        """The ``model.pt`` dictionary (loads with ``weights_only=True``)."""
        st = self.state
        return {
            "format": models.CHECKPOINT_FORMAT,
            "metadata": models.plain(self.metadata),
            "model_state": {
                k: v.detach().cpu().clone() for k, v in self.model.state_dict().items()
            },
            "run_name": self.run_name,
            "epoch": epoch,
            "val_metrics": {_VAL_KEYS[k]: rmse[k] * _VAL_UNITS[k] for k in COMPONENTS},
            "val_score": score,
            "label_scales": self.data.scales,
            "score_components": list(self.score_components),
            "weighting": st.weighting.state_dict(),
            "normalisation": {"mode": self.normalise, "refs": dict(st.refs)},
            "training": self._training_info(),
        }

    def _training_info(self) -> dict[str, Any]:
        return models.plain(
            {
                **self.settings.result_defining(),
                "seed": self.seed,
                "run_cfg": self.run_cfg,
                "train_path": str(self.data.train_path),
                "val_path": str(self.data.val_path),
            }
        )

    def _loss_record(self) -> dict[str, Any]:
        st = self.state
        return loss_record(
            st.weighting,
            normalise=self.normalise,
            refs=st.refs,
            update_interval_batches=self.interval,
            history=st.history,
            model_epoch=st.best["epoch"],
            factors=self.factors,
        )

    def record_epoch(self, epoch, losses, rmse, score, best_payload, lr, t0, c0) -> dict:
        """Append the history row; keep the best checkpoint (and write ``model.pt``)."""
        st = self.state
        n = max(losses.n_batches, 1)
        wall = time.perf_counter() - t0
        self.epoch_times.append(wall)
        row = {
            "epoch": epoch,
            "loss_total": losses.total / n,
            **{f"loss_{k}": v for k, v in losses.raw().items()},
            **{f"weight_{k}": losses.weights[k] / n for k in COMPONENTS},
            **{_VAL_KEYS[k]: rmse[k] * _VAL_UNITS[k] for k in COMPONENTS},
            "val_score": score,
            "best": int(best_payload is not None),
            "wall_s": wall,
            "lr": lr,
            "cpu_s": time.process_time() - c0,
        }
        st.history.append(row)
        st.epoch = epoch
        if best_payload is None:
            st.since_best += 1
            return row
        st.best = {"epoch": epoch, "score": score, "val": {v: row[v] for v in _VAL_KEYS.values()}}
        st.since_best = 0
        best_payload["loss"] = self._loss_record()
        st.best_checkpoint = best_payload
        save_payload(self.files.model, best_payload)
        return row

    def checkpoint(self, row: dict) -> None:
        """Write ``last.pt`` (the whole state) and append the epoch's history row."""
        self.state.save(self.files.state, self.fingerprint_value)
        _append_history(self.files.history, row)

    def _schedule(self, score: float) -> None:
        scheduler = self.state.scheduler
        if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            scheduler.step(score)
        elif scheduler is not None:
            scheduler.step()

    @property
    def stopped_early(self) -> bool:
        patience = self.settings.early_stopping_patience
        return bool(patience and self.state.since_best >= patience)

    # ---- the loop

    def run_epoch(self, epoch: int) -> dict:
        """Train, validate, schedule, record and checkpoint one epoch; returns its row."""
        t0, c0 = time.perf_counter(), time.process_time()
        losses = self.train_epoch(epoch)
        rmse, score, best_payload = self.validate(epoch)
        lr = self.state.optimizer.param_groups[0]["lr"]
        self._schedule(score)
        row = self.record_epoch(epoch, losses, rmse, score, best_payload, lr, t0, c0)
        self.checkpoint(row)
        _log_epoch(self.run_name, epoch, self.settings.epochs, row, losses.raw(), bool(row["best"]))
        return row

    def fit(self, *, resume: bool = True, progress: bool = False) -> dict:
        """Train up to ``settings.epochs`` (or early stop), export the best model, summarise."""
        t_start = time.perf_counter()
        self.fingerprint_value = self.fingerprint()
        self.start(resume)
        self._log_start()
        epochs = self.settings.epochs
        first = self.state.epoch + 1
        bar = None
        if progress and first <= epochs and not self.stopped_early:
            from tqdm.auto import tqdm

            bar = tqdm(total=epochs, initial=first - 1, desc=f"train {self.run_name}", unit="epoch")
        try:
            for epoch in range(first, epochs + 1):
                if self.stopped_early:
                    break
                row = self.run_epoch(epoch)
                if bar is not None:
                    bar.set_postfix(
                        loss=f"{row['loss_total']:.3g}", score=f"{row['val_score']:.3g}"
                    )
                    bar.update(1)
                if self.stopped_early:
                    log.info(
                        "run %s: early stop after epoch %d (%d epochs without a better "
                        "validation score)",
                        self.run_name,
                        epoch,
                        self.state.since_best,
                    )
        finally:
            if bar is not None:
                bar.close()
        self.export()
        return self.summary(time.perf_counter() - t_start)

    def _log_start(self) -> None:
        log.info(
            "run %s: %d train / %d val structures, elements %s, %d parameters, scheme %s, "
            "normalise %s, stress labels: %s, device %s, %s",
            self.run_name,
            len(self.data.train),
            len(self.data.val),
            self.data.zs,
            self.n_params,
            self.state.weighting.name,
            self.normalise,
            self.data.has_stress,
            self.device,
            self.settings.dtype,
        )

    # ---- export and summary

    def best_model(self) -> torch.nn.Module:
        """The best epoch's model on CPU, in eval mode."""
        payload = self.state.best_checkpoint
        try:  # a copy of the trained module is much cheaper than building one (e3nn codegen)
            model = copy.deepcopy(self.model).to("cpu")
        except Exception:  # noqa: BLE001 - fall back to a fresh build
            model = models.model_from_metadata(payload["metadata"])
        model.load_state_dict(payload["model_state"])
        return model.eval()

    def export(self) -> None:
        """Write ``model.pt``, ``model.model`` and ``model.loss.json`` of the best epoch, with
        the loss record of the whole run (every epoch's weights, not only up to the best)."""
        payload = self.state.best_checkpoint
        if payload is None:
            raise RuntimeError(f"run {self.run_name}: no epoch finished; nothing to export")
        record = self._loss_record()
        payload["loss"] = record
        save_payload(self.files.model, payload)
        export_mace_model(self.best_model(), self.files.mace_model, loss=record)
        atomic_write_text(self.files.loss, json.dumps(record, indent=1) + "\n")

    def summary(self, wall_s: float) -> dict[str, Any]:
        """Best epoch, its validation RMSEs and score, final weights, paths, timings."""
        st, files = self.state, self.files
        final_epoch = st.history[-1]["epoch"] if st.history else 0
        summary = {
            "run_name": self.run_name,
            "epochs": self.settings.epochs,
            "epochs_run": final_epoch,
            "resumed_from_epoch": self.resumed_from,
            "stopped_early": self.stopped_early and final_epoch < self.settings.epochs,
            "best_epoch": st.best["epoch"],
            "best_val_score": st.best["score"],
            "best_val": st.best["val"],
            "final_weights": st.weighting.weights,
            "scheme": st.weighting.name,
            "normalise": self.normalise,
            "normalisation_refs": dict(st.refs),
            "trained_components": list(self.trained),
            "score_components": list(self.score_components),
            "n_train": len(self.data.train),
            "n_val": len(self.data.val),
            "n_parameters": self.n_params,
            "device": str(self.device),
            "model_path": str(files.model),
            "mace_model_path": str(files.mace_model),
            "loss_record_path": str(files.loss),
            "history_path": str(files.history),
            "state_path": str(files.state),
            "mean_epoch_s": float(np.mean(self.epoch_times)) if self.epoch_times else math.nan,
            "wall_s": wall_s,
        }
        log.info(
            "run %s done: best epoch %s, score %.4g, %.1f s",
            self.run_name,
            st.best["epoch"],
            st.best["score"],
            wall_s,
        )
        return summary


def train_run(
    train_path: str | os.PathLike,
    val_path: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    run_name: str,
    model_cfg: dict,
    run_cfg: dict,
    seed: int,
    settings: TrainingSettings | Mapping[str, Any] | None = None,
    threads: int | None = None,
    resume: bool = True,
    progress: bool | None = None,
    stats_path: str | os.PathLike | None = None,
    **overrides: Any,
) -> dict:
    """Train one run of ``training.runs`` with a :class:`Trainer` (outputs: module docstring).

    Parameters
    ----------
    train_path, val_path : path
        extxyz files with ``REF_energy`` (eV), ``REF_forces`` (eV/Å), optional ``REF_stress``
        (eV/Å³, Voigt, tension positive).
    out_dir : path
        Created if needed; receives the outputs.
    run_name, model_cfg, run_cfg : str, dict, dict
        The run's key, ``model:`` and ``training.runs.<run_name>`` of the config.
    seed : int
        Seeds model initialisation, shuffling and all global RNGs.
    settings : TrainingSettings or mapping, optional
        The shared training settings (a mapping: the ``training:`` section); default
        :class:`TrainingSettings`'s defaults. ``**overrides`` replace single ones
        (``epochs=``, ``lr=``, ...).
    threads : int, optional
        ``torch.set_num_threads`` for the run (restored afterwards).
    resume : bool
        Continue from ``out_dir/last.pt`` when it belongs to this very run.
    progress : bool, optional
        Show a progress bar; default: only when stderr is a terminal.
    stats_path : path, optional
        Fit E0s, scale/shift, neighbour count and score scales on this extxyz instead of the
        training set (:meth:`TrainingData.from_files`).

    Returns
    -------
    dict
        :meth:`Trainer.summary` (best epoch, validation RMSEs, weights, paths, timings).

    Raises
    ------
    ValueError
        Bad settings (naming ``training.<key>``), unusable data, or a positive stress weight
        without stress labels.
    FloatingPointError
        A non-finite loss (``model.pt`` keeps the best model, ``last.pt`` the last epoch).
    """
    if not isinstance(settings, TrainingSettings):
        settings = TrainingSettings.from_config(settings or {})
    settings = settings.replace(**overrides) if overrides else settings
    resolve_device(settings.device)
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    with _torch_threads(threads), models.default_dtype(settings.dtype):
        seed_everything(int(seed))
        data = TrainingData.from_files(
            Path(train_path),
            Path(val_path),
            dict(model_cfg),
            settings.dtype,
            settings.batch_size,
            stats_path=None if stats_path is None else Path(stats_path),
        )
        trainer = Trainer(data, Path(out_dir), run_name=run_name, model_cfg=model_cfg,
                          run_cfg=run_cfg, settings=settings, seed=seed)  # fmt: skip
        show = sys.stderr.isatty() if progress is None else bool(progress)
        return trainer.fit(resume=resume, progress=show)


@contextlib.contextmanager
def _torch_threads(threads: int | None):
    """``torch.set_num_threads(threads)`` inside the block (None: unchanged), restored after."""
    previous = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(int(threads))
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _log_epoch(run_name, epoch, epochs, row, raw, is_best) -> None:
    log.info(
        "run %s epoch %d/%d: loss %s | E %s F %s S %s | w E %.3g F %.3g S %.3g | val E %s "
        "meV/atom F %s meV/A S %s GPa | score %.4g%s | lr %.3g | %.2f s",
        run_name,
        epoch,
        epochs,
        _fmt(row["loss_total"]),
        _fmt(raw["energy"]),
        _fmt(raw["forces"]),
        _fmt(raw["stress"]),
        row["weight_energy"],
        row["weight_forces"],
        row["weight_stress"],
        _fmt(row[_VAL_KEYS["energy"]]),
        _fmt(row[_VAL_KEYS["forces"]]),
        _fmt(row[_VAL_KEYS["stress"]]),
        row["val_score"],
        " *" if is_best else "",
        row["lr"],
        row["wall_s"],
    )
