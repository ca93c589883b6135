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
- optimiser: Adam (amsgrad), constant learning rate, gradient-norm clipping at 10 (MACE's
  default);
- model selection: after every epoch the model is scored on the validation set and the best
  one is written to ``model.pt`` (see :func:`validation_score`).

Outputs in ``out_dir``: ``model.pt`` (loads with ``torch.load(..., weights_only=True)``; read it
with :func:`dft2mlip.calculator.load_model`) and ``history.csv`` (one row per epoch).
"""

from __future__ import annotations

import csv
import logging
import math
import os
import random
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import ase.io
import numpy as np
import torch

from dft2mlip.train import models
from dft2mlip.train.loss import COMPONENTS, component_sums
from dft2mlip.train.weighting import make_weighting, normalise_mode
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
)
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
    }


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


def evaluate(model: torch.nn.Module, loader, *, compute_stress: bool) -> dict[str, Any]:
    """Predictions and RMSEs (eV/atom, eV/Å, eV/Å³) on a labelled loader.

    Returns ``{"rmse": {...}, "energy": (n,), "forces": [(n_i, 3)], "stress": (n, 6)}``; the stress
    RMSE is over structures with a stress label (NaN when none has one).
    """
    sums = {k: 0.0 for k in COMPONENTS}
    counts = {k: 0.0 for k in COMPONENTS}
    energies, forces, stresses = [], [], []
    for batch in loader:
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


def _mean_losses(model, loader, compute_stress: bool) -> dict[str, float]:
    """Mean raw component losses of ``model`` over a loader (no parameter update)."""
    sums: dict[str, float] = {}
    counts: dict[str, float] = {}
    for batch in loader:
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
) -> dict:
    """Train one run of ``training.runs`` and write ``model.pt`` and ``history.csv``.

    Parameters
    ----------
    train_path, val_path : path
        extxyz files with ``REF_energy`` (eV), ``REF_forces`` (eV/Å), optional ``REF_stress``
        (eV/Å³, Voigt, tension positive).
    out_dir : path
        Created if needed; receives ``model.pt`` (best validation score) and ``history.csv``.
    run_name : str
        Key of the run in ``training.runs`` (errors and logs name it).
    model_cfg : dict
        ``model:`` section of the config.
    run_cfg : dict
        ``training.runs.<run_name>``: ``scheme`` and its options, ``normalise``.
    epochs, batch_size, lr : int, int, float
        Number of epochs, structures per batch, Adam learning rate.
    dtype : str
        ``"float64"`` (default config) or ``"float32"``.
    seed : int
        Seeds model initialisation, shuffling and all global RNGs.
    threads : int, optional
        ``torch.set_num_threads`` for the run (restored afterwards).

    Returns
    -------
    dict
        Summary: best epoch, its validation RMSEs (meV/atom, meV/Å, GPa) and score, final
        weights, normalisation references, paths, timings (s).

    Raises
    ------
    ValueError
        Bad arguments, unusable data, or a positive stress weight without stress labels.
    FloatingPointError
        A non-finite loss (names epoch and batch; the last best ``model.pt`` stays on disk).
    """
    if int(epochs) < 1 or int(batch_size) < 1 or not (float(lr) > 0):
        raise ValueError(
            f"run {run_name}: need epochs >= 1, batch_size >= 1, lr > 0 "
            f"(got {epochs}, {batch_size}, {lr}); see training: in the config"
        )
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
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
                model_cfg=model_cfg,
                run_cfg=run_cfg,
                epochs=int(epochs),
                batch_size=int(batch_size),
                lr=float(lr),
                dtype=dtype,
                seed=int(seed),
            )
    finally:
        torch.set_num_threads(previous_threads)


def _train(
    train_path: Path,
    val_path: Path,
    out_dir: Path,
    *,
    run_name: str,
    model_cfg: dict,
    run_cfg: dict,
    epochs: int,
    batch_size: int,
    lr: float,
    dtype: str,
    seed: int,
) -> dict:
    t_start = time.perf_counter()
    seed_everything(seed)
    train_atoms = _read_frames(train_path, "training")
    val_atoms = _read_frames(val_path, "validation")

    weighting = make_weighting(run_name, run_cfg, COMPONENTS)
    mode = normalise_mode(run_name, run_cfg)
    # components whose loss enters the optimiser (softadapt weights are always > 0)
    trained = tuple(c for c, w in weighting.weights.items() if w > 0)
    has_stress = models.has_stress_labels(train_atoms)
    if "stress" in trained and not has_stress:
        raise ValueError(
            f"run {run_name}: the training set {train_path} has no REF_stress labels but the run "
            f"weighs stress (scheme {weighting.name}); set training.runs.{run_name}.weights.stress "
            "to 0 (fixed) or use a dataset with stress labels"
        )

    model_cfg = dict(model_cfg)
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
    )
    metadata = models.model_metadata(
        model_cfg, zs, e0s, stats["avg_num_neighbors"], dtype, stats["scale"], stats["shift"]
    )
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, amsgrad=True)
    train_loader = models.make_loader(train_data, batch_size, shuffle=True, seed=seed)
    val_loader = models.make_loader(val_data, batch_size, shuffle=False)
    n_params = sum(p.numel() for p in model.parameters())
    log.info(
        "run %s: %d train / %d val structures, elements %s, %d parameters, scheme %s, "
        "normalise %s, stress labels: %s",
        run_name,
        len(train_data),
        len(val_data),
        zs,
        n_params,
        weighting.name,
        mode,
        has_stress,
    )

    refs = {k: 1.0 for k in weighting.components}
    if mode == "initial":
        stats_loader = models.make_loader(train_data, batch_size, shuffle=False)
        initial = _mean_losses(model, stats_loader, has_stress)
        for k in trained:
            ref = initial.get(k, math.nan)
            if not math.isfinite(ref):
                raise FloatingPointError(f"run {run_name}: initial {k} loss is {ref}")
            if ref < 1e-20:
                log.warning("run %s: initial %s loss %.3g ~ 0, left unnormalised", run_name, k, ref)
                ref = 1.0
            refs[k] = ref
        log.info("run %s: normalisation references L_ref %s", run_name, refs)

    history_path = out_dir / "history.csv"
    model_path = out_dir / "model.pt"
    for stale in (history_path, model_path):
        stale.unlink(missing_ok=True)
    with open(history_path, "w", newline="") as fh:
        csv.writer(fh).writerow(HISTORY_COLUMNS)

    best: dict[str, Any] = {"epoch": None, "score": math.inf, "val": None}
    epoch_times = []
    for epoch in range(1, epochs + 1):
        t0 = time.perf_counter()
        weights_used = weighting.weights
        model.train()
        sums = {k: 0.0 for k in COMPONENTS}
        counts = {k: 0.0 for k in COMPONENTS}
        total_sum, n_batches = 0.0, 0
        for i_batch, batch in enumerate(train_loader):
            pred = models.predict(model, batch, training=True, compute_stress=has_stress)
            parts = component_sums(pred, batch)
            total = sum(
                weights_used[k] * parts[k][0] / torch.clamp(parts[k][1], min=1.0) / refs[k]
                for k in weighting.components
                if weights_used[k] > 0
            )
            if not torch.isfinite(total):
                raise FloatingPointError(
                    f"run {run_name}: non-finite loss {float(total.detach())} at epoch {epoch}, "
                    f"batch {i_batch}; {model_path} keeps the best model up to epoch "
                    f"{best['epoch']}. Lower training.lr or use float64."
                )
            optimizer.zero_grad(set_to_none=True)
            total.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), CLIP_GRAD_NORM)
            optimizer.step()
            for k, (sse, count) in parts.items():
                sums[k] += float(sse.detach())
                counts[k] += float(count)
            total_sum += float(total.detach())
            n_batches += 1
        raw = {k: sums[k] / counts[k] if counts[k] > 0 else math.nan for k in COMPONENTS}
        weighting.update({k: raw[k] / refs[k] for k in weighting.components})

        model.eval()
        val = evaluate(model, val_loader, compute_stress=True)["rmse"]
        score = validation_score(val, scales, score_components)
        if not math.isfinite(score):
            raise FloatingPointError(
                f"run {run_name}: non-finite validation score at epoch {epoch} (RMSEs {val})"
            )
        is_best = score < best["score"]
        wall = time.perf_counter() - t0
        epoch_times.append(wall)
        row = {
            "epoch": epoch,
            "loss_total": total_sum / max(n_batches, 1),
            **{f"loss_{k}": raw[k] for k in COMPONENTS},
            **{f"weight_{k}": weights_used.get(k, 0.0) for k in COMPONENTS},
            **{_VAL_KEYS[k]: val[k] * _VAL_UNITS[k] for k in COMPONENTS},
            "val_score": score,
            "best": int(is_best),
            "wall_s": wall,
        }
        if is_best:
            best = {
                "epoch": epoch,
                "score": score,
                "val": {_VAL_KEYS[k]: row[_VAL_KEYS[k]] for k in COMPONENTS},
            }
            models.save_checkpoint(
                model_path,
                model,
                metadata,
                run_name=run_name,
                epoch=epoch,
                val_metrics=best["val"],
                val_score=score,
                label_scales=scales,
                score_components=list(score_components),
                weighting=weighting.state_dict(),
                normalisation={"mode": mode, "refs": dict(refs)},
                optimizer=optimizer.state_dict(),
                rng=_rng_state(train_loader.generator),
                training=models.plain(
                    {
                        "epochs": epochs,
                        "batch_size": batch_size,
                        "lr": lr,
                        "seed": seed,
                        "dtype": dtype,
                        "run_cfg": dict(run_cfg),
                        "train_path": str(train_path),
                        "val_path": str(val_path),
                    }
                ),
            )
        with open(history_path, "a", newline="") as fh:
            csv.writer(fh).writerow([row[c] for c in HISTORY_COLUMNS])
        log.info(
            "run %s epoch %d/%d: loss %s | E %s F %s S %s | w E %.3g F %.3g S %.3g | val E %s "
            "meV/atom F %s meV/A S %s GPa | score %.4g%s | %.2f s",
            run_name,
            epoch,
            epochs,
            _fmt(row["loss_total"]),
            _fmt(raw["energy"]),
            _fmt(raw["forces"]),
            _fmt(raw["stress"]),
            weights_used.get("energy", 0.0),
            weights_used.get("forces", 0.0),
            weights_used.get("stress", 0.0),
            _fmt(row[_VAL_KEYS["energy"]]),
            _fmt(row[_VAL_KEYS["forces"]]),
            _fmt(row[_VAL_KEYS["stress"]]),
            score,
            " *" if is_best else "",
            wall,
        )

    summary = {
        "run_name": run_name,
        "epochs": epochs,
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
        "model_path": str(model_path),
        "history_path": str(history_path),
        "mean_epoch_s": float(np.mean(epoch_times)),
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
