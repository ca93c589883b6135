"""Import existing data into the dataset: an external extxyz, or finished VASP / QE run directories.

Imported labels go through the same checks as the pipeline's own: electronic convergence (run
directories are parsed with the same parsers), units (extxyz stress must be eV/Å³, tension
positive, as ASE writes it; values that look like GPa or kbar are rejected), shapes and finite
values, duplicates (by structure, in :func:`dft2mlip.data.build_dataset`) and the settings hash
(a label with other DFT settings than the rest is refused by default, or excluded or trained, per
the source's ``on_settings_mismatch``).

Every imported label records ``provenance["import"] = {"source", "path", "format",
"on_settings_mismatch"}`` and ``provenance["settings"]`` (what the settings hash covers);
structure ids are ``<source>__<n>`` (or ``<source>__<run>``).

Run outputs with several ionic steps (relaxations, MD) give the label of the frame whose
structure is stored: by default the last one (structure, energy, forces and stress all from the
last ionic step); a source with ``frames: all`` gives one label per ionic step, with ids
``<source>__<run>__step001``, ``__step002``, ... (1-based, as VASP counts ionic steps).
"""

from __future__ import annotations

import glob
import hashlib
import json
import logging
import math
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import ase.io
import numpy as np
from ase import Atoms

from dft2mlip import __version__
from dft2mlip.data import Label, structure_label
from dft2mlip.dft.engines import ENGINES, get_engine
from dft2mlip.dft.outputs import OutputFrame, RunOutput

log = logging.getLogger(__name__)
FORMATS = ("extxyz", "vasp", "qe")
POLICIES = ("error", "exclude", "warn")
#: values of an import source's optional ``frames`` key (default "last")
FRAME_MODES = ("last", "all")
#: what an extxyz frame without ``settings_hash`` (and a source without ``settings_id``) is
#: recorded as, with the source's name: the files of one source share it, two sources do not
EXTERNAL_SETTINGS = {"external": "settings unknown"}
#: |stress| above this (eV/Å³ = 160 GPa) means the file is not in eV/Å³ (GPa or kbar)
MAX_PLAUSIBLE_STRESS_EV_PER_A3 = 1.0
#: |force| above this (eV/Å) is not a physical DFT label of a solid
MAX_PLAUSIBLE_FORCE_EV_PER_A = 100.0


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", text).strip("._") or "x"


def source_files(source: Mapping) -> list[str]:
    """The existing files an import source reads (sorted), known when the DAG is built.

    extxyz: the file itself; vasp: ``vasprun.xml`` or ``OUTCAR`` of each matching directory;
    qe: each matching pw.x output file, or ``pw.out`` in each matching directory.
    """
    fmt = source["format"]
    matches = sorted(glob.glob(os.path.expanduser(str(source["path"]))))
    files: list[str] = []
    for match in matches:
        path = Path(match)
        if fmt == "extxyz":
            files.append(str(path)) if path.is_file() else None
        elif fmt in ENGINES:
            files += [str(file) for file in get_engine(fmt).import_files(path)]
    return files


def settings_hash_of(settings: Mapping) -> str:
    """``import-`` + the first 12 hex digits of sha256 of the canonical JSON of ``settings``."""
    canonical = json.dumps(settings, sort_keys=True, separators=(",", ":"), default=str)
    return "import-" + hashlib.sha256(canonical.encode()).hexdigest()[:12]


def _unknown_settings(source: Mapping, what: str) -> dict:
    """What stands for settings a source does not state: the user's ``settings_id`` (sources
    that give the same one share a group), else the source itself (one group per source, so
    two unrelated datasets are never trained together without the mixed-settings refusal)."""
    if source.get("settings_id") is not None:
        return {"settings_id": str(source["settings_id"])}
    return {"unknown": what, "import_source": str(source.get("name"))}


def _extxyz_settings(info: Mapping, source: Mapping) -> tuple[str, dict]:
    """Settings hash and record of one extxyz frame: the frame's own ``settings_hash``, else
    the source's ``settings_id``, else "settings unknown" of this source (the train/valid/test
    files of one source share it, another source gets another)."""
    if str(info.get("settings_hash", "")).strip():
        recorded = str(info["settings_hash"])
        return recorded, {"settings_hash": recorded, "from": "extxyz frame"}
    settings = _unknown_settings(source, EXTERNAL_SETTINGS["external"])
    return settings_hash_of(settings), settings


