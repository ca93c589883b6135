"""Pseudopotential headers (UPF v1 and v2), read and checked before any work.

:func:`read_upf_header` takes what a run depends on from a UPF file without reading its grids:
the element, the exchange-correlation functional, the valence charge (``z_valence``, electrons)
and the suggested minimum cutoffs (Ry). pslibrary files say "Suggested minimum cutoff for
wavefunctions: 44. Ry" in ``PP_INFO``; UPF v2 headers also carry ``wfc_cutoff``/``rho_cutoff``
and UPF v1 headers a "Suggested cutoff for wfc and rho" line; a value of 0 means "no suggestion".

:func:`check_pseudopotential_headers` refuses, naming the config key: a file whose element is not
the one it is configured for, functionals that differ between species (pw.x would silently use
the first file's), and cutoffs below a file's suggestion unless ``dft.qe.allow_low_cutoff`` says
so explicitly.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

_KEY = "dft.qe"
_V2_HEADER = re.compile(r"<PP_HEADER\b(.*?)/?>", re.DOTALL | re.IGNORECASE)
_ATTRIBUTE = re.compile(r"(\w+)\s*=\s*\"([^\"]*)\"")
_V1_HEADER = re.compile(r"<PP_HEADER>\s*\n(.*?)</PP_HEADER>", re.DOTALL | re.IGNORECASE)
_INFO_CUTOFF = {
    "wfc": re.compile(r"Suggested minimum cutoff for wavefunctions:\s*([-+\d.eE]+)\s*Ry"),
    "rho": re.compile(r"Suggested minimum cutoff for charge density:\s*([-+\d.eE]+)\s*Ry"),
}
#: QE's four-part functional names (exchange, correlation, gradient x, gradient c) -> usual name
_FUNCTIONALS = {
    ("SLA", "PZ", "NOGX", "NOGC"): "LDA",
    ("SLA", "PW", "NOGX", "NOGC"): "LDA",
    ("SLA", "PW", "PBX", "PBC"): "PBE",
    ("SLA", "PW", "PBE", "PBE"): "PBE",
    ("SLA", "PW", "PSX", "PSC"): "PBESOL",
    ("SLA", "LYP", "B88", "BLYP"): "BLYP",
    ("SLA", "PW", "GGX", "GGC"): "PW91",
    ("SLA", "PW", "TPSS", "TPSS"): "TPSS",
}
_SHORT_NAMES = {"PZ": "LDA", "LDA": "LDA", "PW": "LDA"}


@dataclass(frozen=True)
class UpfHeader:
    """What a label depends on in one UPF file.

    Attributes
    ----------
    path
        The file.
    element
        Chemical symbol the file was generated for.
    functional
        Usual name of its exchange-correlation functional (PBE, PBESOL, LDA, ...; QE's own
        spelling when not in the table), for comparing species.
    functional_raw
        The functional as the file writes it.
    z_valence
        Valence charge (electrons), the reference of QE's ``starting_magnetization``.
    wfc_cutoff_Ry, rho_cutoff_Ry
        Suggested minimum cutoffs (Ry); None when the file suggests none.
    """

    path: Path
    element: str
    functional: str
    functional_raw: str
    z_valence: float
    wfc_cutoff_Ry: float | None
    rho_cutoff_Ry: float | None


def canonical_functional(raw: str) -> str:
    """Usual name of a UPF functional string (``" SLA  PW   PBX  PBC"`` -> ``"PBE"``)."""
    parts = tuple(raw.upper().replace("-", " ").split())
    if len(parts) >= 4 and parts[:4] in _FUNCTIONALS:
        return _FUNCTIONALS[parts[:4]]
    if len(parts) == 1:
        return _SHORT_NAMES.get(parts[0], parts[0])
    return " ".join(parts)


def _positive(value: str | None) -> float | None:
    try:
        number = float(str(value).replace("D", "E").replace("d", "e"))
    except (TypeError, ValueError):
        return None
    return number if number > 0 else None


def _suggestion(text: str, which: str, header_value: str | None) -> float | None:
    """A PP_INFO suggestion when there is one, else the header's (both 0 = none)."""
    if m := _INFO_CUTOFF[which].search(text):
        if (value := _positive(m.group(1))) is not None:
            return value
    return _positive(header_value)


def _v1_fields(block: str) -> dict[str, str]:
    """The UPF v1 header lines that matter (value first, description after)."""
    found: dict[str, str] = {}
    for line in block.splitlines():
        lowered = line.lower()
        if "element" in lowered and "element" not in found:
            found["element"] = line.split()[0]
        elif "exchange-correlation" in lowered:
            found["functional"] = line[: lowered.index("exchange-correlation")].strip()
        elif "z valence" in lowered:
            found["z_valence"] = line.split()[0]
        elif "suggested cutoff" in lowered:
            values = line.split()
            found["wfc_cutoff"], found["rho_cutoff"] = values[0], values[1]
    return found


