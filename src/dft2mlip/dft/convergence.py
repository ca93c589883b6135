"""Convergence study: cutoff x k-point spacing, judged on energy differences, forces and stress.

Every point of the grid computes two structures of the material with the same engine and
settings as the labels (only the cutoff and the k-point spacing change): a strained, rattled
cell (``A``: nonzero forces and all six stress components) and the same cell unstrained
(``B``). The cell is the primitive one, or the conventional one where the primitive cell has a
single atom (fcc, bcc: displacing a lone atom only translates it, its forces stay zero and the
force tolerance would test nothing). Against the tightest point (largest cutoff, smallest
spacing):

- energy: the energy DIFFERENCE per atom ``(E_A - E_B) / N`` (what training sees; absolute
  energies converge much more slowly and do not matter), meV/atom;
- forces: largest component deviation over both structures, meV/Å;
- stress: largest deviation of any of the six components over both structures, GPa.

The cheapest point within all three tolerances is chosen; cost model: ``cutoff**1.5 x
irreducible k-points`` of ``A`` (plane waves x k-points; deterministic, unlike wall time,
which is recorded too). When only the tightest point qualifies it is chosen with a warning
that the grid should be extended. Quantum ESPRESSO points keep ``ecutrho / ecutwfc`` fixed.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from ase import Atoms

from dft2mlip.dft.engines import get_engine
from dft2mlip.io import save_figure
from dft2mlip.structures import (
    REFERENCE_CELL_KEY,
    apply_voigt_strain,
    conventional_cell,
    primitive_cell,
)
from dft2mlip.units import EV_PER_A3_TO_GPA

log = logging.getLogger(__name__)
_KEY = "dft.convergence"
#: columns of the study's CSV (first column: the x axis of the report's plot)
COLUMNS = (
    "cutoff",
    "kspacing_per_A",
    "point",
    "status",
    "n_kpoints",
    "cost",
    "wall_time_s",
    "energy_diff_err_meV_per_atom",
    "force_err_meV_per_A",
    "stress_err_GPa",
    "within_tolerance",
    "chosen",
)


@dataclass(frozen=True)
class ConvergenceSpec:
    """Validated ``dft.convergence`` config section.

    ``cutoffs`` are in the engine's unit: QE ``ecutwfc`` in Ry, VASP ``ENCUT`` in eV.
    """

    enabled: bool = False
    cutoffs: Sequence[float] = (30.0, 40.0, 50.0, 60.0, 70.0)
    kspacings_per_A: Sequence[float] = (0.5, 0.35, 0.25, 0.2, 0.15)
    energy_tol_meV_per_atom: float = 1.0
    force_tol_meV_per_A: float = 10.0
    stress_tol_GPa: float = 0.1
    strain: float = 0.01
    rattle_A: float = 0.03

    def __post_init__(self) -> None:
        cutoffs = tuple(float(c) for c in self.cutoffs)
        spacings = tuple(float(k) for k in self.kspacings_per_A)
        if not cutoffs or min(cutoffs) <= 0 or len(set(cutoffs)) != len(cutoffs):
            raise ValueError(f"{_KEY}.cutoffs must be distinct positive numbers, got {cutoffs}")
        if not spacings or min(spacings) <= 0 or len(set(spacings)) != len(spacings):
            raise ValueError(
                f"{_KEY}.kspacings_per_A must be distinct positive numbers (1/Å), got {spacings}"
            )
        object.__setattr__(self, "cutoffs", tuple(sorted(cutoffs)))
        object.__setattr__(self, "kspacings_per_A", tuple(sorted(spacings, reverse=True)))
        for key in ("energy_tol_meV_per_atom", "force_tol_meV_per_A", "stress_tol_GPa"):
            if not float(getattr(self, key)) > 0:
                raise ValueError(f"{_KEY}.{key} must be > 0, got {getattr(self, key)}")
        if not 0 < self.strain <= 0.1:
            raise ValueError(f"{_KEY}.strain must be in (0, 0.1], got {self.strain}")
        if not 0 <= self.rattle_A <= 0.2:
            raise ValueError(f"{_KEY}.rattle_A must be in [0, 0.2] Å, got {self.rattle_A}")

    @classmethod
    def from_config(cls, cfg: Mapping) -> ConvergenceSpec:
        """Build from ``config["dft"]["convergence"]``."""
        return cls(**{k: v for k, v in dict(cfg).items()})

    def points(self) -> list[tuple[str, float, float]]:
        """``(point_id, cutoff, kspacing)`` for the whole grid (ids are path-safe)."""
        return [(point_id(c, k), c, k) for c in self.cutoffs for k in self.kspacings_per_A]

    def reference_id(self) -> str:
        """The tightest point: largest cutoff, smallest k-point spacing."""
        return point_id(max(self.cutoffs), min(self.kspacings_per_A))


def point_id(cutoff: float, kspacing_per_A: float) -> str:
    """``"c<cutoff>_k<spacing>"``, e.g. ``c40_k0.25``."""
    return f"c{cutoff:g}_k{kspacing_per_A:g}"


def study_cell(material: Mapping) -> Atoms:
    """The cell the study strains and rattles: the primitive cell if it has two atoms or more,
    else the conventional cell (fcc: 4 atoms, bcc: 2), else a 2x1x1 supercell of it (sc), so
    that rattling gives forces that are not zero by symmetry."""
    cell = primitive_cell(material)
    if len(cell) < 2:
        cell = conventional_cell(material, (1, 1, 1))
    return cell if len(cell) >= 2 else cell.repeat((2, 1, 1))


def reference_structures(material: Mapping, seed: int, strain: float, rattle_A: float) -> dict:
    """The study's two structures: ``A`` (strained, rattled) and ``B`` (unstrained), both of
    :func:`study_cell`.

    ``A`` has a random Voigt strain with every component of magnitude ``strain`` (random signs,
    shear included) and Gaussian displacements of ``rattle_A`` (Å), seeded by ``seed``. Both
    use the unstrained cell's k-point mesh, as every label of one family does.
    """
    rng = np.random.default_rng([int(seed), 9001])
    base = study_cell(material)
    voigt = strain * rng.choice([-1.0, 1.0], size=6)
    a = apply_voigt_strain(base, voigt)
    a.positions += rng.normal(0.0, rattle_A, size=a.positions.shape) if rattle_A else 0.0
    a.info.update(structure_id="conv_A", config_type="convergence", voigt_strain=voigt)
    b = base.copy()
    b.info.update(structure_id="conv_B", config_type="convergence")
    for atoms in (a, b):  # one family: the k-mesh of the unstrained cell (as for the labels)
        atoms.info[REFERENCE_CELL_KEY] = np.array(base.cell.array)
    return {"A": a, "B": b}


def settings_at(engine: str, engine_cfg: Mapping, cutoff: float, kspacing_per_A: float) -> dict:
    """The engine's config section with the cutoff and k-point spacing of one point.

    QE: ``ecutwfc_Ry = cutoff`` and ``ecutrho_Ry`` keeps the configured ``ecutrho/ecutwfc``
    ratio; VASP: ``encut_eV = cutoff``. Everything else stays as configured.
    """
    return get_engine(engine).at_point(engine_cfg, cutoff, kspacing_per_A)


def apply_chosen(engine: str, engine_cfg: Mapping, chosen_path: str | os.PathLike | None) -> dict:
    """The engine settings every label uses: the config, or the study's choice when given."""
    return get_engine(engine).with_choice(engine_cfg, chosen_path)


