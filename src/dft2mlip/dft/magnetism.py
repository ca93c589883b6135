"""Collinear magnetism: initial moments per element (``dft.magnetic_moments_muB``) or per site
(a magnetic order: the structure file's moments or ``dft.magnetic_order``), checked before any
work, turned into each engine's input, and the final magnetisation a run reports.

A per-site order is given for the sites of the configured cell; every structure made from that
cell carries its parent sites' moments (ASE's ``initial_magmoms`` array), and the engines write
them: QE one species per distinct (element, moment) as ASE's espresso writer does, VASP one
MAGMOM entry per site. The order is part of the settings hash.

A non-empty map with a nonzero moment turns spin polarisation on for every label alike (QE
``nspin = 2`` with ``starting_magnetization``; VASP ``ISPIN = 2`` with ``MAGMOM``); the moments are
part of the settings hash. A moment of 0 says "non-magnetic on purpose": an element that usually
carries a moment (:data:`USUALLY_MAGNETIC`) without an entry is refused, so nobody labels bcc Fe
non-magnetic by accident. All moments 0 (or an empty map) is a non-spin-polarised run.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
from ase import Atoms

#: the config key of the initial moments (μB per atom)
KEY = "dft.magnetic_moments_muB"
#: the config key of a per-site order (μB, one per site of the configured cell)
ORDER_KEY = "dft.magnetic_order"
#: a final site moment below this (μB) counts as no moment when an order is compared
MOMENT_THRESHOLD_MUB = 0.1
#: elements whose elemental solids or common compounds are usually magnetic (3d and 4f)
USUALLY_MAGNETIC = frozenset(
    {"Cr", "Mn", "Fe", "Co", "Ni", "Ce", "Nd", "Sm", "Eu", "Gd", "Tb", "Dy", "Ho", "Er", "Tm"}
)
_TOTAL = re.compile(r"total magnetization\s*=\s*(\S+)\s*Bohr mag/cell")
_ABSOLUTE = re.compile(r"absolute magnetization\s*=\s*(\S+)\s*Bohr mag/cell")
# pw.x 6.8+ prints "atom    1 (R=0.190)  charge=  7.7  magn=  1.5", 6.7 "atom:    1  ... magn:  1.5"
_SITES = re.compile(r"Magnetic moment per site.*?\n((?:\s*atom:?\s+\d+.*\n)+)")
_SITE = re.compile(r"magn[=:]\s*(\S+)")
#: VASP's count per SCF step; with ISPIN = 1 (VASP 5.x and 6.x alike) the line ends after the
#: word "magnetization", so the value is optional and never looked for on the next line
_VASP_TOTAL = re.compile(
    r"^[ \t]*number of electron[ \t]+\S+[ \t]+magnetization[ \t]*([-+]?\d*\.?\d+(?:[eE][-+]?\d+)?)?"
    r"[ \t]*$",
    re.MULTILINE,
)
#: VASP's per-site table (LORBIT >= 10): " magnetization (x)", a blank line, "# of ion  s  p  d
#: tot", a rule, one row per ion (its last column the total), a rule and the "tot" row
_VASP_SITES = re.compile(
    r"^[ \t]*magnetization \(x\)[ \t]*\n(?:[ \t]*\n)*[ \t]*# of ion[^\n]*\n[ \t]*-+[ \t]*\n"
    r"((?:[ \t]*\d+(?:[ \t]+[-+]?\d*\.\d+)+[ \t]*\n)+)",
    re.MULTILINE,
)
_VASP_SITE = re.compile(r"([-+]?\d*\.\d+)[ \t]*$", re.MULTILINE)


def spin_polarised(moments: Mapping[str, float] | None) -> bool:
    """Whether any initial moment is nonzero (then every label is spin-polarised)."""
    return any(float(m) != 0 for m in (moments or {}).values())


def check_magnetic_moments(
    elements: Iterable[str], moments: Mapping[str, float], ordered: Iterable[str] = ()
) -> None:
    """Every usually-magnetic element has an entry (or a per-site order covers it, ``ordered``);
    entries name species of the material.

    Raises
    ------
    ValueError
        One line naming ``dft.magnetic_moments_muB`` (or the entry) and the fix.
    """
    elements = list(dict.fromkeys(elements))
    for element, moment in moments.items():
        if element not in elements:
            raise ValueError(
                f"config key '{KEY}.{element}': {element} is not in material.elements "
                f"{elements}; remove the entry or fix the symbol"
            )
        if isinstance(moment, bool) or not math.isfinite(float(moment)):
            raise ValueError(f"config key '{KEY}.{element}' = {moment!r} must be a finite number")
    for element in elements:
        if element in USUALLY_MAGNETIC and element not in moments and element not in ordered:
            raise ValueError(
                f"config key '{KEY}.{element}' is missing: {element} usually carries a magnetic "
                f"moment; give its initial moment in μB (e.g. {KEY}: {{{element}: 2.5}}), or 0 "
                "if the material is non-magnetic on purpose"
            )


def with_moments(
    engine_cfg: Mapping,
    moments: Mapping[str, float] | None,
    order: Sequence[float] | None = None,
) -> dict:
    """The engine's config section with the initial moments added when spin is on: per element,
    and the per-site ``order`` (:func:`site_order`) when there is one.

    Leaves the section as it is for a non-magnetic run, so that its settings (and their hash)
    are exactly those of a config without the keys.
    """
    cfg = dict(engine_cfg)
    if spin_polarised(moments) or (order is not None and any(order)):
        cfg["magnetic_moments_muB"] = {k: float(v) for k, v in sorted((moments or {}).items())}
    if order is not None and any(order):
        cfg["magnetic_order_muB"] = [float(m) for m in order]
    return cfg


def file_moments(atoms: Atoms) -> list[float] | None:
    """The per-site initial moments a structure file carried (extxyz ``initial_magmoms``, or
    whatever ASE reads as such); None when it has none or all are 0."""
    if not atoms.has("initial_magmoms"):
        return None
    moments = [float(m) for m in atoms.get_initial_magnetic_moments()]
    return moments if any(moments) else None


def site_order(cell: Atoms, dft: Mapping, *, where: str) -> list[float] | None:
    """The per-site magnetic order of the configured cell: the file's moments or
    ``dft.magnetic_order``, checked against each other and against ``dft.magnetic_moments_muB``.

    Parameters
    ----------
    cell
        The configured cell as read (with the file's moments, when it had any).
    dft
        ``config["dft"]``.
    where
        What the cell is, for messages (e.g. "material.structure = 'NiO.extxyz'").

    Returns
    -------
    list[float] | None
        One moment (μB) per site, or None when no per-site order is given.

    Raises
    ------
    ValueError
        One line naming the key: an order that does not fit the cell, a file and a config that
        contradict each other, or an element map that contradicts the order's magnitudes.
    """
    from_file, configured = file_moments(cell), dft.get("magnetic_order")
    if configured is not None:
        if len(configured) != len(cell):
            raise ValueError(
                f"config key '{ORDER_KEY}' has {len(configured)} moments, but the cell of "
                f"{where} has {len(cell)} sites ({cell.get_chemical_formula()}); give one "
                "moment (μB) per site, in the cell's order"
            )
        configured = [float(m) for m in configured]
        if from_file is not None and not np.allclose(configured, from_file, atol=1e-6):
            raise ValueError(
                f"config key '{ORDER_KEY}' = {configured} contradicts the moments in {where} "
                f"({from_file}); remove one of the two"
            )
    order = configured if configured is not None else from_file
    if order is None:
        return None
    symbols = cell.get_chemical_symbols()
    for element, moment in (dft.get("magnetic_moments_muB") or {}).items():
        sites = [abs(m) for s, m in zip(symbols, order, strict=True) if s == element]
        if any(not math.isclose(m, abs(float(moment)), abs_tol=1e-6) for m in sites):
            source = ORDER_KEY if configured is not None else where
            raise ValueError(
                f"config key '{KEY}.{element}' = {moment} contradicts the per-site moments of "
                f"{element} in {source} ({sorted(set(sites))} μB in size); remove the entry "
                "(the per-site order is used)"
            )
    return order


def configured_order(material: Mapping, dft: Mapping) -> list[float] | None:
    """:func:`site_order` of the configured cell (``material.structure`` or the prototype's
    primitive cell; cheap: reads only the structure file)."""
    from dft2mlip.structures import primitive_cell

    if not material.get("structure") and dft.get("magnetic_order") is None:
        return None  # no file that could carry moments, no configured order
    if isinstance(dft.get("magnetic_order"), str):
        return named_order(material, dft)
    bare = {k: v for k, v in material.items() if k not in ("magnetic_order_muB", "magnetic_cell")}
    cell = primitive_cell(bare)
    if material.get("structure"):
        where = f"material.structure = {str(material['structure'])!r}"
    else:  # ase.build.bulk gives Fe, Co, Ni moments of its own: not an order anybody gave
        where = f"the {material.get('prototype')} primitive cell of material.prototype"
        cell.set_initial_magnetic_moments(None)
    return site_order(cell, dft, where=where)


def describe(moments: Mapping[str, float] | None, order: Sequence[float] | None) -> str | None:
    """The report's line on spin: the per-site order, or the per-element moments; None when
    the labels are not spin-polarised."""
    if order is not None and any(order):
        return "collinear, per-site initial moments (μB) " + ", ".join(f"{m:+g}" for m in order)
    if spin_polarised(moments):
        return "collinear, initial moments (μB) " + ", ".join(
            f"{k} {float(v):g}" for k, v in sorted(moments.items())
        )
    return None


def material_with_order(material: Mapping, dft: Mapping) -> dict:
    """``material`` as the structure generators take it: with ``dft.magnetic_order`` the
    per-site moments (``magnetic_order_muB``) and, for a named order, the name of the order
    whose own cell is the material's cell (``magnetic_cell``)."""
    out = dict(material)
    order = dft.get("magnetic_order")
    if order is not None:
        out["magnetic_order_muB"] = configured_order(material, dft)
        if isinstance(order, str):
            out["magnetic_cell"] = order
    return out


def named_order(material: Mapping, dft: Mapping) -> list[float]:
    """The per-site moments of a named order (``dft.magnetic_order: AFM-II``, see
    :mod:`dft2mlip.magnetic_cells`): each site's sign times its element's size from
    ``dft.magnetic_moments_muB``, which must give the magnetic element's moment."""
    from dft2mlip.magnetic_cells import named_order_cell

    name = dft["magnetic_order"]
    cell, signs = named_order_cell(material, name)
    sizes = dft.get("magnetic_moments_muB") or {}
    magnetic = cell.get_chemical_symbols()[0]
    if not float(sizes.get(magnetic, 0.0)):
        raise ValueError(
            f"config key '{KEY}.{magnetic}' is needed with {ORDER_KEY} = {name!r}: the size of "
            f"the {magnetic} moment (μB), e.g. {KEY}: {{{magnetic}: 1.7}} (the order gives signs)"
        )
    symbols = cell.get_chemical_symbols()
    order = [sign * abs(float(sizes.get(s, 0.0))) for s, sign in zip(symbols, signs, strict=True)]
    return site_order(cell, {**dft, "magnetic_order": order}, where=f"the {name} cell")


def order_change(initial: Sequence[float], final: Sequence[float]) -> str | None:
    """Why a converged run left its initial magnetic order, or None when it kept it.

    Sites that started with a moment (|m| >= :data:`MOMENT_THRESHOLD_MUB`) must end with one of
    the same relative sign (a global flip of every spin is the same order): AFM that converged
    to FM, or a moment that collapsed, is a change.
    """
    if len(initial) != len(final):
        return f"{len(final)} final site moments for {len(initial)} sites"
    started = [i for i, m in enumerate(initial) if abs(m) >= MOMENT_THRESHOLD_MUB]
    if not started:
        return None
    lost = [i for i in started if abs(final[i]) < MOMENT_THRESHOLD_MUB]
    if lost:
        i = lost[0]
        return f"the moment of site {i} went from {initial[i]:+.2f} to {final[i]:+.2f} μB"
    ref = started[0]
    same = [np.sign(initial[i]) * np.sign(initial[ref]) for i in started]
    now = [np.sign(final[i]) * np.sign(final[ref]) for i in started]
    flipped = [i for i, a, b in zip(started, same, now, strict=True) if a != b]
    if flipped:
        i = flipped[0]
        return (
            f"site {i} flipped relative to site {ref} (initial {initial[i]:+.2f} vs "
            f"{initial[ref]:+.2f}, final {final[i]:+.2f} vs {final[ref]:+.2f} μB)"
        )
    return None


def ordered_site_moments(atoms: Atoms) -> list[float]:
    """The sites' own moments (μB) of a structure written under a per-site magnetic order;
    raises when it carries none (a structure not made from the configured cell)."""
    if not atoms.has("initial_magmoms"):
        raise ValueError(
            f"structure {atoms.info.get('structure_id', '?')} carries no site moments, but the "
            "settings have a per-site magnetic order (dft.magnetic_order or the structure "
            "file's moments); make it from the configured cell, which carries them"
        )
    return [float(m) for m in atoms.get_initial_magnetic_moments()]


def starting_magnetization(moment_muB: float, z_valence: float, *, element: str) -> float:
    """QE's ``starting_magnetization``: the moment as a fraction of the valence charge.

    Parameters
    ----------
    moment_muB
        Initial moment (μB per atom; one μB per unpaired electron).
    z_valence
        Valence electrons of the element's pseudopotential (UPF ``z_valence``).
    element
        For the message.

    Returns
    -------
    float
        ``moment_muB / z_valence`` in [-1, 1].

    Raises
    ------
    ValueError
        If the moment exceeds the valence charge (more unpaired electrons than electrons).
    """
    fraction = float(moment_muB) / float(z_valence)
    if abs(fraction) > 1:
        raise ValueError(
            f"config key '{KEY}.{element}' = {moment_muB} μB exceeds the {z_valence:g} valence "
            f"electrons of its pseudopotential; give a moment of at most {z_valence:g} μB"
        )
    return fraction


def qe_magnetization(text: str) -> dict:
    """The final magnetisation a spin-polarised pw.x run printed (empty for nspin = 1).

    Returns
    -------
    dict
        ``total_magnetization_muB`` and ``absolute_magnetization_muB`` (μB per cell, the last
        SCF's values) and ``site_magnetizations_muB`` (μB per atom, integrated on atomic spheres,
        the last block), each when printed.
    """
    out: dict = {}
    if totals := _TOTAL.findall(text):
        out["total_magnetization_muB"] = float(totals[-1])
    if absolutes := _ABSOLUTE.findall(text):
        out["absolute_magnetization_muB"] = float(absolutes[-1])
    if blocks := _SITES.findall(text):
        out["site_magnetizations_muB"] = [float(v) for v in _SITE.findall(blocks[-1])]
    return out


def vasp_magnetization(outcar_text: str) -> dict:
    """The final magnetisation a spin-polarised VASP run printed in OUTCAR (empty for ISPIN = 1).

    Returns
    -------
    dict
        ``total_magnetization_muB`` (μB per cell, the last "number of electron ... magnetization"
        count; VASP 5.x and 6.x print the word without a value for ISPIN = 1) and
        ``site_magnetizations_muB`` (μB per atom, the "tot" column of the last collinear
        ``magnetization (x)`` table, printed with LORBIT >= 10; integrated on the POTCAR's
        Wigner-Seitz spheres), each when printed. VASP prints no absolute magnetisation.
    """
    out: dict = {}
    totals = _VASP_TOTAL.findall(outcar_text)
    if totals and totals[-1]:
        out["total_magnetization_muB"] = float(totals[-1])
    if tables := _VASP_SITES.findall(outcar_text):
        out["site_magnetizations_muB"] = [float(v) for v in _VASP_SITE.findall(tables[-1])]
    return out
