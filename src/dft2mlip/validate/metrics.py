"""Test-set errors of a calculator against DFT labels: energy, forces and stress.

Reference values are read from the label keys of the dataset (``atoms.info["REF_energy"]`` in eV,
``atoms.arrays["REF_forces"]`` in eV/Å, ``atoms.info["REF_stress"]`` in eV/Å³, ASE Voigt order,
tension positive). Predictions come from any ASE calculator. Tables and plots report energy per
atom in eV/atom (metrics in meV/atom), forces in eV/Å (metrics in meV/Å) and stress in GPa.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from ase import Atoms  # noqa: E402
from ase.calculators.calculator import Calculator, PropertyNotImplementedError  # noqa: E402
from ase.stress import full_3x3_to_voigt_6_stress  # noqa: E402

from dft2mlip.io import save_figure  # noqa: E402
from dft2mlip.units import EV_PER_A3_TO_GPA  # noqa: E402

#: ASE Voigt order of the six stress components
VOIGT_COMPONENTS = ("xx", "yy", "zz", "yz", "xz", "xy")
STRESS_REF_COLUMNS = [f"stress_ref_{c}_GPa" for c in VOIGT_COMPONENTS]
STRESS_PRED_COLUMNS = [f"stress_pred_{c}_GPa" for c in VOIGT_COMPONENTS]


@dataclass
class Predictions:
    """Reference and predicted labels of a set of structures.

    Attributes
    ----------
    per_structure
        One row per structure: ``structure_id``, ``config_type``, ``n_atoms``,
        ``energy_ref_eV_per_atom``, ``energy_pred_eV_per_atom``, ``stress_ref_<c>_GPa`` and
        ``stress_pred_<c>_GPa`` for c in xx, yy, zz, yz, xz, xy (NaN where a structure has no
        stress, e.g. a non-periodic one).
    forces_ref, forces_pred
        (n_atoms_total, 3) forces in eV/Å, structures concatenated in row order.
    atom_structure_index
        (n_atoms_total,) row index into ``per_structure`` of each atom.
    """

    per_structure: pd.DataFrame
    forces_ref: np.ndarray
    forces_pred: np.ndarray
    atom_structure_index: np.ndarray


def voigt_stress(value: object) -> np.ndarray:
    """Return a stress given as a 6-vector or a 3x3 matrix as an ASE Voigt 6-vector (same units)."""
    arr = np.asarray(value, dtype=float)
    if arr.shape == (3, 3):
        return full_3x3_to_voigt_6_stress(arr)
    if arr.shape == (9,):
        return full_3x3_to_voigt_6_stress(arr.reshape(3, 3))
    if arr.shape == (6,):
        return arr
    raise ValueError(f"stress has shape {arr.shape}; expected a Voigt 6-vector or a 3x3 matrix")


def _structure_id(atoms: Atoms, index: int) -> str:
    return str(atoms.info.get("structure_id", f"#{index}"))


def _reference(atoms: Atoms, index: int) -> tuple[float, np.ndarray, np.ndarray]:
    """REF energy (eV), forces (eV/Å), stress (eV/Å³, NaN if absent) of a labelled structure."""
    sid = _structure_id(atoms, index)
    status = atoms.info.get("status", "ok")
    has_energy = "REF_energy" in atoms.info
    if status != "ok" or not has_energy:
        raise ValueError(
            f"structure {sid} (position {index}) has no usable DFT label "
            f"(status={status!r}, REF_energy {'present' if has_energy else 'absent'}); "
            "pass only labelled structures with status 'ok' (e.g. the dataset's test split)"
        )
    if "REF_forces" not in atoms.arrays:
        raise ValueError(
            f"structure {sid} (position {index}) has REF_energy but no REF_forces array"
        )
    energy = float(atoms.info["REF_energy"])
    forces = np.asarray(atoms.arrays["REF_forces"], dtype=float).reshape(len(atoms), 3)
    if "REF_stress" in atoms.info:
        stress = voigt_stress(atoms.info["REF_stress"])
    else:
        stress = np.full(6, np.nan)
    return energy, forces, stress


def model_static_stress(atoms: Atoms, calc: Calculator) -> np.ndarray:
    """Stress of ``atoms`` from ``calc`` in eV/Å³ (Voigt, no kinetic part); NaN if not available.

    ``atoms`` is copied, so its own calculator, momenta and results are left untouched.
    """
    work = atoms.copy()
    work.calc = calc
    return _static_stress(work)


def _static_stress(atoms_with_calc: Atoms) -> np.ndarray:
    if not atoms_with_calc.pbc.all():
        return np.full(6, np.nan)
    try:
        stress = atoms_with_calc.get_stress(voigt=True, include_ideal_gas=False)
    except PropertyNotImplementedError:
        return np.full(6, np.nan)
    return np.asarray(stress, dtype=float)


def predict(calc: Calculator, atoms_list: list[Atoms]) -> Predictions:
    """Evaluate ``calc`` on labelled structures and collect reference and predicted labels.

    Parameters
    ----------
    calc
        Any ASE calculator returning energy (eV), forces (eV/Å) and stress (eV/Å³).
    atoms_list
        Labelled structures (REF_energy, REF_forces, optional REF_stress; status "ok").

    Returns
    -------
    Predictions
        Per-structure table (energy in eV/atom, stress in GPa) and per-atom force arrays (eV/Å).
    """
    if len(atoms_list) == 0:
        raise ValueError("predict() got an empty list of structures; nothing to evaluate")
    rows = []
    f_ref, f_pred, index = [], [], []
    for i, atoms in enumerate(atoms_list):
        e_ref, fr, s_ref = _reference(atoms, i)
        work = atoms.copy()  # drops any attached calculator and keeps info/arrays
        work.calc = calc
        n = len(work)
        e_pred = float(work.get_potential_energy())
        fp = np.asarray(work.get_forces(), dtype=float)
        s_pred = _static_stress(work)
        row = {
            "structure_id": _structure_id(atoms, i),
            "config_type": str(atoms.info.get("config_type", "default")),
            "n_atoms": n,
            "energy_ref_eV_per_atom": e_ref / n,
            "energy_pred_eV_per_atom": e_pred / n,
        }
        row.update(dict(zip(STRESS_REF_COLUMNS, s_ref * EV_PER_A3_TO_GPA, strict=True)))
        row.update(dict(zip(STRESS_PRED_COLUMNS, s_pred * EV_PER_A3_TO_GPA, strict=True)))
        rows.append(row)
        f_ref.append(fr)
        f_pred.append(fp)
        index.append(np.full(n, i))
    return Predictions(
        per_structure=pd.DataFrame(rows),
        forces_ref=np.concatenate(f_ref),
        forces_pred=np.concatenate(f_pred),
        atom_structure_index=np.concatenate(index),
    )


def _mae_rmse(err: np.ndarray) -> tuple[float, float]:
    err = np.asarray(err, dtype=float).ravel()
    err = err[np.isfinite(err)]
    if err.size == 0:
        return float("nan"), float("nan")
    return float(np.mean(np.abs(err))), float(np.sqrt(np.mean(err**2)))


def component_metrics(predictions: Predictions) -> dict:
    """Mean absolute and root-mean-square errors of energy, forces and stress.

    Energy errors are per atom (meV/atom); force errors are over all Cartesian components
    (meV/Å); stress errors are over all six Voigt components of the structures that have a
    reference stress (GPa).

    Returns
    -------
    dict
        energy_mae_meV_per_atom, energy_rmse_meV_per_atom, forces_mae_meV_per_A,
        forces_rmse_meV_per_A, stress_mae_GPa, stress_rmse_GPa, n_structures, n_atoms,
        n_structures_with_stress.
    """
    df = predictions.per_structure
    e_mae, e_rmse = _mae_rmse(df["energy_pred_eV_per_atom"] - df["energy_ref_eV_per_atom"])
    f_mae, f_rmse = _mae_rmse(predictions.forces_pred - predictions.forces_ref)
    s_err = df[STRESS_PRED_COLUMNS].to_numpy() - df[STRESS_REF_COLUMNS].to_numpy()
    s_mae, s_rmse = _mae_rmse(s_err)
    return {
        "energy_mae_meV_per_atom": 1000.0 * e_mae,
        "energy_rmse_meV_per_atom": 1000.0 * e_rmse,
        "forces_mae_meV_per_A": 1000.0 * f_mae,
        "forces_rmse_meV_per_A": 1000.0 * f_rmse,
        "stress_mae_GPa": s_mae,
        "stress_rmse_GPa": s_rmse,
        "n_structures": len(df),
        "n_atoms": int(len(predictions.forces_ref)),
        "n_structures_with_stress": int(np.isfinite(s_err).all(axis=1).sum()),
    }


def _subset(predictions: Predictions, rows: np.ndarray) -> Predictions:
    """The predictions of the structures at ``rows`` (row indices of ``per_structure``)."""
    atoms_mask = np.isin(predictions.atom_structure_index, rows)
    return Predictions(
        per_structure=predictions.per_structure.iloc[rows].reset_index(drop=True),
        forces_ref=predictions.forces_ref[atoms_mask],
        forces_pred=predictions.forces_pred[atoms_mask],
        atom_structure_index=predictions.atom_structure_index[atoms_mask],
    )


def metrics_by_config_type(predictions: Predictions) -> dict[str, dict]:
    """:func:`component_metrics` for each ``config_type`` separately (same units)."""
    df = predictions.per_structure
    out = {}
    for ct in sorted(df["config_type"].unique()):
        rows = np.flatnonzero(df["config_type"].to_numpy() == ct)
        out[str(ct)] = component_metrics(_subset(predictions, rows))
    return out


def stress_mae_by_component(predictions: Predictions) -> dict[str, float]:
    """Stress MAE (GPa) of each Voigt component over the structures with a reference stress:
    ``stress_mae_<c>_GPa`` for c in xx, yy, zz, yz, xz, xy."""
    df = predictions.per_structure
    err = np.abs(df[STRESS_PRED_COLUMNS].to_numpy() - df[STRESS_REF_COLUMNS].to_numpy())
    return {f"stress_mae_{c}_GPa": float(np.nanmean(err[:, j])) if np.isfinite(err[:, j]).any()
            else float("nan") for j, c in enumerate(VOIGT_COMPONENTS)}  # fmt: skip


def heldout_metrics(predictions: Predictions, strains: np.ndarray, n_bins: int) -> dict:
    """Errors on the held-out validation-condition frames: :func:`component_metrics`, stress MAE
    per component, and per bin of |strain| (``n_bins`` equal bins from 0 to the largest).

    Parameters
    ----------
    predictions
        :func:`predict` on the frames with an ok DFT label.
    strains
        Each frame's MD strain (dimensionless; engineering shear for shear paths), row order.
    n_bins
        Number of strain bins (>= 1).

    Returns
    -------
    dict
        The overall metrics (meV/atom, meV/Å, GPa), ``stress_mae_<c>_GPa``, and ``strain_bins``:
        one record per bin (``lo``, ``hi``, ``n``, ``stress_mae_GPa``, ``forces_mae_meV_per_A``,
        ``energy_mae_meV_per_atom``; NaN for an empty bin).
    """
    magnitude = np.abs(np.asarray(strains, dtype=float))
    edges = np.linspace(0.0, float(magnitude.max()), int(n_bins) + 1)
    which = np.clip(np.searchsorted(edges, magnitude, side="right") - 1, 0, int(n_bins) - 1)
    bins = []
    keys = ("stress_mae_GPa", "forces_mae_meV_per_A", "energy_mae_meV_per_atom")
    for b in range(int(n_bins)):
        rows = np.flatnonzero(which == b)
        values = component_metrics(_subset(predictions, rows)) if rows.size else {}
        bins.append({"lo": float(edges[b]), "hi": float(edges[b + 1]), "n": int(rows.size),
                     **{k: float(values.get(k, float("nan"))) for k in keys}})  # fmt: skip
    return {**component_metrics(predictions), **stress_mae_by_component(predictions),
            "strain_bins": bins}  # fmt: skip


def write_metrics_json(metrics: dict, path: str | Path, **extra: object) -> Path:
    """Write a metrics dict (from :func:`component_metrics`) plus ``extra`` keys as JSON."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {**metrics, **extra}
    path.write_text(json.dumps(data, indent=2, default=_json_default) + "\n")
    return path