def run_point(
    engine: str,
    engine_settings: Mapping,
    structures: Mapping[str, Atoms],
    directory: str | os.PathLike,
    *,
    run_kwargs: Mapping | None = None,
) -> dict:
    """Compute the study's structures at one point (write, run under custodian, parse).

    Parameters
    ----------
    engine
        ``qe`` or ``vasp``.
    engine_settings
        The engine's config section at this point (:func:`settings_at`).
    structures
        ``{"A": ..., "B": ...}`` from :func:`reference_structures`.
    directory
        Work directory of the point (one subdirectory per structure).
    run_kwargs
        Passed to :func:`~dft2mlip.dft.execute.run_pw_custodian` /
        :func:`~dft2mlip.dft.execute.run_vasp_custodian` (executable, nprocs, ...).

    Returns
    -------
    dict
        Per structure: ``status``, ``message``, ``n_atoms``, ``energy_eV``, ``forces_eV_per_A``,
        ``stress_eV_per_A3`` (Voigt, tension +), ``n_kpoints``, ``wall_time_s``; plus
        ``settings_hash``.
    """
    eng = get_engine(engine)
    run_kwargs = dict(run_kwargs or {})
    directory = Path(directory)
    settings = eng.settings(engine_settings)
    settings_hash = settings.settings_hash()
    out: dict = {"engine": engine, "structures": {}, "settings_hash": settings_hash}
    for name, atoms in structures.items():
        work = directory / name
        eng.write_input(atoms, settings, work)
        record = eng.run(work, executable=settings.executable, **run_kwargs)
        label = eng.parse(work, atoms, settings_hash, settings)
        entry = {
            "status": label.status,
            "message": label.message,
            "n_atoms": len(atoms),
            "n_kpoints": label.provenance.get("n_kpoints_irreducible"),
            "wall_time_s": record["wall_time_s"],
            "n_corrections": record["n_corrections"],
        }
        if label.status == "ok":
            entry.update(
                energy_eV=label.energy,
                forces_eV_per_A=label.forces.tolist(),
                stress_eV_per_A3=label.stress.tolist(),
            )
        out["structures"][name] = entry
    return out


