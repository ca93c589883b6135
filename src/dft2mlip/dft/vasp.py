"""VASP: settings, tight static single-point inputs (pymatgen ``MatPESStaticSet``) and parsing.

Units are converted once, here, at the parser boundary. VASP prints the stress "in kB"
(1 kB = 0.1 GPa), COMPRESSION positive, in the order ``[xx, yy, zz, xy, yz, zx]`` (OUTCAR);
``vasprun.xml`` holds the same compression-positive tensor in kB as a 3x3 matrix (pymatgen's
``Vasprun`` keeps both the sign and the unit). The project's stress is eV/Å³, tension positive,
Voigt ``[xx, yy, zz, yz, xz, xy]``: ``sigma = -0.1 GPa * value``, reordered.

The training energy is VASP's ``free  energy   TOTEN`` (``e_fr_energy``), the one consistent
with the forces; pymatgen's ``Vasprun.final_energy`` is the σ→0 extrapolation and is not used.
With PSTRESS ≠ 0 the ionic-step ``e_fr_energy`` in vasprun.xml is the enthalpy E + PSTRESS·V;
the PV term is taken off, so vasprun.xml and OUTCAR give the same TOTEN.

:func:`parse_vasp_output` parses the pipeline's own single points (checked against the input
structure); :func:`read_vasp_run` reads any finished run directory (vasprun.xml or OUTCAR
alone, every ionic step) for ``dataset.import``, with :func:`vasp_settings` for its settings.

Without POTCARs (``PMG_VASP_PSP_DIR`` unset and no ``dft.vasp.potcar_dir``) inputs are written
with ``potcar_spec=True`` (a ``POTCAR.spec`` listing the symbols): the dry run and input writing
work; :func:`check_ready_to_run` then stops a real run with a clear error.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np
from ase import Atoms

from dft2mlip import __version__
from dft2mlip.data import Label, structure_label, structure_mismatch
from dft2mlip.dft.magnetism import ordered_site_moments, vasp_magnetization
from dft2mlip.dft.outputs import OutputFrame, RunOutput, outcome_from_run, read_until
from dft2mlip.units import GPA_TO_EV_PER_A3, KBAR_TO_GPA

_KEY = "dft.vasp"
#: INCAR tags that steer the SCF or the output but not the converged result; error recovery
#: may change them, so they are not part of the settings hash
NON_PHYSICS_INCAR = frozenset(
    {
        "NELM", "NELMIN", "NELMDL", "AMIX", "BMIX", "AMIX_MAG", "BMIX_MAG", "AMIN", "IMIX",
        "MAXMIX", "WC", "INIMIX", "MIXPRE", "NCORE", "NPAR", "KPAR", "NSIM", "LPLANE",
        "LSCALU", "LCHARG", "LWAVE", "LAECHG", "LORBIT", "LVTOT", "LVHAR", "LELF", "ISTART",
        "ICHARG", "NWRITE", "SYSTEM",
    }
)  # fmt: skip
#: INCAR tags this module sets from the settings fields (a ``dft.vasp.incar`` entry may not)
_MANAGED = {
    "ENCUT": "encut_eV",
    "KSPACING": "kspacing_per_A",
    "EDIFF": "ediff_eV",
    "ISMEAR": "ismear",
    "SIGMA": "sigma_eV",
    "PREC": "prec",
    "ISPIN": "ispin",
    "NELM": "nelm",
    "MAGMOM": "dft.magnetic_moments_muB / dft.magnetic_order",
    "LDAU": "dft.hubbard", "LDAUTYPE": "dft.hubbard", "LDAUL": "dft.hubbard",
    "LDAUU": "dft.hubbard", "LDAUJ": "dft.hubbard",
    "NSW": "", "IBRION": "", "ISIF": "", "KGAMMA": "kspacing_per_A",
}  # fmt: skip
# structure-dependent tables of the input set that do not apply to a non-magnetic, non-+U run
_STRUCTURE_TABLES = ("MAGMOM", "LDAUU", "LDAUJ", "LDAUL", "LDAUTYPE", "LDAU")
_NOT_CONVERGED_HINT = "raise dft.vasp.nelm or let the SCF handler lower AMIX/BMIX"
STRUCTURE_TOLERANCE_A = 1e-4


@dataclass(frozen=True)
class VaspSettings:
    """Validated ``dft.vasp`` config section (units in the field names: eV, 1/Å).

    ``kspacing_per_A`` is VASP's ``KSPACING`` (2π included, Γ-centred mesh, the same
    convention as :func:`dft2mlip.dft.qe.kpoint_mesh`). ``incar`` adds or overrides INCAR tags
    of ``MatPESStaticSet`` (not those set by the other fields). Every label gets the same INCAR.
    """

    executable: str = "vasp_std"
    potcar_dir: str | None = None
    potcar_functional: str | None = None
    potcars: Mapping[str, str] = field(default_factory=dict)
    encut_eV: float = 680.0
    kspacing_per_A: float = 0.22
    ediff_eV: float = 1.0e-6
    ismear: int = 0
    sigma_eV: float = 0.05
    prec: str = "Accurate"
    ispin: int = 1
    nelm: int = 200
    incar: Mapping[str, object] = field(default_factory=dict)
    magnetic_moments_muB: Mapping[str, float] = field(default_factory=dict)
    #: per-site order (μB, one per site of the configured cell); the structures carry it
    magnetic_order_muB: Sequence[float] | None = None
    hubbard: Mapping[str, Mapping] = field(default_factory=dict)

    def __post_init__(self) -> None:
        def bad(key: str, why: str) -> ValueError:
            return ValueError(f"{_KEY}.{key} {why}")

        from dft2mlip.dft.hubbard import parse_hubbard

        parse_hubbard(self.hubbard)  # one line naming the entry
        object.__setattr__(self, "hubbard", {k: dict(v) for k, v in sorted(self.hubbard.items())})
        if self.magnetic_order_muB is not None:
            order = [float(m) for m in self.magnetic_order_muB]
            object.__setattr__(self, "magnetic_order_muB", order if any(order) else None)

        if not isinstance(self.executable, str) or not self.executable.strip():
            raise bad("executable", f"must name the VASP program, got {self.executable!r}")
        for key, kind in (
            ("encut_eV", float),
            ("kspacing_per_A", float),
            ("ediff_eV", float),
            ("sigma_eV", float),
            ("ismear", int),
            ("ispin", int),
            ("nelm", int),
        ):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise bad(key, f"must be a number, got {value!r}")
            if kind is int and float(value) != int(value):
                raise bad(key, f"must be an integer, got {value!r}")
            if not math.isfinite(float(value)):
                raise bad(key, f"must be finite, got {value!r}")
            object.__setattr__(self, key, kind(value))
        if self.encut_eV <= 0:
            raise bad("encut_eV", f"must be > 0 eV, got {self.encut_eV}")
        if self.kspacing_per_A <= 0:
            raise bad("kspacing_per_A", f"must be > 0 1/Å, got {self.kspacing_per_A}")
        if not 0 < self.ediff_eV <= 1e-4:
            raise bad("ediff_eV", f"must be in (0, 1e-4] eV for stress labels, got {self.ediff_eV}")
        if self.sigma_eV <= 0:
            raise bad("sigma_eV", f"must be > 0 eV, got {self.sigma_eV}")
        if self.ismear not in (-5, -4, -3, -2, -1, 0, 1, 2, 3, 4, 5):
            raise bad("ismear", f"must be a VASP ISMEAR value (-5..5), got {self.ismear}")
        moments = {str(k): float(v) for k, v in dict(self.magnetic_moments_muB or {}).items()}
        object.__setattr__(self, "magnetic_moments_muB", moments)
        if any(m != 0 for m in moments.values()) or self.magnetic_order_muB is not None:
            object.__setattr__(self, "ispin", 2)  # MAGMOM per element, in the settings hash
        elif self.ispin != 1:
            raise bad(
                "ispin",
                f"= {self.ispin} needs initial moments: set dft.magnetic_moments_muB "
                "(e.g. {Fe: 2.5}); ISPIN follows from it",
            )
        if self.nelm < 1:
            raise bad("nelm", f"must be >= 1, got {self.nelm}")
        if str(self.prec).capitalize() not in ("Accurate", "Normal", "High", "Single"):
            raise bad("prec", f"must be Accurate, Normal, High or Single, got {self.prec!r}")
        object.__setattr__(self, "prec", str(self.prec).capitalize())
        object.__setattr__(self, "potcars", dict(self.potcars or {}))
        incar = {str(k).upper(): v for k, v in dict(self.incar or {}).items()}
        clash = sorted(set(incar) & set(_MANAGED))
        if clash:
            owner = _MANAGED[clash[0]]
            fix = (
                f"set {owner if '.' in owner else f'{_KEY}.{owner}'} instead"
                if owner
                else "the pipeline sets it for every label (a static single point); remove it"
            )
            raise bad(f"incar.{clash[0]}", f"is set by the pipeline; {fix}")
        object.__setattr__(self, "incar", incar)

    @classmethod
    def from_config(cls, vasp_cfg: Mapping) -> VaspSettings:
        """Build from ``config["dft"]["vasp"]``; unknown keys are rejected (typos)."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(vasp_cfg) - known)
        if unknown:
            raise ValueError(
                f"unknown key(s) {', '.join(f'{_KEY}.{k}' for k in unknown)}; "
                f"known keys: {', '.join(sorted(known))}"
            )
        return cls(**dict(vasp_cfg))

    def user_incar_settings(self) -> dict:
        """INCAR tags given to ``MatPESStaticSet`` on top of its own (forces and stress on)."""
        from dft2mlip.dft.hubbard import parse_hubbard, vasp_ldau_incar

        per_element = self.ispin == 2 and self.magnetic_order_muB is None
        return {
            **self.incar,
            "ENCUT": self.encut_eV,
            "KSPACING": self.kspacing_per_A,
            "KGAMMA": True,
            "EDIFF": self.ediff_eV,
            "ISMEAR": self.ismear,
            "SIGMA": self.sigma_eV,
            "PREC": self.prec,
            "ISPIN": self.ispin,
            "NELM": self.nelm,
            "NSW": 0,
            "IBRION": -1,
            "ISIF": 2,  # forces and the full stress tensor of a fixed cell
            "LCHARG": False,
            "LAECHG": False,
            "LWAVE": False,
            # per element (pymatgen expands it per site); a per-site order: the sites' own
            # moments (the structure's magmom site property); None: not spin-polarised
            "MAGMOM": (
                dict(sorted(self.magnetic_moments_muB.items()))
                if per_element
                else ({} if self.ispin == 2 else None)  # {}: the sites' own magmom property
            ),
            # per-site order: OUTCAR's per-site magnetization table, to check the order kept
            "LORBIT": 11 if self.magnetic_order_muB is not None else None,
            **vasp_ldau_incar(parse_hubbard(self.hubbard)),
        }

    def psp_dir(self) -> str | None:
        """POTCAR directory: ``potcar_dir``, else pymatgen's ``PMG_VASP_PSP_DIR``, else None."""
        if self.potcar_dir:
            return str(Path(self.potcar_dir).expanduser().resolve())
        from pymatgen.core import SETTINGS

        value = os.environ.get("PMG_VASP_PSP_DIR") or SETTINGS.get("PMG_VASP_PSP_DIR")
        return str(value) if value else None

    def template_incar(self) -> dict:
        """The structure-independent INCAR every label gets (MatPES base + overrides)."""
        from pymatgen.io.vasp.sets import MatPESStaticSet

        incar = {
            k: v for k, v in MatPESStaticSet.CONFIG["INCAR"].items() if k not in _STRUCTURE_TABLES
        }
        for key, value in self.user_incar_settings().items():
            if value is None:
                incar.pop(key, None)
            else:
                incar[key] = value
        return incar

    def physics_dict(self, potcar_hashes: Mapping[str, str] | None = None) -> dict:
        """Everything that defines the physics of a label (JSON-serialisable).

        The template INCAR without :data:`NON_PHYSICS_INCAR` tags, the POTCAR functional and
        symbols, and (when POTCARs are available) the sha256 of each POTCAR.
        """
        from pymatgen.io.vasp.sets import MatPESStaticSet

        incar = {
            k: v for k, v in sorted(self.template_incar().items()) if k not in NON_PHYSICS_INCAR
        }
        functional = self.potcar_functional or MatPESStaticSet.CONFIG.get("POTCAR_FUNCTIONAL")
        extra = {}
        if self.magnetic_order_muB is not None:
            extra["magnetic_order_muB"] = list(self.magnetic_order_muB)
        return {
            **extra,
            "engine": "vasp",
            "input_set": "MatPESStaticSet",
            "incar": {k: (v if not isinstance(v, float) else float(v)) for k, v in incar.items()},
            "potcar_functional": functional,
            "potcar_symbols": dict(sorted(self.potcars.items())),
            "potcar_sha256": dict(sorted((potcar_hashes or {}).items())),
        }

    def settings_hash(self, potcar_hashes: Mapping[str, str] | None = None) -> str:
        """First 12 hex characters of sha256 of the canonical JSON of :meth:`physics_dict`."""
        canonical = json.dumps(
            self.physics_dict(potcar_hashes), sort_keys=True, separators=(",", ":"), default=str
        )
        return hashlib.sha256(canonical.encode()).hexdigest()[:12]


