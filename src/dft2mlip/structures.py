"""Candidate structures for DFT labelling and for the elastic-constant reference.

Lengths are in Å. Strains are dimensionless Voigt vectors ``[xx, yy, zz, yz, xz, xy]`` with
ENGINEERING shear (``e4 = 2 eps_yz``), so that ``sigma_i = C_ij e_j``. A Voigt strain ``e`` is
applied as ``new_cell = cell @ (I + eps)`` with ``eps`` the symmetric strain tensor; atoms keep
their fractional coordinates (they are scaled with the cell).

Structure ids are derived from the config alone (:func:`training_structure_ids`), so a workflow
can build its DAG before any structure exists. Every random number comes from
``numpy.random.default_rng`` seeded from ``(seed, section, index)``: changing one section (or
appending structures to it) never changes the structures of another section, and the first ``n``
structures of a section do not depend on its ``count``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from ase import Atoms
from ase.build import bulk

#: config section -> (id prefix, config_type), in the order ids are listed
SECTIONS: dict[str, tuple[str, str]] = {
    "hydrostatic": ("hydro", "hydrostatic"),
    "strained": ("strain", "strained"),
    "rattled": ("rattle", "rattled"),
    "supercell": ("super", "supercell"),
    "vacancy": ("vac", "vacancy"),
}
#: sections built on a repeated conventional cell (repeat or min_width_A)
SUPERCELL_SECTIONS = ("supercell", "vacancy")
#: atoms a vacancy cell needs before one is removed
VACANCY_MIN_ATOMS = 3
# fixed integers that key each section's random stream (never reorder or reuse)
_SECTION_STREAM = {"hydrostatic": 1, "strained": 2, "rattled": 3, "supercell": 4, "vacancy": 5}
_VOIGT_PAIRS = ((0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1))
_FACES = ((1, 2), (2, 0), (0, 1))  # the vectors spanning the faces opposite a_0, a_1, a_2
#: info key of a structure's family reference cell (its k-point mesh, see kpoint_reference_cell)
REFERENCE_CELL_KEY = "reference_cell"


def voigt_to_strain_tensor(voigt_strain: Sequence[float]) -> np.ndarray:
    """Symmetric 3x3 strain tensor from a Voigt strain vector (engineering shear).

    Parameters
    ----------
    voigt_strain
        ``[e_xx, e_yy, e_zz, e_yz, e_xz, e_xy]``, dimensionless, shear components engineering
        (``e_yz = 2 eps_yz``).

    Returns
    -------
    numpy.ndarray
        ``eps`` with ``eps[1, 2] = eps[2, 1] = e_yz / 2`` etc.
    """
    e = np.asarray(voigt_strain, dtype=float)
    if e.shape != (6,):
        raise ValueError(f"a Voigt strain needs 6 components, got shape {e.shape}")
    xx, yy, zz, yz, xz, xy = e
    return np.array([[xx, xy / 2, xz / 2], [xy / 2, yy, yz / 2], [xz / 2, yz / 2, zz]], dtype=float)


def strain_tensor_to_voigt(strain: np.ndarray) -> np.ndarray:
    """Voigt strain vector (engineering shear) from a symmetric 3x3 strain tensor.

    Parameters
    ----------
    strain
        Symmetric 3x3 strain tensor (dimensionless).

    Returns
    -------
    numpy.ndarray
        ``[e_xx, e_yy, e_zz, 2 eps_yz, 2 eps_xz, 2 eps_xy]``.
    """
    eps = np.asarray(strain, dtype=float)
    if eps.shape != (3, 3) or not np.allclose(eps, eps.T, atol=1e-14):
        raise ValueError("a strain tensor must be a symmetric 3x3 matrix")
    return np.array(
        [eps[i, j] if i == j else 2.0 * eps[i, j] for i, j in _VOIGT_PAIRS], dtype=float
    )


def apply_voigt_strain(atoms: Atoms, voigt_strain: Sequence[float]) -> Atoms:
    """Return a copy of ``atoms`` with the cell strained as ``cell @ (I + eps)``.

    Parameters
    ----------
    atoms
        Periodic structure (Å).
    voigt_strain
        Voigt strain vector with engineering shear (see :func:`voigt_to_strain_tensor`).

    Returns
    -------
    ase.Atoms
        A new object; atoms keep their fractional coordinates. ``info`` is copied unchanged.
    """
    eps = voigt_to_strain_tensor(voigt_strain)
    strained = atoms.copy()
    strained.set_cell(np.asarray(atoms.cell) @ (np.eye(3) + eps), scale_atoms=True)
    return strained


#: ase.build.bulk prototypes with a cubic conventional cell; the hexagonal ones (hcp, wurtzite)
#: use their orthorhombic cell as the conventional one
CUBIC_PROTOTYPES = ("diamond", "zincblende", "fcc", "bcc", "sc", "rocksalt", "cesiumchloride",
                    "fluorite")  # fmt: skip
HEXAGONAL_PROTOTYPES = ("hcp", "wurtzite")
#: ase.io formats accepted for material.structure (None: guessed from the file name)
STRUCTURE_FORMATS = {".cif": "cif", ".mcif": "cif", ".xyz": "extxyz", ".extxyz": "extxyz",
                     ".vasp": "vasp"}  # fmt: skip


def _bulk(material: Mapping, cell: str) -> Atoms:
    """Build the prototype's ``cell`` ("primitive" or "conventional") with ``ase.build.bulk``;
    errors name the config keys."""
    try:
        prototype = material["prototype"]
        elements = list(material["elements"])
        a = float(material["lattice_constant_A"])
    except KeyError as err:
        raise ValueError(f"material.{err.args[0]} is missing from the config") from err
    if not elements:
        raise ValueError("material.elements is empty; list the chemical symbols, e.g. [Si]")
    if not a > 0:
        raise ValueError(f"material.lattice_constant_A must be > 0 Å, got {a}")
    kwargs: dict = {"a": a}
    if material.get("c_over_a") is not None:
        if prototype not in HEXAGONAL_PROTOTYPES:
            raise ValueError(
                f"material.c_over_a is set, but material.prototype={prototype!r} is not "
                f"hexagonal ({', '.join(HEXAGONAL_PROTOTYPES)}); remove it"
            )
        kwargs["c"] = a * float(material["c_over_a"])
    if cell == "conventional":
        kwargs["orthorhombic" if prototype in HEXAGONAL_PROTOTYPES else "cubic"] = True
    try:
        return bulk("".join(elements), crystalstructure=prototype, **kwargs)
    except (ValueError, KeyError, RuntimeError) as err:
        raise ValueError(
            f"cannot build the {cell} cell of material.prototype={prototype!r} with "
            f"material.elements={elements}: {err}. Use a prototype known to ase.build.bulk "
            f"({', '.join(CUBIC_PROTOTYPES + HEXAGONAL_PROTOTYPES)}) or material.structure"
        ) from err


#: occupancies within this of 1 count as full (CIFs write 0.9999 for 1)
OCCUPANCY_TOLERANCE = 1e-3


def cif_partial_occupancies(path: str | Path) -> list[str]:
    """The sites of a CIF with an occupancy below 1 (ASE would read them as one species).

    Returns
    -------
    list[str]
        ``"Si1 (Si 0.5)"`` per partially occupied site, in the file's order (empty if none).
    """
    from ase.io.cif import parse_cif

    partial = []
    for block in parse_cif(str(path)):
        labels = block.get("_atom_site_label") or []
        symbols = block.get("_atom_site_type_symbol") or labels
        occupancies = block.get("_atom_site_occupancy") or [1.0] * len(labels)
        for label, symbol, occupancy in zip(labels, symbols, occupancies, strict=False):
            value = _cif_number(occupancy)
            if value < 1 - OCCUPANCY_TOLERANCE:
                partial.append(f"{label} ({symbol} {value:g})")
    return partial


def _cif_number(value) -> float:
    """A CIF number such as ``0.5``, ``0.50(2)``; unknown (``?``, ``.``) counts as 1."""
    text = str(value).split("(")[0].strip()
    try:
        return float(text)
    except ValueError:
        return 1.0


def read_structure_file(material: Mapping) -> Atoms:
    """The cell of ``material.structure`` (CIF, POSCAR/CONTCAR, extxyz; read with ASE).

    Raises
    ------
    ValueError
        Naming ``material.structure``: the file does not exist, does not parse, is not periodic
        in three dimensions, has partially occupied sites (a CIF of a disordered alloy), or
        holds other species than ``material.elements``.
    """
    import ase.io

    path = Path(material["structure"]).expanduser()
    key = f"config key 'material.structure' = {str(material['structure'])!r}"
    if not path.is_file():
        raise ValueError(f"{key}: no such file (relative paths start in the working directory)")
    fmt = STRUCTURE_FORMATS.get(path.suffix.lower())
    if fmt is None and path.name.upper().startswith(("POSCAR", "CONTCAR")):
        fmt = "vasp"
    try:
        atoms = ase.io.read(path, index=0, format=fmt)
    except Exception as err:  # ASE raises many kinds on malformed files
        raise ValueError(
            f"{key} does not parse ({type(err).__name__}: {err}); give a CIF, POSCAR or "
            "extxyz file (the name's ending tells the format)"
        ) from None
    if not atoms.pbc.all() or atoms.cell.rank < 3:
        raise ValueError(f"{key}: the structure is not periodic in 3D (no cell in the file?)")
    if fmt == "cif" and (partial := cif_partial_occupancies(path)):
        raise ValueError(
            f"{key} has partially occupied sites ({'; '.join(partial)}): a disordered "
            "structure, which DFT cannot label as it is; give an ordered cell of that "
            "composition instead, e.g. a special quasirandom structure (SQS, from icet or ATAT "
            "mcsqs) or an ordered supercell"
        )
    species, elements = set(atoms.get_chemical_symbols()), set(material["elements"])
    if species != elements:
        raise ValueError(
            f"{key} holds {sorted(species)}, but material.elements = "
            f"{list(material['elements'])}; list the file's species in material.elements"
        )
    bare = Atoms(atoms.numbers, positions=atoms.positions, cell=atoms.cell.array, pbc=True)
    if atoms.has("initial_magmoms"):  # a magnetic order given in the file (extxyz)
        bare.set_initial_magnetic_moments(atoms.get_initial_magnetic_moments())
    elif fmt == "cif" and "_atom_site_moment" in path.read_text(errors="replace"):
        bare.set_initial_magnetic_moments(_cif_moments(path, bare, key))
    elif fmt == "vasp" and (path.parent / "INCAR").is_file():
        bare.set_initial_magnetic_moments(_incar_moments(path.parent / "INCAR", bare, key))
    return bare


def _incar_moments(incar_path: Path, atoms: Atoms, key: str) -> list[float] | None:
    """The collinear MAGMOM of the INCAR beside a POSCAR (pymatgen expands ``2*1.7``), one per
    site; None without a MAGMOM line."""
    from pymatgen.io.vasp import Incar

    magmom = Incar.from_file(str(incar_path)).get("MAGMOM")
    if magmom is None:
        return None
    values = [float(m) for m in magmom] if isinstance(magmom, list) else [float(magmom)]
    if len(values) != len(atoms):
        raise ValueError(
            f"{key}: the MAGMOM of {incar_path} has {len(values)} values for {len(atoms)} sites "
            "(collinear: one per site); fix the INCAR or remove its MAGMOM line"
        )
    return values


def _cif_moments(path: Path, atoms: Atoms, key: str) -> list[float]:
    """Collinear site moments (μB) of a magnetic CIF as pymatgen reads them (``magmom`` vectors),
    signed along their common axis and matched to ``atoms`` by fractional coordinates."""
    import warnings

    from pymatgen.io.cif import CifParser

    with warnings.catch_warnings():  # a P1 magCIF has no magnetic symmetry block: fine here
        warnings.simplefilter("ignore")
        structure = CifParser(str(path)).parse_structures(primitive=False)[0]
    vectors = np.array([np.asarray(getattr(m, "moment", m), dtype=float).reshape(-1)[-3:]
                        for m in structure.site_properties["magmom"]])  # fmt: skip
    norms = np.linalg.norm(vectors, axis=1)
    axis = vectors[int(np.argmax(norms))] / max(norms.max(), 1e-12)
    if np.linalg.norm(np.cross(vectors, axis), axis=1).max() > 1e-3 * max(norms.max(), 1.0):
        raise ValueError(f"{key}: the CIF's moments are not collinear; give collinear moments")
    signed = vectors @ axis
    frac = atoms.get_scaled_positions()
    moments = []
    for f in frac:
        d = (structure.frac_coords - f + 0.5) % 1.0 - 0.5
        moments.append(float(signed[int(np.argmin(np.linalg.norm(d, axis=1)))]))
    return moments


#: key of ``material`` (as the workflow passes it) holding the per-site order of the configured
#: cell (``dft.magnetic_order``), μB
ORDER_KEY = "magnetic_order_muB"
#: key of ``material`` naming the order whose own cell replaces the prototype's cells
#: (``dft.magnetic_order: AFM-II``; :mod:`dft2mlip.magnetic_cells`)
MAGNETIC_CELL_KEY = "magnetic_cell"


def _own_cell(material: Mapping) -> bool:
    """Whether the material's cell is its own conventional cell (a file, or a named order's
    magnetic cell): supercells repeat it as it is."""
    return bool(material.get("structure") or material.get(MAGNETIC_CELL_KEY))


def _with_order(atoms: Atoms, material: Mapping) -> Atoms:
    """``atoms`` (the configured cell or its relaxed copy, same sites) with the per-site moments
    of ``material['magnetic_order_muB']`` when given, as ASE's ``initial_magmoms``: every
    structure made from the cell (supercells, strains, vacancies, MD cells) inherits them."""
    order = material.get(ORDER_KEY)
    if order is None:
        return atoms
    if len(order) != len(atoms):
        raise ValueError(
            f"config key 'dft.magnetic_order' has {len(order)} moments, but the material's cell "
            f"has {len(atoms)} sites ({atoms.get_chemical_formula()}); give one per site"
        )
    atoms.set_initial_magnetic_moments([float(m) for m in order])
    return atoms


def primitive_cell(material: Mapping, reference: Atoms | None = None) -> Atoms:
    """The material's cell: the parent of every strained, rattled and elastic structure.

    Parameters
    ----------
    material
        ``config["material"]``: ``structure`` (a file, used as it is), else ``prototype``
        (``ase.build.bulk`` crystal structure), ``elements`` (list of symbols),
        ``lattice_constant_A`` (a, Å) and, for hcp/wurtzite, ``c_over_a``.
    reference
        The DFT-relaxed cell (:mod:`dft2mlip.dft.relax`), when there is one: returned (a
        copy) instead of the configured cell.

    Returns
    -------
    ase.Atoms
        Periodic cell (Å): the relaxed reference, the prototype's primitive cell, or the
        file's cell.
    """
    if reference is not None:
        relaxed = Atoms(reference.numbers, positions=reference.positions,
                        cell=reference.cell.array, pbc=True)  # fmt: skip
        given = material.get(ORDER_KEY) is not None or _own_cell(material)
        configured = primitive_cell(material) if given else relaxed  # same sites: their order
        if configured.has("initial_magmoms") and len(configured) == len(relaxed):
            relaxed.set_initial_magnetic_moments(configured.get_initial_magnetic_moments())
        return relaxed
    if material.get("structure"):
        return _with_order(read_structure_file(material), material)
    if material.get(MAGNETIC_CELL_KEY):
        from dft2mlip.magnetic_cells import named_order_cell

        return _with_order(named_order_cell(material, material[MAGNETIC_CELL_KEY])[0], material)
    return _with_order(_bulk(material, "primitive"), material)


def conventional_cell(
    material: Mapping, repeat: Sequence[int], reference: Atoms | None = None
) -> Atoms:
    """Conventional cell of the configured material, repeated.

    Parameters
    ----------
    material
        ``config["material"]`` (see :func:`primitive_cell`).
    repeat
        Three positive integers, repetitions along the cell vectors.
    reference
        The DFT-relaxed primitive cell, when there is one: the conventional cell is then the
        supercell of it that the prototype's conventional cell is of its primitive cell
        (relaxed lattice and positions, see :func:`conventional_of_reference`).

    Returns
    -------
    ase.Atoms
        Periodic supercell (Å): of the cubic cell (8 atoms for diamond and ``repeat=[1, 1, 1]``),
        of the orthorhombic cell for hcp/wurtzite, of the file's cell for ``material.structure``.
    """
    reps = tuple(int(r) for r in repeat)
    if len(reps) != 3 or min(reps) < 1:
        raise ValueError(f"repeat must be three positive integers, got {list(repeat)}")
    if reference is not None:
        return conventional_of_reference(material, reference).repeat(reps)
    if _own_cell(material):
        return primitive_cell(material).repeat(reps)
    if material.get(ORDER_KEY) is not None:  # the moments belong to the primitive cell's sites
        return conventional_of_reference(material, primitive_cell(material)).repeat(reps)
    return _bulk(material, "conventional").repeat(reps)


def conventional_of_reference(material: Mapping, reference: Atoms) -> Atoms:
    """The conventional cell built from a relaxed primitive cell.

    ``P = conventional @ inv(primitive)`` of the configured (unrelaxed) prototype is an
    integer matrix (diamond: ``[[-1, 1, 1], [1, -1, 1], [1, 1, -1]]``); the supercell ``P`` of
    ``reference`` is the conventional cell with the relaxed lattice and positions. A structure
    file's cell is its own conventional cell (``P = I``).

    Raises
    ------
    ValueError
        If ``reference`` does not have the configured cell's number of atoms.
    """
    from ase.build import make_supercell

    configured = primitive_cell(material)
    if len(reference) != len(configured):
        raise ValueError(
            f"the relaxed reference cell has {len(reference)} atoms, the configured cell "
            f"{len(configured)}; rerun the relaxation (snakemake --forcerun relax_reference)"
        )
    if _own_cell(material):
        return primitive_cell(material, reference)
    conventional = _bulk(material, "conventional")
    p = conventional.cell.array @ np.linalg.inv(configured.cell.array)
    if not np.allclose(p, np.rint(p), atol=1e-6):
        raise ValueError(f"{material.get('prototype')}: conventional cell is not an integer "
                         f"supercell of the primitive one (P = {p.round(4).tolist()})")  # fmt: skip
    cell = make_supercell(primitive_cell(material, reference), np.rint(p).astype(int))
    cell.wrap()
    return cell


def repeats_for_width(cell, min_width_A: float) -> tuple[int, int, int]:
    """The fewest repetitions of ``cell`` whose perpendicular widths are all >= ``min_width_A``.

    Repeating ``n_i`` times along ``a_i`` multiplies the distance between the two faces spanned
    by the other vectors, ``V / |a_j x a_k|``, by ``n_i``: so ``n_i = ceil(min_width / w_i)``.

    Parameters
    ----------
    cell
        3x3 lattice vectors (rows, Å) or an ``Atoms``.
    min_width_A
        Smallest allowed distance between opposite faces (Å), e.g. twice a model cutoff.
    """
    matrix = np.asarray(getattr(cell, "cell", cell), dtype=float)
    volume = abs(np.linalg.det(matrix))
    widths = [volume / np.linalg.norm(np.cross(matrix[j], matrix[k])) for j, k in _FACES]
    n = [max(1, math.ceil(float(min_width_A) / w - 1e-9)) for w in widths]
    return int(n[0]), int(n[1]), int(n[2])


def sized_repeat(key: str, params: Mapping, base_cell) -> tuple[int, int, int]:
    """Repetitions of ``base_cell`` asked for by a config section: ``repeat`` (three integers)
    or ``min_width_A`` (the fewest repetitions with every perpendicular width at least that,
    :func:`repeats_for_width`), at most one of the two; neither: ``[1, 1, 1]``.

    Parameters
    ----------
    key
        The section's config key (named in errors), e.g. ``structures.supercell``.
    params
        The section.
    base_cell
        The cell that is repeated (3x3 Å or Atoms).

    Raises
    ------
    ValueError
        When both are set, naming the two keys.
    """
    repeat, width = params.get("repeat"), params.get("min_width_A")
    if repeat is not None and width is not None:
        raise ValueError(
            f"config keys '{key}.repeat' = {list(repeat)} and '{key}.min_width_A' = {width} are "
            "both set; give one of them (set the other to null)"
        )
    if width is not None:
        if not float(width) > 0:
            raise ValueError(f"config key '{key}.min_width_A' must be > 0 Å, got {width}")
        return repeats_for_width(base_cell, float(width))
    return tuple(int(r) for r in (repeat if repeat is not None else (1, 1, 1)))


def with_default_widths(spec: Mapping, r_max_A: float) -> dict:
    """``config["structures"]`` with ``min_width_A = r_max_A`` (the model cutoff, Å) in each
    supercell section (``supercell``, ``vacancy``) that gives neither ``repeat`` nor
    ``min_width_A``: a default that fits any material, not a fixed ``[1, 1, 1]``."""
    out = dict(spec)
    for name in SUPERCELL_SECTIONS:
        params = dict(out.get(name) or {})
        if params.get("repeat") is None and params.get("min_width_A") is None:
            params["min_width_A"] = float(r_max_A)
        out[name] = params
    return out


def supercell_repeat(
    material: Mapping, params: Mapping, reference: Atoms | None = None, section: str = "supercell"
) -> tuple[int, int, int]:
    """Repetitions of the conventional cell for ``structures.<section>`` (``supercell`` or
    ``vacancy``; see :func:`sized_repeat`)."""
    base = conventional_cell(material, [1, 1, 1], reference)
    return sized_repeat(f"structures.{section}", params, base)


def check_rattled_cell(material: Mapping, spec: Mapping) -> None:
    """Rattled copies of a one-atom cell only translate it: no force carries information.

    Raises
    ------
    ValueError
        Naming ``structures.rattled.count`` and the fix (rattled supercells).
    """
    count = int((spec.get("rattled") or {}).get("count", 0) or 0)
    if count and len(primitive_cell(material)) < 2:
        raise ValueError(
            "config key 'structures.rattled.count' = "
            f"{count}: the material's cell has one atom, and displacing it only translates the "
            "crystal (every force stays zero); set structures.rattled.count: 0 and use "
            "structures.supercell (rattled supercells of the conventional cell) instead"
        )


def _section_count(section: str, params: Mapping | None) -> int:
    if not params:
        return 0
    if section == "hydrostatic":
        return len(params.get("strains", []) or [])
    count = int(params.get("count", 0) or 0)
    if count < 0:
        raise ValueError(f"structures.{section}.count must be >= 0, got {count}")
    return count


def training_structure_ids(spec: Mapping) -> list[str]:
    """Ids of the training structures, derived from the config only (no atoms are built).

    Parameters
    ----------
    spec
        ``config["structures"]``. A section that is absent or has count 0 gives no ids.

    Returns
    -------
    list[str]
        ``hydro-000..``, ``strain-000..``, ``rattle-000..``, ``super-000..``, ``vac-000..`` in
        that order.
    """
    unknown = set(spec) - set(SECTIONS)
    if unknown:
        raise ValueError(
            f"unknown section(s) structures.{sorted(unknown)}; known: {list(SECTIONS)}"
        )
    ids = []
    for section, (prefix, _) in SECTIONS.items():
        n = _section_count(section, spec.get(section))
        if n > 999:
            raise ValueError(f"structures.{section} asks for {n} structures; at most 999")
        ids.extend(f"{prefix}-{i:03d}" for i in range(n))
    return ids


def _rng(seed: int, section: str, index: int) -> np.random.Generator:
    """Independent random stream for structure ``index`` of ``section``."""
    return np.random.default_rng(
        np.random.SeedSequence(entropy=int(seed), spawn_key=(_SECTION_STREAM[section], index))
    )


def _random_voigt_strain(rng: np.random.Generator, max_strain: float) -> np.ndarray:
    """Voigt vector of a symmetric strain tensor whose six components are U(-max, max)."""
    eps_components = rng.uniform(-max_strain, max_strain, size=6)
    eps = np.zeros((3, 3))
    for value, (i, j) in zip(eps_components, _VOIGT_PAIRS, strict=True):
        eps[i, j] = eps[j, i] = value
    return strain_tensor_to_voigt(eps)


def _labelled(
    atoms: Atoms, structure_id: str, config_type: str, voigt: np.ndarray, reference: Atoms
) -> Atoms:
    atoms.info["structure_id"] = structure_id
    atoms.info["config_type"] = config_type
    atoms.info["voigt_strain"] = np.asarray(voigt, dtype=float)
    atoms.info[REFERENCE_CELL_KEY] = np.array(reference.cell.array, dtype=float)
    return atoms


def kpoint_reference_cell(atoms: Atoms) -> np.ndarray:
    """The cell whose k-point mesh a structure uses: its family's unstrained reference cell.

    Strained variants of one cell (E–V points, elastic ± pairs, rattled copies, MD snapshots of
    one supercell) share one mesh, so that an energy or stress difference between them never
    mixes in a change of Brillouin-zone sampling (the mesh computed from each strained cell can
    jump, e.g. fcc Cu 16³ at -0.5 % and 15³ at +0.5 %).

    Parameters
    ----------
    atoms
        A structure; ``info["reference_cell"]`` (3x3 Å, set by the generators) when it belongs
        to a family, else its own cell is used.

    Returns
    -------
    numpy.ndarray
        3x3 lattice vectors (rows, Å).
    """
    reference = atoms.info.get(REFERENCE_CELL_KEY)
    if reference is None:
        return np.array(atoms.cell.array, dtype=float)
    cell = np.asarray(reference, dtype=float)
    if cell.size != 9:
        raise ValueError(
            f"structure {atoms.info.get('structure_id', '?')}: info['{REFERENCE_CELL_KEY}'] "
            f"must hold 9 numbers (a 3x3 cell in Å), got {cell.size}"
        )
    return cell.reshape(3, 3)


def _positive(section: str, key: str, value) -> float:
    value = float(value)
    if not value >= 0:
        raise ValueError(f"structures.{section}.{key} must be >= 0, got {value}")
    return value


def training_structures(
    material: Mapping, spec: Mapping, seed: int, reference: Atoms | None = None
) -> dict[str, Atoms]:
    """Build the training structures described by ``config["structures"]``.

    Parameters
    ----------
    material
        ``config["material"]`` (see :func:`primitive_cell`).
    spec
        ``config["structures"]``: ``hydrostatic.strains`` (isotropic linear strains),
        ``strained`` (``count``, ``max_strain``: every component of a random symmetric strain
        tensor uniform in ``[-max_strain, max_strain]``), ``rattled`` (``count``,
        ``max_strain``, ``rattle_A``: Gaussian displacements with this standard deviation per
        Cartesian component, Å), ``supercell`` (``count``, ``repeat`` or ``min_width_A`` of the
        conventional cell, ``max_strain``, ``rattle_A``) and ``vacancy`` (as ``supercell``, then
        one atom, drawn at random, removed).
    seed
        Global seed (``config["seed"]``).
    reference
        The DFT-relaxed cell (None: the configured cell): the parent of every structure.

    Returns
    -------
    dict[str, ase.Atoms]
        Keys exactly :func:`training_structure_ids`, in order. Each Atoms has ``info``
        ``structure_id``, ``config_type``, ``voigt_strain`` (the applied Voigt strain) and
        ``reference_cell`` (the unstrained cell it was made from: its k-point mesh).
    """
    ids = training_structure_ids(spec)
    prim = primitive_cell(material, reference)
    out: dict[str, Atoms] = {}
    for section, (_, config_type) in SECTIONS.items():
        params = spec.get(section)
        section_ids = [i for i in ids if i.startswith(SECTIONS[section][0] + "-")]
        if not section_ids:
            continue
        if section == "hydrostatic":
            for sid, s in zip(section_ids, params["strains"], strict=True):
                voigt = np.array([s, s, s, 0.0, 0.0, 0.0], dtype=float)
                strained = apply_voigt_strain(prim, voigt)
                out[sid] = _labelled(strained, sid, config_type, voigt, prim)
            continue
        max_strain = _positive(section, "max_strain", params.get("max_strain", 0.0))
        rattle = _positive(section, "rattle_A", params.get("rattle_A", 0.0))
        base = prim
        if section in SUPERCELL_SECTIONS:
            repeat = supercell_repeat(material, params, reference, section)
            base = conventional_cell(material, repeat, reference)
        for index, sid in enumerate(section_ids):
            rng = _rng(seed, section, index)
            voigt = _random_voigt_strain(rng, max_strain)
            atoms = apply_voigt_strain(base, voigt)
            if section in ("rattled", *SUPERCELL_SECTIONS) and rattle > 0:
                atoms.positions += rng.normal(0.0, rattle, size=atoms.positions.shape)
            if section == "vacancy":
                del atoms[_vacancy_site(rng, base, sid)]
            out[sid] = _labelled(atoms, sid, config_type, voigt, base)
    return out


def _vacancy_site(rng: np.random.Generator, base: Atoms, structure_id: str) -> int:
    """The atom a vacancy structure leaves out, drawn uniformly (every species in proportion);
    its k-point mesh stays that of the full supercell ``base``."""
    if len(base) < VACANCY_MIN_ATOMS:
        raise ValueError(f"{structure_id}: {_vacancy_cell_message(len(base))}")
    return int(rng.integers(len(base)))


def _vacancy_cell_message(n_atoms: int) -> str:
    return (
        f"structures.vacancy needs a cell of at least {VACANCY_MIN_ATOMS} atoms (so that at "
        f"least two remain and forces carry information), the repeated conventional cell has "
        f"{n_atoms}; raise structures.vacancy.repeat or min_width_A"
    )


def check_vacancy_cell(material: Mapping, spec: Mapping) -> None:
    """The vacancy cell has atoms enough (at snakemake -n, not after the DFT is paid for)."""
    params = spec.get("vacancy") or {}
    if int(params.get("count", 0) or 0) > 0:
        repeat = supercell_repeat(material, params, section="vacancy")
        n_atoms = len(conventional_cell(material, repeat))
        if n_atoms < VACANCY_MIN_ATOMS:
            raise ValueError(f"config key 'structures.vacancy': {_vacancy_cell_message(n_atoms)}")


def elastic_structure_ids() -> list[str]:
    """Ids of the elastic-constant reference structures.

    Returns
    -------
    list[str]
        ``["elastic-e1p", "elastic-e1m", ..., "elastic-e6p", "elastic-e6m"]``.
    """
    return [f"elastic-e{i}{sign}" for i in range(1, 7) for sign in ("p", "m")]


def elastic_structures(
    material: Mapping, magnitude: float, reference: Atoms | None = None
) -> dict[str, Atoms]:
    """Primitive cell strained by ``+/- magnitude`` along each Voigt direction (clamped ion).

    Parameters
    ----------
    material
        ``config["material"]`` (see :func:`primitive_cell`).
    magnitude
        Voigt strain magnitude (dimensionless; engineering shear for directions 4-6).
    reference
        The DFT-relaxed cell (None: the configured cell): the undeformed cell of the set.

    Returns
    -------
    dict[str, ase.Atoms]
        Keys :func:`elastic_structure_ids`; ``info`` ``structure_id``, ``config_type``
        ("elastic"), ``voigt_strain`` and ``reference_cell`` (the primitive cell: one k-mesh).
        Atoms are scaled with the cell (no relaxation).
    """
    magnitude = float(magnitude)
    if not magnitude > 0:
        raise ValueError(f"validation.elastic.strain_magnitude must be > 0, got {magnitude}")
    prim = primitive_cell(material, reference)
    out = {}
    for sid in elastic_structure_ids():
        direction = int(sid[len("elastic-e")]) - 1
        voigt = np.zeros(6)
        voigt[direction] = magnitude if sid.endswith("p") else -magnitude
        out[sid] = _labelled(apply_voigt_strain(prim, voigt), sid, "elastic", voigt, prim)
    return out


def write_structure_set(path, structures: Sequence[Atoms]) -> None:
    """Write one structure set (a multi-frame extxyz, frames in id order) atomically.

    One file per set (training candidates, elastic cells, one run's MD snapshots) keeps the
    workflow's DAG linear in the number of structures: a job with one output per structure
    makes Snakemake's bookkeeping quadratic.
    """
    from ase.io import write

    from dft2mlip.io import atomic_write

    ids = [a.info.get("structure_id") for a in structures]
    if None in ids or len(set(ids)) != len(ids):
        raise ValueError(f"{path}: every structure needs a unique info['structure_id'], got {ids}")
    with atomic_write(path) as tmp:
        write(tmp, list(structures), format="extxyz")


def read_structure(path, structure_id: str) -> Atoms:
    """The structure ``structure_id`` of a structure set (frames are read until it is found).

    Raises
    ------
    ValueError
        If the set does not hold it (the set and the workflow's id list disagree: rerun the job
        that wrote ``path``).
    """
    from ase.io import iread

    for atoms in iread(path, index=":", format="extxyz"):
        if atoms.info.get("structure_id") == structure_id:
            return atoms
    raise ValueError(
        f"{path} holds no structure {structure_id!r}; rerun the job that wrote it "
        "(snakemake --forcerun structures, or md_snapshots for MD snapshots)"
    )


def bare_cell(atoms: Atoms) -> Atoms:
    """Species, positions, cell and the sites' initial moments (a magnetic order) of ``atoms``
    only (no info, calculator or constraints)."""
    return Atoms(atoms.numbers, positions=atoms.positions, cell=atoms.cell.array, pbc=True,
                 magmoms=atoms.arrays.get("initial_magmoms"))  # fmt: skip
