"""Collinear magnetism: initial moments per element (``dft.magnetic_moments_muB``), checked before
any work, turned into each engine's input, and the final magnetisation a run reports.

A non-empty map with a nonzero moment turns spin polarisation on for every label alike (QE
``nspin = 2`` with ``starting_magnetization``; VASP ``ISPIN = 2`` with ``MAGMOM``); the moments are
part of the settings hash. A moment of 0 says "non-magnetic on purpose": an element that usually
carries a moment (:data:`USUALLY_MAGNETIC`) without an entry is refused, so nobody labels bcc Fe
non-magnetic by accident. All moments 0 (or an empty map) is a non-spin-polarised run.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping

#: the config key of the initial moments (μB per atom)
KEY = "dft.magnetic_moments_muB"
#: elements whose elemental solids or common compounds are usually magnetic (3d and 4f)
USUALLY_MAGNETIC = frozenset(
    {"Cr", "Mn", "Fe", "Co", "Ni", "Ce", "Nd", "Sm", "Eu", "Gd", "Tb", "Dy", "Ho", "Er", "Tm"}
)
_TOTAL = re.compile(r"total magnetization\s*=\s*(\S+)\s*Bohr mag/cell")
_ABSOLUTE = re.compile(r"absolute magnetization\s*=\s*(\S+)\s*Bohr mag/cell")
_SITES = re.compile(r"Magnetic moment per site.*?\n((?:\s*atom\s+\d+.*\n)+)")
_SITE = re.compile(r"magn=\s*(\S+)")
#: VASP's count per SCF step; with ISPIN = 1 (VASP 5.x and 6.x alike) the line ends after the
#: word "magnetization", so the value is optional and never looked for on the next line
_VASP_TOTAL = re.compile(
    r"^[ \t]*number of electron[ \t]+\S+[ \t]+magnetization[ \t]*([-+]?\d*\.?\d+(?:[eE][-+]?\d+)?)?"
    r"[ \t]*$",
    re.MULTILINE,
)


def spin_polarised(moments: Mapping[str, float] | None) -> bool:
    """Whether any initial moment is nonzero (then every label is spin-polarised)."""
    return any(float(m) != 0 for m in (moments or {}).values())


def check_magnetic_moments(elements: Iterable[str], moments: Mapping[str, float]) -> None:
    """Every usually-magnetic element has an entry; entries name species of the material.

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
        if element in USUALLY_MAGNETIC and element not in moments:
            raise ValueError(
                f"config key '{KEY}.{element}' is missing: {element} usually carries a magnetic "
                f"moment; give its initial moment in μB (e.g. {KEY}: {{{element}: 2.5}}), or 0 "
                "if the material is non-magnetic on purpose"
            )


def with_moments(engine_cfg: Mapping, moments: Mapping[str, float] | None) -> dict:
    """The engine's config section with the initial moments added when spin is on.

    Leaves the section as it is for a non-magnetic run, so that its settings (and their hash)
    are exactly those of a config without the key.
    """
    cfg = dict(engine_cfg)
    if spin_polarised(moments):
        cfg["magnetic_moments_muB"] = {k: float(v) for k, v in sorted(moments.items())}
    return cfg


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
    """``total_magnetization_muB`` (μB per cell) from OUTCAR's last "magnetization" count.

    Empty for a non-spin-polarised run (ISPIN = 1: VASP prints the word without a value) and for
    an OUTCAR without the line.
    """
    totals = _VASP_TOTAL.findall(outcar_text)
    if totals and totals[-1]:
        return {"total_magnetization_muB": float(totals[-1])}
    return {}