def _input_set(atoms: Atoms, settings: VaspSettings):
    from pymatgen.io.ase import AseAtomsAdaptor
    from pymatgen.io.vasp.sets import MatPESStaticSet

    clean = atoms.copy()
    clean.calc = None
    clean.constraints = []
    # spin comes from the settings: per element, or per site (the structure's own moments,
    # inherited from the configured cell's sites); a site moment also stands for 0 (pymatgen
    # would replace a 0 from the MAGMOM dict by its own default table)
    clean.set_initial_magnetic_moments(_site_moments(atoms, settings))
    structure = AseAtomsAdaptor.get_structure(clean)
    if settings.ispin != 2:
        structure.remove_site_property("magmom")
    kwargs = {}
    if settings.potcar_functional:
        kwargs["user_potcar_functional"] = settings.potcar_functional
    return MatPESStaticSet(
        structure,
        user_incar_settings=settings.user_incar_settings(),
        user_potcar_settings=dict(settings.potcars),
        sort_structure=False,  # keep the label's atom order
        **kwargs,
    )


def _site_moments(atoms: Atoms, settings: VaspSettings) -> list[float]:
    """Each site's MAGMOM (μB): the structure's own moments under a per-site order, else the
    element's moment from the settings (0 when not spin-polarised)."""
    if settings.magnetic_order_muB is None:
        moments = settings.magnetic_moments_muB if settings.ispin == 2 else {}
        return [moments.get(s, 0.0) for s in atoms.symbols]
    return ordered_site_moments(atoms)


