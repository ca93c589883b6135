"""Quantum ESPRESSO ``pw.x``: k-point mesh, input writing and output parsing.

Units are converted once, here, at the parser boundary: ASE's ``espresso-out`` reader returns
energies in eV, forces in eV/Å and the stress in eV/Å³ with the sign flipped from QE's
pressure-positive convention to ASE's tension-positive one.
"""

from __future__ import annotations

import functools
import io
import math
import os
import re
from pathlib import Path

import ase.io
import numpy as np
from ase import Atoms

from dft2mlip import __version__
from dft2mlip.data import Label, structure_label, structure_mismatch
from dft2mlip.dft.magnetism import qe_magnetization
from dft2mlip.dft.settings import QESettings, file_md5
from dft2mlip.structures import kpoint_reference_cell

_REQUIRED_NAMELISTS = ("CONTROL", "SYSTEM", "ELECTRONS")
_EMPTY_NAMELIST = re.compile(r"^&(\w+)\n/\n", re.MULTILINE)
_ERROR_BLOCK = re.compile(
    r"%{20,}\s*\n\s*Error in routine\s+(\S+)\s*\((-?\d+)\):\s*\n(.*?)\n\s*%{20,}", re.DOTALL
)
_NOT_CONVERGED = re.compile(r"convergence NOT achieved after\s+(\d+)\s+iterations")
_CONVERGED = re.compile(r"convergence has been achieved in\s+(\d+)\s+iterations")
_PRESSURE = re.compile(r"total\s+stress\s+\(Ry/bohr\*\*3\)\s+\(kbar\)\s+P=\s*(\S+)")
_VERSION = re.compile(r"Program PWSCF v\.(\S+) starts")
_NPROCS = re.compile(r"running on\s+(\d+)\s+processors?")
_NKPOINTS = re.compile(r"number of k points=\s*(\d+)")
_PSEUDO = re.compile(
    r"PseudoPot\.\s*#\s*\d+\s+for\s+(\S+)\s+read from file:\s*\n\s*(\S+)\s*\n"
    r"\s*MD5 check sum:\s*(\S+)"
)
_CUTOFF = {
    "ecutwfc_Ry": re.compile(r"kinetic-energy cutoff\s*=\s*(\S+)\s*Ry"),
    "ecutrho_Ry": re.compile(r"charge density cutoff\s*=\s*(\S+)\s*Ry"),
}
_TIMES = re.compile(r"^\s*PWSCF\s*:\s*(.+?)\s*CPU\s+(.+?)\s*WALL", re.MULTILINE)
_DURATION = re.compile(r"^(?:(\d+)d)?\s*(?:(\d+)h)?\s*(?:(\d+)m)?\s*(?:([\d.]+)s)?$")
#: largest difference (Å) between the input structure and the one pw.x echoes (QE prints
#: the cell with 6 and positions with 7 decimals in units of alat)
STRUCTURE_TOLERANCE_A = 1e-3


def kpoint_mesh(cell, kspacing_per_A: float) -> tuple[int, int, int]:
    """Monkhorst-Pack mesh (Γ-centred) for a k-point spacing.

    ``n_i = max(1, ceil(2 π |b_i| / kspacing_per_A))`` with ``b_i`` the reciprocal lattice
    vectors without the 2π (rows of ``inv(cell).T``), i.e. the ASE/CASTEP convention. For
    diamond Si (a = 5.431 Å) and 0.35 1/Å: 6x6x6 for the primitive, 4x4x4 for the cubic cell.

    Parameters
    ----------
    cell
        3x3 lattice vectors (rows, Å), an ``ase.cell.Cell`` or an ``Atoms``.
    kspacing_per_A
        Largest allowed distance between k-points (1/Å, including 2π).

    Returns
    -------
    tuple[int, int, int]
        Mesh sizes along the three reciprocal vectors.
    """
    if not kspacing_per_A > 0:
        raise ValueError(f"kspacing_per_A must be > 0 1/Å, got {kspacing_per_A}")
    matrix = np.asarray(getattr(cell, "cell", cell), dtype=float)
    if matrix.shape != (3, 3) or abs(np.linalg.det(matrix)) < 1e-12:
        raise ValueError(f"cell must be a non-singular 3x3 matrix (Å), got {matrix.tolist()}")
    lengths = np.linalg.norm(np.linalg.inv(matrix).T, axis=1)
    # the small tolerance keeps an exact multiple (e.g. 4.0000000001) from rounding up
    n = [max(1, math.ceil(2 * math.pi * b / kspacing_per_A - 1e-8)) for b in lengths]
    return int(n[0]), int(n[1]), int(n[2])