def _extxyz_infos(path: str | os.PathLike) -> Iterator[dict]:
    """The info dict of every frame of an extxyz, from the comment lines only (cheap)."""
    from ase.io.extxyz import key_val_str_to_dict

    with open(path, errors="replace") as handle:
        while line := handle.readline():
            if not line.strip():
                continue
            n_atoms = int(line.split()[0])
            yield key_val_str_to_dict(handle.readline())
            for _ in range(n_atoms):
                handle.readline()


def extxyz_frame_infos(path: str | os.PathLike) -> list[dict]:
    """The info dict of every frame of an extxyz: from the comment lines when the file has plain
    atom counts (cheap, at ``snakemake -n``), else read whole with ASE."""
    try:
        return list(_extxyz_infos(path))
    except (ValueError, IndexError):  # not plain extxyz line counts: let ASE read it
        return [atoms.info for atoms in ase.io.read(path, index=":", format="extxyz")]


def _recorded_settings(directory: Path) -> tuple[str | None, dict]:
    """The settings hash and physics dft2mlip recorded in ``settings.json`` of a run
    directory; ``(None, {})`` when there is none: a run computed outside dft2mlip has no
    settings.json, and :func:`run_settings` then hashes the settings its output reports."""
    settings_file = directory / "settings.json"
    if not settings_file.is_file():
        return None, {}
    record = json.loads(settings_file.read_text())
    return record.get("settings_hash") or None, dict(record.get("physics") or {})


def run_settings(fmt: str, file: str | os.PathLike, source: Mapping) -> tuple[str, dict]:
    """Settings hash and settings dict of one run (``file`` as :func:`source_files` lists it).

    A ``settings.json`` written by dft2mlip beside the output keeps its recorded hash;
    otherwise the hash covers the physics settings the engine reports (QE: the pw.x header and
    the k-point mesh of the input or XML beside it; VASP: vasprun.xml's incar/parameters, else
    the OUTCAR header). Reads headers only. The k-points are the mesh and its shift, never the
    irreducible count; when the run's files do not say, they are recorded as unknown for the
    whole ``source`` (its runs form one group, another source another), or as the source's
    ``settings_id`` when it gives one.
    """
    path = Path(file)
    settings = get_engine(fmt).import_settings(path)
    if settings.get("kpoints") is None:
        settings["kpoints"] = _unknown_settings(source, "k-point mesh not in the run's files")
    recorded, physics = _recorded_settings(path.parent)
    if recorded:
        return recorded, {**settings, "settings_json": physics}
    return settings_hash_of(settings), settings


def import_settings_hashes(source: Mapping) -> dict[str, list[str]]:
    """Settings hash -> files of one import source, exactly the hashes its labels will carry.

    Cheap enough to call while Snakemake builds the DAG (``snakemake -n``): it reads extxyz
    comment lines, pw.x headers, vasprun.xml up to its first ionic step or the OUTCAR header,
    and ``settings.json`` files; never a whole output.

    Parameters
    ----------
    source
        One ``dataset.import`` entry (``format``, ``path``, optional ``settings_id``).

    Returns
    -------
    dict[str, list[str]]
        Each settings hash with the files whose labels carry it, in the order of
        :func:`source_files`.
    """
    hashes: dict[str, list[str]] = {}
    for file in source_files(source):
        if source["format"] == "extxyz":
            found = {_extxyz_settings(info, source)[0] for info in extxyz_frame_infos(file)}
        else:
            found = {run_settings(source["format"], file, source)[0]}
        for settings_hash in sorted(found):
            hashes.setdefault(settings_hash, []).append(file)
    return hashes


