"""Input checks that run before any work (:func:`check_inputs`, called from
:func:`dft2mlip.config.check_config` while the DAG is built) and where the work runs
(:func:`check_executable`, called first thing by the jobs that start a DFT program).

Each check raises one message that names the config key (or the file), says what is wrong and how
to fix it. They cover what the schema cannot express: chemistry (real elements, atoms that do not
overlap), physically absurd DFT settings, POTCAR and import paths, a results directory that must
stay inside the working directory and be writable, and (in the job) a DFT program or MPI launcher
that is not there. The DFT program is not checked at DAG time: on a cluster it often exists only
inside the job (``module load``), and ``snakemake -n`` must work on a login node or a laptop.
"""

from __future__ import annotations

import os
import shlex
import shutil
import socket
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.data import chemical_symbols, covalent_radii

#: atoms closer than this fraction of the sum of their covalent radii overlap
OVERLAP_FRACTION = 0.5

#: nearest neighbours farther apart than this times the sum of covalent radii: a blown-up cell
#: (elemental crystals from Cs to C: 0.9-1.2; the same lattice constants in bohr: 1.8-2.3)
SPREAD_FACTOR = 1.6
NOBLE_GASES = frozenset({"He", "Ne", "Ar", "Kr", "Xe", "Rn"})
BOHR_A = 0.529177

#: k-point spacing (Å⁻¹, 2π included): below it the mesh is astronomically dense; above, Γ only
KSPACING_RANGE = (0.03, 2.0)


def check_elements(elements: Sequence[str]) -> None:
    """Every entry of ``material.elements`` is a chemical symbol (H ... Og)."""
    for symbol in elements:
        if symbol not in chemical_symbols[1:]:
            raise ValueError(
                f"config key 'material.elements': {symbol!r} is not a chemical element; use "
                "symbols as in the periodic table, capitalised (e.g. [Si] or [Ga, As])"
            )


def closest_pair(atoms: Atoms) -> tuple[float, int, int]:
    """The shortest interatomic distance (Å, minimum image) and the two atom indices."""
    n = len(atoms)
    if n < 2 and not atoms.pbc.any():
        return np.inf, 0, 0
    if n == 1:
        # one atom: its own periodic images are the neighbours (shortest lattice vector)
        return float(np.min(np.linalg.norm(atoms.cell.array, axis=1))), 0, 0
    d = atoms.get_all_distances(mic=bool(atoms.pbc.any()))
    d[np.diag_indices(n)] = np.inf
    i, j = np.unravel_index(np.argmin(d), d.shape)
    return float(d[i, j]), int(i), int(j)


def overlap_message(atoms: Atoms) -> str | None:
    """Why ``atoms`` has overlapping atoms (closer than half their covalent radii), or None."""
    if len(atoms) == 0:
        return "it holds no atoms"
    d, i, j = closest_pair(atoms)
    zi, zj = atoms.numbers[i], atoms.numbers[j]
    limit = OVERLAP_FRACTION * (covalent_radii[zi] + covalent_radii[zj])
    if d < limit:
        return (
            f"atoms {i} ({chemical_symbols[zi]}) and {j} ({chemical_symbols[zj]}) are "
            f"{d:.3f} Å apart, below {limit:.2f} Å (half the sum of their covalent radii): "
            "overlapping atoms"
        )
    return None


def spread_message(atoms: Atoms) -> str | None:
    """Why ``atoms`` looks blown up (every atom farther than :data:`SPREAD_FACTOR` x the sum of
    covalent radii from its nearest neighbour: a lattice constant in bohr), or None."""
    d, i, j = closest_pair(atoms)
    zi, zj = atoms.numbers[i], atoms.numbers[j]
    if {chemical_symbols[zi], chemical_symbols[zj]} & NOBLE_GASES:
        return None  # van der Waals crystals: far apart on purpose
    bond = covalent_radii[zi] + covalent_radii[zj]
    if d > SPREAD_FACTOR * bond:
        return (
            f"the nearest neighbours ({chemical_symbols[zi]}-{chemical_symbols[zj]}) are "
            f"{d:.2f} Å apart, {d / bond:.1f}x the sum of their covalent radii: the cell is "
            f"far too large (a length in bohr? 1 bohr = {BOHR_A} Å)"
        )
    return None