def point_errors(point: Mapping, reference: Mapping) -> dict:
    """Errors of one point against the reference (meV/atom, meV/Å, GPa); NaN if not ok."""
    nan = {
        "energy_diff_err_meV_per_atom": math.nan,
        "force_err_meV_per_A": math.nan,
        "stress_err_GPa": math.nan,
    }
    ps, rs = point["structures"], reference["structures"]
    if any(ps[n]["status"] != "ok" or rs[n]["status"] != "ok" for n in ("A", "B")):
        return nan

    def ediff(s: Mapping) -> float:
        return s["A"]["energy_eV"] / s["A"]["n_atoms"] - s["B"]["energy_eV"] / s["B"]["n_atoms"]

    force = max(
        float(np.abs(np.subtract(ps[n]["forces_eV_per_A"], rs[n]["forces_eV_per_A"])).max())
        for n in ("A", "B")
    )
    stress = max(
        float(np.abs(np.subtract(ps[n]["stress_eV_per_A3"], rs[n]["stress_eV_per_A3"])).max())
        for n in ("A", "B")
    )
    return {
        "energy_diff_err_meV_per_atom": 1000.0 * abs(ediff(ps) - ediff(rs)),
        "force_err_meV_per_A": 1000.0 * force,
        "stress_err_GPa": stress * EV_PER_A3_TO_GPA,
    }


def select_settings(
    results: Mapping[str, Mapping], spec: ConvergenceSpec, engine: str
) -> tuple[pd.DataFrame, dict]:
    """Tabulate every point and choose the cheapest one within the tolerances.

    Parameters
    ----------
    results
        ``{point_id: run_point(...) result}`` for every point of ``spec``.
    spec
        The study (grid and tolerances).
    engine
        ``qe`` or ``vasp`` (recorded in the choice).

    Returns
    -------
    (pandas.DataFrame, dict)
        The table (:data:`COLUMNS`, sorted by cutoff then spacing) and the chosen settings
        ``{"engine", "cutoff", "kspacing_per_A", "point", "tolerances", "errors", "warning"}``.

    Raises
    ------
    ValueError
        If a point is missing or the reference point did not finish ok.
    """
    ref_id = spec.reference_id()
    reference = _reference_result(results, spec)
    rows = [_point_row(pid, cutoff, spacing, results[pid], reference, spec)
            for pid, cutoff, spacing in spec.points()]  # fmt: skip
    table = pd.DataFrame(rows, columns=list(COLUMNS))
    candidates = table[table["within_tolerance"]].sort_values(
        ["cost", "cutoff", "kspacing_per_A"], ascending=[True, False, True]
    )
    best = candidates.iloc[0]
    table.loc[table["point"] == best["point"], "chosen"] = True
    warning = None
    if best["point"] == ref_id:
        warning = (
            f"only the tightest point {ref_id} is within the tolerances: the grid does not "
            "show convergence; extend dft.convergence.cutoffs / kspacings_per_A"
        )
        log.warning(warning)
    return table, _choice(best, spec, engine, warning)


