"""Quantum ESPRESSO ``pw.x``: k-point mesh, input writing and output parsing.

Units are converted once, here, at the parser boundary: ASE's ``espresso-out`` reader returns
energies in eV, forces in eV/Å and the stress in eV/Å³ with the sign flipped from QE's
pressure-positive convention to ASE's tension-positive one.

The pipeline's own single points go through :func:`parse_pw_output` (ASE's reader, checked
against the input structure). Imported outputs (relaxations, other people's files) go through
:func:`read_pw_run`: pw.x's own failure text first (:func:`pw_failure`), then every SCF frame
(:func:`pw_frames`, the same constants and sign as ASE's reader, which it does not need: it
also reads outputs whose k-point list was trimmed).
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
from ase.units import create_units

from dft2mlip import __version__
from dft2mlip.data import Label, structure_label, structure_mismatch
from dft2mlip.dft.magnetism import qe_magnetization
from dft2mlip.dft.outputs import (
    OutputFrame,
    RunOutput,
    check_relaxed_forces,
    outcome_from_run,
    read_until,
)
from dft2mlip.dft.pw_files import run_files
from dft2mlip.dft.settings import QESettings, file_md5
from dft2mlip.structures import kpoint_reference_cell

#: QE's own constants (CODATA 2006), as ASE's espresso-out reader uses them
_QE_UNITS = create_units("2006")
Ry, Bohr = _QE_UNITS["Ry"], _QE_UNITS["Bohr"]
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
_BANG = re.compile(r"^\s*!!?\s+total energy\s*=\s*(\S+)\s*Ry", re.MULTILINE)
_ALAT = re.compile(r"lattice parameter \(alat\)\s*=\s*(\S+)\s*a\.u\.")
_CELLDM1 = re.compile(r"celldm\(1\)=\s*(\S+)")
_AXIS = re.compile(r"a\(\d\)\s*=\s*\(\s*(\S+)\s+(\S+)\s+(\S+)\s*\)")
_TAU = re.compile(r"^\s*\d+\s+(\S+)\s+tau\(\s*\d+\)\s*=\s*\(\s*(\S+)\s+(\S+)\s+(\S+)")
_FORCE = re.compile(r"^\s*atom\s+\d+\s+type\s+\d+\s+force\s*=\s*(\S+)\s+(\S+)\s+(\S+)")
_BLOCK_UNIT = re.compile(
    r"^\s*(CELL_PARAMETERS|ATOMIC_POSITIONS)\s*[({]?\s*([A-Za-z]*)\s*=?\s*([\d.]*)"
)
_XC = re.compile(r"Exchange-correlation\s*=\s*(.+?)\s*$", re.MULTILINE)
_SMEARING = re.compile(r"number of k points=\s*\d+\s+(.+?smearing), width \(Ry\)=\s*(\S+)")
_CPU_LIMIT = "Maximum CPU time exceeded"
#: the header (settings) ends where the first SCF starts
_HEADER_END = "Self-consistent Calculation"
_TIMES = re.compile(r"^\s*PWSCF\s*:\s*(.+?)\s*CPU\s+(.+?)\s*WALL", re.MULTILINE)
_DURATION = re.compile(r"^(?:(\d+)d)?\s*(?:(\d+)h)?\s*(?:(\d+)m)?\s*(?:([\d.]+)s)?$")
#: largest difference (Å) between the input structure and the one pw.x echoes (QE prints
#: the cell with 6 and positions with 7 decimals in units of alat)
STRUCTURE_TOLERANCE_A = 1e-3
#: the same for an output with several ionic steps, whose last structure pw.x prints in
#: CELL_PARAMETERS / ATOMIC_POSITIONS blocks with 9-10 decimals: a cell that changed by less
#: than 1e-3 Å during a vc-relax must not pass for the input structure
RELAX_STRUCTURE_TOLERANCE_A = 1e-5


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
        Periodic structure (Å). Spin comes from the settings: per element
        (``magnetic_moments_muB``; the structure's own moments are ignored) or, under a per-site
        order (``magnetic_order_muB``), from the structure's ``initial_magmoms`` (one species per
        distinct moment); DFT+U and ``dft.qe.extra`` from the settings too.
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
    # ASE writes each atom's initial moment verbatim as its species' starting_magnetization (one
    # species per distinct (element, moment)), so the atoms carry QE's fraction of the valence
    clean.set_initial_magnetic_moments(_site_fractions(atoms, settings))
    data = input_data if input_data is not None else pw_input_data(atoms, settings)
    data = {name: dict(keys) for name, keys in data.items()}
    for namelist, keys in settings.extra.items():  # dft.qe.extra: checked, never an owned key
        data.setdefault(namelist, {}).update(keys)
    cards = _hubbard_input(clean, settings, data)
    buffer = io.StringIO()
    ase.io.write(
        buffer,
        clean,
        format="espresso-in",
        input_data=data,
        pseudopotentials={s: settings.pseudopotentials[s] for s in set(clean.symbols)},
        kpts=mesh,
        additional_cards=cards or None,
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


def _site_fractions(atoms: Atoms, settings: QESettings) -> list[float]:
    """Each site's ``starting_magnetization``: its moment / its element's UPF ``z_valence``.

    With a per-site order (``settings.magnetic_order_muB``) the moments are the structure's own
    (``initial_magmoms``, inherited from the configured cell's sites); else the element's
    moment from the settings; never moments a structure happens to carry otherwise.
    """
    from dft2mlip.dft.magnetism import ordered_site_moments, starting_magnetization

    if not settings.spin_polarised:
        return [0.0] * len(atoms)
    if settings.magnetic_order_muB is None:
        fractions = settings.starting_magnetization()
        return [fractions.get(s, 0.0) for s in atoms.symbols]
    z_valence = settings.z_valence()
    return [
        starting_magnetization(m, z_valence[s], element=s)
        for s, m in zip(atoms.symbols, ordered_site_moments(atoms), strict=True)
    ]


def _species(atoms: Atoms, spin: bool) -> list[tuple[str, str]]:
    """``(label, element)`` of each species in the order ASE's espresso writer numbers them:
    first occurrence of each element (each (element, moment) when spin-polarised), labels
    ``Ni``, ``Ni1``, ``Ni2`` ..."""
    keys: list[tuple[str, float]] = []
    moments = atoms.get_initial_magnetic_moments() if spin else [0.0] * len(atoms)
    for symbol, moment in zip(atoms.symbols, moments, strict=True):
        if (symbol, moment if spin else 0.0) not in keys:
            keys.append((symbol, moment if spin else 0.0))
    out = []
    for index, (symbol, _) in enumerate(keys):
        n = sum(k[0] == symbol for k in keys[:index])
        out.append((f"{symbol}{n}" if n else symbol, symbol))
    return out


def _hubbard_input(atoms: Atoms, settings: QESettings, data: dict) -> list[str]:
    """Add the DFT+U keys to ``data['system']`` (pw.x < 7.1) or return the HUBBARD card
    (>= 7.1), in the form of the installed pw.x (its version read from pw.x itself)."""
    from dft2mlip.dft.hubbard import parse_hubbard, pw_version, qe_hubbard_input

    entries = parse_hubbard(settings.hubbard)
    if not entries:
        return []
    species = _species(atoms, settings.spin_polarised)
    system, cards = qe_hubbard_input(species, entries, pw_version(settings.executable))
    data.setdefault("system", {}).update(system)
    return cards


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
    scf = [*_CONVERGED.finditer(text), *_NOT_CONVERGED.finditer(text)]
    if scf:  # the last SCF: the one whose results a label takes
        prov["n_scf_iterations"] = int(max(scf, key=lambda m: m.start()).group(1))
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


def _structure_mismatch(parsed: Atoms, structure: Atoms, n_steps: int = 1) -> str | None:
    tolerance = STRUCTURE_TOLERANCE_A if n_steps <= 1 else RELAX_STRUCTURE_TOLERANCE_A
    return structure_mismatch(parsed, structure, program="pw.x", tolerance_A=tolerance)


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


def pw_failure(text: str | None, path: Path) -> tuple[str, str] | None:
    """Why a pw.x output gives no label, in pw.x's own words; None when the run finished and
    its last SCF converged.

    Checked on the text before any structure is read, so an error block, an empty output or a
    stop before the end is reported as such (not as a reader's exception).

    Parameters
    ----------
    text
        The whole output (None: the file does not exist).
    path
        The output file (named in the messages; ``<path>.stderr`` is quoted when present).

    Returns
    -------
    tuple[str, str] | None
        ``(status, message)`` with status "failed" or "scf_not_converged".
    """
    if text is None:
        return "failed", f"pw.x output {path} does not exist (did the run start?)"
    if not text.strip():
        return "failed", f"pw.x output {path} is empty (empty output){_stderr_tail(path)}"
    if m := _ERROR_BLOCK.search(text):
        detail = " ".join(m.group(3).split())
        return "failed", f"pw.x error in routine {m.group(1)} ({m.group(2)}): {detail}"
    if _CPU_LIMIT in text:
        return "failed", (
            f"pw.x output {path.name} stopped before the end (walltime?): '{_CPU_LIMIT}' "
            "(max_seconds reached)"
        )
    if "JOB DONE" not in text:
        return "failed", (
            f"pw.x output {path.name} stopped before the end (walltime?): it ends before "
            f"'JOB DONE' (killed, out of time or memory, or still running){_stderr_tail(path)}"
        )
    last_energy = max((m.start() for m in _BANG.finditer(text)), default=-1)
    not_converged = [m for m in _NOT_CONVERGED.finditer(text) if m.start() > last_energy]
    if not_converged:
        return "scf_not_converged", (
            f"SCF not converged: convergence NOT achieved after {not_converged[-1].group(1)} "
            "iterations; raise dft.qe.electron_maxstep or lower dft.qe.mixing_beta"
        )
    if not _CONVERGED.search(text):
        return "scf_not_converged", (
            "SCF not converged: pw.x never printed 'convergence has been achieved'"
        )
    return None


def _numbers(line: str, count: int = 3) -> list[float]:
    return [float(v) for v in line.split()[:count]]


def _block_scale(match: re.Match, alat_A: float) -> tuple[str, float]:
    """Unit keyword of a CELL_PARAMETERS / ATOMIC_POSITIONS block and its length in Å."""
    unit = match.group(2).lower() or "alat"
    if unit == "alat" and match.group(3):
        alat_A = float(match.group(3)) * Bohr
    return unit, {"angstrom": 1.0, "bohr": Bohr}.get(unit, alat_A)


class _PwFrameReader:
    """Line-by-line state of :func:`pw_frames` (the structure pw.x printed last)."""

    def __init__(self) -> None:
        self.alat_A = 1.0
        self.cell = np.zeros((3, 3))
        self.symbols: list[str] = []
        self.positions = np.zeros((0, 3))
        self.frames: list[OutputFrame] = []
        #: set once a relaxation printed CELL_PARAMETERS / ATOMIC_POSITIONS: the header that
        #: the final SCF of a vc-relax repeats holds the same structure with fewer digits
        self.relaxed = False

    def atoms(self) -> Atoms:
        return Atoms(self.symbols, positions=self.positions, cell=self.cell, pbc=True)

    def read(self, lines: list[str], i: int) -> int:
        """Consume what starts at line ``i``; returns the next line to look at."""
        line = lines[i]
        if m := _ALAT.search(line) or _CELLDM1.search(line):  # celldm(1): more digits
            self.alat_A = float(m.group(1)) * Bohr
        elif "crystal axes: (cart. coord. in units of alat)" in line:
            rows = [_AXIS.search(lines[i + k]).groups() for k in (1, 2, 3)]
            if not self.relaxed:
                self.cell = np.array(rows, dtype=float) * self.alat_A
            return i + 4
        elif "site n." in line and "(alat units)" in line:
            rows = []
            while (m := _TAU.match(lines[i + 1 + len(rows)])) is not None:
                rows.append(m.groups())
            if not self.relaxed:
                self.symbols = [_element(r[0]) for r in rows]
                self.positions = np.array([r[1:] for r in rows], dtype=float) * self.alat_A
            return i + 1 + len(rows)
        elif m := _BLOCK_UNIT.match(line):
            unit, scale = _block_scale(m, self.alat_A)
            self.relaxed = True
            if m.group(1) == "CELL_PARAMETERS":
                self.cell = np.array([_numbers(lines[i + k]) for k in (1, 2, 3)]) * scale
                return i + 4
            rows = [lines[i + 1 + k].split() for k in range(len(self.symbols))]
            self.symbols = [_element(r[0]) for r in rows]
            coords = np.array([r[1:4] for r in rows], dtype=float)
            self.positions = coords @ self.cell if unit == "crystal" else coords * scale
            return i + 1 + len(rows)
        elif m := _BANG.match(line):
            energy = float(m.group(1)) * Ry  # Ry -> eV
            self.frames.append(OutputFrame(self.atoms(), energy, None, None, True))
        elif self.frames:
            return self._results(lines, i)
        return i + 1

    def _results(self, lines: list[str], i: int) -> int:
        """Convergence, forces and stress printed after a frame's '!' energy."""
        frame, line = self.frames[-1], lines[i]
        if m := _CONVERGED.search(line):
            frame.n_scf = int(m.group(1))
        elif "Forces acting on atoms" in line and frame.forces is None:
            rows = _force_rows(lines, i + 1)  # the total forces: the first block, one per atom
            frame.forces = np.array(rows, dtype=float).reshape(-1, 3) * Ry / Bohr  # -> eV/Å
        elif "total   stress" in line and frame.stress is None:
            s = np.array([_numbers(lines[i + k]) for k in (1, 2, 3)]) * Ry / Bohr**3
            # QE prints pressure-positive Ry/bohr³; the project's stress is tension positive
            frame.stress = -s.reshape(9)[[0, 4, 8, 5, 2, 1]]
        return i + 1


def _force_rows(lines: list[str], start: int) -> list[tuple[str, str, str]]:
    """The ``atom n type t force = fx fy fz`` lines of the block starting at ``start`` (blank
    lines before it skipped; it ends at the first other line), whatever the atom count read."""
    rows: list[tuple[str, str, str]] = []
    for line in lines[start:]:
        if m := _FORCE.match(line):
            rows.append(m.groups())
        elif rows or line.strip():
            break
    return rows


def _element(label: str) -> str:
    """Chemical symbol of a pw.x species label such as ``Fe1`` or ``O_up``."""
    m = re.match(r"[A-Z][a-z]?", label.capitalize())
    return m.group(0) if m else label


def pw_frames(text: str) -> list[OutputFrame]:
    """Every SCF of a pw.x output (one per '!' energy), with the structure it was computed for.

    Relaxations print the new cell (``CELL_PARAMETERS``) and positions (``ATOMIC_POSITIONS``)
    before each SCF; the final SCF of a vc-relax repeats the header. Units are converted here:
    energy Ry -> eV, forces Ry/bohr -> eV/Å, stress Ry/bohr³ (pressure positive) -> eV/Å³,
    tension positive, Voigt ``[xx, yy, zz, yz, xz, xy]`` (the constants of ``ase.units``, as
    ASE's ``espresso-out`` reader uses).

    Parameters
    ----------
    text
        The whole pw.x output.

    Returns
    -------
    list[OutputFrame]
        In the order printed; forces/stress are None when pw.x did not print them.
    """
    return _read_frames(text).frames


def _read_frames(text: str) -> _PwFrameReader:
    reader = _PwFrameReader()
    lines = text.splitlines() + [""]
    i = 0
    while i < len(lines) - 1:
        i = reader.read(lines, i)
    return reader


def pw_settings(header: str) -> dict:
    """The physics settings a pw.x output reports in its header (for the import settings hash).

    Cutoffs (Ry), exchange-correlation, spin, smearing and width (Ry) when printed and
    pseudopotential files with their md5 sums. Not the k-points: pw.x prints only the
    irreducible ones, which depend on the structure's symmetry (see :func:`pw_import_settings`).
    """
    settings: dict = {"engine": "qe"}
    for key, pattern in _CUTOFF.items():
        if m := pattern.search(header):
            settings[key] = float(m.group(1))
    if m := _XC.search(header):
        settings["exchange_correlation"] = " ".join(m.group(1).split())
    settings["nspin"] = 2 if "Starting magnetic structure" in header else 1
    if "Noncollinear calculation" in header:
        settings["noncollinear"] = True
    if m := _SMEARING.search(header):
        settings["smearing"], settings["degauss_Ry"] = m.group(1), float(m.group(2))
    settings["pseudopotentials"] = {
        element: {"file": Path(file).name, "md5": md5}
        for element, file, md5 in _PSEUDO.findall(header)
    }
    return settings


def pw_import_settings(path: str | os.PathLike) -> dict:
    """:func:`pw_settings` of an output plus its k-point mesh and shift, from the input file or
    XML its run left beside it (``kpoints`` None when neither is there). Reads the header and
    the last 64 kB only (cheap at ``snakemake -n``)."""
    path = Path(path)
    if not path.is_file():
        return {"engine": "qe", "kpoints": None}
    header = read_pw_header(path)
    with open(path, "rb") as handle:
        handle.seek(max(0, path.stat().st_size - 65536))
        tail = handle.read().decode(errors="replace")
    settings = pw_settings(header)
    settings["kpoints"] = run_files(path, header + tail, header).kpoints
    return settings


def _structures_beside(run: RunOutput, text: str, header: str) -> None:
    """Give the frames of an output that printed no atomic positions the structures its run
    left beside it (:mod:`~dft2mlip.dft.pw_files`): the first step the input's structure, the
    last the XML's final one (a single point: either). A frame left without atoms says why."""
    found = run_files(run.path, text, header)
    n = len(run.frames)
    for k, frame in enumerate(run.frames):
        picks = ([("initial", found.initial)] if k == 0 else []) + (
            [("final", found.final)] if k == n - 1 else []
        )
        if n == 1:
            picks.append(("initial", found.initial))
        source, atoms = next(((s, a) for s, a in picks if a is not None), (None, None))
        if atoms is not None:
            frame.atoms = atoms.copy()
            run.provenance.setdefault("structure_from", {})[f"step {k + 1}"] = found.sources[source]
        else:
            tried = "; ".join(found.notes) or f"none of {', '.join(found.looked_for)} is there"
            frame.message = (
                f"pw.x output {run.path.name} prints no atomic positions for ionic step {k + 1} "
                f"and the files beside it do not hold them ({tried}); copy the run's input file "
                "(or its XML data file) next to the output"
            )


def read_pw_header(path: str | os.PathLike) -> str:
    """The text of a pw.x output up to its first SCF (cheap: stops reading there)."""
    return read_until(path, _HEADER_END)


def read_pw_run(output_path: str | os.PathLike) -> RunOutput:
    """A pw.x output as frames, settings and provenance, or the reason pw.x gave no label.

    The engine's own cause (error block, empty output, stop before the end) is checked on the
    text first; the frames are read only from a finished run. When its last SCF did not
    converge, that SCF is the last frame (no results, ``converged`` False, pw.x's message), so
    the steps before it stay usable.
    """
    path = Path(output_path)
    text = path.read_text(errors="replace") if path.is_file() else None
    header = read_pw_header(path) if text else ""
    prov = _provenance(text, path) if text else {"engine": "qe", "program": "pw.x"}
    run = RunOutput(path, "qe", [], prov, pw_settings(header))
    run.failure = pw_failure(text, path)
    if text and (run.failure is None or run.failure[0] == "scf_not_converged"):
        reader = _read_frames(text)
        run.frames = reader.frames
        if not len(reader.atoms()):  # pw.x printed no positions: the files its run left
            _structures_beside(run, text, header)
        if run.failure is not None:
            n_scf = prov.get("n_scf_iterations")
            atoms = run.frames[-1].atoms.copy() if run.frames else reader.atoms()
            run.frames.append(OutputFrame(atoms, None, None, None, False, n_scf, run.failure[1]))
            run.failure = None
        elif not run.frames:
            run.failure = ("failed", f"pw.x output {path.name} has no '!' total energy line")
    return run


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

    if why := pw_failure(text, path):
        return label(*why)
    if settings is not None and (why := _settings_mismatch(prov, settings)):
        return label("failed", why)
    results, why = _pw_results(path, text, structure)
    if why:
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


def _pw_results(path: Path, text: str, structure: Atoms) -> tuple[dict, str]:
    """ASE's results of the output's last step, ``(results, "")``, or ``({}, why)`` when ASE
    cannot read it, the energy, forces or stress are missing, or its structure is not
    ``structure``."""
    try:
        parsed = ase.io.read(path, format="espresso-out", index=-1)
    except Exception as err:  # ASE raises many kinds on malformed files
        return {}, f"ASE could not read {path.name}: {type(err).__name__}: {err}"
    results = parsed.calc.results if parsed.calc is not None else {}
    for key, hint in (
        ("energy", "no '!' total energy line"),
        ("forces", "no forces (tprnfor)"),
        ("stress", "no stress (tstress)"),
    ):
        if results.get(key) is None:
            return {}, f"pw.x output {path.name} has {hint}"
    n_steps = len(_BANG.findall(text))
    if why := _structure_mismatch(parsed, structure, n_steps):
        if n_steps > 1:
            why += (
                f"; the output holds {n_steps} ionic steps and step {n_steps} (the last) was "
                "compared (a relaxation? import it through dataset.import instead)"
            )
        return {}, why
    return results, ""


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


_BFGS_DONE = re.compile(r"bfgs converged in\s+(\d+)\s+scf cycles and\s+(\d+)\s+bfgs steps")
_MAX_STEPS = "The maximum number of steps has been reached."


def write_relax_input(atoms: Atoms, settings: QESettings, directory, thresholds) -> dict:
    """Write ``pw.in`` for a ``vc-relax`` (cell and ions, BFGS) with the dataset's settings.

    The namelists are those of the single points (:func:`pw_input_data`: cutoffs, smearing,
    k-point spacing, pseudopotentials, spin, SCF threshold) plus ``calculation='vc-relax'``,
    ``cell_dofree='all'`` and the thresholds of ``thresholds``
    (:class:`~dft2mlip.dft.relax.RelaxThresholds`) in QE's units. pw.x ends a vc-relax with an
    SCF in the relaxed cell with fresh G-vectors: that SCF's stress is the residual one.

    Returns
    -------
    dict
        ``settings_hash``, ``kpoint_mesh`` (Γ-centred mesh of ``atoms``' cell).
    """
    data = pw_input_data(atoms, settings)
    data["control"].update(
        {
            "calculation": "vc-relax",
            "forc_conv_thr": float(thresholds.fmax_eV_per_A) / (Ry / Bohr),  # Ry/bohr
            "etot_conv_thr": float(thresholds.energy_eV) / Ry,  # Ry
            "nstep": int(thresholds.max_steps),
        }
    )
    data["ions"] = {"ion_dynamics": "bfgs"}
    data["cell"] = {
        "cell_dynamics": "bfgs",
        "cell_dofree": "all",
        "press": 0.0,
        "press_conv_thr": float(thresholds.pressure_GPa) * 10.0,  # GPa -> kbar
    }
    mesh = write_pw_input(atoms, settings, Path(directory) / "pw.in", input_data=data)
    return {"settings_hash": settings.settings_hash(), "kpoint_mesh": list(mesh)}


def read_relax(directory, thresholds):
    """The outcome of the ``vc-relax`` in ``directory`` (``pw.out``): the relaxed cell and the
    stress of pw.x's final SCF in it; "failed" with pw.x's cause (error block, unfinished
    output, SCF not converged, ``nstep`` reached)."""
    path = Path(directory) / "pw.out"
    run = read_pw_run(path)
    text = path.read_text(errors="replace") if path.is_file() else ""
    done = _BFGS_DONE.search(text)
    n_steps = int(done.group(2)) if done else max(len(run.frames) - 1, 0)
    why_not = (
        f"pw.x vc-relax stopped after nstep = {thresholds.max_steps} ionic steps without "
        "converging; raise dft.relax.max_steps (or start closer: material.lattice_constant_A)"
        if _MAX_STEPS in text
        else "pw.x vc-relax did not print 'bfgs converged' (see pw.out)"
    )
    note = "; stress from pw.x's final SCF in the relaxed cell (fresh G-vectors)"
    if m := _PRESSURE.findall(text):
        note += f", P = {float(m[-1]):.2f} kbar as printed"
    return outcome_from_run(run, converged=done is not None, n_steps=n_steps, why_not=why_not,
                            note=note)  # fmt: skip


# The ionic relaxation inside one fixed strained cell (relaxed-ion elastic constants; the
# counterpart of vasp.write_fixed_cell_relax_input and vasp.parse_fixed_cell_relax).

#: energy-change threshold (Ry) between the ionic steps of a fixed-cell relaxation; the force
#: threshold decides convergence
FIXED_CELL_ETOT_CONV_THR_RY = 1.0e-7


def fixed_cell_relax_input_data(
    atoms: Atoms, settings: QESettings, *, fmax_eV_per_A: float, max_steps: int
) -> dict:
    """pw.x namelists for a fixed-cell ionic relaxation with the dataset's electronic settings.

    Exactly :func:`pw_input_data` (cutoffs, smearing, k-point mesh, pseudopotentials, SCF
    threshold) with ``calculation = 'relax'``, BFGS ions and the ionic thresholds.

    Parameters
    ----------
    atoms
        Strained cell.
    settings
        The dataset's QE settings (cutoffs, smearing, k-point density, SCF threshold).
    fmax_eV_per_A
        Force threshold (eV/Å), written as ``forc_conv_thr`` in Ry/bohr (ASE's default
        constants, as this input has always been written).
    max_steps
        ``nstep``: ionic steps at most.
    """
    from ase import units

    data = pw_input_data(atoms, settings)
    data["control"].update(
        {
            "calculation": "relax",
            "forc_conv_thr": float(fmax_eV_per_A) / (units.Ry / units.Bohr),
            "etot_conv_thr": FIXED_CELL_ETOT_CONV_THR_RY,
            "nstep": int(max_steps),
        }
    )
    data["ions"] = {"ion_dynamics": "bfgs"}
    return data


def write_fixed_cell_relax_input(
    atoms: Atoms,
    settings: QESettings,
    path: str | os.PathLike,
    *,
    fmax_eV_per_A: float,
    max_steps: int,
) -> None:
    """Write the pw.x ``relax`` input of one strained cell to ``path`` (see
    :func:`fixed_cell_relax_input_data`)."""
    data = fixed_cell_relax_input_data(
        atoms, settings, fmax_eV_per_A=fmax_eV_per_A, max_steps=max_steps
    )
    write_pw_input(atoms, settings, path, input_data=data)


def parse_fixed_cell_relax(
    output_path: str | os.PathLike,
    structure: Atoms,
    settings_hash: str,
    *,
    settings: QESettings,
    fmax_eV_per_A: float,
) -> Label:
    """Label of the final (relaxed) frame of a pw.x ``relax`` run.

    Status "ok" needs everything :func:`parse_pw_output` checks, plus "bfgs converged" and a
    final max |F| per atom within ``fmax_eV_per_A`` (+5 % for print rounding,
    :func:`~dft2mlip.dft.outputs.check_relaxed_forces`); the run stopping at ``nstep`` is
    "failed" with a message naming the key to raise. The label's atoms are the relaxed ones;
    ``info["voigt_strain"]`` and the structure id of ``structure`` are kept,
    ``info["relax_ionic_steps"]`` (BFGS steps) is added.
    """
    path = Path(output_path)
    text = path.read_text(errors="replace") if path.is_file() else ""
    try:
        final = ase.io.read(path, format="espresso-out", index=-1)
        relaxed = structure.copy()
        relaxed.set_cell(final.cell, scale_atoms=False)
        relaxed.positions = final.positions
    except Exception:  # noqa: BLE001 - the generic parser below names what is wrong
        relaxed = structure.copy()
    label = parse_pw_output(path, relaxed, settings_hash, settings=settings)
    if label.status != "ok":
        return label
    if _MAX_STEPS in text or not (m := _BFGS_DONE.search(text)):
        label.status = "failed"
        label.message = (
            "pw.x relax did not converge the forces within nstep; raise "
            "validation.elastic.relax_max_steps"
        )
        return label
    label.atoms.info["relax_ionic_steps"] = int(m.group(2))
    label.message = f"relaxed in {m.group(2)} BFGS steps ({m.group(1)} SCF cycles)"
    return check_relaxed_forces(label, fmax_eV_per_A)
