"""Our training loop for a MACE model with energy/forces/stress loss weighting.

One call of :func:`train_run` trains one run spec of ``training.runs``:

- data: extxyz files with ``REF_energy`` (eV), ``REF_forces`` (eV/Å), ``REF_stress`` (eV/Å³,
  ASE Voigt, tension positive); structures without ``REF_stress`` are masked in the stress loss;
- model: :func:`dft2mlip.train.models.build_model` with E0s fitted to the training energies by
  least squares and scale/shift from the training set (MACE's ``rms_forces_scaling``);
- loss: Σ_k w_k L_k (``normalise: none``) or Σ_k w_k L_k / L_k^ref (``normalise: initial``,
  L_k^ref = mean training loss of the initial model over the training set, frozen); L_k are
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
latest epoch (model, optimiser, scheduler, EMA, weighting state, normalisation references, RNG
states, history, best model). When ``last.pt`` exists and was written by the same run (same
data, model, run and training settings), :func:`train_run` continues from it, and the result
equals an uninterrupted run (bit for bit on CPU).
"""

from __future__ import annotations

import contextlib
import copy
import csv
import hashlib
import json
import logging
import math
import os
import random
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import ase.io
import numpy as np
import torch

from dft2mlip.io import atomic_write, atomic_write_text
from dft2mlip.train import models
from dft2mlip.train.loss import COMPONENTS, component_sums
from dft2mlip.train.weighting import (
    loss_record,
    make_weighting,
    normalise_mode,
    update_interval,
)
from dft2mlip.units import EV_PER_A3_TO_GPA

log = logging.getLogger(__name__)

#: gradient-norm clipping threshold (MACE's default ``--clip_grad 10``)
CLIP_GRAD_NORM = 10.0
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
#: learning-rate schedules (``training.lr_scheduler``)
LR_SCHEDULERS = ("none", "plateau", "cosine")
#: format tag of ``last.pt``
RESUME_FORMAT = "dft2mlip-training-state-v1"
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