def potcar_hashes_from_file(path: str | os.PathLike) -> dict[str, str]:
    """sha256 of each single POTCAR in a (concatenated) POTCAR file, keyed by its symbol."""
    from pymatgen.io.vasp import Potcar

    return {
        single.symbol: hashlib.sha256(single.data.encode()).hexdigest()
        for single in Potcar.from_file(str(path))
    }


_TITEL = re.compile(r"^\s*TITEL\s*=\s*(\S+)\s+(\S+)", re.MULTILINE)
_LEXCH = re.compile(r"^\s*LEXCH\s*=\s*(\S+)", re.MULTILINE)
#: VASP's LEXCH tags of a POTCAR -> the functional's usual name
_LEXCH_NAMES = {"PE": "PBE", "CA": "LDA", "91": "PW91", "PS": "PBEsol", "AM": "AM05"}


def check_potcar_library(settings: VaspSettings, elements: list[str]) -> None:
    """Where POTCARs are configured, the one each element would get exists and its title is right.

    Looked up as pymatgen does (``<potcar_dir>/<functional dir>/<symbol>/POTCAR`` or
    ``.../POTCAR.<symbol>``, gzipped or not) and checked with :func:`check_potcar_titles`, so
    ``snakemake -n`` refuses a wrong library before any input is written. Without a POTCAR
    directory nothing is checked (inputs get a POTCAR.spec).

    Raises
    ------
    ValueError
        Naming ``dft.vasp.potcar_dir`` / ``dft.vasp.potcars.<element>``.
    """
    import gzip

    from pymatgen.io.vasp.inputs import POTCAR_FUNCTIONAL_MAP
    from pymatgen.io.vasp.sets import MatPESStaticSet

    psp_dir = settings.psp_dir()
    if psp_dir is None:
        return
    functional = settings.potcar_functional or MatPESStaticSet.CONFIG["POTCAR_FUNCTIONAL"]
    subdir = Path(psp_dir) / POTCAR_FUNCTIONAL_MAP.get(functional, functional)
    texts = []
    for element in elements:
        symbol = settings.potcars.get(element) or MatPESStaticSet.CONFIG["POTCAR"].get(element)
        tried = [subdir / symbol / "POTCAR", subdir / f"POTCAR.{symbol}"] if symbol else []
        found = [p.with_name(p.name + z) for p in tried for z in ("", ".gz")]
        path = next((p for p in found if p.is_file()), None)
        if path is None:
            raise ValueError(
                f"config key '{_KEY}.potcars.{element}': no POTCAR {symbol!r} ({functional}) "
                f"in {subdir}; fix {_KEY}.potcar_dir or name an installed symbol"
            )
        raw = path.read_bytes()
        texts.append(
            (gzip.decompress(raw) if path.suffix == ".gz" else raw).decode(errors="replace")
        )
    check_potcar_titles("".join(texts), list(elements))


def check_potcar_titles(potcar_text: str, species: list[str]) -> None:
    """Each single POTCAR is for its POSCAR species, and all share one functional.

    Parameters
    ----------
    potcar_text
        The concatenated POTCAR (one ``TITEL = PAW_PBE Fe_pv 02Aug2007`` line per species).
    species
        The POSCAR's species, in order.

    Raises
    ------
    ValueError
        Naming ``dft.vasp.potcars`` / ``dft.vasp.potcar_functional`` and what the titles say.
    """
    titles = _TITEL.findall(potcar_text)
    xc = _LEXCH.findall(potcar_text)
    if len(titles) != len(species):
        raise ValueError(
            f"the POTCAR holds {len(titles)} pseudopotentials for {len(species)} species "
            f"{species}; check {_KEY}.potcar_dir"
        )
    for (_, symbol), element in zip(titles, species, strict=True):
        found = re.match(r"[A-Z][a-z]?", symbol)
        if found is None or found.group(0) != element:
            raise ValueError(
                f"config key '{_KEY}.potcars.{element}': the POTCAR chosen for {element} is "
                f"titled {symbol!r}; name a {element} POTCAR symbol (e.g. {element}_pv)"
            )
    kinds = (
        [_LEXCH_NAMES.get(x, x) for x in xc] if len(xc) == len(titles) else [t for t, _ in titles]
    )
    if len(set(kinds)) > 1:
        listed = ", ".join(f"{e}: {k}" for e, k in zip(species, kinds, strict=True))
        raise ValueError(
            f"config key '{_KEY}.potcars' mixes functionals ({listed}); choose POTCARs of one "
            f"functional ({_KEY}.potcar_functional)"
        )