def _external_label(atoms: Atoms, sid: str, source: Mapping, path: str, index: int) -> Label:
    """One frame of an external extxyz -> Label (status from the checks)."""
    info = dict(atoms.info)
    energy, energy_kind, forces, stress = _given_values(atoms)
    clean = Atoms(atoms.get_chemical_symbols(), positions=atoms.positions, cell=atoms.cell,
                  pbc=atoms.pbc)  # fmt: skip
    config_type = str(info.get("config_type", source.get("config_type", "imported")))
    clean.info.update(structure_id=sid, config_type=config_type)
    prov = {
        "engine": str(info.get("dft_engine", "external")),
        "parser": f"dft2mlip {__version__} (extxyz import)",
        "import": {
            "source": source["name"],
            "path": str(path),
            "frame": index,
            "format": "extxyz",
            "on_settings_mismatch": source.get("on_settings_mismatch", "error"),
        },
    }
    settings_hash, prov["settings"] = _extxyz_settings(info, source)
    status, message, forces, stress = _checked_values(
        info, path, energy, forces, stress, len(atoms)
    )
    if status == "ok":
        clean.info["REF_energy"] = float(energy)
        clean.arrays["REF_forces"] = forces
        clean.info["REF_stress"] = stress
        message = f"imported from {Path(path).name} frame {index}"
    # clean.info holds the id and config type: the label of "clean" as every parser makes one
    return structure_label(clean, status, message, clean, provenance=prov,
                           settings_hash=settings_hash, dft_engine=prov["engine"],
                           default_id=sid, energy_kind=energy_kind)  # fmt: skip


def _given_values(atoms: Atoms) -> tuple:
    """(energy, energy kind, forces, stress) as an extxyz frame gives them: the ``REF_*`` keys,
    else its calculator's results (the free energy where given); None where absent."""
    info = atoms.info
    results = dict(atoms.calc.results) if atoms.calc is not None else {}
    energy_kind = "as_given"
    if "REF_energy" in info:
        energy = info["REF_energy"]
    elif "free_energy" in results:
        energy, energy_kind = results["free_energy"], "free_energy"
    else:
        energy = results.get("energy", info.get("energy"))
    forces = atoms.arrays.get("REF_forces", results.get("forces"))
    stress = info.get("REF_stress", results.get("stress"))
    return energy, energy_kind, forces, stress


def _checked_values(info: Mapping, path: str, energy, forces, stress, n_atoms: int) -> tuple:
    """(status, message, forces, stress) of an extxyz frame: "ok" with forces (N, 3) and stress
    (6, Voigt) as float arrays, else the status and one-line cause it is refused with."""
    if str(info.get("status", "ok")) != "ok":
        status = info["status"] if info["status"] in ("scf_not_converged", "failed") else "failed"
        return str(status), f"marked {info['status']} in {Path(path).name}", forces, stress
    if info.get("converged") is False or info.get("scf_converged") is False:
        return "scf_not_converged", "marked not converged in the source file", forces, stress
    if energy is None or forces is None or stress is None:
        missing = [n for n, v in (("energy", energy), ("forces", forces), ("stress", stress))
                   if v is None]  # fmt: skip
        return ("failed", f"no {', '.join(missing)} (REF_energy/REF_forces/REF_stress or "
                "calculator results)", forces, stress)  # fmt: skip
    forces = np.asarray(forces, dtype=float)
    stress = np.asarray(stress, dtype=float)
    if stress.shape == (3, 3):
        if not np.allclose(stress, stress.T, atol=1e-8):
            return "failed", "stress tensor is not symmetric", forces, stress
        stress = stress.reshape(9)[[0, 4, 8, 5, 2, 1]]
    if forces.shape != (n_atoms, 3) or stress.shape != (6,):
        return ("failed", f"forces shape {forces.shape} / stress shape {stress.shape} are not "
                "(N, 3)/(6,)", forces, stress)  # fmt: skip
    if not (
        math.isfinite(float(energy)) and np.isfinite(forces).all() and np.isfinite(stress).all()
    ):
        return "failed", "non-finite energy, forces or stress", forces, stress
    if np.abs(stress).max() > MAX_PLAUSIBLE_STRESS_EV_PER_A3:
        return ("failed", f"|stress| up to {np.abs(stress).max():.3g}: not eV/Å³ (GPa or kbar?); "
                "convert to eV/Å³, tension positive, before importing", forces, stress)  # fmt: skip
    if np.abs(forces).max() > MAX_PLAUSIBLE_FORCE_EV_PER_A:
        message = f"|force| up to {np.abs(forces).max():.3g} eV/Å is implausible"
        return "failed", message, forces, stress
    return "ok", "", forces, stress


