"""Clamped-ion and relaxed-ion elastic constants from stress–strain pairs.

Strains are Voigt 6-vectors with engineering shear (e4 = 2 eps_yz, e5 = 2 eps_xz, e6 = 2 eps_xy),
applied as ``new_cell = cell @ (I + eps)`` with atoms scaled with the cell. *Clamped ion*: the
atoms stay at the scaled positions. *Relaxed ion*: the atoms are then relaxed at fixed strained
cell until every force component is below a threshold (the internal-strain contribution, which
lowers e.g. C44 of diamond-structure crystals). Stresses are ASE Voigt vectors in eV/Å³, tension
positive, so that ``sigma_i = sigma0_i + C_ij e_j`` with C in the usual Voigt form. The DFT and
the model sides are fitted from the same strained structures (``atoms.info["voigt_strain"]``)
with the same fit and, for relaxed ion, the same force threshold.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator

from dft2mlip.units import EV_PER_A3_TO_GPA
from dft2mlip.validate.metrics import _json_default, model_static_stress, voigt_stress

VOIGT_LABELS = ("xx", "yy", "zz", "yz", "xz", "xy")
#: the two protocols, as written in the JSON files and the report
PROTOCOLS = ("clamped_ion", "relaxed_ion")
#: relative deviation from cubic symmetry (max |C - C_cubic| / C11) above which reports warn
CUBIC_WARN_REL = 0.02


def fit_elastic_tensor(
    strains: np.ndarray, stresses_eV_per_A3: np.ndarray, *, fit_intercept: bool = True
) -> np.ndarray:
    """Least-squares fit of ``sigma = sigma0 + C e`` over all strain/stress pairs.

    Parameters
    ----------
    strains
        (n, 6) Voigt strains (dimensionless, engineering shear).
    stresses_eV_per_A3
        (n, 6) ASE Voigt stresses in eV/Å³, tension positive.
    fit_intercept
        Also fit the residual stress sigma0 of the unstrained cell (default). For a symmetric
        ±δ set the fitted C is the same either way; the intercept keeps a stressed reference
        cell (e.g. an experimental lattice constant in DFT) from biasing other strain sets.

    Returns
    -------
    numpy.ndarray
        (6, 6) symmetrised elastic tensor in GPa.
    """
    e = np.asarray(strains, dtype=float)
    s = np.asarray(stresses_eV_per_A3, dtype=float)
    if e.ndim != 2 or e.shape[1] != 6 or s.shape != e.shape:
        raise ValueError(
            f"strains {e.shape} and stresses {s.shape} must both be (n, 6) Voigt arrays "
            "(order xx, yy, zz, yz, xz, xy)"
        )
    if not (np.isfinite(e).all() and np.isfinite(s).all()):
        raise ValueError("strains or stresses contain NaN/inf; drop unlabelled structures first")
    if np.linalg.matrix_rank(e, tol=1e-10) < 6:
        active = [VOIGT_LABELS[j] for j in range(6) if np.any(np.abs(e[:, j]) > 1e-12)]
        raise ValueError(
            f"the {len(e)} strains span only {np.linalg.matrix_rank(e, tol=1e-10)} of the six "
            f"Voigt directions (non-zero components: {', '.join(active) or 'none'}); "
            "an elastic tensor needs strains along all six directions xx, yy, zz, yz, xz, xy "
            "(e.g. ±δ along each, structures.elastic_structures)"
        )
    design = np.hstack([e, np.ones((len(e), 1))]) if fit_intercept else e
    if fit_intercept and np.linalg.matrix_rank(design, tol=1e-10) < 7:
        raise ValueError(
            f"{len(e)} strains cannot determine C and a residual stress together; use ±δ "
            "along each direction (or at least one more strain), or fit_intercept=False"
        )
    coef, *_ = np.linalg.lstsq(design, s, rcond=None)
    c = coef[:6].T  # s_i = sum_j e_j * coef[j, i]  ->  C_ij = coef[j, i]
    c = 0.5 * (c + c.T)
    return c * EV_PER_A3_TO_GPA


def _voigt_strain(atoms: Atoms, index: int) -> np.ndarray:
    if "voigt_strain" not in atoms.info:
        sid = atoms.info.get("structure_id", f"#{index}")
        raise ValueError(
            f"structure {sid} (position {index}) has no info['voigt_strain']; elastic "
            "structures must carry the applied Voigt strain (structures.elastic_structures)"
        )
    strain = np.asarray(atoms.info["voigt_strain"], dtype=float).ravel()
    if strain.shape != (6,):
        raise ValueError(f"info['voigt_strain'] has shape {strain.shape}; expected 6 values")
    return strain


def relax_positions(
    atoms: Atoms, calc: Calculator, *, fmax_eV_per_A: float, max_steps: int
) -> Atoms:
    """Relax the atoms at fixed cell (BFGS) until every force component is below a threshold.

    Parameters
    ----------
    atoms
        Strained cell (not modified).
    calc
        ASE calculator (eV, eV/Å).
    fmax_eV_per_A
        Force threshold (eV/Å): the largest |F| per atom after relaxation.
    max_steps
        BFGS steps at most.

    Returns
    -------
    ase.Atoms
        Relaxed copy with ``info`` kept, ``info["relax_steps"]`` and ``info["relax_fmax_eV_per_A"]``
        added, no calculator attached.

    Raises
    ------
    RuntimeError
        If the forces are still above the threshold after ``max_steps``, naming the structure.
    """
    from ase.optimize import BFGS

    work = atoms.copy()
    work.calc = calc
    opt = BFGS(work, logfile=None, maxstep=0.05)
    converged = opt.run(fmax=float(fmax_eV_per_A), steps=int(max_steps))
    fmax = float(np.linalg.norm(work.get_forces(), axis=1).max())
    if not converged and fmax > fmax_eV_per_A:
        sid = atoms.info.get("structure_id", "?")
        raise RuntimeError(
            f"relaxing {sid} at fixed cell did not reach max |F| <= {fmax_eV_per_A:g} eV/Å in "
            f"{max_steps} steps (still {fmax:.3g} eV/Å); raise validation.elastic.relax_max_steps "
            "or validation.elastic.relax_fmax_eV_per_A"
        )
    out = work.copy()
    out.calc = None
    out.info["relax_steps"] = int(opt.nsteps)
    out.info["relax_fmax_eV_per_A"] = fmax
    return out


def elastic_from_structures(
    atoms_list: list[Atoms],
    calc: Calculator | None = None,
    *,
    fit_intercept: bool = True,
    relax_fmax_eV_per_A: float | None = None,
    relax_max_steps: int = 100,
) -> np.ndarray:
    """Elastic tensor (GPa) of a set of strained structures (clamped or relaxed ion).

    Parameters
    ----------
    atoms_list
        Strained cells with ``info["voigt_strain"]``.
    calc
        ``None``: use the DFT labels ``info["REF_stress"]`` (eV/Å³); labels whose status is not
        "ok" are left out with a warning naming them (for relaxed ion, pass labels whose atoms
        were relaxed by the DFT code). Otherwise: the stress of ``calc`` (static, no kinetic
        part).
    relax_fmax_eV_per_A
        With ``calc``: ``None`` gives the clamped-ion tensor; a threshold (eV/Å) first relaxes
        every structure at fixed cell with :func:`relax_positions` (relaxed ion).
    relax_max_steps
        BFGS steps at most per structure (relaxed ion).

    Returns
    -------
    numpy.ndarray
        (6, 6) elastic tensor in GPa (see :func:`fit_elastic_tensor`).
    """
    strains, stresses, skipped = [], [], []
    for i, atoms in enumerate(atoms_list):
        strain = _voigt_strain(atoms, i)
        if calc is None:
            status = atoms.info.get("status", "ok")
            if status != "ok" or "REF_stress" not in atoms.info:
                skipped.append(f"{atoms.info.get('structure_id', f'#{i}')} (status={status})")
                continue
            stress = voigt_stress(atoms.info["REF_stress"])
        elif relax_fmax_eV_per_A is not None:
            relaxed = relax_positions(
                atoms, calc, fmax_eV_per_A=relax_fmax_eV_per_A, max_steps=relax_max_steps
            )
            stress = model_static_stress(relaxed, calc)
        else:
            stress = model_static_stress(atoms, calc)
        strains.append(strain)
        stresses.append(stress)
    if skipped:
        warnings.warn(
            f"elastic fit leaves out {len(skipped)} structure(s) without a usable DFT label: "
            + ", ".join(skipped)
            + "; a direction left without its opposite-sign partner is fitted one-sided, "
            "with O(strain) error",
            stacklevel=2,
        )
    if not strains:
        raise ValueError("no structure with a usable stress; cannot fit an elastic tensor")
    return fit_elastic_tensor(np.array(strains), np.array(stresses), fit_intercept=fit_intercept)


def cubic_constants(c: np.ndarray) -> dict:
    """Cubic elastic constants and moduli of a (6, 6) Voigt tensor in GPa.

    Returns
    -------
    dict
        C11, C12, C44 (GPa; averaged over the cubic-equivalent entries), bulk_modulus_GPa and
        shear_modulus_GPa (Voigt–Reuss–Hill averages from pymatgen), cubic_deviation_GPa (the
        largest |C - C_cubic| entry), cubic_deviation_rel (that over |C11|), is_cubic (relative
        deviation below :data:`CUBIC_WARN_REL`) and positive_definite (Born stability).
    """
    from pymatgen.analysis.elasticity import ElasticTensor

    c = np.asarray(c, dtype=float)
    if c.shape != (6, 6):
        raise ValueError(f"elastic tensor has shape {c.shape}; expected (6, 6) Voigt")
    c11 = float(np.mean(np.diag(c)[:3]))
    c12 = float(np.mean([c[0, 1], c[0, 2], c[1, 2], c[1, 0], c[2, 0], c[2, 1]]))
    c44 = float(np.mean(np.diag(c)[3:]))
    ideal = np.zeros((6, 6))
    ideal[:3, :3] = c12
    ideal[np.arange(3), np.arange(3)] = c11
    ideal[np.arange(3, 6), np.arange(3, 6)] = c44
    dev = float(np.max(np.abs(c - ideal)))
    rel = dev / abs(c11) if c11 != 0 else float("inf")
    eigenvalues = np.linalg.eigvalsh(0.5 * (c + c.T))
    et = ElasticTensor.from_voigt(c)
    return {
        "C11": c11,
        "C12": c12,
        "C44": c44,
        "bulk_modulus_GPa": float(et.k_vrh),
        "shear_modulus_GPa": float(et.g_vrh),
        "cubic_deviation_GPa": dev,
        "cubic_deviation_rel": rel,
        "is_cubic": bool(rel <= CUBIC_WARN_REL),
        "positive_definite": bool(eigenvalues.min() > 0),
        "min_eigenvalue_GPa": float(eigenvalues.min()),
    }


def write_elastic_json(
    c: np.ndarray,
    path: str | Path,
    label: str,
    *,
    protocol: str = "clamped_ion",
    **extra: object,
) -> Path:
    """Write an elastic tensor (GPa) with its cubic constants and ``extra`` metadata as JSON.

    ``protocol`` is "clamped_ion" or "relaxed_ion" (see :data:`PROTOCOLS`).
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol {protocol!r} is not one of {', '.join(PROTOCOLS)}")
    c = np.asarray(c, dtype=float)
    data = {
        "label": label,
        "units": "GPa",
        "voigt_order": list(VOIGT_LABELS),
        "strain_convention": "engineering shear; new_cell = cell @ (I + eps)",
        "protocol": protocol,
        "clamped_ion": protocol == "clamped_ion",
        "C_GPa": c.tolist(),
        "cubic": cubic_constants(c),
        **extra,
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, default=_json_default) + "\n")
    return path


def write_elastic_failure(
    path: str | Path, label: str, *, protocol: str, message: str, **extra: object
) -> Path:
    """Record that a tensor could not be computed (e.g. a model's relaxation diverged).

    The file has ``C_GPa: null`` and ``error``; :func:`read_elastic_json` raises with that
    message, so a report names the failure instead of stopping the workflow.
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol {protocol!r} is not one of {', '.join(PROTOCOLS)}")
    data = {"label": label, "protocol": protocol, "C_GPa": None, "error": message, **extra}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, default=_json_default) + "\n")
    return path


def read_elastic_json(path: str | Path) -> tuple[np.ndarray, dict]:
    """Read a :func:`write_elastic_json` file: the (6, 6) tensor in GPa and the whole record.

    Raises
    ------
    ValueError
        For a :func:`write_elastic_failure` record, with its message.
    """
    data = json.loads(Path(path).read_text())
    if data.get("C_GPa") is None and data.get("error"):
        raise ValueError(f"{data.get('protocol', 'elastic')} tensor not computed: {data['error']}")
    c = np.asarray(data["C_GPa"], dtype=float)
    if c.shape != (6, 6):
        raise ValueError(f"{path}: C_GPa has shape {c.shape}; expected (6, 6)")
    return c, data
