"""Import existing data into the dataset: an external extxyz, or finished VASP / QE run directories.

Imported labels go through the same checks as the pipeline's own: electronic convergence (run
directories are parsed with the same parsers), units (extxyz stress must be eV/Å³, tension
positive, as ASE writes it; values that look like GPa or kbar are rejected), shapes and finite
values, duplicates (by structure, in :func:`dft2mlip.data.build_dataset`) and the settings hash
(a label with other DFT settings than the pipeline's is warned about, excluded or refused, per
the source's ``on_settings_mismatch``).

Every imported label records ``provenance["import"] = {"source", "path", "format",
"on_settings_mismatch"}``; structure ids are ``<source>__<n>`` (or ``<source>__<directory>``).
"""

from __future__ import annotations

import glob
import hashlib
import json
import logging
import math
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import ase.io
import numpy as np
from ase import Atoms

from dft2mlip import __version__
from dft2mlip.data import Label

log = logging.getLogger(__name__)
FORMATS = ("extxyz", "vasp", "qe")
POLICIES = ("warn", "exclude", "error")
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
        elif fmt == "vasp":
            for name in ("vasprun.xml", "OUTCAR"):
                if (path / name).is_file():
                    files.append(str(path / name))
        elif fmt == "qe":
            if path.is_file():
                files.append(str(path))
            elif (path / "pw.out").is_file():
                files.append(str(path / "pw.out"))
    return files


def _settings_hash_text(text: str) -> str:
    return "import-" + hashlib.sha256(text.encode()).hexdigest()[:12]


def _external_label(atoms: Atoms, sid: str, source: Mapping, path: str, index: int) -> Label:
    """One frame of an external extxyz -> Label (status from the checks)."""
    info = dict(atoms.info)
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
            "on_settings_mismatch": source.get("on_settings_mismatch", "warn"),
        },
    }
    settings_hash = str(info.get("settings_hash") or _settings_hash_text(f"extxyz:{path}"))

    def label(status: str, message: str) -> Label:
        return Label(
            structure_id=sid,
            config_type=config_type,
            status=status,
            message=message,
            atoms=clean,
            provenance=prov,
            energy_kind=energy_kind,
            settings_hash=settings_hash,
            dft_engine=prov["engine"],
        )

    if str(info.get("status", "ok")) != "ok":
        return label(
            str(info["status"]) if info["status"] in ("scf_not_converged", "failed") else "failed",
            f"marked {info['status']} in {Path(path).name}",
        )
    if info.get("converged") is False or info.get("scf_converged") is False:
        return label("scf_not_converged", "marked not converged in the source file")
    if energy is None or forces is None or stress is None:
        missing = [n for n, v in (("energy", energy), ("forces", forces), ("stress", stress))
                   if v is None]  # fmt: skip
        return label(
            "failed",
            f"no {', '.join(missing)} (REF_energy/REF_forces/REF_stress or calculator results)",
        )
    forces = np.asarray(forces, dtype=float)
    stress = np.asarray(stress, dtype=float)
    if stress.shape == (3, 3):
        if not np.allclose(stress, stress.T, atol=1e-8):
            return label("failed", "stress tensor is not symmetric")
        stress = stress.reshape(9)[[0, 4, 8, 5, 2, 1]]
    if forces.shape != (len(atoms), 3) or stress.shape != (6,):
        return label(
            "failed",
            f"forces shape {forces.shape} / stress shape {stress.shape} are not (N, 3)/(6,)",
        )
    if not (
        math.isfinite(float(energy)) and np.isfinite(forces).all() and np.isfinite(stress).all()
    ):
        return label("failed", "non-finite energy, forces or stress")
    if np.abs(stress).max() > MAX_PLAUSIBLE_STRESS_EV_PER_A3:
        return label(
            "failed",
            f"|stress| up to {np.abs(stress).max():.3g}: not eV/Å³ (GPa or kbar?); convert to "
            "eV/Å³, tension positive, before importing",
        )
    if np.abs(forces).max() > MAX_PLAUSIBLE_FORCE_EV_PER_A:
        return label("failed", f"|force| up to {np.abs(forces).max():.3g} eV/Å is implausible")
    clean.info["REF_energy"] = float(energy)
    clean.arrays["REF_forces"] = forces
    clean.info["REF_stress"] = stress
    return label("ok", f"imported from {Path(path).name} frame {index}")


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