def _prefix(atoms: Atoms) -> str:
    sid = str(atoms.info.get("structure_id", "pwscf"))
    return re.sub(r"[^A-Za-z0-9_.-]", "_", sid) or "pwscf"


def pw_input_data(atoms: Atoms, settings: QESettings) -> dict:
    """The pw.x namelists for an SCF single point with forces and stress (QE units: Ry).

    Parameters
    ----------
    atoms
        Structure; ``info["structure_id"]`` becomes the pw.x ``prefix``.
    settings
        QE settings.

    Returns
    -------
    dict
        Nested ``{"control": ..., "system": ..., "electrons": ...}`` for ``ase.io.write``.
    """
    system = {
        "ecutwfc": float(settings.ecutwfc_Ry),
        "ecutrho": float(settings.ecutrho_Ry),
        "occupations": settings.occupations,
    }
    if settings.occupations == "smearing":
        system["smearing"] = settings.smearing
        system["degauss"] = float(settings.degauss_Ry)
    if settings.spin_polarised:  # starting_magnetization(i): see write_pw_input
        system["nspin"] = 2
    return {
        "control": {
            "calculation": "scf",
            "prefix": _prefix(atoms),
            "pseudo_dir": str(settings.pseudo_path),
            # relative to the input's directory, where run_pw starts pw.x
            "outdir": "./tmp",
            "disk_io": "none",
            "tprnfor": True,
            "tstress": True,
        },
        "system": system,
        "electrons": {
            "conv_thr": float(settings.conv_thr_Ry),
            "electron_maxstep": int(settings.electron_maxstep),
            "mixing_beta": float(settings.mixing_beta),
        },
    }


def write_pw_input(
    atoms: Atoms,
    settings: QESettings,
    path: str | os.PathLike,
    *,
    input_data: dict | None = None,
) -> tuple[int, int, int]:
    """Write a pw.x SCF input (forces and stress on) with ``ase.io.write``; return its k-mesh.

    Parameters
    ----------
    atoms
        Periodic structure (Å). Its own initial magnetic moments are ignored: spin comes from
        ``settings.magnetic_moments_muB``.
    settings
        QE settings; the k-point mesh comes from :func:`kpoint_mesh` of the structure's family
        reference cell (:func:`~dft2mlip.structures.kpoint_reference_cell`), ``pseudo_dir`` is
        written as an absolute path, ``outdir`` as ``./tmp`` next to the input.
    path
        Input file to write; parent directories are created. The text is deterministic.
    input_data
        The namelists, when not the SCF single point of :func:`pw_input_data` (e.g. a fixed-cell
        ``relax`` with the same electronic settings).

    Returns
    -------
    tuple[int, int, int]
        The Monkhorst-Pack mesh written (Γ-centred).
    """
    missing = sorted(set(atoms.get_chemical_symbols()) - set(settings.pseudopotentials))
    if missing:
        raise ValueError(
            f"no pseudopotential for {', '.join(missing)}: add dft.qe.pseudopotentials."
            f"{missing[0]} naming a UPF file in {settings.pseudo_path}"
        )
    if not all(atoms.pbc):
        raise ValueError(f"pw.x inputs need a periodic structure, got pbc={atoms.pbc.tolist()}")
    mesh = kpoint_mesh(kpoint_reference_cell(atoms), settings.kspacing_per_A)
    clean = atoms.copy()
    clean.constraints = []
    # spin comes from the settings only (per element, in the settings hash), never from moments
    # a structure happens to carry. ASE writes each atom's initial moment verbatim as its
    # species' starting_magnetization, so the atoms carry QE's fraction of the valence charge.
    fractions = settings.starting_magnetization()
    clean.set_initial_magnetic_moments([fractions.get(s, 0.0) for s in clean.symbols])
    buffer = io.StringIO()
    ase.io.write(
        buffer,
        clean,
        format="espresso-in",
        input_data=input_data if input_data is not None else pw_input_data(atoms, settings),
        pseudopotentials={s: settings.pseudopotentials[s] for s in set(clean.symbols)},
        kpts=mesh,
    )
    # ASE writes empty &IONS/&CELL/&FCP/&RISM namelists; pw.x 6.x warns about them
    text = _EMPTY_NAMELIST.sub(
        lambda m: m.group(0) if m.group(1).upper() in _REQUIRED_NAMELISTS else "",
        buffer.getvalue(),
    )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return mesh


