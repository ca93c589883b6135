"""DFT labels and the training dataset built from them.

Label file (one per structure): single-frame extxyz. ``atoms.info`` holds ``structure_id``,
``config_type``, ``status`` ("ok" | "scf_not_converged" | "failed"), ``message``,
``dft_engine``, ``settings_hash``, ``energy_kind``, ``provenance`` (JSON string) and, when the
status is "ok", ``REF_energy`` (eV) and ``REF_stress`` (eV/Å³, Voigt ``[xx, yy, zz, yz, xz,
xy]``, tension positive); ``atoms.arrays["REF_forces"]`` (N, 3) in eV/Å. Labels that are not ok
carry the input structure only. Any other ``info`` of the structure is preserved.

Dataset: ``{train,val,test}.extxyz`` with the ``REF_*`` keys (MACE reads them as is) and
``labels.parquet`` with one row per label, failed ones included with split "excluded".
"""

from __future__ import annotations

import json
import logging
import math
import os
import shlex
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import ase.io
import numpy as np
import pandas as pd
from ase import Atoms

from dft2mlip.io import atomic_write, atomic_write_text
from dft2mlip.units import EV_PER_A3_TO_GPA

log = logging.getLogger(__name__)

STATUSES = ("ok", "scf_not_converged", "failed")
SPLITS = ("train", "val", "test")
REF_INFO_KEYS = ("REF_energy", "REF_stress")
REF_ARRAY_KEYS = ("REF_forces",)
# info keys that are Label fields; read back verbatim as strings (extxyz would turn a
# settings_hash like "0123456789ab" into an int)
_STRING_KEYS = (
    "structure_id",
    "config_type",
    "status",
    "message",
    "dft_engine",
    "settings_hash",
    "energy_kind",
    "provenance",
)
_LABEL_ONLY_KEYS = ("status", "message", "provenance")
# extxyz cannot hold an empty string value (the next key would be read as its value)
_EMPTY_MESSAGE = "(none)"
VOIGT_NAMES = ("xx", "yy", "zz", "yz", "xz", "xy")


@dataclass
class Label:
    """One DFT label: the structure, its status and, when ok, the reference results.

    When ``status == "ok"``, ``atoms.info["REF_energy"]`` (eV), ``atoms.info["REF_stress"]``
    (6, eV/Å³, tension positive) and ``atoms.arrays["REF_forces"]`` (N, 3, eV/Å) are set.
    """

    structure_id: str
    config_type: str
    status: str
    message: str
    atoms: Atoms
    provenance: dict = field(default_factory=dict)
    energy_kind: str = "free_energy"
    settings_hash: str = ""
    dft_engine: str = "qe"

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(
                f"label {self.structure_id}: status must be one of {STATUSES}, got {self.status!r}"
            )
        if self.status == "ok":
            missing = [k for k in REF_INFO_KEYS if k not in self.atoms.info]
            missing += [k for k in REF_ARRAY_KEYS if k not in self.atoms.arrays]
            if missing:
                raise ValueError(f"label {self.structure_id} is ok but lacks {missing}")
            n_atoms = len(self.atoms)
            if n_atoms == 0 or np.shape(self.atoms.arrays["REF_forces"]) != (n_atoms, 3):
                raise ValueError(
                    f"label {self.structure_id} is ok but has {n_atoms} atoms and forces of "
                    f"shape {np.shape(self.atoms.arrays['REF_forces'])}; an ok label needs "
                    "atoms and one force row per atom (mark it failed with the cause)"
                )
            if np.shape(self.atoms.info["REF_stress"]) != (6,):
                raise ValueError(
                    f"label {self.structure_id}: REF_stress must be a 6-vector (Voigt), "
                    f"got shape {np.shape(self.atoms.info['REF_stress'])}"
                )
            bad = [
                key
                for key, value in (
                    ("REF_energy", self.atoms.info["REF_energy"]),
                    ("REF_forces", self.atoms.arrays["REF_forces"]),
                    ("REF_stress", self.atoms.info["REF_stress"]),
                )
                if not np.isfinite(np.asarray(value, dtype=float)).all()
            ]
            if bad:
                raise ValueError(
                    f"label {self.structure_id} is ok but {', '.join(bad)} holds NaN or Inf; "
                    "mark it failed (it must never be trained on) or recompute it"
                )

    @property
    def energy(self) -> float | None:
        """Reference energy (eV), None unless ok."""
        return float(self.atoms.info["REF_energy"]) if self.status == "ok" else None

    @property
    def forces(self) -> np.ndarray | None:
        """Reference forces (N, 3; eV/Å), None unless ok."""
        return np.asarray(self.atoms.arrays["REF_forces"]) if self.status == "ok" else None

    @property
    def stress(self) -> np.ndarray | None:
        """Reference stress (6, Voigt; eV/Å³, tension positive), None unless ok."""
        return np.asarray(self.atoms.info["REF_stress"], float) if self.status == "ok" else None


