"""DFT+U (``dft.hubbard``): a U (and optionally J) per element and orbital, in eV, checked before
any work and written in each engine's form.

The scheme is the simplified rotationally invariant one of Dudarev et al. (1998), as in the
Materials Project's GGA+U: only ``U_eff = U - J`` enters. VASP gets ``LDAU``, ``LDAUTYPE = 2``,
``LDAUL``, ``LDAUU``, ``LDAUJ`` per species (pymatgen's input set expands them), and ``LMAXMIX``
4 (d) or 6 (f). Quantum ESPRESSO gets the form the installed pw.x reads, from the version pw.x
prints about itself (:func:`pw_version`): the ``lda_plus_u`` namelist keys with
``Hubbard_U(i) = U_eff`` per species up to 7.0 (pw.x then chooses the orbital itself, which
must be the configured one), the ``HUBBARD {atomic}`` card from 7.1 (the same atomic
projectors as before 7.1). The entries are part of the settings hash; the form is not (it is
the same physics).
"""

from __future__ import annotations

import functools
import math
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

#: the config key
KEY = "dft.hubbard"
#: the first pw.x version that reads the HUBBARD card (and no longer lda_plus_u)
HUBBARD_CARD_VERSION = (7, 1)
_L = {"s": 0, "p": 1, "d": 2, "f": 3}
_ORBITAL = re.compile(r"^([1-7])([spdf])$")
_VERSION = re.compile(r"Program PWSCF v\.(\d+)\.(\d+)")
_UPF2_CHI = re.compile(r"<PP_CHI\.\d+[^>]*?label=\"\s*(\w+)\s*\"", re.IGNORECASE)
_UPF1_CHI = re.compile(r"^\s*(\d[SPDFspdf])\s+\d+\s+\S+\s+Wavefunction", re.MULTILINE)


@dataclass(frozen=True)
class HubbardU:
    """One element's DFT+U entry: ``orbital`` such as "3d", ``U_eV`` and ``J_eV`` (eV)."""

    orbital: str
    U_eV: float
    J_eV: float = 0.0

    @property
    def l(self) -> int:  # noqa: E743 (the angular momentum's usual name)
        """Angular momentum of the orbital (VASP ``LDAUL``)."""
        return _L[self.orbital[1]]

    @property
    def U_eff_eV(self) -> float:
        """``U - J`` (eV), the one value the Dudarev scheme uses."""
        return self.U_eV - self.J_eV


def parse_hubbard(hubbard: Mapping | None) -> dict[str, HubbardU]:
    """``dft.hubbard`` as ``{element: HubbardU}``, sorted; empty for none.

    Raises
    ------
    ValueError
        One line naming the entry and the fix (orbital spelling, numbers, J > U).
    """
    out = {}
    for element, entry in sorted((hubbard or {}).items()):
        key = f"config key '{KEY}.{element}'"
        if not isinstance(entry, Mapping) or set(entry) - {"orbital", "U_eV", "J_eV"}:
            raise ValueError(
                f"{key} must be {{orbital: 3d, U_eV: 6.2}} (J_eV optional), got {entry!r}"
            )
        orbital = str(entry.get("orbital", "")).strip().lower()
        if not _ORBITAL.match(orbital):
            raise ValueError(f"{key}.orbital = {entry.get('orbital')!r} must be like 3d, 4f or 2p")
        values = {}
        for name in ("U_eV", "J_eV"):
            value = entry.get(name, 0.0 if name == "J_eV" else None)
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not math.isfinite(value)
            ):
                raise ValueError(f"{key}.{name} must be a finite number (eV), got {value!r}")
            values[name] = float(value)
        if values["U_eV"] < 0 or values["J_eV"] < 0 or values["J_eV"] > values["U_eV"]:
            raise ValueError(
                f"{key}: need 0 <= J_eV <= U_eV, got U {values['U_eV']}, J {values['J_eV']}"
            )
        out[element] = HubbardU(orbital, values["U_eV"], values["J_eV"])
    return out


def check_hubbard(hubbard: Mapping | None, elements: Iterable[str]) -> dict[str, HubbardU]:
    """Each entry names an element of the material and an orbital its atom has (its ground-state
    electron configuration, pymatgen's ``Element.full_electronic_structure``).

    Raises
    ------
    ValueError
        One line naming ``dft.hubbard.<element>`` and the fix.
    """
    from pymatgen.core import Element

    elements = list(dict.fromkeys(elements))
    entries = parse_hubbard(hubbard)
    for element, entry in entries.items():
        if element not in elements:
            raise ValueError(
                f"config key '{KEY}.{element}': {element} is not in material.elements "
                f"{elements}; remove the entry or fix the symbol"
            )
        shells = [f"{n}{orb}" for n, orb, _ in Element(element).full_electronic_structure]
        if entry.orbital not in shells:
            raise ValueError(
                f"config key '{KEY}.{element}.orbital' = {entry.orbital!r}: {element} has no "
                f"{entry.orbital} orbital (its shells: {' '.join(shells)}); name one of them"
            )
    return entries