def write_vasp_input(atoms: Atoms, settings: VaspSettings, directory: str | os.PathLike) -> dict:
    """Write INCAR, POSCAR and POTCAR (or POTCAR.spec) for a static single point.

    Parameters
    ----------
    atoms
        Periodic structure (Å). Spin (ISPIN, MAGMOM per site) comes from the settings: per
        element (``magnetic_moments_muB``; the structure's own moments are ignored) or, under a
        per-site order (``magnetic_order_muB``), from the structure's ``initial_magmoms``.
    settings
        VASP settings. The KPOINTS file holds the mesh of the structure's family reference cell
        (:func:`write_family_kpoints`), which VASP uses instead of ``KSPACING``.
    directory
        Run directory (created).

    Returns
    -------
    dict
        ``{"potcar_spec": bool, "potcar_sha256": {symbol: sha256}, "files": [...],
        "kpoint_mesh": (n1, n2, n3)}``.
    """
    if not all(atoms.pbc):
        raise ValueError(f"VASP inputs need a periodic structure, got pbc={atoms.pbc.tolist()}")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    psp_dir = settings.psp_dir()
    spec = psp_dir is None
    input_set = _input_set(atoms, settings)
    if spec:
        input_set.write_input(str(directory), potcar_spec=True)
        hashes: dict[str, str] = {}
    else:
        from pymatgen.core import SETTINGS

        previous = SETTINGS.get("PMG_VASP_PSP_DIR")
        SETTINGS["PMG_VASP_PSP_DIR"] = psp_dir
        try:
            input_set.write_input(str(directory))
        finally:
            if previous is None:
                SETTINGS.pop("PMG_VASP_PSP_DIR", None)
            else:
                SETTINGS["PMG_VASP_PSP_DIR"] = previous
        check_potcar_titles(
            (directory / "POTCAR").read_text(errors="replace"), input_set.poscar.site_symbols
        )
        hashes = potcar_hashes_from_file(directory / "POTCAR")
    mesh = write_family_kpoints(atoms, settings, directory)
    files = sorted(p.name for p in directory.iterdir() if p.is_file())
    return {"potcar_spec": spec, "potcar_sha256": hashes, "files": files, "kpoint_mesh": mesh}


def write_family_kpoints(
    atoms: Atoms, settings: VaspSettings, directory: Path
) -> tuple[int, int, int]:
    """KPOINTS with the Γ-centred mesh of the structure's family reference cell.

    VASP reads KPOINTS when it exists and then ignores ``KSPACING``, which would otherwise size
    the mesh of every strained cell on its own. The INCAR keeps ``KSPACING`` (the settings hash
    and the parsed-INCAR check stay as they were); the mesh follows the same rule
    (:func:`dft2mlip.dft.qe.kpoint_mesh`) applied to the reference cell.
    """
    from dft2mlip.dft.qe import kpoint_mesh
    from dft2mlip.structures import kpoint_reference_cell

    mesh = kpoint_mesh(kpoint_reference_cell(atoms), settings.kspacing_per_A)
    (directory / "KPOINTS").write_text(
        f"Gamma-centred mesh of the structure family (KSPACING {settings.kspacing_per_A:g})\n"
        "0\nGamma\n{} {} {}\n0 0 0\n".format(*mesh)
    )
    return mesh


def check_ready_to_run(directory: str | os.PathLike, *, allow_potcar_spec: bool = False) -> None:
    """Refuse to start VASP without a POTCAR (inputs written with ``potcar_spec=True``).

    Parameters
    ----------
    directory
        Run directory.
    allow_potcar_spec
        Accept a ``POTCAR.spec`` instead of a POTCAR (only the test stand-in can run that).

    Raises
    ------
    FileNotFoundError
        Saying how to configure POTCARs.
    """
    directory = Path(directory)
    for name in ("INCAR", "POSCAR"):
        if not (directory / name).is_file():
            raise FileNotFoundError(f"VASP input {directory / name} does not exist")
    if (directory / "POTCAR").is_file():
        return
    if (directory / "POTCAR.spec").is_file() and allow_potcar_spec:
        return
    raise FileNotFoundError(
        f"no POTCAR in {directory}: the inputs were written with potcar_spec=True because no "
        "POTCAR directory is configured. Set dft.vasp.potcar_dir (or PMG_VASP_PSP_DIR in "
        "~/.config/.pmgrc.yaml, see pymatgen's POTCAR setup) and rerun the dft_input jobs"
    )


_TIMING = re.compile(r"Elapsed time \(sec\):\s*([\d.]+)")
_CORES = re.compile(r"running on\s+(\d+)\s+total cores")
_EDIFF_REACHED = "aborting loop because EDIFF is reached"
_OUTCAR_UNFINISHED = (
    "stopped before the end (walltime?): it ends before the timing block (VASP was killed, "
    "ran out of time or memory, or is still running)"
)


def _voigt_from_vasp_kb(stress_kb_3x3) -> np.ndarray:
    """VASP 3x3 stress (kB, compression positive) -> eV/Å³ Voigt, tension positive."""
    s = -np.asarray(stress_kb_3x3, dtype=float) * KBAR_TO_GPA * GPA_TO_EV_PER_A3
    return np.array([s[0, 0], s[1, 1], s[2, 2], s[1, 2], s[0, 2], s[0, 1]])


def vasp_kb_line_to_voigt(in_kb: list[float]) -> np.ndarray:
    """OUTCAR "in kB" line ``[xx, yy, zz, xy, yz, zx]`` (compression +) -> eV/Å³ Voigt,
    tension positive."""
    xx, yy, zz, xy, yz, zx = (float(v) for v in in_kb)
    return -np.array([xx, yy, zz, yz, zx, xy]) * KBAR_TO_GPA * GPA_TO_EV_PER_A3


def _structure_mismatch(parsed: Atoms, structure: Atoms) -> str | None:
    return structure_mismatch(parsed, structure, program="VASP", tolerance_A=STRUCTURE_TOLERANCE_A)


def _settings_mismatch(incar: Mapping, settings: VaspSettings) -> str | None:
    checks = {
        "ENCUT": settings.encut_eV,
        "EDIFF": settings.ediff_eV,
        "SIGMA": settings.sigma_eV,
        "ISMEAR": settings.ismear,
        "KSPACING": settings.kspacing_per_A,
    }
    for key, expected in checks.items():
        if key in incar and not math.isclose(float(incar[key]), float(expected), rel_tol=1e-6):
            return f"VASP ran with {key} = {incar[key]}, the settings say {expected}"
    if "PREC" in incar and str(incar["PREC"]).lower()[:1] != settings.prec.lower()[:1]:
        return f"VASP ran with PREC = {incar['PREC']}, the settings say {settings.prec}"
    return None