def _duration_s(text: str) -> float | None:
    """Seconds from a QE clock string such as ``1.38s``, ``1m25.00s`` or ``2h 3m``."""
    match = _DURATION.match(text.strip().replace(" ", ""))
    if not match or not any(match.groups()):
        return None
    d, h, m, s = (float(g) if g else 0.0 for g in match.groups())
    return ((d * 24 + h) * 60 + m) * 60 + s


def _provenance(text: str, path: Path) -> dict:
    """What pw.x says about itself in its output."""
    prov: dict = {"engine": "qe", "program": "pw.x", "parser": f"dft2mlip {__version__}"}
    prov["output_file"] = path.name
    if m := _VERSION.search(text):
        prov["code_version"] = m.group(1)
    if m := _NPROCS.search(text):
        prov["mpi_processes"] = int(m.group(1))
    if m := _NKPOINTS.search(text):
        prov["n_kpoints_irreducible"] = int(m.group(1))
    prov["pseudopotentials"] = {
        element: {"file": Path(file).name, "path": file, "md5": md5}
        for element, file, md5 in _PSEUDO.findall(text)
    }
    for key, pattern in _CUTOFF.items():
        if m := pattern.search(text):
            prov[key] = float(m.group(1))
    if m := (_CONVERGED.search(text) or _NOT_CONVERGED.search(text)):
        prov["n_scf_iterations"] = int(m.group(1))
    prov.update(qe_magnetization(text))  # final magnetisation (spin-polarised runs)
    if times := _TIMES.findall(text):
        prov["cpu_time_s"] = _duration_s(times[-1][0])
        prov["wall_time_s"] = _duration_s(times[-1][1])
    return prov


def _stderr_tail(path: Path) -> str:
    stderr = Path(str(path) + ".stderr")
    if not stderr.is_file():
        return ""
    lines = [ln.strip() for ln in stderr.read_text(errors="replace").splitlines() if ln.strip()]
    return f"; stderr ends with: {lines[-1][:200]}" if lines else ""


def _structure_mismatch(parsed: Atoms, structure: Atoms) -> str | None:
    return structure_mismatch(parsed, structure, program="pw.x", tolerance_A=STRUCTURE_TOLERANCE_A)


def _settings_mismatch(prov: dict, settings: QESettings) -> str | None:
    for key in _CUTOFF:
        if key in prov and not math.isclose(prov[key], getattr(settings, key), rel_tol=1e-6):
            return f"pw.x ran with {key}={prov[key]}, the settings say {getattr(settings, key)}"
    for element, entry in prov.get("pseudopotentials", {}).items():
        name = settings.pseudopotentials.get(element)
        if name is None:
            return f"pw.x used a pseudopotential for {element}, which the settings do not list"
        expected = settings.pseudo_path / name
        if not expected.is_file() or entry["md5"] != file_md5(expected):
            return (
                f"pw.x read {entry['path']} (md5 {entry['md5']}) for {element}, not "
                f"{expected} from the settings"
            )
    return None