def check_material_geometry(material: Mapping) -> None:
    """The material's cell has no overlapping atoms and is not blown up (lengths in Å)."""
    from dft2mlip.structures import primitive_cell

    if material.get("structure"):
        cell = primitive_cell(material)  # a missing or unreadable file names material.structure
        key = f"config key 'material.structure' = {str(material['structure'])!r}"
        fix = "give the positions and cell in Å"
    else:
        try:
            cell = primitive_cell(material)
        except ValueError:
            return  # prototype/elements mismatch: check_config's structure checks name it
        key = f"config key 'material.lattice_constant_A' = {material['lattice_constant_A']}"
        fix = "give the lattice constant a in Å (e.g. 5.431 for diamond Si)"
    if why := overlap_message(cell):
        raise ValueError(f"{key}: in the primitive cell {why}; {fix}")
    if why := spread_message(cell):
        raise ValueError(f"{key}: {why}; {fix}")


def check_dft_ranges(dft: Mapping) -> None:
    """Cutoff and k-point spacing of the engine, and of the convergence grid, are not absurd."""
    from dft2mlip.dft.engines import ENGINES, get_engine

    engine = dft["engine"]
    if engine not in ENGINES:  # none: no new DFT, nothing to check
        return
    key, unit, low, high = get_engine(engine).cutoff_range
    section = dft.get(engine, {})
    cutoffs = [(f"dft.{engine}.{key}", section.get(key))]
    kspacings = [(f"dft.{engine}.kspacing_per_A", section.get("kspacing_per_A"))]
    conv = dft.get("convergence", {})
    if conv.get("enabled"):
        cutoffs += [(f"dft.convergence.cutoffs[{i}]", c) for i, c in enumerate(conv["cutoffs"])]
        kspacings += [
            (f"dft.convergence.kspacings_per_A[{i}]", k)
            for i, k in enumerate(conv["kspacings_per_A"])
        ]
    hint = get_engine(engine).cutoff_hint
    for name, value in cutoffs:
        if value is not None and not low <= float(value) <= high:
            raise ValueError(
                f"config key '{name}' = {value} {unit} is outside the sane range "
                f"[{low:g}, {high:g}] {unit}{hint}; set a plane-wave cutoff in that range"
            )
    klo, khi = KSPACING_RANGE
    for name, value in kspacings:
        if value is not None and not klo <= float(value) <= khi:
            raise ValueError(
                f"config key '{name}' = {value} Å⁻¹ is outside [{klo}, {khi}] Å⁻¹ (2π "
                "included): smaller gives an astronomically dense k-mesh, larger only Γ; "
                "typical production values are 0.15-0.3"
            )


def _program(command: str) -> str:
    """The first word of a command line (``""`` when there is none or it does not split)."""
    try:
        return shlex.split(command)[0]
    except (ValueError, IndexError):
        return ""


def check_executable(
    dft: Mapping, nprocs: int = 1, environ: Mapping[str, str] | None = None
) -> None:
    """The DFT program of the configured engine, and the MPI launcher when ``nprocs`` > 1, can be
    found on this host. Called first thing by the jobs that start DFT (run_dft, convergence_point,
    elastic_dft_relax), not while the DAG is built: on a cluster the program often exists only
    inside the job (``module load``), and ``snakemake -n`` must work on a login node or a laptop.

    Parameters
    ----------
    dft
        ``config["dft"]``.
    nprocs
        MPI ranks of the job (its threads); the launcher is used only when > 1.
    environ
        Environment whose ``PATH`` is searched (default: ``os.environ``).

    Raises
    ------
    FileNotFoundError
        One line: which program, which config key, how to fix it.
    """
    from dft2mlip.dft.engines import get_engine

    environ = os.environ if environ is None else environ
    path, host = environ.get("PATH"), socket.gethostname()
    engine = dft["engine"]
    eng = get_engine(engine)
    command = dft.get(engine, {}).get("executable") or eng.default_executable
    program = _program(command)
    if not program or shutil.which(program, path=path) is None:
        raise FileNotFoundError(
            f"config key 'dft.{engine}.executable' = {command!r}: the program {program!r} is "
            f"not found on PATH on {host}, where this job runs; {eng.install_hint} in the shell "
            "that starts snakemake (jobs inherit its environment, also on SLURM), or give its "
            "full path"
        )
    launcher = dft.get("mpi_launcher") or ""
    if nprocs > 1 and launcher.strip():
        from dft2mlip.dft.run import _launcher

        name = _launcher(launcher, nprocs)[0]
        if shutil.which(name, path=path) is None:
            raise FileNotFoundError(
                f"config key 'dft.mpi_launcher' = {launcher!r}: the launcher {name!r} is not "
                f"found on PATH on {host}, where this job runs; install MPI or load its module, "
                "use the cluster profile (srun), or set dft.mpi_launcher to '' to run serially"
            )