def _outcar_info(text: str) -> dict:
    info: dict = {}
    if m := _TIMING.search(text):
        info["wall_time_s"] = float(m.group(1))
    if m := _CORES.search(text):
        info["mpi_processes"] = int(m.group(1))
    info.update(vasp_magnetization(text))  # final magnetisation (ISPIN = 2)
    first = text.splitlines()[0].strip() if text.strip() else ""
    if first.startswith("vasp."):
        info["code_version"] = first.split()[0]
        if "STAND-IN" in first.upper():
            info["standin"] = True
    return info


def parse_vasp_output(
    directory: str | os.PathLike,
    structure: Atoms,
    settings_hash: str,
    *,
    settings: VaspSettings | None = None,
) -> Label:
    """Parse a VASP single point (``vasprun.xml``, falling back to ``OUTCAR``) into a Label.

    Status "ok" needs a finished run (OUTCAR timing block), converged electronic steps
    (fewer than NELM in vasprun.xml; the "EDIFF is reached" line in OUTCAR), energy, forces
    and stress, and the structure VASP saw equal to ``structure``; "scf_not_converged" when NELM
    was reached; "failed" otherwise, saying why.

    Parameters
    ----------
    directory
        The run directory.
    structure
        The input structure; the label keeps its exact cell, positions and ``info``.
    settings_hash
        :meth:`VaspSettings.settings_hash` of the settings used to write the inputs.
    settings
        If given, ENCUT/EDIFF/SIGMA/ISMEAR/KSPACING/PREC that VASP read are checked.

    Returns
    -------
    Label
        When ok: ``REF_energy`` (eV, free energy TOTEN, consistent with the forces),
        ``REF_forces`` (eV/Å), ``REF_stress`` (eV/Å³, Voigt, tension positive).
    """
    directory = Path(directory)
    prov: dict = {"engine": "vasp", "program": "vasp", "parser": f"dft2mlip {__version__}"}
    outcar = directory / "OUTCAR"
    outcar_text = outcar.read_text(errors="replace") if outcar.is_file() else ""
    prov.update(_outcar_info(outcar_text))

    label = functools.partial(
        structure_label,
        structure,
        provenance=prov,
        settings_hash=settings_hash,
        dft_engine="vasp",
        default_id=directory.name,
    )

    if not outcar_text.strip():
        return label("failed", f"no OUTCAR in {directory} (did VASP start?)")
    if "General timing and accounting" not in outcar_text:
        return label("failed", f"OUTCAR {_OUTCAR_UNFINISHED}")
    frames, incar, why = _run_frames(directory, outcar_text, prov)
    if not frames:
        return label("failed", why)
    frame = frames[-1]
    status, why = _last_frame_refusal(frames, incar, structure, settings, prov)
    if why:
        return label(status, why)
    atoms = structure.copy()
    atoms.calc = None
    atoms.info["REF_energy"] = float(frame.energy_eV)  # eV, free energy TOTEN
    atoms.arrays["REF_forces"] = np.asarray(frame.forces, dtype=float)  # eV/Å
    atoms.info["REF_stress"] = np.asarray(frame.stress, dtype=float)  # eV/Å³, tension +
    values = [atoms.info["REF_energy"], atoms.arrays["REF_forces"], atoms.info["REF_stress"]]
    if not all(np.isfinite(v).all() for v in values):
        return label("failed", "VASP output has NaN or Inf energy, forces or stress")
    prov["n_scf_iterations"] = frame.n_scf
    return label("ok", f"SCF converged in {frame.n_scf} steps", atoms)


def _last_frame_refusal(
    frames: list, incar: Mapping, structure: Atoms, settings: VaspSettings | None, prov: Mapping
) -> tuple[str, str]:
    """``(status, why)`` when the run's last frame cannot be an ok label of ``structure`` (no
    TOTEN, forces or stress; SCF not converged; other settings; another structure), else
    ``("ok", "")``."""
    frame = frames[-1]
    for name, value in (("free energy TOTEN", frame.energy_eV), ("forces", frame.forces),
                        ("'in kB' stress line (ISIF?)", frame.stress)):  # fmt: skip
        if value is None:
            return "failed", f"{prov.get('output_file', 'OUTCAR')} has no {name}"
    if not frame.converged:
        return "scf_not_converged", (
            f"electronic SCF not converged in {frame.n_scf} steps (NELM reached); "
            f"{_NOT_CONVERGED_HINT}"
        )
    if settings is not None and (why := _settings_mismatch(incar, settings)):
        return "failed", why
    if why := _structure_mismatch(frame.atoms, structure):
        if len(frames) > 1:
            why += (
                f"; the output holds {len(frames)} ionic steps and step {len(frames)} (the last) "
                "was compared (a relaxation? import it through dataset.import instead)"
            )
        return "failed", why
    return "ok", ""


#: INCAR tags whose values define the physics of an imported VASP label (its settings hash)
SETTINGS_TAGS = (
    "ENCUT", "PREC", "ISPIN", "LNONCOLLINEAR", "LSORBIT", "GGA", "METAGGA", "LASPH", "LREAL",
    "ISMEAR", "SIGMA", "LDAU", "LDAUTYPE", "LDAUL", "LDAUU", "LDAUJ", "IVDW", "LHFCALC", "AEXX",
    "KSPACING", "KGAMMA",
)  # fmt: skip
#: names vasprun.xml's <parameters> uses for an INCAR tag
_PARAMETER_NAME = {"ENCUT": "ENMAX", "METAGGA": "LMETAGGA"}
#: tags that count only when the INCAR set them (VASP ignores KSPACING with a KPOINTS file)
_INCAR_ONLY = ("KSPACING", "KGAMMA")
_XML_ITEM = re.compile(r"<([iv])(?:\s+type=\"\w+\")?\s+name=\"(\w+)\"\s*>([^<]*)</\1>")
_XML_TITLE = re.compile(
    r"<rc><c>\s*\d+</c><c>[^<]*</c><c>[^<]*</c><c>[^<]*</c><c>\s*([^<]*?)\s*</c></rc>"
)
_OUTCAR_MESH = re.compile(r"generate k-points for:\s+(\d+)\s+(\d+)\s+(\d+)")
_OUTCAR_SHIFT = re.compile(
    r"Shift w\.r\.t\. Gamma in fractional coordinates \(k-lattice\)\s*\n\s*(\S+)\s+(\S+)\s+(\S+)"
)
_OUTCAR_POTCAR = re.compile(r"^\s*POTCAR:\s+(.+?)\s*$", re.MULTILINE)