def parse_pw_output(
    output_path: str | os.PathLike,
    structure: Atoms,
    settings_hash: str,
    *,
    settings: QESettings | None = None,
) -> Label:
    """Parse a pw.x SCF output into a :class:`~dft2mlip.data.Label`.

    Status "ok" needs: a complete run ("JOB DONE"), no QE error block, "convergence has been
    achieved", the "!" total energy, forces and stress, and the echoed structure equal to
    ``structure``. "scf_not_converged" when pw.x printed "convergence NOT achieved" (QE 6.7)
    or no convergence line; "failed" otherwise, with a message that says why.

    Parameters
    ----------
    output_path
        pw.x standard output (``<output>.stderr`` beside it is quoted when the run failed).
    structure
        The input structure; the label keeps its exact cell, positions and ``info``.
    settings_hash
        :meth:`QESettings.settings_hash` of the settings used to write the input.
    settings
        If given, the cutoffs and pseudopotential md5 sums that pw.x reports are checked
        against them (pw.x silently falls back to its default pseudo directory when a file
        is missing from ``pseudo_dir``).

    Returns
    -------
    Label
        When ok: ``REF_energy`` (eV; the "!" total energy, which with smearing is the free
        energy consistent with the forces, hence ``energy_kind="free_energy"``),
        ``REF_forces`` (eV/Å) and ``REF_stress`` (eV/Å³, Voigt, tension positive).
    """
    path = Path(output_path)
    prov: dict = {"engine": "qe", "program": "pw.x", "parser": f"dft2mlip {__version__}"}
    text = path.read_text(errors="replace") if path.is_file() else None
    if text:
        prov = _provenance(text, path)

    label = functools.partial(
        structure_label,
        structure,
        provenance=prov,
        settings_hash=settings_hash,
        dft_engine="qe",
        default_id=path.stem,
    )

    if text is None:
        return label("failed", f"pw.x output {path} does not exist (did the run start?)")
    if not text.strip():
        return label("failed", f"pw.x output {path} is empty{_stderr_tail(path)}")
    if m := _ERROR_BLOCK.search(text):
        detail = " ".join(m.group(3).split())
        return label("failed", f"pw.x error in routine {m.group(1)} ({m.group(2)}): {detail}")
    if "JOB DONE" not in text:
        return label(
            "failed",
            f"pw.x output {path.name} ends before 'JOB DONE' (killed, out of time or memory, "
            f"or still running){_stderr_tail(path)}",
        )
    if m := _NOT_CONVERGED.search(text):
        return label(
            "scf_not_converged",
            f"SCF convergence NOT achieved after {m.group(1)} iterations; raise "
            "dft.qe.electron_maxstep or lower dft.qe.mixing_beta",
        )
    if not _CONVERGED.search(text):
        return label("scf_not_converged", "pw.x never printed 'convergence has been achieved'")
    if settings is not None and (why := _settings_mismatch(prov, settings)):
        return label("failed", why)
    try:
        parsed = ase.io.read(path, format="espresso-out", index=-1)
    except Exception as err:  # ASE raises many kinds on malformed files
        return label("failed", f"ASE could not read {path.name}: {type(err).__name__}: {err}")
    results = parsed.calc.results if parsed.calc is not None else {}
    for key, hint in (
        ("energy", "no '!' total energy line"),
        ("forces", "no forces (tprnfor)"),
        ("stress", "no stress (tstress)"),
    ):
        if results.get(key) is None:
            return label("failed", f"pw.x output {path.name} has {hint}")
    if why := _structure_mismatch(parsed, structure):
        return label("failed", why)

    atoms = structure.copy()
    atoms.calc = None
    atoms.info["REF_energy"] = float(results["energy"])  # eV, "!" line (ASE: Ry -> eV)
    atoms.arrays["REF_forces"] = np.array(results["forces"], dtype=float)  # eV/Å
    # ASE's reader converts QE's Ry/bohr³ (pressure positive) to eV/Å³ and flips the sign:
    # tension positive, Voigt [xx, yy, zz, yz, xz, xy]
    atoms.info["REF_stress"] = np.array(results["stress"], dtype=float)
    values = [atoms.info["REF_energy"], atoms.arrays["REF_forces"], atoms.info["REF_stress"]]
    if not all(np.isfinite(v).all() for v in values):
        return label("failed", f"pw.x output {path.name} has NaN or Inf energy, forces or stress")
    return label("ok", f"SCF converged in {prov.get('n_scf_iterations', '?')} iterations", atoms)


def reported_pressure_kbar(output_path: str | os.PathLike) -> float:
    """The pressure pw.x printed (``P=`` in the total stress block), kbar, compression positive.

    Parameters
    ----------
    output_path
        pw.x output with a stress block.
    """
    matches = _PRESSURE.findall(Path(output_path).read_text(errors="replace"))
    if not matches:
        raise ValueError(f"no 'total stress ... P=' line in {output_path}; was tstress set?")
    return float(matches[-1])