def import_extxyz(source: Mapping) -> list[Label]:
    """Labels from an external extxyz with ``REF_*`` keys or ASE calculator results.

    Parameters
    ----------
    source
        ``{"name", "path", "format": "extxyz", "config_type"?, "on_settings_mismatch"?}``.
        Stress must be in eV/Å³, tension positive (ASE's convention), Voigt or 3x3.
    """
    labels = []
    for path in source_files(source):
        for i, atoms in enumerate(ase.io.read(path, index=":", format="extxyz")):
            sid = f"{_safe(source['name'])}__{i:05d}"
            labels.append(_external_label(atoms, sid, source, path, i))
    return labels


def _inconsistent(frame: OutputFrame) -> str | None:
    """Why a frame's results do not fit its structure (shapes, a usable cell), None if they do."""
    n = len(frame.atoms)
    if np.shape(frame.forces) != (n, 3):
        return f"forces of shape {np.shape(frame.forces)} for {n} atoms"
    if np.shape(frame.stress) != (6,):
        return f"a stress of shape {np.shape(frame.stress)}, not 6 components"
    if np.ndim(frame.energy_eV) != 0:
        return "an energy that is not one number"
    volume = abs(np.linalg.det(np.asarray(frame.atoms.cell, dtype=float)))
    if not (np.isfinite(frame.atoms.positions).all() and np.isfinite(volume) and volume > 1e-6):
        return "a structure without a finite cell volume or finite positions"
    return None


def _frame_result(run: RunOutput, k: int) -> tuple[str, str]:
    """Status and message of ionic step ``k`` of ``run`` (what it lacks, or where it is)."""
    frame, n = run.frames[k], len(run.frames)
    where = f"ionic step {k + 1} of {n}" + (" (the last)" if k == n - 1 else "")
    if not frame.converged:
        why = frame.message or f"SCF not converged ({frame.n_scf} iterations)"
        return "scf_not_converged", f"{where} of {run.path.name}: {why}"
    if len(frame.atoms) == 0:
        return "failed", frame.message or f"{run.path.name} holds no atoms at {where}"
    missing = [name for name, value in (("energy", frame.energy_eV), ("forces", frame.forces),
                                        ("stress", frame.stress)) if value is None]  # fmt: skip
    if missing:
        return "failed", f"{run.path.name} has no {' or '.join(missing)} at {where}"
    if why := _inconsistent(frame):
        return "failed", f"{run.path.name} at {where}: {why}"
    values = (frame.energy_eV, frame.forces, frame.stress)
    if not all(np.isfinite(np.asarray(v, dtype=float)).all() for v in values):
        return "failed", f"{run.path.name} has NaN or Inf energy, forces or stress at {where}"
    if n == 1:
        return "ok", f"single point from {run.path.name}, SCF converged in {frame.n_scf} iterations"
    return "ok", f"{n} ionic steps in {run.path.name}; took {where}"


def _run_labels(
    run: RunOutput, sid: str, source: Mapping, settings_hash: str, settings: dict
) -> list[Label]:
    """The labels of one run: its last ionic step, or every step with ``frames: all``."""
    config_type = str(source.get("config_type", "imported"))
    mode = source.get("frames", "last")
    prov = {**run.provenance, "settings": settings}
    prov["import"] = {
        "source": source["name"],
        "path": str(run.path.parent),
        "file": str(run.path),
        "format": run.engine,
        "frames": mode,
        "on_settings_mismatch": source.get("on_settings_mismatch", "error"),
    }

    def label(label_id: str, status: str, message: str, atoms: Atoms, extra: dict) -> Label:
        atoms.info.update(structure_id=label_id, config_type=config_type)
        return Label(label_id, config_type, status, message, atoms,
                     provenance={**prov, **extra}, settings_hash=settings_hash,
                     dft_engine=run.engine)  # fmt: skip

    if run.failure is not None or not run.frames:
        status, message = run.failure or ("failed", f"{run.path.name} holds no ionic step")
        atoms = run.frames[-1].atoms.copy() if run.frames else Atoms()
        return [label(sid, status, message, atoms, {"n_ionic_steps": len(run.frames)})]
    n = len(run.frames)
    labels = []
    for k in range(n) if mode == "all" else [n - 1]:
        frame = run.frames[k]
        status, message = _frame_result(run, k)
        atoms = frame.atoms.copy()
        atoms.calc = None
        if status == "ok":
            atoms.info["REF_energy"] = float(frame.energy_eV)
            atoms.arrays["REF_forces"] = np.asarray(frame.forces, dtype=float)
            atoms.info["REF_stress"] = np.asarray(frame.stress, dtype=float)
        extra = {"ionic_step": k + 1, "n_ionic_steps": n, "n_scf_iterations": frame.n_scf}
        label_id = f"{sid}__step{k + 1:03d}" if mode == "all" else sid
        labels.append(label(label_id, status, message, atoms, extra))
    return labels