def _incar_value(text: str):
    """An INCAR value as VASP prints it -> bool, float, list of floats or lower-case text."""
    words = text.replace(";", " ").split()
    if len(words) == 1 and words[0].upper().strip(".") in ("T", "F", "TRUE", "FALSE"):
        return words[0].upper().strip(".")[0] == "T"
    try:
        numbers = [float(w) for w in words]
    except ValueError:
        return " ".join(words).lower()
    return numbers[0] if len(numbers) == 1 else numbers


def _xml_items(text: str, block: str) -> dict:
    start, end = text.find(f"<{block}>"), text.find(f"</{block}>")
    if start < 0 or end < 0:
        return {}
    return {name: value for _, name, value in _XML_ITEM.findall(text[start:end])}


def _settings_from_vasprun(path: Path) -> tuple[dict, dict]:
    """(INCAR tags VASP used, k-points and POTCARs) from vasprun.xml before its first step."""
    head = read_until(path, "<calculation>")
    incar, parameters = _xml_items(head, "incar"), _xml_items(head, "parameters")
    tags = {}
    for tag in SETTINGS_TAGS:
        value = parameters.get(_PARAMETER_NAME.get(tag, tag), incar.get(tag))
        if tag in _INCAR_ONLY:  # <parameters> lists their defaults even when unused
            value = incar.get(tag)
        if value is not None:
            tags[tag] = _incar_value(value)
    start = head.find("<kpoints>")
    kpoints = head[start : head.find("</kpoints>")] if start >= 0 else ""
    extra = {
        "MAGMOM_set": "MAGMOM" in incar,
        "kpoints": _vasprun_kpoints(kpoints),
        "potcars": _XML_TITLE.findall(head),
        "PSTRESS": _incar_value(parameters.get("PSTRESS", incar.get("PSTRESS", "0"))),
    }  # fmt: skip
    return tags, extra


def _mesh_record(mesh, shift) -> dict:
    """The k-point sampling as the project hashes it: the mesh and its shift from Γ (fractions
    of a mesh step, what VASP prints as "Shift w.r.t. Gamma"), never the irreducible count,
    which depends on the structure's symmetry."""
    record: dict = {"mesh": [int(n) for n in mesh]}
    record["shift"] = [round(float(s) % 1.0, 6) for s in shift] if shift else "not printed"
    return record


def _vasprun_kpoints(block: str) -> dict | None:
    """Mesh and shift from vasprun.xml's ``<generation>`` (Monkhorst-Pack: even divisions
    are shifted by half a step), None for an explicit k-point list."""
    style = re.search(r"<generation param=\"([^\"]*)\"", block)
    divisions = re.search(r"name=\"divisions\">([^<]*)<", block)
    if style is None or divisions is None:
        return None
    mesh = [int(v) for v in divisions.group(1).split()]
    user = re.search(r"name=\"usershift\">([^<]*)<", block)
    shift = [float(v) for v in user.group(1).split()] if user else [0.0, 0.0, 0.0]
    if style.group(1).lower().startswith("m"):
        shift = [s + (0.5 if n % 2 == 0 else 0.0) for s, n in zip(shift, mesh, strict=True)]
    return _mesh_record(mesh, shift)


def _settings_from_outcar(path: Path) -> tuple[dict, dict]:
    """(INCAR tags VASP used, k-points and POTCARs) from the OUTCAR header."""
    head = read_until(path, "Iteration")
    tags = {}
    for tag in SETTINGS_TAGS:
        if m := re.search(rf"(?<![A-Z_]){tag}\s*=\s*([-+\w.]+(?:[ \t]+-?\d+\.?\d*)*)", head):
            tags[tag] = _incar_value(m.group(1))
    tags["LDAU"] = tags.get("LDAU", "LDA+U is selected" in head)
    mesh, shift = _OUTCAR_MESH.search(head), _OUTCAR_SHIFT.search(head)
    extra = {
        "MAGMOM_set": bool(re.search(r"(?<![A-Z_])MAGMOM\s*=", head)),
        "kpoints": _mesh_record(mesh.groups(), shift.groups() if shift else None) if mesh
        else None,
        "potcars": list(dict.fromkeys(_OUTCAR_POTCAR.findall(head))),
        "PSTRESS": _incar_value(m.group(1)) if (m := re.search(r"PSTRESS\s*=\s*(\S+)", head))
        else 0.0,
    }  # fmt: skip
    return tags, extra


def vasp_settings(directory: str | os.PathLike) -> dict:
    """The physics settings of a finished VASP run (for the import settings hash).

    From ``vasprun.xml`` (its ``<parameters>``, the values VASP used, else ``<incar>``) when the
    directory has one, else from the OUTCAR header; both are read only up to the first ionic
    step. Covers :data:`SETTINGS_TAGS`, whether MAGMOM was set, the k-points (KSPACING when it
    was used, else the mesh and its shift from Γ, else None: never the irreducible count, which
    depends on the structure's symmetry) and the POTCAR titles.
    ``PSTRESS`` is recorded too: it does not change the energy, forces or stress VASP reports,
    but it changes what a relaxation did.
    """
    directory = Path(directory)
    settings: dict = {"engine": "vasp"}
    if (directory / "vasprun.xml").is_file():
        tags, extra = _settings_from_vasprun(directory / "vasprun.xml")
    elif (directory / "OUTCAR").is_file():
        tags, extra = _settings_from_outcar(directory / "OUTCAR")
    else:
        return settings
    # k-points: KSPACING when VASP used it (the mesh then follows from each cell), else the
    # mesh and its shift; None (an explicit list, or nothing printed) is left to the importer
    if "KSPACING" in tags:
        extra["kpoints"] = {"from": "KSPACING"}
    settings.update(tags)
    settings.update(extra)
    return settings


def _run_frames(directory: Path, outcar_text: str, prov: dict) -> tuple[list, dict, str]:
    """Frames, INCAR and why-not of a run: vasprun.xml when its last step has forces and
    stress, else OUTCAR."""
    frames, incar, why = [], {}, ""
    if (directory / "vasprun.xml").is_file():
        frames, incar, why = _vasprun_frames(directory / "vasprun.xml", prov)
        if frames and (frames[-1].forces is None or frames[-1].stress is None):
            frames, why = [], "vasprun.xml has no forces or stress (ISIF/IBRION?)"
        if why:
            prov["vasprun_error"] = why
    if not frames:
        frames, why = _outcar_frames(directory / "OUTCAR", outcar_text, prov)
    return frames, incar, why


