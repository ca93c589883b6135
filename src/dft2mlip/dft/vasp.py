"""VASP: settings, tight static single-point inputs (pymatgen ``MatPESStaticSet``) and parsing.

Units are converted once, here, at the parser boundary. VASP prints the stress "in kB"
(1 kB = 0.1 GPa), COMPRESSION positive, in the order ``[xx, yy, zz, xy, yz, zx]`` (OUTCAR);
``vasprun.xml`` holds the same compression-positive tensor in kB as a 3x3 matrix (pymatgen's
``Vasprun`` keeps both the sign and the unit). The project's stress is eV/Å³, tension positive,
Voigt ``[xx, yy, zz, yz, xz, xy]``: ``sigma = -0.1 GPa * value``, reordered.

The training energy is VASP's ``free  energy   TOTEN`` (``e_fr_energy``), the one consistent
with the forces; pymatgen's ``Vasprun.final_energy`` is the σ→0 extrapolation and is not used.

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
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np
from ase import Atoms

from dft2mlip import __version__
from dft2mlip.data import Label, structure_label, structure_mismatch
from dft2mlip.dft.magnetism import vasp_magnetization
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
}
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

    def __post_init__(self) -> None:
        def bad(key: str, why: str) -> ValueError:
            return ValueError(f"{_KEY}.{key} {why}")

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
        if any(m != 0 for m in moments.values()):
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
            raise bad(
                f"incar.{clash[0]}",
                f"is set by {_KEY}.{_MANAGED[clash[0]]}; set it there instead",
            )
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
            # per element (pymatgen expands it per site); None: not spin-polarised
            "MAGMOM": dict(sorted(self.magnetic_moments_muB.items())) if self.ispin == 2 else None,
            "LORBIT": None,
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
        return {
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
    # spin comes from the settings only; a site moment also stands for 0 (pymatgen would
    # replace a 0 from the MAGMOM dict by its own default table)
    moments = settings.magnetic_moments_muB if settings.ispin == 2 else {}
    clean.set_initial_magnetic_moments([moments.get(s, 0.0) for s in clean.symbols])
    structure = AseAtomsAdaptor.get_structure(clean)
    if not moments:
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
        Periodic structure (Å). Its own initial moments are ignored: spin (ISPIN, MAGMOM per
        site) comes from ``settings.magnetic_moments_muB``.
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
        return label(
            "failed",
            "OUTCAR ends before the timing block (VASP was killed, ran out of time or memory, "
            "or is still running)",
        )
    vasprun = directory / "vasprun.xml"
    results = None
    if vasprun.is_file():
        results, why = _from_vasprun(vasprun, prov)
        if results is None:
            prov["vasprun_error"] = why
    if results is None:
        results, why = _from_outcar(outcar, outcar_text, prov)
        if results is None:
            return label("failed", why)
    if not results["converged"]:
        return label(
            "scf_not_converged",
            f"electronic SCF not converged in {results.get('n_scf', '?')} steps (NELM "
            f"reached); {_NOT_CONVERGED_HINT}",
        )
    if settings is not None and (why := _settings_mismatch(results.get("incar", {}), settings)):
        return label("failed", why)
    if why := _structure_mismatch(results["atoms"], structure):
        return label("failed", why)
    atoms = structure.copy()
    atoms.calc = None
    atoms.info["REF_energy"] = float(results["energy"])  # eV, free energy TOTEN
    atoms.arrays["REF_forces"] = np.asarray(results["forces"], dtype=float)  # eV/Å
    atoms.info["REF_stress"] = np.asarray(results["stress"], dtype=float)  # eV/Å³, tension +
    values = [atoms.info["REF_energy"], atoms.arrays["REF_forces"], atoms.info["REF_stress"]]
    if not all(np.isfinite(v).all() for v in values):
        return label("failed", "VASP output has NaN or Inf energy, forces or stress")
    return label("ok", f"SCF converged in {results.get('n_scf', '?')} steps", atoms)


def _from_vasprun(path: Path, prov: dict) -> tuple[dict | None, str]:
    import warnings

    from pymatgen.io.ase import AseAtomsAdaptor
    from pymatgen.io.vasp import Vasprun

    try:
        with warnings.catch_warnings():  # an unconverged run is reported by the label status
            warnings.simplefilter("ignore")
            run = Vasprun(
                str(path),
                parse_dos=False,
                parse_eigen=False,
                parse_projected_eigen=False,
                parse_potcar_file=False,
                exception_on_bad_xml=True,
            )
    except Exception as err:  # pymatgen raises many kinds on malformed files
        return None, f"pymatgen could not read {path.name}: {type(err).__name__}: {err}"
    step = run.ionic_steps[-1]
    n_scf = len(step.get("electronic_steps", []))
    prov.update(
        output_file=path.name,
        code_version=" ".join(
            str(run.generator.get(k, "")).strip() for k in ("version", "subversion")
        ).strip(),
        potcars=list(run.potcar_symbols),
        n_scf_iterations=n_scf,
        n_kpoints_irreducible=len(run.actual_kpoints),
        nelm=int(run.parameters.get("NELM", 60)),
    )
    if "stand-in" in str(run.generator.get("subversion", "")).lower():
        prov["standin"] = True
    stress = step.get("stress")
    if stress is None or step.get("forces") is None:
        return None, f"{path.name} has no forces or stress (ISIF/IBRION?)"
    return {
        "converged": bool(run.converged_electronic),
        "n_scf": n_scf,
        "energy": float(step["e_fr_energy"]),  # free energy TOTEN (consistent with forces)
        "forces": np.asarray(step["forces"], dtype=float),
        # vasprun.xml: kB, compression positive -> eV/Å³, tension positive, ASE Voigt
        "stress": _voigt_from_vasp_kb(stress),
        "atoms": AseAtomsAdaptor.get_atoms(run.final_structure),
        "incar": dict(run.incar),
    }, ""


def _from_outcar(path: Path, text: str, prov: dict) -> tuple[dict | None, str]:
    import ase.io

    try:
        parsed = ase.io.read(path, format="vasp-out", index=-1)
    except Exception as err:  # ASE raises many kinds on malformed files
        return None, f"ASE could not read {path.name}: {type(err).__name__}: {err}"
    results = parsed.calc.results if parsed.calc is not None else {}
    if results.get("free_energy") is None or results.get("forces") is None:
        return None, f"{path.name} has no free energy TOTEN or forces"
    kb_lines = re.findall(r"^\s*in kB\s+(.+)$", text, re.MULTILINE)
    if not kb_lines:
        return None, f"{path.name} has no 'in kB' stress line (ISIF?)"
    n_scf = len(re.findall(r"-+ Iteration\s+\d+\(\s*\d+\)", text))
    prov.update(output_file=path.name, n_scf_iterations=n_scf)
    prov["potcars"] = re.findall(r"POTCAR:\s+(.+)", text)[: len(set(parsed.symbols))]
    return (
        {
            "converged": _EDIFF_REACHED in text,
            "n_scf": n_scf,
            "energy": float(results["free_energy"]),  # free energy TOTEN
            "forces": np.asarray(results["forces"], dtype=float),
            "stress": vasp_kb_line_to_voigt(kb_lines[-1].split()[:6]),
            "atoms": parsed,
            "incar": {},
        },
        "",
    )