def read_metrics_json(path: str | Path) -> dict:
    """Read a metrics JSON written by :func:`write_metrics_json`."""
    return json.loads(Path(path).read_text())


def _json_default(obj: object) -> object:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"cannot serialise {type(obj).__name__} to JSON")


def _parity_panel(ax, ref, pred, label: str, unit: str, text: str) -> None:
    ref = np.asarray(ref, dtype=float).ravel()
    pred = np.asarray(pred, dtype=float).ravel()
    ok = np.isfinite(ref) & np.isfinite(pred)
    ref, pred = ref[ok], pred[ok]
    if ref.size:
        lo = min(ref.min(), pred.min())
        hi = max(ref.max(), pred.max())
        pad = 0.05 * (hi - lo) if hi > lo else 1.0
        lims = (lo - pad, hi + pad)
        ax.plot(lims, lims, color="0.5", lw=1, ls="--", zorder=0)
        ax.scatter(ref, pred, s=10, alpha=0.7, edgecolors="none")
        ax.set_xlim(lims)
        ax.set_ylim(lims)
    else:
        ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
    ax.set_aspect("equal", adjustable="box")
    ax.set_xlabel(f"DFT {label} ({unit})")
    ax.set_ylabel(f"model {label} ({unit})")
    ax.text(
        0.04,
        0.96,
        text,
        transform=ax.transAxes,
        va="top",
        ha="left",
        fontsize=9,
        bbox={"boxstyle": "round", "fc": "white", "ec": "0.8"},
    )