def _vasprun_frames(path: Path, prov: dict) -> tuple[list[OutputFrame], dict, str]:
    """Every ionic step of vasprun.xml (pymatgen), the INCAR, and why not when unreadable.

    vasprun.xml's ionic-step ``e_fr_energy`` is the enthalpy ``E + PSTRESS·V``; the PV term is
    taken off, so the energy is TOTEN (as in OUTCAR) whatever PSTRESS is.
    """
    import warnings

    from pymatgen.io.vasp import Vasprun

    try:
        with warnings.catch_warnings():  # an unconverged run is reported by the label status
            warnings.simplefilter("ignore")
            run = Vasprun(str(path), parse_dos=False, parse_eigen=False,
                          parse_projected_eigen=False, parse_potcar_file=False,
                          exception_on_bad_xml=True)  # fmt: skip
    except Exception as err:  # pymatgen raises many kinds on malformed or unfinished files
        why = f"{path.name} stopped before the end (walltime?) or is malformed: pymatgen: "
        return [], {}, why + f"{type(err).__name__}: {err}"
    nelm = int(run.parameters.get("NELM", 60))
    pstress_ev_per_a3 = float(run.parameters.get("PSTRESS", 0.0)) * KBAR_TO_GPA * GPA_TO_EV_PER_A3
    frames = []
    for k, step in enumerate(run.ionic_steps):
        atoms = _bare_atoms(step["structure"])
        n_scf = _scf_count(step.get("electronic_steps", []), bool(run.incar.get("LEPSILON")))
        last = k == len(run.ionic_steps) - 1
        energy = step.get("e_fr_energy")
        frames.append(OutputFrame(
            atoms,
            None if energy is None else float(energy) - pstress_ev_per_a3 * atoms.get_volume(),
            None if step.get("forces") is None else np.asarray(step["forces"], dtype=float),
            None if step.get("stress") is None else _voigt_from_vasp_kb(step["stress"]),
            bool(run.converged_electronic) if last else n_scf < nelm,
            n_scf,
        ))  # fmt: skip
    prov.update(
        output_file=path.name,
        code_version=" ".join(
            str(run.generator.get(k, "")).strip() for k in ("version", "subversion")
        ).strip(),
        potcars=list(run.potcar_symbols),
        n_kpoints_irreducible=len(run.actual_kpoints),
        nelm=nelm,
        pstress_kB=float(run.parameters.get("PSTRESS", 0.0)),
    )
    if "stand-in" in str(run.generator.get("subversion", "")).lower():
        prov["standin"] = True
    return frames, dict(run.incar), ""


def _scf_count(electronic_steps: list, lepsilon: bool) -> int:
    """SCF iterations of one ionic step. With LEPSILON, vasprun.xml lists the linear-response
    steps after the SCF in the same ionic step; the SCF ends at the first step after the first
    that has a full energy record again (pymatgen's rule for ``converged_electronic``)."""
    if not lepsilon:
        return len(electronic_steps)
    energies_only = {"e_wo_entrp", "e_fr_energy", "e_0_energy"}
    index = 1
    while index < len(electronic_steps) and set(electronic_steps[index]) == energies_only:
        index += 1
    return min(index + 1, len(electronic_steps))


def _bare_atoms(structure) -> Atoms:
    """ASE atoms (symbols, cell, positions only) of a pymatgen structure."""
    return Atoms(
        [str(site.specie) for site in structure],
        positions=structure.cart_coords,
        cell=structure.lattice.matrix,
        pbc=True,
    )


def _outcar_frames(path: Path, text: str, prov: dict) -> tuple[list[OutputFrame], str]:
    """Every ionic step of an OUTCAR (ASE's ``vasp-out`` reader), judged step by step.

    A step is converged when its own electronic loop printed "EDIFF is reached"; its SCF
    iterations are the ``Iteration <step>(<n>)`` lines of that step only.
    """
    import ase.io

    try:
        images = ase.io.read(path, format="vasp-out", index=":")
    except Exception as err:  # ASE raises many kinds on malformed files
        return [], f"ASE could not read {path.name}: {type(err).__name__}: {err}"
    frames = []
    for k, image in enumerate(images):
        results = image.calc.results if image.calc is not None else {}
        starts = [m.start() for m in re.finditer(rf"-+ Iteration\s+{k + 1}\(\s*\d+\)", text)]
        following = re.search(rf"-+ Iteration\s+{k + 2}\(", text)
        end = following.start() if following else len(text)
        step_text = text[starts[0] : end] if starts else ""
        atoms = Atoms(image.get_chemical_symbols(), positions=image.positions, cell=image.cell,
                      pbc=True)  # fmt: skip
        frames.append(OutputFrame(
            atoms,
            results.get("free_energy"),  # free energy TOTEN (consistent with the forces)
            results.get("forces"),
            results.get("stress"),  # ASE: "in kB" (compression +) -> eV/Å³, tension +, Voigt
            _EDIFF_REACHED in step_text,
            len(starts),
        ))  # fmt: skip
    prov.update(output_file=path.name, potcars=_OUTCAR_POTCAR.findall(text)[: len(set(
        images[-1].symbols))] if images else [])  # fmt: skip
    return frames, "" if frames else f"{path.name} holds no ionic step with TOTEN"


def read_vasp_run(directory: str | os.PathLike) -> RunOutput:
    """A VASP run directory as frames, settings and provenance, or the reason for no label.

    ``vasprun.xml`` is read when it is there and complete, else ``OUTCAR`` (a complete one:
    with the timing block); neither POSCAR nor the other file is needed.
    """
    directory = Path(directory)
    vasprun, outcar = directory / "vasprun.xml", directory / "OUTCAR"
    outcar_text = outcar.read_text(errors="replace") if outcar.is_file() else ""
    prov: dict = {"engine": "vasp", "program": "vasp", "parser": f"dft2mlip {__version__}"}
    prov.update(_outcar_info(outcar_text))
    run = RunOutput(vasprun if vasprun.is_file() else outcar, "vasp", [], prov,
                    vasp_settings(directory))  # fmt: skip
    why = ""
    if vasprun.is_file():
        run.frames, _, why = _vasprun_frames(vasprun, prov)
    if not run.frames and outcar_text.strip():
        if "General timing and accounting" not in outcar_text:
            why = f"OUTCAR {_OUTCAR_UNFINISHED}" + (f"; {why}" if why else "")
        else:
            if why:
                prov["vasprun_error"] = why
            run.path = outcar
            run.frames, why = _outcar_frames(outcar, outcar_text, prov)
    if not run.frames:
        why = why or f"no vasprun.xml or OUTCAR in {directory}"
        run.failure = ("failed", why + _stdout_error(directory))
    return run


