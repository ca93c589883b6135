"""Named collinear magnetic orders of the cubic prototypes: the smallest cell that holds the
order, and the sign of each site's moment (``dft.magnetic_order: AFM-II`` etc.).

Cubic lattice constant ``a`` (Å); the cell has the prototype's density and composition.

- ``rocksalt`` ``AFM-II`` (NiO, MnO, CoO, FeO): ferromagnetic (111) cation planes alternating
  along [111]; rhombohedral cell ``a [[1, ½, ½], [½, 1, ½], [½, ½, 1]]``, 2 formula units.
- ``rocksalt`` ``AFM-I``: ferromagnetic (001) cation planes alternating along [001]; tetragonal
  cell ``a/2 [1, 1, 0], a/2 [1, -1, 0], a [0, 0, 1]``, 2 formula units.
- ``fcc`` ``AFM-I`` (L1₀-type, e.g. fcc Mn, CuAu-type orders): the same tetragonal cell, 2 atoms.
- ``bcc`` ``AFM`` (B2/CsCl-type, e.g. bcc Cr as a commensurate approximant): the cubic cell,
  corner up and body centre down.

The first element of ``material.elements`` is the magnetic one (the cation of rocksalt).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from ase import Atoms

_TETRAGONAL = [[0.5, 0.5, 0.0], [0.5, -0.5, 0.0], [0.0, 0.0, 1.0]]
_RHOMBOHEDRAL = [[1.0, 0.5, 0.5], [0.5, 1.0, 0.5], [0.5, 0.5, 1.0]]
#: (prototype, order) -> (cell in units of a, [(element index, Cartesian position / a, sign)])
ORDERS: dict[tuple[str, str], tuple[list, list]] = {
    ("rocksalt", "AFM-II"): (_RHOMBOHEDRAL, [
        (0, (0.0, 0.0, 0.0), 1), (0, (0.5, 0.5, 0.0), -1),
        (1, (0.5, 0.0, 0.0), 0), (1, (0.5, 0.5, 0.5), 0),
    ]),
    ("rocksalt", "AFM-I"): (_TETRAGONAL, [
        (0, (0.0, 0.0, 0.0), 1), (0, (0.5, 0.0, 0.5), -1),
        (1, (0.5, 0.0, 0.0), 0), (1, (0.0, 0.0, 0.5), 0),
    ]),
    ("fcc", "AFM-I"): (_TETRAGONAL, [(0, (0.0, 0.0, 0.0), 1), (0, (0.5, 0.0, 0.5), -1)]),
    ("bcc", "AFM"): ([[1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0]],
                     [(0, (0.0, 0.0, 0.0), 1), (0, (0.5, 0.5, 0.5), -1)]),
}  # fmt: skip
#: the config key
KEY = "dft.magnetic_order"


def named_order_cell(material: Mapping, name: str) -> tuple[Atoms, list[int]]:
    """The cell of a named order and the sign (+1, -1, 0) of each site's moment.

    Parameters
    ----------
    material
        ``config["material"]``: ``prototype``, ``elements``, ``lattice_constant_A``.
    name
        The order, e.g. "AFM-II" (see :data:`ORDERS`).

    Raises
    ------
    ValueError
        One line naming ``dft.magnetic_order`` and the orders the prototype has.
    """
    prototype = material.get("prototype")
    if material.get("structure") or (prototype, name) not in ORDERS:
        known = ", ".join(f"{o} ({p})" for p, o in ORDERS)
        where = "a structure file" if material.get("structure") else f"prototype {prototype!r}"
        raise ValueError(
            f"config key '{KEY}' = {name!r} is not a named order of {where}; named orders: "
            f"{known}; otherwise give one moment per site (a list, or the file's moments)"
        )
    cell, sites = ORDERS[(prototype, name)]
    a = float(material["lattice_constant_A"])
    elements = list(material["elements"])
    atoms = Atoms(
        [elements[i] for i, _, _ in sites],
        positions=a * np.array([p for _, p, _ in sites]),
        cell=a * np.array(cell),
        pbc=True,
    )
    atoms.wrap()
    return atoms, [sign for _, _, sign in sites]
