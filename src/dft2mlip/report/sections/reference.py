"""The reference cell: configured vs DFT-relaxed lattice, residual stress."""

from __future__ import annotations

from collections.abc import Mapping

from dft2mlip.report.format import fixed, fmt

_LATTICE_ROWS = (("a (Å)", "a_A", 4), ("b (Å)", "b_A", 4), ("c (Å)", "c_A", 4),
                 ("α (°)", "alpha_deg", 2), ("β (°)", "beta_deg", 2), ("γ (°)", "gamma_deg", 2),
                 ("volume (Å³)", "volume_A3", 3))  # fmt: skip


def _lattice_table(initial: Mapping, final: Mapping | None, cell: str, blocks: list) -> None:
    rows = []
    for name, key, decimals in _LATTICE_ROWS:
        before = initial.get(key)
        after = (final or {}).get(key)
        change = ("—" if after is None or not before
                  else f"{100 * (after / before - 1):+.2f} %")  # fmt: skip
        rows.append([f"{cell} {name}", fixed(before, decimals), fixed(after, decimals), change])
    blocks.append(("table", ["parameter", "configured", "DFT-relaxed", "change"], rows))


def reference_section(record: Mapping, blocks: list) -> None:
    """The reference cell: configured vs DFT-relaxed lattice parameters, residual pressure."""
    blocks.append(("h", 2, "Reference cell"))
    if not record.get("relaxed"):
        blocks.append(("p", f"**Not relaxed.** {record.get('message', '')}"))
        return
    status = record.get("status")
    blocks.append((
        "p",
        f"Every strained, elastic and MD cell is made from the cell relaxed with DFT "
        f"({record.get('engine')}, cell and ions, the dataset's settings; k-point mesh "
        f"{record.get('kpoint_mesh')}). Status **{status}**: {record.get('message')}.",
    ))  # fmt: skip
    conventional = record.get("conventional") or {}
    if conventional.get("initial"):
        _lattice_table(conventional["initial"], conventional.get("final"), "conventional",
                       blocks)  # fmt: skip
    _lattice_table(record.get("initial", {}), record.get("final"), "primitive", blocks)
    stress = record.get("stress_GPa")
    items = [
        f"ionic steps: {record.get('n_steps')}",
        f"volume change: {fixed(record.get('volume_change_percent'), 2)} %",
        f"residual pressure of the final state: {fmt(record.get('pressure_GPa'))} GPa "
        "(compression positive)",
        "residual stress (GPa, Voigt xx yy zz yz xz xy, tension positive): "
        + (" ".join(f"{s:.3g}" for s in stress) if stress else "—"),
        f"largest residual force: {fmt(record.get('max_force_eV_per_A'))} eV/Å",
        f"k-point mesh of the relaxed cell (every structure family's): "
        f"{record.get('kpoint_mesh_relaxed_cell', '—')}",
    ]
    blocks.append(("ul", items))