def _structure_from_vasp_dir(directory: Path) -> Atoms:
    for name in ("POSCAR", "CONTCAR"):
        if (directory / name).is_file():
            return ase.io.read(directory / name, format="vasp")
    return ase.io.read(directory / "vasprun.xml", format="vasp-xml", index=0)


def import_run_directories(source: Mapping) -> list[Label]:
    """Labels from finished VASP or QE run directories, through the pipeline's parsers.

    The structure is the run's input (VASP POSCAR; the geometry pw.x echoed), so the parser's
    structure check compares the output with it. A ``settings.json`` written by dft2mlip in the
    directory supplies the real settings hash; otherwise a hash of the engine's reported
    settings is used (and the dataset warns that it differs from the pipeline's).
    """
    from dft2mlip.dft.qe import parse_pw_output
    from dft2mlip.dft.vasp import parse_vasp_output

    labels = []
    fmt = source["format"]
    seen: set[Path] = set()
    for file in source_files(source):
        path = Path(file)
        directory = path.parent
        if fmt == "vasp" and directory in seen:
            continue
        seen.add(directory)
        run_name = directory.name if fmt == "vasp" or path.name == "pw.out" else path.stem
        sid = f"{_safe(source['name'])}__{_safe(run_name)}"
        settings_file = directory / "settings.json"
        known_hash = (
            json.loads(settings_file.read_text()).get("settings_hash")
            if settings_file.is_file()
            else None
        )
        try:
            if fmt == "vasp":
                structure = _structure_from_vasp_dir(directory)
            else:
                structure = ase.io.read(path, format="espresso-out", index=0)
                structure.calc = None
        except Exception as err:  # noqa: BLE001 - an unreadable run becomes a failed label
            structure = Atoms()
            label = Label(
                structure_id=sid,
                config_type=str(source.get("config_type", "imported")),
                status="failed",
                message=f"could not read the structure of {path}: {type(err).__name__}: {err}",
                atoms=structure,
                settings_hash=known_hash or "unknown",
                dft_engine=fmt,
                provenance={"engine": fmt},
            )
        else:
            structure.info.update(
                structure_id=sid, config_type=str(source.get("config_type", "imported"))
            )
            placeholder = known_hash or "pending"
            if fmt == "vasp":
                label = parse_vasp_output(directory, structure, placeholder)
            else:
                label = parse_pw_output(path, structure, placeholder)
            if not known_hash:
                prov = label.provenance
                basis = json.dumps(
                    {
                        k: prov.get(k)
                        for k in ("engine", "ecutwfc_Ry", "ecutrho_Ry", "pseudopotentials",
                                  "potcars")
                    },
                    sort_keys=True,
                )  # fmt: skip
                label.settings_hash = _settings_hash_text(basis)
        label.provenance["import"] = {
            "source": source["name"],
            "path": str(directory),
            "format": fmt,
            "on_settings_mismatch": source.get("on_settings_mismatch", "warn"),
        }
        labels.append(label)
    return labels


def import_source(source: Mapping) -> list[Label]:
    """Dispatch on ``source["format"]`` (extxyz | vasp | qe)."""
    fmt = source.get("format")
    if fmt not in FORMATS:
        raise ValueError(
            f"dataset.import entry {source.get('name')!r}: format must be one of {FORMATS}, "
            f"got {fmt!r}"
        )
    if source.get("on_settings_mismatch", "warn") not in POLICIES:
        raise ValueError(
            f"dataset.import entry {source['name']!r}: on_settings_mismatch must be one of "
            f"{POLICIES}"
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
        if not source_files(source):
            raise ValueError(
                f"config key 'dataset.import' entry {source['name']!r}: no "
                f"{source['format']} data found at {source['path']!r} (a glob; for vasp: "
                "directories with vasprun.xml or OUTCAR; for qe: pw.x outputs or directories "
                "with pw.out)"
            )