def import_run_directories(source: Mapping) -> list[Label]:
    """Labels from finished VASP or QE runs (directories, or pw.x output files).

    The structure is the one the output holds for the ionic step taken (by default the last:
    structure, energy, forces and stress of one step); with ``frames: all`` every ionic step
    becomes a label. A run that gives no label keeps the engine's own cause as its message.
    A ``settings.json`` written by dft2mlip beside the output supplies the settings hash;
    otherwise it is the hash of the engine's reported settings (:func:`run_settings`).
    """
    fmt = source["format"]
    engine = get_engine(fmt)
    labels = []
    seen: set[Path] = set()
    for file in source_files(source):
        path = Path(file)
        run, run_name = engine.import_run(path)
        if run in seen:
            continue
        seen.add(run)
        sid = f"{_safe(source['name'])}__{_safe(run_name)}"
        settings_hash, settings = run_settings(fmt, path, source)
        labels += _run_labels(engine.read_run(path), sid, source, settings_hash, settings)
    return labels


def import_source(source: Mapping) -> list[Label]:
    """Dispatch on ``source["format"]`` (extxyz | vasp | qe)."""
    fmt = source.get("format")
    if fmt not in FORMATS:
        raise ValueError(
            f"dataset.import entry {source.get('name')!r}: format must be one of {FORMATS}, "
            f"got {fmt!r}"
        )
    if source.get("on_settings_mismatch", "error") not in POLICIES:
        raise ValueError(
            f"dataset.import entry {source['name']!r}: on_settings_mismatch must be one of "
            f"{POLICIES}"
        )
    if source.get("frames", "last") not in FRAME_MODES:
        raise ValueError(
            f"dataset.import entry {source['name']!r}: frames must be one of {FRAME_MODES}, "
            f"got {source.get('frames')!r}"
        )
    labels = import_extxyz(source) if fmt == "extxyz" else import_run_directories(source)
    if not labels:
        raise ValueError(
            f"dataset.import entry {source['name']!r}: nothing found at {source['path']!r}"
        )
    return labels


def check_import_sources(sources: Sequence[Mapping]) -> None:
    """Config check: unique names, known formats and paths that match something."""
    names = [s["name"] for s in sources]
    for name in names:
        if names.count(name) > 1:
            raise ValueError(f"config key 'dataset.import': the name {name!r} is used twice")
    for source in sources:
        if source.get("format") not in FORMATS:
            raise ValueError(
                f"config key 'dataset.import' entry {source['name']!r}: format must be one of "
                f"{FORMATS}"
            )
        if source.get("frames", "last") not in FRAME_MODES:
            raise ValueError(
                f"config key 'dataset.import' entry {source['name']!r}: frames must be one of "
                f"{FRAME_MODES} (the last ionic step of each run, or every step), got "
                f"{source.get('frames')!r}"
            )
        if not source_files(source):
            raise ValueError(
                f"config key 'dataset.import' entry {source['name']!r}: no "
                f"{source['format']} data found at {source['path']!r} (a glob; for vasp: "
                "directories with vasprun.xml or OUTCAR; for qe: pw.x outputs or directories "
                "with pw.out)"
            )