def _reference_result(results: Mapping[str, Mapping], spec: ConvergenceSpec) -> Mapping:
    """The reference point's result; raises when a point is missing or the reference failed."""
    ref_id = spec.reference_id()
    missing = [p for p, _, _ in spec.points() if p not in results]
    if missing:
        raise ValueError(f"convergence results missing for points {missing}")
    reference = results[ref_id]
    bad = [n for n, s in reference["structures"].items() if s["status"] != "ok"]
    if bad:
        raise ValueError(
            f"the reference point {ref_id} failed for structure(s) {bad} "
            f"({reference['structures'][bad[0]]['message']}); the study cannot judge the grid"
        )
    return reference


def _point_row(
    pid: str, cutoff: float, spacing: float, res: Mapping, reference: Mapping,
    spec: ConvergenceSpec,
) -> dict:  # fmt: skip
    """One row of the study's table: the point's errors against the reference and its cost."""
    ok = all(s["status"] == "ok" for s in res["structures"].values())
    n_k = res["structures"]["A"].get("n_kpoints") or math.nan
    errors = point_errors(res, reference)
    within = bool(
        ok
        and errors["energy_diff_err_meV_per_atom"] <= spec.energy_tol_meV_per_atom
        and errors["force_err_meV_per_A"] <= spec.force_tol_meV_per_A
        and errors["stress_err_GPa"] <= spec.stress_tol_GPa
    )
    return {
        "cutoff": cutoff,
        "kspacing_per_A": spacing,
        "point": pid,
        "status": "ok" if ok else "failed",
        "n_kpoints": n_k,
        "cost": cutoff**1.5 * n_k,
        "wall_time_s": sum(s["wall_time_s"] for s in res["structures"].values()),
        **errors,
        "within_tolerance": within,
        "chosen": False,
    }


def _choice(best: pd.Series, spec: ConvergenceSpec, engine: str, warning: str | None) -> dict:
    """The chosen settings record of :func:`select_settings` from the table's best row."""
    return {
        "engine": engine,
        "cutoff": float(best["cutoff"]),
        "kspacing_per_A": float(best["kspacing_per_A"]),
        "point": str(best["point"]),
        "reference": spec.reference_id(),
        "tolerances": {
            "energy_diff_meV_per_atom": spec.energy_tol_meV_per_atom,
            "forces_meV_per_A": spec.force_tol_meV_per_A,
            "stress_GPa": spec.stress_tol_GPa,
        },
        "errors": {
            k: float(best[k])
            for k in ("energy_diff_err_meV_per_atom", "force_err_meV_per_A", "stress_err_GPa")
        },
        "warning": warning,
    }


def plot_study(table: pd.DataFrame, spec: ConvergenceSpec, path: str | os.PathLike) -> None:
    """Three panels (energy difference, forces, stress) vs cutoff, one line per k spacing."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = (
        ("energy_diff_err_meV_per_atom", spec.energy_tol_meV_per_atom, "|ΔE_A-B| error (meV/atom)"),
        ("force_err_meV_per_A", spec.force_tol_meV_per_A, "max force error (meV/Å)"),
        ("stress_err_GPa", spec.stress_tol_GPa, "max stress error (GPa)"),
    )
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    for ax, (col, tol, title) in zip(axes, panels, strict=True):
        for spacing, group in table.groupby("kspacing_per_A", sort=True):
            y = group[col].to_numpy(dtype=float)
            ax.plot(
                group["cutoff"], np.where(y > 0, y, np.nan), marker="o", label=f"k {spacing:g} 1/Å"
            )
        chosen = table[table["chosen"]]
        ax.scatter(chosen["cutoff"], chosen[col].where(chosen[col] > 0), s=160,
                   facecolors="none", edgecolors="k", label="chosen")  # fmt: skip
        ax.axhline(tol, color="r", ls="--", lw=1, label="tolerance")
        ax.set_yscale("log")
        ax.set_xlabel("cutoff")
        ax.set_title(title, fontsize=10)
    axes[0].legend(fontsize=7)
    fig.suptitle("Convergence against the tightest point (zero errors not shown)", fontsize=10)
    fig.tight_layout()
    save_figure(fig, path)
