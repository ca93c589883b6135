"""Are the labels of different cell families consistent? (:mod:`dft2mlip.validate.families`)"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from dft2mlip.report.format import fmt


@dataclass
class FamilyData:
    """The section's data: the verdict, the tolerances and one row per cell."""

    verdict: str
    energy_tol: float
    stress_tol: float
    rows: list[list[str]]


def gather_families(path: str | Path) -> FamilyData:
    """The section's data from ``family_offsets.json``."""
    record = json.loads(Path(path).read_text())
    rows = []
    for name, entry in record["families"].items():
        offset = record["offsets"].get(name, {})
        energy = entry.get("energy_eV_per_atom")
        rows.append([name, str(entry["n_atoms"]), entry["status"],
                     f"{energy:.6f}" if energy is not None else "—",
                     f"{offset['energy_meV_per_atom']:+.2f}" if offset else "reference",
                     fmt(offset["stress_GPa"]) if offset else "reference"])  # fmt: skip
    return FamilyData(record["verdict"], record["energy_tol_meV_per_atom"],
                      record["stress_tol_GPa"], rows)  # fmt: skip


def families_section(path: str | Path | None, blocks: list) -> None:
    """The check's section (``templates/sections/families.j2``); none when it did not run."""
    if path is not None:
        blocks.append(("section", "families", gather_families(path)))