@functools.lru_cache(maxsize=64)
def _read_cached(path: str, mtime_ns: int, size: int) -> UpfHeader:
    text = Path(path).read_text(errors="replace")
    m = _V2_HEADER.search(text)
    if m is None:
        raise ValueError(f"{path} has no <PP_HEADER>: not a UPF file")
    if "=" in m.group(1):
        fields = {k.lower(): v for k, v in _ATTRIBUTE.findall(m.group(1))}
    elif v1 := _V1_HEADER.search(text):
        fields = _v1_fields(v1.group(1))
    else:
        raise ValueError(f"{path}: its <PP_HEADER> is not closed: not a complete UPF file")
    missing = [k for k in ("element", "functional", "z_valence") if not fields.get(k, "").strip()]
    if missing:
        raise ValueError(f"{path}: the UPF header has no {', '.join(missing)}")
    z_valence = _positive(fields["z_valence"])
    if z_valence is None:
        raise ValueError(f"{path}: z_valence = {fields['z_valence']!r} is not a positive number")
    return UpfHeader(
        path=Path(path),
        element=fields["element"].strip(),
        functional=canonical_functional(fields["functional"]),
        functional_raw=" ".join(fields["functional"].split()),
        z_valence=z_valence,
        wfc_cutoff_Ry=_suggestion(text, "wfc", fields.get("wfc_cutoff")),
        rho_cutoff_Ry=_suggestion(text, "rho", fields.get("rho_cutoff")),
    )


def read_upf_header(path: str | os.PathLike) -> UpfHeader:
    """Read the header of a UPF (v1 or v2) pseudopotential file.

    Parameters
    ----------
    path
        The UPF file.

    Returns
    -------
    UpfHeader
        Element, functional, valence charge and suggested cutoffs (Ry).

    Raises
    ------
    ValueError
        If the file has no UPF header or the header lacks the element, functional or valence.
    """
    stat = os.stat(path)
    return _read_cached(str(Path(path).resolve()), stat.st_mtime_ns, stat.st_size)


def check_pseudopotential_headers(
    pseudopotentials: Mapping[str, str],
    directory: Path,
    elements: Iterable[str],
    cutoffs_Ry: Mapping[str, float],
    *,
    allow_low_cutoff: bool = False,
) -> dict[str, UpfHeader]:
    """Element, one functional for all species, and cutoffs at or above the files' suggestions.

    Parameters
    ----------
    pseudopotentials
        ``dft.qe.pseudopotentials`` (element -> file name in ``directory``; files must exist).
    directory
        The pseudopotential directory.
    elements
        The species of the structures.
    cutoffs_Ry
        ``{"ecutwfc_Ry": ..., "ecutrho_Ry": ...}`` the labels use.
    allow_low_cutoff
        ``dft.qe.allow_low_cutoff``: accept cutoffs below a file's suggestion.

    Returns
    -------
    dict[str, UpfHeader]
        The header of each species' file.

    Raises
    ------
    ValueError
        One line naming the config key, what is wrong and how to fix it.
    """
    headers: dict[str, UpfHeader] = {}
    for element in sorted(set(elements)):
        key = f"{_KEY}.pseudopotentials.{element}"
        name = pseudopotentials[element]
        try:
            header = read_upf_header(directory / name)
        except (OSError, ValueError) as err:
            raise ValueError(f"config key '{key}' = {name!r}: {err}") from None
        if header.element.capitalize() != element:
            raise ValueError(
                f"config key '{key}' = {name!r} is a pseudopotential for {header.element}, not "
                f"{element}; name a {element} UPF file"
            )
        headers[element] = header
    functionals = {h.functional for h in headers.values()}
    if len(functionals) > 1:
        listed = ", ".join(f"{e}: {h.functional} ({h.path.name})" for e, h in headers.items())
        raise ValueError(
            f"config key '{_KEY}.pseudopotentials' mixes functionals ({listed}); pw.x would use "
            "one for all species: choose files generated with the same functional"
        )
    if not allow_low_cutoff:
        _check_cutoffs(headers, cutoffs_Ry)
    return headers


def _check_cutoffs(headers: Mapping[str, UpfHeader], cutoffs_Ry: Mapping[str, float]) -> None:
    for key, attribute in (("ecutwfc_Ry", "wfc_cutoff_Ry"), ("ecutrho_Ry", "rho_cutoff_Ry")):
        for element, header in headers.items():
            suggested = getattr(header, attribute)
            if suggested is not None and float(cutoffs_Ry[key]) < suggested:
                raise ValueError(
                    f"config key '{_KEY}.{key}' = {cutoffs_Ry[key]:g} Ry is below the "
                    f"{suggested:g} Ry that {header.path.name} ({element}) suggests; raise it, or "
                    f"set {_KEY}.allow_low_cutoff: true if a convergence study shows it suffices"
                )