def plot_parity(predictions: Predictions, path: str | Path, title: str) -> Path:
    """Write a 3-panel parity plot (energy per atom, force components, stress components in GPa).

    Each panel has the y = x line and the MAE/RMSE of that component.
    """
    m = component_metrics(predictions)
    df = predictions.per_structure
    fig, axes = plt.subplots(1, 3, figsize=(13.5, 4.6))
    _parity_panel(
        axes[0],
        df["energy_ref_eV_per_atom"],
        df["energy_pred_eV_per_atom"],
        "energy",
        "eV/atom",
        f"MAE {m['energy_mae_meV_per_atom']:.2f} meV/atom\n"
        f"RMSE {m['energy_rmse_meV_per_atom']:.2f} meV/atom",
    )
    _parity_panel(
        axes[1],
        predictions.forces_ref,
        predictions.forces_pred,
        "force components",
        "eV/Å",
        f"MAE {m['forces_mae_meV_per_A']:.1f} meV/Å\nRMSE {m['forces_rmse_meV_per_A']:.1f} meV/Å",
    )
    _parity_panel(
        axes[2],
        df[STRESS_REF_COLUMNS].to_numpy(),
        df[STRESS_PRED_COLUMNS].to_numpy(),
        "stress components",
        "GPa",
        f"MAE {m['stress_mae_GPa']:.3f} GPa\nRMSE {m['stress_rmse_GPa']:.3f} GPa",
    )
    fig.suptitle(f"{title} ({m['n_structures']} structures, {m['n_atoms']} atoms)")
    fig.tight_layout()
    return save_figure(fig, path)