#: where VASP's standard output usually is (custodian's VaspJob writes vasp.out)
_VASP_STDOUT = ("vasp.out", "stdout", "vasp.log")


def _stdout_error(directory: Path) -> str:
    """VASP's own last error line from its standard output in ``directory`` ('' if none):
    VASP prints its errors there, not in OUTCAR or vasprun.xml."""
    for name in _VASP_STDOUT:
        if (directory / name).is_file():
            text = (directory / name).read_text(errors="replace")
            errors = [ln.strip(" |") for ln in text.splitlines() if "error" in ln.lower()]
            if errors:
                return f"; {name} says: {errors[-1][:200]}"
    return ""


#: VASP's words (OUTCAR and standard output) when a relaxation reached EDIFFG
_RELAX_DONE = "reached required accuracy - stopping structural energy minimisation"


def write_relax_input(atoms: Atoms, settings: VaspSettings, directory, thresholds) -> dict:
    """Write INCAR/POSCAR/POTCAR/KPOINTS for a cell + ion relaxation with the dataset's settings.

    The single point's input set (:func:`write_vasp_input`: ENCUT, k-mesh, smearing, POTCARs,
    spin) with ``IBRION = 2`` (conjugate gradient), ``ISIF = 3`` (cell shape and volume and
    ions), ``NSW`` and ``EDIFFG = -fmax`` (forces, eV/Å) from ``thresholds``. VASP does not
    recompute the basis at the relaxed cell: its residual stress carries the Pulay stress of
    the starting basis (raise ENCUT, or rerun the relaxation, when it matters).

    Returns
    -------
    dict
        ``settings_hash``, ``kpoint_mesh``, ``potcar_spec``.
    """
    return _write_relax(atoms, settings, directory, isif=3, nsw=thresholds.max_steps,
                        fmax_eV_per_A=thresholds.fmax_eV_per_A)  # fmt: skip


def write_fixed_cell_relax_input(
    atoms: Atoms, settings: VaspSettings, directory, *, fmax_eV_per_A: float, max_steps: int
) -> dict:
    """The ionic relaxation inside one fixed strained cell (relaxed-ion elastic constants): the
    single point's input set with ``IBRION = 2``, ``ISIF = 2`` (ions only; the stress is still
    computed), ``NSW = max_steps`` and ``EDIFFG = -fmax_eV_per_A``. The cell keeps its basis,
    so no Pulay stress enters beyond the single points'. Returns what :func:`write_relax_input`
    returns."""
    return _write_relax(atoms, settings, directory, isif=2, nsw=max_steps,
                        fmax_eV_per_A=fmax_eV_per_A)  # fmt: skip


def _write_relax(atoms, settings, directory, *, isif: int, nsw: int, fmax_eV_per_A: float) -> dict:
    from pymatgen.io.vasp import Incar

    directory = Path(directory)
    written = write_vasp_input(atoms, settings, directory)
    incar = Incar.from_file(directory / "INCAR")
    incar.update({"IBRION": 2, "ISIF": int(isif), "NSW": int(nsw),
                  "EDIFFG": -float(fmax_eV_per_A)})  # fmt: skip
    incar.write_file(directory / "INCAR")
    return {
        "settings_hash": settings.settings_hash(written["potcar_sha256"]),
        "kpoint_mesh": list(written["kpoint_mesh"]),
        "potcar_spec": written["potcar_spec"],
    }


def _relax_converged(directory: Path, n_steps: int, max_steps: int) -> bool:
    """VASP printed "reached required accuracy", or stopped before NSW ionic steps."""
    texts = [(directory / n).read_text(errors="replace") for n in ("OUTCAR", *_VASP_STDOUT)
             if (directory / n).is_file()]  # fmt: skip
    return any(_RELAX_DONE in t for t in texts) or 0 < n_steps < int(max_steps)


def parse_fixed_cell_relax(
    directory, structure: Atoms, settings_hash: str, *, settings: VaspSettings, max_steps: int
) -> Label:
    """Label of the last ionic step of a fixed-cell relaxation (input by
    :func:`write_fixed_cell_relax_input`).

    Everything :func:`parse_vasp_output` checks, against ``structure`` with the relaxed positions
    (a changed cell fails as a structure mismatch); "failed" naming
    ``validation.elastic.relax_max_steps`` when VASP used all NSW steps without reaching EDIFFG.
    ``info["relax_ionic_steps"]`` records the ionic steps after the first.
    """
    directory = Path(directory)
    run = read_vasp_run(directory)
    relaxed = structure.copy()
    if run.frames and len(run.frames[-1].atoms) == len(structure):
        relaxed.positions = run.frames[-1].atoms.positions
    label = parse_vasp_output(directory, relaxed, settings_hash, settings=settings)
    if label.status != "ok":
        return label
    n_steps = len(run.frames)
    if not _relax_converged(directory, n_steps, max_steps):
        label.status = "failed"
        label.message = (
            f"VASP relaxation used all NSW = {max_steps} ionic steps without reaching EDIFFG; "
            f"raise validation.elastic.relax_max_steps{_stdout_error(directory)}"
        )
        return label
    label.atoms.info["relax_ionic_steps"] = n_steps - 1
    label.message = f"relaxed in {n_steps} ionic steps ({label.message})"
    return label


def read_relax(directory, thresholds):
    """The outcome of the relaxation in ``directory``: the last ionic step of vasprun.xml (or
    OUTCAR) is the relaxed state; converged when VASP printed "reached required accuracy" (or
    stopped before NSW); "failed" with VASP's cause otherwise."""
    directory = Path(directory)
    run = read_vasp_run(directory)
    n_steps = len(run.frames)
    done = _relax_converged(directory, n_steps, thresholds.max_steps)
    why_not = (f"VASP relaxation stopped after NSW = {thresholds.max_steps} ionic steps "
               "without reaching EDIFFG; raise dft.relax.max_steps"
               f"{_stdout_error(directory)}")  # fmt: skip
    note = "; stress of the last ionic step (VASP keeps the starting basis: Pulay stress)"
    return outcome_from_run(run, converged=done, n_steps=n_steps, why_not=why_not, note=note)
