"""Collect the ok DFT labels of one or more finished runs into one extxyz (REF_* keys), e.g. as the
dataset of bench/bench_study.py:

    .venv/bin/python tools/collect_labels.py OUT.extxyz results/dft results_extra/dft

Every ``label.extxyz`` under the given folders is read; labels whose status is not ok, and
structures already collected (same species, cell and positions: two runs with the same seed make
the same structures), are left out and counted. Structure ids are prefixed with the folder's
index when two runs share an id for different structures.
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import ase.io

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from dft2mlip.data import read_label, structure_fingerprint  # noqa: E402


def main(out: str, folders: list[str]) -> None:
    frames, seen, skipped, groups, prints = [], set(), Counter(), Counter(), set()
    for k, folder in enumerate(folders):
        for path in sorted(Path(folder).glob("**/label.extxyz")):
            label = read_label(path)
            if label.status != "ok":
                skipped[label.status] += 1
                continue
            fingerprint = structure_fingerprint(label.atoms)
            if fingerprint in prints:
                skipped["duplicate"] += 1
                continue
            prints.add(fingerprint)
            atoms = label.atoms.copy()
            atoms.calc = None
            sid = (
                label.structure_id
                if label.structure_id not in seen
                else f"r{k}-{label.structure_id}"
            )
            seen.add(sid)
            atoms.info.update(structure_id=sid, config_type=label.config_type,
                              settings_hash=label.settings_hash)  # fmt: skip
            groups[path.parent.parent.name] += 1
            frames.append(atoms)
    ase.io.write(out, frames, format="extxyz")
    hashes = Counter(a.info["settings_hash"] for a in frames)
    print(f"{len(frames)} ok labels -> {out}; by group {dict(groups)}; left out {dict(skipped)}; "
          f"settings hashes {dict(hashes)}")  # fmt: skip


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