def check_upf_orbital(element: str, orbital: str, upf_path: Path) -> None:
    """The pseudopotential has an atomic wavefunction for ``orbital`` (pw.x projects on it).

    Raises
    ------
    ValueError
        Naming ``dft.hubbard.<element>`` and the UPF file.
    """
    text = Path(upf_path).read_text(errors="replace")
    labels = {x.lower() for x in _UPF2_CHI.findall(text) or _UPF1_CHI.findall(text)}
    if orbital not in labels:
        raise ValueError(
            f"config key '{KEY}.{element}.orbital' = {orbital!r}: the pseudopotential "
            f"{Path(upf_path).name} has no {orbital} atomic wavefunction (it has "
            f"{', '.join(sorted(labels)) or 'none'}); choose a pseudopotential with one"
        )


def with_hubbard(engine_cfg: Mapping, hubbard: Mapping | None) -> dict:
    """The engine's config section with ``hubbard`` added when there is any U (else unchanged,
    so that the settings hash is that of a config without the key)."""
    cfg = dict(engine_cfg)
    if hubbard:
        cfg["hubbard"] = {element: dict(entry) for element, entry in sorted(hubbard.items())}
    return cfg


def physics(entries: Mapping[str, HubbardU]) -> dict:
    """The entries for the settings hash (sorted, floats)."""
    return {
        element: {"orbital": e.orbital, "U_eV": e.U_eV, "J_eV": e.J_eV, "scheme": "dudarev"}
        for element, e in sorted(entries.items())
    }


def describe(entries: Mapping[str, HubbardU]) -> str:
    """The report's line, e.g. ``Ni 3d U 6.2 eV (Dudarev, U - J = 6.2 eV)``."""
    return "; ".join(
        f"{el} {e.orbital} U {e.U_eV:g} eV" + (f", J {e.J_eV:g} eV" if e.J_eV else "")
        + f" (Dudarev, U - J = {e.U_eff_eV:g} eV)"
        for el, e in sorted(entries.items())
    )  # fmt: skip


@functools.lru_cache(maxsize=8)
def pw_version(executable: str = "pw.x") -> tuple[int, int]:
    """The (major, minor) version pw.x prints in its banner ("Program PWSCF v.6.7MaX starts").

    pw.x is started without an input in a scratch directory (it prints the banner, then stops):
    the version is read, never assumed.

    Raises
    ------
    ValueError
        When pw.x cannot be found or prints no version, naming ``dft.qe.executable``.
    """
    program = shutil.which(executable)
    if program is None:
        raise ValueError(
            f"config key 'dft.qe.executable' = {executable!r} not found: the DFT+U input form "
            "depends on the pw.x version, read from pw.x itself; install pw.x or set the key"
        )
    try:  # in a scratch directory: pw.x leaves input_tmp.in and CRASH where it runs
        with tempfile.TemporaryDirectory(prefix="pw_version_") as scratch:
            done = subprocess.run([program], input="", capture_output=True, text=True,
                                  timeout=60, check=False, cwd=scratch)  # fmt: skip
    except (OSError, subprocess.SubprocessError) as err:
        raise ValueError(f"could not start {program} to read its version: {err}") from None
    return version_from_output(done.stdout + done.stderr, source=program)


def version_from_output(text: str, *, source: str) -> tuple[int, int]:
    """(major, minor) from a pw.x banner or output; ValueError naming ``source`` without one."""
    if m := _VERSION.search(text):
        return int(m.group(1)), int(m.group(2))
    raise ValueError(
        f"{source} printed no 'Program PWSCF v.X.Y' banner; cannot tell the pw.x version"
    )


def qe_hubbard_input(
    species: list[tuple[str, str]], entries: Mapping[str, HubbardU], version: tuple[int, int]
) -> tuple[dict, list[str]]:
    """The pw.x input for the U entries: ``(system namelist keys, extra cards)``.

    Parameters
    ----------
    species
        ``(label, element)`` of each species in the order of ATOMIC_SPECIES (1-based index).
    entries
        :func:`parse_hubbard`'s result.
    version
        pw.x (major, minor), :func:`pw_version`.
    """
    if not entries:
        return {}, []
    if tuple(version) >= HUBBARD_CARD_VERSION:
        lines = [
            f"U {label}-{entries[element].orbital} {entries[element].U_eff_eV:.10g}"
            for label, element in species
            if element in entries
        ]
        return {}, ["HUBBARD {atomic}", *lines]
    system: dict = {"lda_plus_u": True, "lda_plus_u_kind": 0}
    for index, (_, element) in enumerate(species, start=1):
        if element in entries:
            system[f"Hubbard_U({index})"] = entries[element].U_eff_eV
    return system, []


def vasp_ldau_incar(entries: Mapping[str, HubbardU]) -> dict:
    """INCAR tags for pymatgen's input set: per-element ``LDAUL``/``LDAUU``/``LDAUJ`` maps
    (elements without U get l = -1 and 0 eV), ``LDAU``, ``LDAUTYPE = 2`` and ``LMAXMIX``."""
    if not entries:
        return {}
    lmax = max(e.l for e in entries.values())
    return {
        "LDAU": True,
        "LDAUTYPE": 2,
        "LDAUL": {el: e.l for el, e in entries.items()},
        "LDAUU": {el: e.U_eV for el, e in entries.items()},
        "LDAUJ": {el: e.J_eV for el, e in entries.items()},
        "LMAXMIX": 6 if lmax == 3 else 4,
    }