def check_mpi_launcher(dft: Mapping) -> None:
    """``dft.mpi_launcher`` is a valid template (only ``{nprocs}`` may be substituted)."""
    from dft2mlip.dft.run import _launcher

    _launcher(dft.get("mpi_launcher", ""), 2)


def check_results_dir(results_dir: str, workdir: str | os.PathLike | None = None) -> None:
    """``results_dir`` is relative, stays inside the working directory and can be written.

    Parameters
    ----------
    results_dir
        ``config["results_dir"]`` as written (a symlink inside the working directory, e.g. to a
        scratch file system, is allowed: only the path text must not escape).
    workdir
        The working directory (default: the current one).
    """
    work = Path(workdir or os.getcwd()).resolve()
    where = f"config key 'results_dir' = {results_dir!r}"
    if not results_dir.strip():
        raise ValueError(f"{where} is empty; use a relative directory such as 'results'")
    if Path(results_dir).is_absolute():
        raise ValueError(
            f"{where} is an absolute path: outputs must stay inside the working directory "
            f"{work}; give a relative path (link a scratch directory there if needed)"
        )
    if os.path.normpath(results_dir).split(os.sep)[0] == os.pardir:
        raise ValueError(
            f"{where} leaves the working directory {work} ('..'); give a path inside it"
        )
    target = work / results_dir
    probe = target
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        raise ValueError(
            f"{where}: {probe} exists and is not a directory; remove it or choose another "
            "results_dir"
        )
    if probe == target or target.is_relative_to(probe):
        try:
            with tempfile.TemporaryFile(dir=probe):
                pass
        except OSError as err:
            raise ValueError(
                f"{where}: cannot write in {probe} ({err.strerror}); make it writable or choose "
                "another results_dir"
            ) from None


def check_import_files(sources: Sequence[Mapping]) -> None:
    """Every extxyz file of ``dataset.import`` parses, and no frame has overlapping atoms."""
    import ase.io

    from dft2mlip.dft.importing import source_files

    for source in sources:
        if source.get("format") != "extxyz":
            continue
        for path in source_files(source):
            key = f"config key 'dataset.import' entry {source['name']!r}: file {path}"
            try:
                frames = ase.io.read(path, format="extxyz", index=":")
            except Exception as err:  # ASE raises many kinds on malformed files
                raise ValueError(
                    f"{key} does not parse as extended XYZ ({type(err).__name__}: {err}); fix "
                    "the file or remove it from the glob"
                ) from None
            if not frames:
                raise ValueError(f"{key} holds no structure; remove it from the glob")
            for index, atoms in enumerate(frames):
                if why := overlap_message(atoms):
                    raise ValueError(
                        f"{key}, frame {index}: {why}; fix or drop that frame (positions in Å?)"
                    )


def check_inputs(config: Mapping, workdir: str | os.PathLike | None = None) -> None:
    """All checks of this module, in the order a user would fix them."""
    check_elements(config["material"]["elements"])
    check_material_geometry(config["material"])
    check_results_dir(config["results_dir"], workdir)
    dft = config["dft"]
    check_dft_ranges(dft)
    check_mpi_launcher(dft)
    check_import_files(config["dataset"].get("import", []))
