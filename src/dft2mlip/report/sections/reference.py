"""The reference cell: configured vs DFT-relaxed lattice, residual stress."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from dft2mlip.report.format import fixed

_LATTICE_ROWS = (("a (Å)", "a_A", 4), ("b (Å)", "b_A", 4), ("c (Å)", "c_A", 4),
                 ("α (°)", "alpha_deg", 2), ("β (°)", "beta_deg", 2), ("γ (°)", "gamma_deg", 2),
                 ("volume (Å³)", "volume_A3", 3))  # fmt: skip


def lattice_rows(initial: Mapping, final: Mapping | None, cell: str) -> list[list[str]]:
    """Each lattice parameter of ``cell``: configured, after the DFT relaxation, the change."""
    rows = []
    for name, key, decimals in _LATTICE_ROWS:
        before = initial.get(key)
        after = (final or {}).get(key)
        change = ("—" if after is None or not before
                  else f"{100 * (after / before - 1):+.2f} %")  # fmt: skip
        rows.append([f"{cell} {name}", fixed(before, decimals), fixed(after, decimals), change])
    return rows


@dataclass
class ReferenceData:
    """The reference cell's record (:func:`dft2mlip.dft.relax.reference_record`) and its
    lattice tables (conventional when recorded, then primitive)."""

    record: Mapping
    lattice_tables: list[list[list[str]]] = field(default_factory=list)

    @property
    def stress_text(self) -> str:
        stress = self.record.get("stress_GPa")
        return " ".join(f"{s:.3g}" for s in stress) if stress else "—"


def gather_reference(record: Mapping) -> ReferenceData:
    """The section's data: the record and, when the cell was relaxed, its lattice tables."""
    if not record.get("relaxed"):
        return ReferenceData(record)
    conventional = record.get("conventional") or {}
    tables = []
    if conventional.get("initial"):
        tables.append(lattice_rows(conventional["initial"], conventional.get("final"),
                                   "conventional"))  # fmt: skip
    tables.append(lattice_rows(record.get("initial", {}), record.get("final"), "primitive"))
    return ReferenceData(record, tables)


def reference_section(record: Mapping, blocks: list) -> None:
    """The reference cell: configured vs DFT-relaxed lattice parameters, residual pressure
    (worded by ``templates/sections/reference.j2``)."""
    blocks.append(("section", "reference", gather_reference(record)))