def seed_everything(seed: int) -> None:
    """Seed Python's ``random``, NumPy's global RNG and torch."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _rng_state(loader_generator: torch.Generator | None) -> dict[str, Any]:
    np_state = np.random.get_state()
    py_state = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "numpy": {
            "kind": str(np_state[0]),
            "keys": torch.from_numpy(np.asarray(np_state[1], dtype=np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "python": [py_state[0], list(py_state[1]), py_state[2]],
        "loader": None if loader_generator is None else loader_generator.get_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
    }


def _restore_rng(state: Mapping[str, Any], loader_generator: torch.Generator | None) -> None:
    torch.set_rng_state(state["torch"])
    npst = state["numpy"]
    np.random.set_state(
        (
            npst["kind"],
            npst["keys"].numpy().astype(np.uint32),
            int(npst["pos"]),
            int(npst["has_gauss"]),
            float(npst["cached_gaussian"]),
        )
    )
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    if loader_generator is not None and state.get("loader") is not None:
        loader_generator.set_state(state["loader"])
    if state.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


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


class ParameterEMA:
    """Exponential moving average of parameters (as ``torch_ema`` and MACE's ``--ema``).

    shadow ← d · shadow + (1 − d) · param after every optimiser step, with the warm-up
    d = min(decay, (1 + n) / (10 + n)) over the number of updates n.
    """

    def __init__(self, params: list[torch.nn.Parameter], decay: float) -> None:
        self.params = list(params)
        self.decay = float(decay)
        self.num_updates = 0
        self.shadow = [p.detach().clone() for p in self.params]

    @torch.no_grad()
    def update(self) -> None:
        self.num_updates += 1
        d = min(self.decay, (1 + self.num_updates) / (10 + self.num_updates))
        for s, p in zip(self.shadow, self.params, strict=True):
            s.mul_(d).add_(p.detach(), alpha=1.0 - d)

    @contextlib.contextmanager
    def averaged(self) -> Iterator[None]:
        """Temporarily put the averaged values into the parameters."""
        backup = [p.detach().clone() for p in self.params]
        with torch.no_grad():
            for s, p in zip(self.shadow, self.params, strict=True):
                p.copy_(s)
        try:
            yield
        finally:
            with torch.no_grad():
                for b, p in zip(backup, self.params, strict=True):
                    p.copy_(b)

    def state_dict(self) -> dict[str, Any]:
        return {
            "decay": self.decay,
            "num_updates": self.num_updates,
            "shadow": [s.detach().cpu().clone() for s in self.shadow],
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.decay = float(state["decay"])
        self.num_updates = int(state["num_updates"])
        self.shadow = [
            s.to(device=p.device, dtype=p.dtype)
            for s, p in zip(state["shadow"], self.params, strict=True)
        ]


def make_scheduler(
    optimizer: torch.optim.Optimizer,
    name: str,
    *,
    epochs: int,
    factor: float,
    patience: int,
    min_lr: float,
):
    """The per-epoch learning-rate schedule ``training.lr_scheduler`` (None for ``none``).

    ``plateau``: ReduceLROnPlateau on the validation score (× ``factor`` after ``patience``
    epochs without improvement, not below ``min_lr``); ``cosine``: cosine annealing from
    ``lr`` to ``min_lr`` over ``epochs``.
    """
    if name == "none":
        return None
    if name == "plateau":
        if not 0 < factor < 1 or patience < 0:
            raise ValueError(
                f"training.lr_factor = {factor} must lie in (0, 1) and training.lr_patience = "
                f"{patience} must be >= 0"
            )
        return torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode="min", factor=factor, patience=patience, min_lr=min_lr
        )
    if name == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(
            optimizer, T_max=max(epochs, 1), eta_min=min_lr
        )
    raise ValueError(f"training.lr_scheduler = {name!r}; use one of {list(LR_SCHEDULERS)}")


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
        if device is not None:
            batch = batch.to(device)
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
        if device is not None:
            batch = batch.to(device)
        pred = models.predict(model, batch, training=False, compute_stress=compute_stress)
        for k, (sse, count) in component_sums(pred, batch).items():
            sums[k] = sums.get(k, 0.0) + float(sse.detach())
            counts[k] = counts.get(k, 0.0) + float(count)
    return {k: sums[k] / counts[k] if counts[k] > 0 else math.nan for k in sums}


def _fmt(value: float) -> str:
    return "nan" if not math.isfinite(value) else f"{value:.4g}"


def train_run(
    train_path: str | os.PathLike,
    val_path: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    run_name: str,
    model_cfg: dict,
    run_cfg: dict,
    epochs: int,
    batch_size: int,
    lr: float,
    dtype: str,
    seed: int,
    threads: int | None = None,
    lr_scheduler: str = "none",
    lr_factor: float = 0.8,
    lr_patience: int = 5,
    min_lr: float = 0.0,
    ema_decay: float = 0.0,
    early_stopping_patience: int = 0,
    clip_grad_norm: float = CLIP_GRAD_NORM,
    device: str = "auto",
    resume: bool = True,
    progress: bool | None = None,
) -> dict:
    """Train one run of ``training.runs`` and write ``model.pt``, ``model.model``,
    ``model.loss.json``, ``history.csv`` and ``last.pt``.

    Parameters
    ----------
    train_path, val_path : path
        extxyz files with ``REF_energy`` (eV), ``REF_forces`` (eV/Å), optional ``REF_stress``
        (eV/Å³, Voigt, tension positive).
    out_dir : path
        Created if needed; receives ``model.pt`` (best validation score), ``model.model``
        (the same model for MACE's tools), ``model.loss.json`` (the loss record),
        ``history.csv`` and ``last.pt`` (resume state).
    run_name : str
        Key of the run in ``training.runs`` (errors and logs name it).
    model_cfg : dict
        ``model:`` section of the config.
    run_cfg : dict
        ``training.runs.<run_name>``: ``scheme`` and its options, ``normalise``,
        ``update_interval_batches``.
    epochs, batch_size, lr : int, int, float
        Maximum number of epochs, structures per batch, Adam learning rate.
    dtype : str
        ``"float64"`` (default config) or ``"float32"``.
    seed : int
        Seeds model initialisation, shuffling and all global RNGs.
    threads : int, optional
        ``torch.set_num_threads`` for the run (restored afterwards).
    lr_scheduler, lr_factor, lr_patience, min_lr : str, float, int, float
        Learning-rate schedule (see :func:`make_scheduler`).
    ema_decay : float
        Decay of the parameter EMA in [0, 1); 0 switches it off.
    early_stopping_patience : int
        Stop after this many epochs without a better validation score; 0 = never.
    clip_grad_norm : float
        Gradient-norm clipping threshold; 0 = no clipping.
    device : str
        ``auto`` (CUDA when available), ``cpu`` or ``cuda``.
    resume : bool
        Continue from ``out_dir/last.pt`` when it belongs to this very run.
    progress : bool, optional
        Show a progress bar; default: only when stderr is a terminal.

    Returns
    -------
    dict
        Summary: best epoch, its validation RMSEs (meV/atom, meV/Å, GPa) and score, final
        weights, normalisation references, paths, timings (s), resume/early-stop information.

    Raises
    ------
    ValueError
        Bad arguments, unusable data, or a positive stress weight without stress labels.
    FloatingPointError
        A non-finite loss (names epoch and batch; ``model.pt`` keeps the best model so far and
        ``last.pt`` the last good epoch).
    """
    if int(epochs) < 1 or int(batch_size) < 1 or not (float(lr) > 0):
        raise ValueError(
            f"run {run_name}: need epochs >= 1, batch_size >= 1, lr > 0 "
            f"(got {epochs}, {batch_size}, {lr}); see training: in the config"
        )
    if not 0.0 <= float(ema_decay) < 1.0:
        raise ValueError(f"training.ema_decay = {ema_decay}; use a value in [0, 1) (0 = off)")
    if int(early_stopping_patience) < 0 or not float(clip_grad_norm) >= 0:
        raise ValueError(
            f"training.early_stopping_patience = {early_stopping_patience} and "
            f"training.clip_grad_norm = {clip_grad_norm} must be >= 0 (0 = off)"
        )
    if not float(min_lr) >= 0:
        raise ValueError(f"training.min_lr = {min_lr} must be >= 0")
    if lr_scheduler not in LR_SCHEDULERS:
        raise ValueError(
            f"training.lr_scheduler = {lr_scheduler!r}; use one of {list(LR_SCHEDULERS)}"
        )
    settings = {
        "epochs": int(epochs),
        "batch_size": int(batch_size),
        "lr": float(lr),
        "dtype": dtype,
        "seed": int(seed),
        "lr_scheduler": lr_scheduler,
        "lr_factor": float(lr_factor),
        "lr_patience": int(lr_patience),
        "min_lr": float(min_lr),
        "ema_decay": float(ema_decay),
        "early_stopping_patience": int(early_stopping_patience),
        "clip_grad_norm": float(clip_grad_norm),
    }
    models.torch_dtype(dtype)
    torch_device = resolve_device(device)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if progress is None:
        progress = sys.stderr.isatty()
    previous_threads = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(int(threads))
    try:
        with models.default_dtype(dtype):
            return _train(
                Path(train_path),
                Path(val_path),
                out_dir,
                run_name=run_name,
                model_cfg=dict(model_cfg),
                run_cfg=dict(run_cfg),
                settings=settings,
                device=torch_device,
                resume=resume,
                progress=bool(progress),
            )
    finally:
        torch.set_num_threads(previous_threads)


def _fingerprint(train_path: Path, val_path: Path, model_cfg, run_cfg, settings) -> str:
    """Hash of everything that determines the result (data, model, run, training settings)."""
    payload = {
        "train": _file_sha256(train_path),
        "val": _file_sha256(val_path),
        "model": {k: model_cfg[k] for k in models.MODEL_KEYS},
        "run": run_cfg,
        "settings": settings,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def _load_resume_state(path: Path, fingerprint: str, run_name: str) -> dict | None:
    """``last.pt`` when it belongs to this run, else None (a stale one is removed)."""
    if not path.exists():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - a truncated file is just not resumable
        log.warning("run %s: cannot read %s (%s); starting afresh", run_name, path, err)
        path.unlink(missing_ok=True)
        return None
    if not isinstance(state, dict) or state.get("format") != RESUME_FORMAT:
        log.warning("run %s: %s is not a dft2mlip training state; starting afresh", run_name, path)
        path.unlink(missing_ok=True)
        return None
    if state.get("fingerprint") != fingerprint:
        log.warning(
            "run %s: %s was written with other data or settings; starting afresh", run_name, path
        )
        path.unlink(missing_ok=True)
        return None
    return state


def _write_history(path: Path, rows: list[dict]) -> None:
    with atomic_write(path) as tmp, open(tmp, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(HISTORY_COLUMNS)
        for row in rows:
            writer.writerow([row[c] for c in HISTORY_COLUMNS])


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


def _train(
    train_path: Path,
    val_path: Path,
    out_dir: Path,
    *,
    run_name: str,
    model_cfg: dict,
    run_cfg: dict,
    settings: dict,
    device: torch.device,
    resume: bool,
    progress: bool,
) -> dict:
    t_start = time.perf_counter()
    epochs, batch_size, lr = settings["epochs"], settings["batch_size"], settings["lr"]
    dtype, seed = settings["dtype"], settings["seed"]
    seed_everything(seed)
    train_atoms = _read_frames(train_path, "training")
    val_atoms = _read_frames(val_path, "validation")

    weighting = make_weighting(run_name, run_cfg, COMPONENTS, seed=seed)
    mode = normalise_mode(run_name, run_cfg)
    interval = update_interval(run_name, run_cfg)
    # components whose loss enters the optimiser (adaptive weights are always > 0)
    trained = tuple(c for c, w in weighting.weights.items() if w > 0)
    has_stress = models.has_stress_labels(train_atoms)
    if "stress" in trained and not has_stress:
        raise ValueError(
            f"run {run_name}: the training set {train_path} has no REF_stress labels but the run "
            f"weighs stress (scheme {weighting.name}); set training.runs.{run_name}.weights.stress "
            f"to 0 (fixed), training.runs.{run_name}.components to [energy, forces] (adaptive), "
            "or use a dataset with stress labels"
        )

    models.check_model_cfg(model_cfg)
    r_max = float(model_cfg["r_max_A"])
    zs = sorted({int(z) for a in train_atoms for z in a.numbers})
    train_configs = models.atoms_to_configs(train_atoms, source=str(train_path))
    val_configs = models.atoms_to_configs(val_atoms, source=str(val_path))
    e0s = models.fit_e0s(train_configs, zs)
    train_data = models.configs_to_data(train_configs, zs, r_max, dtype)
    val_data = models.configs_to_data(val_configs, zs, r_max, dtype)
    stats = models.data_statistics(
        models.make_loader(train_data, batch_size, shuffle=False), e0s, zs
    )
    scales = label_scales(train_data, e0s, zs)
    val_has_stress = models.has_stress_labels(val_atoms)
    score_components = tuple(c for c in trained if c != "stress" or val_has_stress)

    torch.manual_seed(seed)
    model = models.build_model(
        model_cfg,
        zs,
        e0s,
        stats["avg_num_neighbors"],
        dtype,
        scale=stats["scale"],
        shift=stats["shift"],
    ).to(device)
    metadata = models.model_metadata(
        model_cfg, zs, e0s, stats["avg_num_neighbors"], dtype, stats["scale"], stats["shift"]
    )
    if hasattr(weighting, "to"):
        weighting.to(device=device, dtype=models.torch_dtype(dtype))
    groups = [{"params": list(model.parameters())}]
    if weighting.parameters():
        groups.append({"params": weighting.parameters()})
    optimizer = torch.optim.Adam(groups, lr=lr, amsgrad=True)
    scheduler = make_scheduler(
        optimizer,
        settings["lr_scheduler"],
        epochs=epochs,
        factor=settings["lr_factor"],
        patience=settings["lr_patience"],
        min_lr=settings["min_lr"],
    )
    ema = (
        ParameterEMA(list(model.parameters()), settings["ema_decay"])
        if settings["ema_decay"] > 0
        else None
    )
    shared = shared_parameters(model) if weighting.needs_shared_params else []
    train_loader = models.make_loader(train_data, batch_size, shuffle=True, seed=seed)
    val_loader = models.make_loader(val_data, batch_size, shuffle=False)
    n_params = sum(p.numel() for p in model.parameters())

    history_path = out_dir / "history.csv"
    model_path = out_dir / "model.pt"
    mace_path = out_dir / "model.model"
    loss_path = out_dir / LOSS_RECORD_NAME
    state_path = out_dir / "last.pt"
    fingerprint = _fingerprint(train_path, val_path, model_cfg, run_cfg, settings)
    state = _load_resume_state(state_path, fingerprint, run_name) if resume else None
    if not resume:
        state_path.unlink(missing_ok=True)

    rows: list[dict] = []
    best: dict[str, Any] = {"epoch": None, "score": math.inf, "val": None}
    best_payload: dict[str, Any] | None = None
    since_best = 0
    acc = {"sums": {k: 0.0 for k in COMPONENTS}, "counts": {k: 0.0 for k in COMPONENTS}, "n": 0}
    start_epoch = 1
    if state is not None:
        model.load_state_dict(state["model_state"])
        optimizer.load_state_dict(state["optimizer"])
        if scheduler is not None:
            scheduler.load_state_dict(state["scheduler"])
        if ema is not None:
            ema.load_state_dict(state["ema"])
        weighting.load_state_dict(state["weighting"])
        refs = {k: float(v) for k, v in state["normalisation"]["refs"].items()}
        rows = [dict(r) for r in state["history"]]
        best = dict(state["best"])
        best_payload = state["best_checkpoint"]
        since_best = int(state["since_best"])
        acc = state["interval_acc"]
        start_epoch = int(state["epoch"]) + 1
        _restore_rng(state["rng"], train_loader.generator)
        log.info("run %s: resuming from %s after epoch %d", run_name, state_path, state["epoch"])
    else:
        refs = {k: 1.0 for k in weighting.components}
        if mode == "initial":
            stats_loader = models.make_loader(train_data, batch_size, shuffle=False)
            initial = _mean_losses(model, stats_loader, has_stress, device)
            for k in trained:
                ref = initial.get(k, math.nan)
                if not math.isfinite(ref):
                    raise FloatingPointError(f"run {run_name}: initial {k} loss is {ref}")
                if ref < 1e-20:
                    log.warning(
                        "run %s: initial %s loss %.3g ~ 0, left unnormalised", run_name, k, ref
                    )
                    ref = 1.0
                refs[k] = ref
            log.info("run %s: normalisation references L_ref %s", run_name, refs)
    # the declared outputs are rewritten from the state (a workflow manager may have removed
    # them when the interrupted attempt failed)
    for stale in (model_path, mace_path, loss_path):
        stale.unlink(missing_ok=True)
    if best_payload is not None:
        _save_payload(model_path, best_payload)
    _write_history(history_path, rows)
    log.info(
        "run %s: %d train / %d val structures, elements %s, %d parameters, scheme %s, "
        "normalise %s, stress labels: %s, device %s, %s",
        run_name,
        len(train_data),
        len(val_data),
        zs,
        n_params,
        weighting.name,
        mode,
        has_stress,
        device,
        dtype,
    )

    training_info = models.plain(
        {
            **settings,
            "run_cfg": run_cfg,
            "train_path": str(train_path),
            "val_path": str(val_path),
        }
    )
    stopped_early = bool(
        settings["early_stopping_patience"] and since_best >= settings["early_stopping_patience"]
    )
    bar = None
    if progress and start_epoch <= epochs and not stopped_early:
        from tqdm.auto import tqdm

        bar = tqdm(total=epochs, initial=start_epoch - 1, desc=f"train {run_name}", unit="epoch")
    epoch_times = []
    epoch = start_epoch - 1
    try:
        for epoch in range(start_epoch, epochs + 1):
            if stopped_early:
                break
            t0, c0 = time.perf_counter(), time.process_time()
            model.train()
            sums = {k: 0.0 for k in COMPONENTS}
            counts = {k: 0.0 for k in COMPONENTS}
            weight_sums = {k: 0.0 for k in COMPONENTS}
            total_sum, n_batches = 0.0, 0
            for i_batch, batch in enumerate(train_loader):
                batch = batch.to(device)
                pred = models.predict(model, batch, training=True, compute_stress=has_stress)
                parts = component_sums(pred, batch)
                counts_b = {k: float(c) for k, (_, c) in parts.items()}
                losses = {
                    k: parts[k][0] / counts_b[k] / refs[k]
                    for k in weighting.components
                    if k in parts and counts_b[k] > 0
                }
                weights_used = weighting.weights
                total = weighting.combine(losses)
                total_value = float(total.detach())
                if not math.isfinite(total_value):
                    raise FloatingPointError(
                        f"run {run_name}: non-finite loss {total_value} at epoch {epoch}, "
                        f"batch {i_batch}; {model_path} keeps the best model up to epoch "
                        f"{best['epoch']} and {state_path} the state after epoch {epoch - 1}. "
                        "Lower training.lr, set training.clip_grad_norm or use float64."
                    )
                if weighting.per_batch:
                    weighting.batch_step(losses, shared)
                optimizer.zero_grad(set_to_none=True)
                total.backward()
                if settings["clip_grad_norm"] > 0:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), settings["clip_grad_norm"])
                optimizer.step()
                if ema is not None:
                    ema.update()
                for k, (sse, _) in parts.items():
                    value = float(sse.detach())
                    sums[k] += value
                    counts[k] += counts_b[k]
                    if interval:
                        acc["sums"][k] += value
                        acc["counts"][k] += counts_b[k]
                for k in COMPONENTS:
                    weight_sums[k] += weights_used.get(k, 0.0)
                total_sum += total_value
                n_batches += 1
                if interval and not weighting.per_batch:
                    acc["n"] += 1
                    if acc["n"] >= interval and all(
                        acc["counts"][k] > 0 for k in weighting.components
                    ):
                        weighting.update(
                            {
                                k: acc["sums"][k] / acc["counts"][k] / refs[k]
                                for k in weighting.components
                            }
                        )
                        acc = {
                            "sums": {k: 0.0 for k in COMPONENTS},
                            "counts": {k: 0.0 for k in COMPONENTS},
                            "n": 0,
                        }
            raw = {k: sums[k] / counts[k] if counts[k] > 0 else math.nan for k in COMPONENTS}
            if not interval:
                weighting.update({k: raw[k] / refs[k] for k in weighting.components})

            model.eval()
            with ema.averaged() if ema is not None else contextlib.nullcontext():
                val = evaluate(model, val_loader, compute_stress=True, device=device)["rmse"]
                score = validation_score(val, scales, score_components)
                if not math.isfinite(score):
                    raise FloatingPointError(
                        f"run {run_name}: non-finite validation score at epoch {epoch} "
                        f"(RMSEs {val}); {state_path} holds the state after epoch {epoch - 1}"
                    )
                is_best = score < best["score"]
                if is_best:
                    best_payload = _checkpoint_payload(
                        model,
                        metadata,
                        run_name=run_name,
                        epoch=epoch,
                        val_metrics={_VAL_KEYS[k]: val[k] * _VAL_UNITS[k] for k in COMPONENTS},
                        val_score=score,
                        label_scales=scales,
                        score_components=list(score_components),
                        weighting=weighting.state_dict(),
                        normalisation={"mode": mode, "refs": dict(refs)},
                        training=training_info,
                    )
            lr_used = optimizer.param_groups[0]["lr"]
            if scheduler is not None:
                if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
                    scheduler.step(score)
                else:
                    scheduler.step()
            wall = time.perf_counter() - t0
            cpu = time.process_time() - c0
            epoch_times.append(wall)
            row = {
                "epoch": epoch,
                "loss_total": total_sum / max(n_batches, 1),
                **{f"loss_{k}": raw[k] for k in COMPONENTS},
                **{f"weight_{k}": weight_sums[k] / max(n_batches, 1) for k in COMPONENTS},
                **{_VAL_KEYS[k]: val[k] * _VAL_UNITS[k] for k in COMPONENTS},
                "val_score": score,
                "best": int(is_best),
                "wall_s": wall,
                "lr": lr_used,
                "cpu_s": cpu,
            }
            rows.append(row)
            if is_best:
                best = {
                    "epoch": epoch,
                    "score": score,
                    "val": {_VAL_KEYS[k]: row[_VAL_KEYS[k]] for k in COMPONENTS},
                }
                since_best = 0
                best_payload["loss"] = loss_record(
                    weighting,
                    normalise=mode,
                    refs=refs,
                    update_interval_batches=interval,
                    history=rows,
                    model_epoch=epoch,
                )
                _save_payload(model_path, best_payload)
            else:
                since_best += 1
            stopped_early = bool(
                settings["early_stopping_patience"]
                and since_best >= settings["early_stopping_patience"]
            )
            _save_payload(
                state_path,
                {
                    "format": RESUME_FORMAT,
                    "fingerprint": fingerprint,
                    "epoch": epoch,
                    "model_state": {
                        k: v.detach().cpu().clone() for k, v in model.state_dict().items()
                    },
                    "optimizer": optimizer.state_dict(),
                    "scheduler": None if scheduler is None else scheduler.state_dict(),
                    "ema": None if ema is None else ema.state_dict(),
                    "weighting": weighting.state_dict(),
                    "normalisation": {"mode": mode, "refs": dict(refs)},
                    "rng": _rng_state(train_loader.generator),
                    "history": rows,
                    "best": best,
                    "best_checkpoint": best_payload,
                    "since_best": since_best,
                    "interval_acc": acc,
                },
            )
            with open(history_path, "a", newline="") as fh:
                csv.writer(fh).writerow([row[c] for c in HISTORY_COLUMNS])
            _log_epoch(run_name, epoch, epochs, row, raw, is_best)
            if bar is not None:
                bar.set_postfix(loss=f"{row['loss_total']:.3g}", score=f"{score:.3g}")
                bar.update(1)
            if stopped_early:
                log.info(
                    "run %s: early stop after epoch %d (%d epochs without a better validation "
                    "score)",
                    run_name,
                    epoch,
                    since_best,
                )
    finally:
        if bar is not None:
            bar.close()

    if best_payload is None:
        raise RuntimeError(f"run {run_name}: no epoch finished; nothing to export")
    # the loss record of the finished run: the whole weight trajectory, not only the epochs
    # up to the best one
    record = loss_record(
        weighting,
        normalise=mode,
        refs=refs,
        update_interval_batches=interval,
        history=rows,
        model_epoch=best["epoch"],
    )
    best_payload["loss"] = record
    _save_payload(model_path, best_payload)
    try:  # a copy of the trained module is much cheaper than building one (e3nn codegen)
        best_model = copy.deepcopy(model).to("cpu")
    except Exception:  # noqa: BLE001 - fall back to a fresh build
        best_model = models.model_from_metadata(best_payload["metadata"])
    best_model.load_state_dict(best_payload["model_state"])
    best_model.eval()
    export_mace_model(best_model, mace_path, loss=record)
    atomic_write_text(loss_path, json.dumps(record, indent=1) + "\n")

    final_epoch = rows[-1]["epoch"] if rows else 0
    summary = {
        "run_name": run_name,
        "epochs": epochs,
        "epochs_run": final_epoch,
        "resumed_from_epoch": None if state is None else int(state["epoch"]),
        "stopped_early": stopped_early and final_epoch < epochs,
        "best_epoch": best["epoch"],
        "best_val_score": best["score"],
        "best_val": best["val"],
        "final_weights": weighting.weights,
        "scheme": weighting.name,
        "normalise": mode,
        "normalisation_refs": dict(refs),
        "trained_components": list(trained),
        "score_components": list(score_components),
        "n_train": len(train_data),
        "n_val": len(val_data),
        "n_parameters": n_params,
        "device": str(device),
        "model_path": str(model_path),
        "mace_model_path": str(mace_path),
        "loss_record_path": str(loss_path),
        "history_path": str(history_path),
        "state_path": str(state_path),
        "mean_epoch_s": float(np.mean(epoch_times)) if epoch_times else math.nan,
        "wall_s": time.perf_counter() - t_start,
    }
    log.info(
        "run %s done: best epoch %s, score %.4g, %.1f s",
        run_name,
        best["epoch"],
        best["score"],
        summary["wall_s"],
    )
    return summary


def _checkpoint_payload(model, metadata, **training_state) -> dict[str, Any]:
    """The dictionary :func:`models.save_checkpoint` writes (kept in memory for ``last.pt``)."""
    return {
        "format": models.CHECKPOINT_FORMAT,
        "metadata": models.plain(metadata),
        "model_state": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        **training_state,
    }


def _save_payload(path: Path, payload: dict) -> None:
    with atomic_write(path) as tmp:
        torch.save(payload, tmp)


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