def _clean_text(text: str) -> str:
    """One line without characters that extxyz's key=value header cannot round-trip."""
    return " ".join(str(text).replace('"', "'").replace("\\", "/").split())


def _clean_json_value(value):
    if isinstance(value, str):
        return _clean_text(value)
    if isinstance(value, Mapping):
        return {str(k): _clean_json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean_json_value(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return _clean_json_value(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _strip_ref(atoms: Atoms) -> None:
    for key in REF_INFO_KEYS:
        atoms.info.pop(key, None)
    for key in REF_ARRAY_KEYS:
        if key in atoms.arrays:
            del atoms.arrays[key]


def structure_label(
    structure: Atoms,
    status: str,
    message: str,
    atoms: Atoms | None = None,
    *,
    provenance: dict,
    settings_hash: str,
    dft_engine: str,
    default_id: str,
    energy_kind: str = "free_energy",
) -> Label:
    """The label of one parsed DFT run of ``structure`` (what every engine's parser returns).

    ``atoms`` carries the REF_* results when the run is ok; otherwise the label holds a copy of
    the bare input structure (no calculator, no REF_* keys). Id and config type come from
    ``structure.info`` (``default_id`` when it has none).
    """
    if atoms is None:
        atoms = structure.copy()
        atoms.calc = None
        _strip_ref(atoms)
    return Label(
        structure_id=str(structure.info.get("structure_id", default_id)),
        config_type=str(structure.info.get("config_type", "unknown")),
        status=status,
        message=message,
        atoms=atoms,
        provenance=provenance,
        energy_kind=energy_kind,
        settings_hash=settings_hash,
        dft_engine=dft_engine,
    )


def structure_mismatch(
    parsed: Atoms, structure: Atoms, *, program: str, tolerance_A: float
) -> str | None:
    """Why the structure a DFT code echoed is not the input ``structure`` (None when it is).

    Compares atom count, species and order, cell and positions (minimum image), in Å.
    """
    if len(parsed) != len(structure):
        return f"{program} output has {len(parsed)} atoms, the input structure {len(structure)}"
    if parsed.get_chemical_symbols() != structure.get_chemical_symbols():
        return f"{program} output lists other species (or another order) than the input structure"
    cell = np.asarray(structure.cell)
    cell_diff = np.abs(np.asarray(parsed.cell) - cell).max()
    if cell_diff > tolerance_A:
        return f"{program} output cell differs from the input structure by {cell_diff:.2e} Å"
    frac = np.linalg.solve(cell.T, (parsed.positions - structure.positions).T).T
    pos_diff = np.linalg.norm((frac - np.round(frac)) @ cell, axis=1).max()
    if pos_diff > tolerance_A:
        return f"{program} output positions differ from the input structure by {pos_diff:.2e} Å"
    return None


def _label_frame(label: Label) -> Atoms:
    """The extxyz frame of a label (see :func:`write_label`)."""
    for name in ("structure_id", "config_type", "dft_engine", "settings_hash", "energy_kind"):
        if not str(getattr(label, name)).strip():
            raise ValueError(
                f"label {label.structure_id!r}: {name} is empty; set it before writing"
            )
    atoms = label.atoms.copy()
    atoms.calc = None
    atoms.constraints = []
    for key in [k for k, v in atoms.info.items() if isinstance(v, str) and not v.strip()]:
        del atoms.info[key]  # empty strings would corrupt the extxyz header
    if label.status != "ok":
        _strip_ref(atoms)
    else:
        atoms.info["REF_energy"] = float(atoms.info["REF_energy"])
        atoms.info["REF_stress"] = np.asarray(atoms.info["REF_stress"], dtype=float)
    provenance = json.dumps(_clean_json_value(label.provenance), sort_keys=True, ensure_ascii=False)
    atoms.info.update(
        structure_id=label.structure_id,
        config_type=label.config_type,
        status=label.status,
        message=_clean_text(label.message) or _EMPTY_MESSAGE,
        dft_engine=label.dft_engine,
        settings_hash=label.settings_hash,
        energy_kind=label.energy_kind,
        provenance=provenance,
    )
    return atoms


def write_label(label: Label, path: str | os.PathLike) -> None:
    """Write a label file (single-frame extxyz, see the module docstring).

    Parameters
    ----------
    label
        The label. Labels that are not ok are written without ``REF_*`` keys.
    path
        Output file; parent directories are created.
    """
    write_labels([label], path)


def write_labels(labels: Sequence[Label], path: str | os.PathLike) -> None:
    """Write several labels into one extxyz file (one frame each; e.g. imported data).

    Parameters
    ----------
    labels
        The labels (may be empty: an empty file is written).
    path
        Output file; parent directories are created; written atomically.
    """
    frames = [_label_frame(label) for label in labels]
    with atomic_write(path) as tmp:  # never leave a half-written label behind
        if frames:
            ase.io.write(tmp, frames, format="extxyz")
        else:
            tmp.write_text("")


def _raw_headers(path: Path) -> list[dict[str, str]]:
    """The extxyz comment line of every frame as verbatim strings (no number conversion)."""
    headers = []
    with open(path, encoding="utf-8") as handle:
        while True:
            count = handle.readline()
            if not count.strip():
                break
            header = handle.readline()
            raw = {}
            for token in shlex.split(header, posix=True):
                key, sep, value = token.partition("=")
                if sep:
                    raw[key] = value
            headers.append(raw)
            for _ in range(int(count)):
                handle.readline()
    return headers


def _label_from_frame(atoms: Atoms, raw: Mapping[str, str], where: str) -> Label:
    missing = [k for k in _STRING_KEYS if k not in raw]
    if missing:
        raise ValueError(
            f"label file {where} lacks {missing}; it was not written by dft2mlip.data.write_label"
        )
    info = {key: raw[key] for key in _STRING_KEYS}
    for key in _STRING_KEYS:
        atoms.info.pop(key, None)
    atoms.info["structure_id"] = info["structure_id"]
    atoms.info["config_type"] = info["config_type"]
    try:
        provenance = json.loads(info["provenance"])
    except json.JSONDecodeError as err:
        raise ValueError(f"label file {where}: provenance is not valid JSON ({err})") from err
    if info["status"] == "ok" and "REF_stress" in atoms.info:
        atoms.info["REF_stress"] = np.asarray(atoms.info["REF_stress"], dtype=float)
        atoms.info["REF_energy"] = float(atoms.info["REF_energy"])
    return Label(
        structure_id=info["structure_id"],
        config_type=info["config_type"],
        status=info["status"],
        message="" if info["message"] == _EMPTY_MESSAGE else info["message"],
        atoms=atoms,
        provenance=provenance,
        energy_kind=info["energy_kind"],
        settings_hash=info["settings_hash"],
        dft_engine=info["dft_engine"],
    )


def read_labels(path: str | os.PathLike) -> list[Label]:
    """Read every label of a file written by :func:`write_labels` (or :func:`write_label`)."""
    path = Path(path)
    if path.stat().st_size == 0:
        return []
    frames = ase.io.read(path, format="extxyz", index=":")
    headers = _raw_headers(path)
    if len(headers) != len(frames):
        raise ValueError(f"label file {path}: {len(frames)} frames but {len(headers)} headers")
    return [
        _label_from_frame(atoms, raw, f"{path} (frame {i})")
        for i, (atoms, raw) in enumerate(zip(frames, headers, strict=True))
    ]


def read_label(path: str | os.PathLike) -> Label:
    """Read a label file written by :func:`write_label`.

    Parameters
    ----------
    path
        Label file (single-frame extxyz).

    Returns
    -------
    Label
        ``atoms.info`` keeps ``structure_id``, ``config_type``, the ``REF_*`` keys and any
        extra structure info; the other label fields are moved to the Label.
    """
    path = Path(path)
    frames = ase.io.read(path, format="extxyz", index=":")
    if len(frames) != 1:
        raise ValueError(f"label file {path} holds {len(frames)} frames; expected exactly 1")
    return _label_from_frame(frames[0], _raw_headers(path)[0], str(path))


def _split_counts(n: int, fractions: Mapping[str, float]) -> dict[str, int]:
    """Sizes of train/val/test for ``n`` labels; val and test get >= 1 when n >= 3."""

    def nearest(x: float) -> int:
        return int(math.floor(x + 0.5))

    n_val, n_test = nearest(fractions["val"] * n), nearest(fractions["test"] * n)
    if n >= 3:
        n_val, n_test = max(1, n_val), max(1, n_test)
    while n_val + n_test > n - 1 and (n_val > 1 or n_test > 1):  # keep >= 1 for training
        if n_val >= n_test:
            n_val -= 1
        else:
            n_test -= 1
    if n < 3:
        n_val = n_test = 0
    return {"train": n - n_val - n_test, "val": n_val, "test": n_test}


def _check_fractions(fractions: Mapping[str, float]) -> dict[str, float]:
    if set(fractions) != set(SPLITS):
        raise ValueError(
            f"dataset.fractions must have exactly the keys {list(SPLITS)}, got {list(fractions)}"
        )
    values = {k: float(fractions[k]) for k in SPLITS}
    if any(v < 0 for v in values.values()) or values["train"] <= 0:
        raise ValueError(f"dataset.fractions must be >= 0 with train > 0, got {values}")
    if abs(sum(values.values()) - 1.0) > 1e-6:
        raise ValueError(f"dataset.fractions must sum to 1, got {sum(values.values())}")
    return values


def _dataset_frame(label: Label) -> Atoms:
    atoms = label.atoms.copy()
    atoms.calc = None
    for key in _LABEL_ONLY_KEYS:
        atoms.info.pop(key, None)
    atoms.info.update(
        structure_id=label.structure_id,
        config_type=label.config_type,
        dft_engine=label.dft_engine,
        settings_hash=label.settings_hash,
        energy_kind=label.energy_kind,
    )
    return atoms


def provenance_columns(provenance: Mapping) -> dict:
    """Flat table columns from a label's provenance (engine/code version, pseudopotentials or
    POTCARs with hashes, corrections applied by the error handlers, parser, import source)."""
    prov = dict(provenance or {})
    pseudos = prov.get("pseudopotentials") or {}
    if pseudos:
        pseudo_text = "; ".join(
            f"{el}:{entry.get('file', '?')}:md5={entry.get('md5', '?')}"
            for el, entry in sorted(pseudos.items())
        )
    else:
        hashes = prov.get("potcar_sha256") or {}
        parts = []
        for title in prov.get("potcars", []):  # e.g. "PAW_PBE Si 05Jan2001"
            words = str(title).split()
            symbol = words[1] if len(words) > 1 else str(title)
            parts.append(f"{title}:sha256={hashes[symbol]}" if symbol in hashes else str(title))
        pseudo_text = "; ".join(parts)
    run = prov.get("run") or {}
    corrections = run.get("corrections") or prov.get("corrections") or []
    return {
        "code_version": str(prov.get("code_version", "")),
        "pseudopotentials": pseudo_text,
        "n_scf_iterations": prov.get("n_scf_iterations", math.nan),
        "n_corrections": len(corrections),
        "corrections": "; ".join(
            f"{c.get('handler')}: {', '.join(c.get('errors', []))}" for c in corrections
        ),
        "parser": str(prov.get("parser", "")),
        "source": str((prov.get("import") or {}).get("source", "pipeline")),
        # what an imported label's settings hash covers (the engine's own settings); "" for the
        # pipeline's labels, whose settings.json beside each label holds them
        "settings": json.dumps(prov.get("settings") or {}, sort_keys=True, default=str)
        if prov.get("settings")
        else "",
    }


#: provenance entries measured while a job ran (durations; custodian's run record, which holds the
#: command line and wall time): they stay in each label file but not in the dataset table, so
#: that two runs from scratch give byte-identical dataset files
MEASURED_PROVENANCE = ("run", "cpu_time_s", "wall_time_s")


def reproducible_provenance(provenance: Mapping) -> dict:
    """A label's provenance without what was measured at run time (:data:`MEASURED_PROVENANCE`);
    the corrections custodian applied stay (as ``corrections``)."""
    return {k: v for k, v in (provenance or {}).items() if k not in MEASURED_PROVENANCE}


def _row(label: Label, split: str, path: Path) -> dict:
    atoms = label.atoms
    row = {
        "structure_id": label.structure_id,
        "config_type": label.config_type,
        "formula": atoms.get_chemical_formula(mode="metal"),
        "n_atoms": len(atoms),
        "status": label.status,
        "message": label.message,
        "split": split,
        "energy_eV": math.nan,
        "energy_per_atom_eV": math.nan,
        "max_force_eV_per_A": math.nan,
        **{f"stress_{name}_GPa": math.nan for name in VOIGT_NAMES},
        "pressure_GPa": math.nan,
        "dft_engine": label.dft_engine,
        "settings_hash": label.settings_hash,
        "energy_kind": label.energy_kind,
        **provenance_columns(label.provenance),
        "provenance": json.dumps(reproducible_provenance(label.provenance), sort_keys=True),
        "label_path": str(path),
    }
    if label.status == "ok":
        stress_gpa = label.stress * EV_PER_A3_TO_GPA
        row.update(
            energy_eV=label.energy,
            energy_per_atom_eV=label.energy / len(atoms),
            max_force_eV_per_A=float(np.linalg.norm(label.forces, axis=1).max()),
            pressure_GPa=float(-stress_gpa[:3].mean()),
            **{f"stress_{n}_GPa": float(s) for n, s in zip(VOIGT_NAMES, stress_gpa, strict=True)},
        )
    return row


def structure_fingerprint(atoms: Atoms, decimals: int = 4) -> str:
    """Species, cell (Å) and wrapped fractional positions rounded to ``decimals``: equal
    fingerprints mean the same structure (duplicate labels)."""
    frac = np.round(atoms.get_scaled_positions(wrap=True), decimals) % 1.0
    cell = np.round(np.asarray(atoms.cell), decimals - 1)
    rows = sorted(zip(atoms.get_chemical_symbols(), map(tuple, frac), strict=True))
    return json.dumps([cell.tolist(), [[s, *p] for s, p in rows]])


def _read_all(
    label_paths: Sequence, imported_paths: Sequence
) -> tuple[dict[str, tuple[Label, Path]], list[str]]:
    """Every label by structure id (pipeline first, then imported), and the imported ids."""
    labels: dict[str, tuple[Label, Path]] = {}
    imported_ids: list[str] = []

    def add(label: Label, path: Path) -> None:
        if label.structure_id in labels:
            raise ValueError(
                f"structure id {label.structure_id} occurs twice: "
                f"{labels[label.structure_id][1]} and {path}"
            )
        labels[label.structure_id] = (label, path)

    for path in map(Path, label_paths):
        add(read_label(path), path)
    for path in map(Path, imported_paths):
        for label in read_labels(path):
            add(label, path)
            imported_ids.append(label.structure_id)
    return labels, imported_ids


def _duplicates(labels: dict, imported_ids: list[str]) -> dict[str, str]:
    """Imported ok labels whose structure is already present: excluded, naming the first."""
    excluded: dict[str, str] = {}
    seen = {
        structure_fingerprint(label.atoms): sid
        for sid, (label, _) in labels.items()
        if sid not in imported_ids and label.status == "ok"
    }
    for sid in imported_ids:
        label = labels[sid][0]
        if label.status != "ok":
            continue
        fingerprint = structure_fingerprint(label.atoms)
        if fingerprint in seen:
            excluded[sid] = f"duplicate of {seen[fingerprint]}"
        else:
            seen[fingerprint] = sid
    if excluded:
        log.warning("%d imported labels duplicate a structure already present: excluded (%s)",
                    len(excluded), ", ".join(sorted(excluded)[:5]))  # fmt: skip
    return excluded


def _import_policy(label: Label) -> str:
    return str((label.provenance.get("import") or {}).get("on_settings_mismatch", "error"))


def reference_hash(labels: Mapping[str, Label], imported_ids: Sequence[str]) -> str | None:
    """The settings hash every trained label must share: the pipeline's own labels' (when there
    are any), else the most common one among the imported labels (ties: the smallest)."""
    own = Counter(lab.settings_hash for sid, lab in labels.items() if sid not in imported_ids)
    pool = own or Counter(labels[sid].settings_hash for sid in imported_ids)
    if not pool:
        return None
    top = max(pool.values())
    return min(h for h, n in pool.items() if n == top)


def _check_settings(
    labels: dict, imported_ids: list[str], excluded: dict[str, str], allow_mixed: bool
) -> str | None:
    """One settings hash for everything trained, unless the user allows a mix.

    Pipeline labels with two hashes are always refused (outdated labels). An imported label with
    another hash than the reference (:func:`reference_hash`) is excluded when its source says
    ``on_settings_mismatch: exclude``, trained with a warning under ``warn`` or
    ``dataset.allow_mixed_settings: true``, and refused otherwise. Adds exclusions to
    ``excluded``; returns the reference hash.
    """
    usable = {sid: lab for sid, (lab, _) in labels.items()
              if lab.status == "ok" and sid not in excluded}  # fmt: skip
    own = {lab.settings_hash for sid, lab in usable.items() if sid not in imported_ids}
    if len(own) > 1:
        groups = {h: sorted(s for s, lab in usable.items() if lab.settings_hash == h
                            and s not in imported_ids)[:5] for h in sorted(own)}  # fmt: skip
        raise ValueError(
            "ok labels were computed with different DFT settings (settings_hash), so they "
            f"cannot share a dataset: {groups}. Recompute the outdated labels with the "
            "current dft settings"
        )
    ref = reference_hash(usable, [i for i in imported_ids if i in usable])
    origin = "the pipeline's" if own else "the most common imported"
    other = {sid: lab for sid, lab in usable.items() if lab.settings_hash != ref}
    refused = {}
    for sid, lab in other.items():
        policy = _import_policy(lab)
        if policy == "exclude":
            excluded[sid] = f"settings_hash {lab.settings_hash} differs from {origin} {ref}"
        elif not (allow_mixed or policy == "warn"):
            refused.setdefault(lab.settings_hash, []).append(sid)
    if refused:
        groups = "; ".join(f"{h}: {len(s)} labels ({', '.join(sorted(s)[:3])}, ...)"
                           for h, s in sorted(refused.items()))  # fmt: skip
        raise ValueError(
            f"labels whose settings_hash differs from {origin} {ref} would be trained with them: "
            f"{groups}. Set dataset.allow_mixed_settings: true to train on them anyway, or "
            "on_settings_mismatch: exclude in their dataset.import entry to keep them out"
        )
    mixed = [sid for sid in other if sid not in excluded]
    if mixed:
        some = ", ".join(sorted(mixed)[:5])
        log.warning("%d labels whose settings_hash differs from %s %s are trained on "
                    "(allowed): %s", len(mixed), origin, ref, some)  # fmt: skip
    return ref


def _assign_splits(
    ok_ids: list[str], fixed: Mapping[str, str], fractions: Mapping[str, float], seed: int
) -> dict[str, str]:
    """Split assignment: labels of a source with its own split keep it; the rest are split at
    random by ``fractions`` (seeded; depends on the set of ids, not their order)."""
    split_of = {sid: fixed[sid] for sid in ok_ids if sid in fixed}
    free = [sid for sid in ok_ids if sid not in fixed]
    if not free:
        return split_of
    counts = _split_counts(len(free), fractions)
    order = np.random.default_rng(int(seed)).permutation(len(free))
    shuffled = [free[i] for i in order]
    n_test, n_val = counts["test"], counts["val"]
    split_of.update({sid: "test" for sid in shuffled[:n_test]})
    split_of.update({sid: "val" for sid in shuffled[n_test : n_test + n_val]})
    split_of.update({sid: "train" for sid in shuffled[n_test + n_val :]})
    return split_of


def _empty_dataset_error(ids: list[str], labels: dict, excluded: dict) -> ValueError:
    why = "; ".join(
        f"{sid} ({excluded.get(sid) or labels[sid][0].status}: {labels[sid][0].message})"
        for sid in ids[:10]
    )
    return ValueError(
        f"the dataset would be empty: none of the {len(ids)} labels is usable ({why}"
        f"{'; ...' if len(ids) > 10 else ''}). Fix the cause named per label (DFT settings, "
        "dataset.import sources) and rerun; failed labels are never trained on"
    )


def _write_splits(out: Path, ids: list[str], labels: dict, split_of: Mapping[str, str]) -> None:
    for split in SPLITS:
        frames = [_dataset_frame(labels[sid][0]) for sid in ids if split_of.get(sid) == split]
        with atomic_write(out / f"{split}.extxyz") as tmp:
            if frames:
                ase.io.write(tmp, frames, format="extxyz")
            else:
                tmp.write_text("")
        if not frames:
            log.warning("split %s is empty (%d labels in splits)", split, len(split_of))


def build_dataset(
    label_paths: Sequence[str | os.PathLike],
    fractions: Mapping[str, float],
    seed: int,
    out_dir: str | os.PathLike,
    imported_paths: Sequence[str | os.PathLike] = (),
    *,
    source_splits: Mapping[str, str] | None = None,
    allow_mixed_settings: bool = False,
) -> pd.DataFrame:
    """Collect labels into train/val/test extxyz files and a per-label parquet table.

    Parameters
    ----------
    label_paths
        Label files (see :func:`write_label`).
    fractions
        ``config["dataset"]["fractions"]``: ``train``, ``val``, ``test`` summing to 1.
    seed
        Seed of the split (numpy ``default_rng``). The split depends on the seed and the set of
        ok structure ids, not on the order of ``label_paths``.
    out_dir
        Directory for ``train.extxyz``, ``val.extxyz``, ``test.extxyz``, ``labels.parquet`` and
        ``summary.json``.
    imported_paths
        Multi-label files of imported data (:func:`dft2mlip.dft.importing.import_source`,
        :func:`write_labels`). An imported label that duplicates a structure already present
        is excluded.
    source_splits
        Import source name -> ``train``, ``val`` or ``test``: that source's labels keep that
        split (a user's own test set stays the test set); other labels are split by
        ``fractions``.
    allow_mixed_settings
        Train on labels with different settings hashes together (``dataset.allow_mixed_
        settings``); otherwise they are refused, see :func:`_check_settings`.

    Returns
    -------
    pandas.DataFrame
        The ``labels.parquet`` table: one row per label (energies eV, forces eV/Å, stresses
        GPa, tension positive; ``pressure_GPa = -trace/3``); labels that are not ok or are
        excluded have split "excluded".

    Raises
    ------
    ValueError
        Labels with different settings hashes (naming them and the key that allows it), a
        structure id that occurs twice, or an empty dataset.
    """
    values = _check_fractions(fractions)
    labels, imported_ids = _read_all(label_paths, imported_paths)
    ids = sorted(labels)
    excluded_reason = _duplicates(labels, imported_ids)
    ref = _check_settings(labels, imported_ids, excluded_reason, allow_mixed_settings)
    ok_ids = [i for i in ids if labels[i][0].status == "ok" and i not in excluded_reason]
    if not ok_ids:
        raise _empty_dataset_error(ids, labels, excluded_reason)
    source_of = {sid: (labels[sid][0].provenance.get("import") or {}).get("source")
                 for sid in imported_ids}  # fmt: skip
    fixed = {sid: source_splits[src] for sid, src in source_of.items()
             if src in (source_splits or {})}  # fmt: skip
    split_of = _assign_splits(ok_ids, fixed, values, seed)

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    _write_splits(out, ids, labels, split_of)
    table = pd.DataFrame(
        [_row(labels[sid][0], split_of.get(sid, "excluded"), labels[sid][1]) for sid in ids]
    )
    table["excluded_reason"] = [
        excluded_reason.get(sid, "" if sid in split_of else labels[sid][0].status) for sid in ids
    ]
    with atomic_write(out / "labels.parquet") as tmp:
        table.to_parquet(tmp, index=False)
    summary = _summary(labels, ids, imported_ids, split_of, excluded_reason, ref, seed, values)
    summary["imported"]["fixed_splits"] = dict(sorted(Counter(fixed.values()).items()))
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=2, sort_keys=True) + "\n")
    log.info("dataset in %s: %s", out, summary["split"])
    return table


def _summary(labels, ids, imported_ids, split_of, excluded_reason, ref, seed, fractions) -> dict:
    """summary.json: counts per status and split, the settings hashes, the import's fate."""
    excluded = [labels[sid][0] for sid in ids if sid not in split_of]
    if excluded:
        log.warning(
            "%d of %d labels excluded from the dataset: %s",
            len(excluded),
            len(ids),
            "; ".join(f"{lab.structure_id} ({excluded_reason.get(lab.structure_id) or lab.status}"
                      f": {lab.message})" for lab in excluded[:10]),
        )  # fmt: skip
    in_splits = [sid for sid in ids if sid in split_of]
    hashes = Counter(labels[sid][0].settings_hash for sid in in_splits)
    return {
        "n_labels": len(ids),
        "status": dict(Counter(labels[sid][0].status for sid in ids)),
        "split": {s: sum(1 for v in split_of.values() if v == s) for s in SPLITS}
        | {"excluded": len(excluded)},
        "settings_hash": ref,
        "settings_hashes_trained": dict(sorted(hashes.items())),
        "imported": {
            "n_labels": len(imported_ids),
            "in_splits": sum(1 for sid in imported_ids if sid in split_of),
            "excluded": {sid: excluded_reason[sid] for sid in sorted(excluded_reason)},
            "settings_hashes": sorted(
                {labels[sid][0].settings_hash for sid in imported_ids if sid in split_of} - {ref}
            ),
        },
        "energy_kind": sorted({labels[sid][0].energy_kind for sid in in_splits}),
        "seed": int(seed),
        "fractions": fractions,
    }
