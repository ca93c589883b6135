"""Quantum ESPRESSO settings: validation, pseudopotential lookup and the settings hash.

The settings hash identifies the *physics* of a label (cutoffs, k-point density, smearing, SCF
threshold, pseudopotential files and their md5). Every label of a dataset must carry the same
hash. Parameters that error recovery may change without changing the result (``mixing_beta``,
``electron_maxstep``, the executable, directories) are deliberately not part of it.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path

from dft2mlip.dft.hubbard import parse_hubbard

DEFAULT_PSEUDO_DIR = Path("/usr/share/espresso/pseudo")
_KEY = "dft.qe"
_OCCUPATIONS = {"smearing", "fixed", "tetrahedra", "tetrahedra_lin", "tetrahedra_opt"}
# spellings pw.x accepts for `smearing`
_SMEARINGS = {
    "gaussian", "gauss",
    "methfessel-paxton", "m-p", "mp",
    "marzari-vanderbilt", "cold", "m-v", "mv",
    "fermi-dirac", "f-d", "fd",
}  # fmt: skip
#: namelists ``dft.qe.extra`` may add keys to
_EXTRA_NAMELISTS = ("control", "system", "electrons", "ions", "cell")
#: pw.x keys the pipeline sets itself -> the dft.qe key that sets them ("" = not configurable)
_OWNED = {
    "calculation": "", "tstress": "", "tprnfor": "", "prefix": "", "pseudo_dir": "pseudo_dir",
    "outdir": "", "disk_io": "", "ibrav": "", "nat": "", "ntyp": "", "celldm": "",
    "ecutwfc": "ecutwfc_Ry", "ecutrho": "ecutrho_Ry", "occupations": "occupations",
    "smearing": "smearing", "degauss": "degauss_Ry", "conv_thr": "conv_thr_Ry",
    "electron_maxstep": "electron_maxstep", "mixing_beta": "mixing_beta",
    "nspin": "dft.magnetic_moments_muB / dft.magnetic_order",
    "starting_magnetization": "dft.magnetic_moments_muB / dft.magnetic_order",
    "tot_magnetization": "dft.magnetic_moments_muB / dft.magnetic_order",
    "noncolin": "", "lspinorb": "",
    "lda_plus_u": "dft.hubbard", "lda_plus_u_kind": "dft.hubbard", "hubbard_u": "dft.hubbard",
    "hubbard_j0": "dft.hubbard", "hubbard_j": "dft.hubbard", "hubbard_alpha": "dft.hubbard",
    "hubbard_beta": "dft.hubbard", "u_projection_type": "dft.hubbard",
}  # fmt: skip
#: extra keys that steer the SCF or the output but not the converged result (not hashed)
_EXTRA_NON_PHYSICS = frozenset(
    {"mixing_mode", "mixing_ndim", "diagonalization", "startingwfc", "startingpot", "verbosity",
     "max_seconds", "wf_collect", "diago_david_ndim", "diago_full_acc"}
)  # fmt: skip


def check_qe_extra(extra: Mapping) -> dict:
    """``dft.qe.extra`` as ``{namelist: {key: value}}``, refusing keys the pipeline owns.

    Raises
    ------
    ValueError
        One line naming ``dft.qe.extra.<namelist>.<key>`` and where the setting belongs.
    """
    out: dict = {}
    for namelist, keys in (extra or {}).items():
        where = f"{_KEY}.extra.{namelist}"
        if str(namelist).lower() not in _EXTRA_NAMELISTS or not isinstance(keys, Mapping):
            raise ValueError(
                f"config key '{where}' must be one of the namelists {list(_EXTRA_NAMELISTS)} "
                "mapping pw.x keys to values, e.g. {system: {vdw_corr: dft-d3}}"
            )
        for key, value in keys.items():
            base = str(key).split("(")[0].lower()
            if base in _OWNED:
                owner = _OWNED[base]
                fix = (
                    f"set {owner if '.' in owner else f'{_KEY}.{owner}'} instead"
                    if owner
                    else ("the pipeline sets it for every label; remove it")
                )
                raise ValueError(f"config key '{where}.{key}' is set by the pipeline; {fix}")
            if isinstance(value, Mapping | list | tuple) or value is None:
                raise ValueError(
                    f"config key '{where}.{key}' must be a single value, got {value!r}"
                )
        out[str(namelist).lower()] = dict(keys)
    return out


def resolve_pseudo_dir(configured: str | os.PathLike | None) -> Path:
    """Directory that holds the pseudopotential files.

    Parameters
    ----------
    configured
        ``dft.qe.pseudo_dir`` from the config; ``None`` or ``""`` means not set.

    Returns
    -------
    pathlib.Path
        Absolute path: ``configured``, else ``$ESPRESSO_PSEUDO``, else
        ``/usr/share/espresso/pseudo`` (Debian ``quantum-espresso-data``). Not checked for
        existence (see :func:`check_pseudopotentials`).
    """
    if configured:
        chosen = Path(configured)
    elif os.environ.get("ESPRESSO_PSEUDO"):
        chosen = Path(os.environ["ESPRESSO_PSEUDO"])
    else:
        chosen = DEFAULT_PSEUDO_DIR
    return chosen.expanduser().resolve()


@functools.lru_cache(maxsize=64)
def _md5_cached(path: str, mtime_ns: int, size: int) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_md5(path: str | os.PathLike) -> str:
    """md5 hex digest of a file (the checksum pw.x prints for each pseudopotential).

    Parameters
    ----------
    path
        File to hash.

    Returns
    -------
    str
        32 hex characters.
    """
    stat = os.stat(path)
    return _md5_cached(str(Path(path).resolve()), stat.st_mtime_ns, stat.st_size)


@dataclass(frozen=True)
class QESettings:
    """Validated ``dft.qe`` config section (units in the field names: Ry, 1/Å).

    ``kspacing_per_A`` is the reciprocal-space spacing including the factor 2π (the ASE
    convention), see :func:`dft2mlip.dft.qe.kpoint_mesh`. ``conv_thr_Ry`` is pw.x's
    ``conv_thr`` for the whole cell.
    """

    pseudopotentials: Mapping[str, str]
    executable: str = "pw.x"
    pseudo_dir: str | None = None
    ecutwfc_Ry: float = 30.0
    ecutrho_Ry: float = 240.0
    kspacing_per_A: float = 0.35
    occupations: str = "smearing"
    smearing: str = "mv"
    degauss_Ry: float = 0.01
    conv_thr_Ry: float = 1.0e-10
    electron_maxstep: int = 100
    mixing_beta: float = 0.7
    allow_low_cutoff: bool = False
    magnetic_moments_muB: Mapping[str, float] = field(default_factory=dict)
    #: per-site order (μB, one per site of the configured cell); the structures carry it
    magnetic_order_muB: Sequence[float] | None = None
    hubbard: Mapping[str, Mapping] = field(default_factory=dict)
    extra: Mapping[str, Mapping] = field(default_factory=dict)

    def __post_init__(self) -> None:
        def bad(key: str, why: str) -> ValueError:
            return ValueError(f"{_KEY}.{key} {why}")

        def number(key: str, kind=float):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int | float):
                try:
                    value = kind(value)
                except (TypeError, ValueError):
                    raise bad(key, f"must be a number, got {value!r}") from None
            if kind is int and float(value) != int(value):
                raise bad(key, f"must be an integer, got {value!r}")
            value = kind(value)
            if not math.isfinite(value):
                raise bad(key, f"must be finite, got {value!r}")
            object.__setattr__(self, key, value)
            return value

        if not isinstance(self.executable, str) or not self.executable.strip():
            raise bad("executable", f"must name the pw.x program, got {self.executable!r}")
        if self.pseudo_dir is not None and not isinstance(self.pseudo_dir, str | os.PathLike):
            raise bad("pseudo_dir", f"must be a directory path or null, got {self.pseudo_dir!r}")
        if not isinstance(self.pseudopotentials, Mapping) or not self.pseudopotentials:
            raise bad(
                "pseudopotentials",
                "must map each element to a UPF file name, e.g. {Si: Si.pbe-rrkj.UPF}",
            )
        for element, name in self.pseudopotentials.items():
            if not isinstance(name, str) or not name.strip() or "/" in name:
                raise bad(
                    f"pseudopotentials.{element}",
                    f"must be a file name inside pseudo_dir (no directories), got {name!r}",
                )
        object.__setattr__(self, "pseudopotentials", dict(self.pseudopotentials))
        ecutwfc = number("ecutwfc_Ry")
        ecutrho = number("ecutrho_Ry")
        if ecutwfc <= 0:
            raise bad("ecutwfc_Ry", f"must be > 0 Ry, got {ecutwfc}")
        if ecutrho < 4 * ecutwfc:
            raise bad(
                "ecutrho_Ry",
                f"must be >= 4 * dft.qe.ecutwfc_Ry = {4 * ecutwfc} Ry, got {ecutrho} "
                "(8-12x is usual for ultrasoft/PAW pseudopotentials)",
            )
        if number("kspacing_per_A") <= 0:
            raise bad("kspacing_per_A", f"must be > 0 1/Å, got {self.kspacing_per_A}")
        if self.occupations not in _OCCUPATIONS:
            raise bad(
                "occupations", f"must be one of {sorted(_OCCUPATIONS)}, got {self.occupations!r}"
            )
        if self.occupations == "smearing":
            if self.smearing not in _SMEARINGS:
                raise bad("smearing", f"must be one of {sorted(_SMEARINGS)}, got {self.smearing!r}")
            if number("degauss_Ry") <= 0:
                raise bad("degauss_Ry", f"must be > 0 Ry with smearing, got {self.degauss_Ry}")
        else:
            number("degauss_Ry")
        if number("conv_thr_Ry") <= 0:
            raise bad("conv_thr_Ry", f"must be > 0 Ry, got {self.conv_thr_Ry}")
        if number("electron_maxstep", int) < 1:
            raise bad("electron_maxstep", f"must be >= 1, got {self.electron_maxstep}")
        beta = number("mixing_beta")
        if not 0 < beta <= 1:
            raise bad("mixing_beta", f"must be in (0, 1], got {beta}")
        if not isinstance(self.allow_low_cutoff, bool):
            raise bad("allow_low_cutoff", f"must be true or false, got {self.allow_low_cutoff!r}")
        moments = dict(self.magnetic_moments_muB or {})
        for element, moment in moments.items():
            if isinstance(moment, bool) or not isinstance(moment, int | float):
                raise bad(f"magnetic_moments_muB.{element}", f"must be a number, got {moment!r}")
        object.__setattr__(self, "magnetic_moments_muB", moments)
        if self.magnetic_order_muB is not None:
            order = [float(m) for m in self.magnetic_order_muB]
            object.__setattr__(self, "magnetic_order_muB", order if any(order) else None)
        parse_hubbard(self.hubbard)  # one line naming the entry
        object.__setattr__(self, "hubbard", {k: dict(v) for k, v in sorted(self.hubbard.items())})
        object.__setattr__(self, "extra", check_qe_extra(self.extra))

    @classmethod
    def from_config(cls, qe_cfg: Mapping) -> QESettings:
        """Build from ``config["dft"]["qe"]``; unknown keys are rejected (typos).

        Parameters
        ----------
        qe_cfg
            The ``dft.qe`` mapping; keys missing from it take the dataclass defaults, except
            ``pseudopotentials`` which is required.
        """
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(qe_cfg) - known)
        if unknown:
            raise ValueError(
                f"unknown key(s) {', '.join(f'{_KEY}.{k}' for k in unknown)}; "
                f"known keys: {', '.join(sorted(known))}"
            )
        if "pseudopotentials" not in qe_cfg:
            raise ValueError(
                f"{_KEY}.pseudopotentials is missing; map each element to a UPF file name"
            )
        return cls(**dict(qe_cfg))

    @property
    def spin_polarised(self) -> bool:
        """Whether labels are spin-polarised (a nonzero initial moment; ``nspin = 2``)."""
        return self.magnetic_order_muB is not None or any(
            m != 0 for m in self.magnetic_moments_muB.values()
        )

    def z_valence(self) -> dict[str, float]:
        """UPF ``z_valence`` of each element's pseudopotential (electrons)."""
        from dft2mlip.dft.pseudo import read_upf_header

        return {
            element: read_upf_header(self.pseudo_path / name).z_valence
            for element, name in sorted(self.pseudopotentials.items())
        }

    def starting_magnetization(self) -> dict[str, float]:
        """QE ``starting_magnetization`` per element: moment (μB) / UPF ``z_valence``.

        Empty when not spin-polarised; elements without a moment start at 0.
        """
        if not self.spin_polarised:
            return {}
        from dft2mlip.dft.magnetism import starting_magnetization
        from dft2mlip.dft.pseudo import read_upf_header

        fractions = {}
        for element, name in sorted(self.pseudopotentials.items()):
            moment = float(self.magnetic_moments_muB.get(element, 0.0))
            z_valence = read_upf_header(self.pseudo_path / name).z_valence
            fractions[element] = starting_magnetization(moment, z_valence, element=element)
        return fractions

    @property
    def pseudo_path(self) -> Path:
        """Resolved pseudopotential directory (see :func:`resolve_pseudo_dir`)."""
        return resolve_pseudo_dir(self.pseudo_dir)

    def physics_dict(self) -> dict:
        """Everything that defines the physics of a label, JSON-serialisable.

        Cutoffs (Ry), k-point spacing (1/Å, with 2π), occupations (and smearing/degauss when
        smearing is used), ``conv_thr`` (Ry), pseudopotential file names and md5 sums. Not
        included: ``electron_maxstep``, ``mixing_beta``, ``executable``, ``pseudo_dir``,
        ``allow_low_cutoff`` (a permission, not a setting: the cutoffs themselves are hashed).
        Spin-polarised settings add ``nspin``, the initial moments (μB) and QE's
        ``starting_magnetization`` fractions.

        Raises
        ------
        ValueError
            If a configured pseudopotential file cannot be found (the md5 needs it).
        """
        check_pseudopotentials(self, self.pseudopotentials)
        directory = self.pseudo_path
        physics = {
            "engine": "qe",
            "calculation": "scf",
            "kpoint_offset": [0, 0, 0],
            "ecutwfc_Ry": self.ecutwfc_Ry,
            "ecutrho_Ry": self.ecutrho_Ry,
            "kspacing_per_A": self.kspacing_per_A,
            "occupations": self.occupations,
            "conv_thr_Ry": self.conv_thr_Ry,
            "pseudopotentials": {
                element: {"file": name, "md5": file_md5(directory / name)}
                for element, name in sorted(self.pseudopotentials.items())
            },
        }
        if self.occupations == "smearing":
            physics["smearing"] = self.smearing
            physics["degauss_Ry"] = self.degauss_Ry
        if self.spin_polarised:  # absent for nspin = 1: a non-magnetic hash is unchanged
            physics["nspin"] = 2
            physics["magnetic_moments_muB"] = dict(sorted(self.magnetic_moments_muB.items()))
            physics["starting_magnetization"] = self.starting_magnetization()
        if self.magnetic_order_muB is not None:  # per site; QE fractions follow from z_valence
            physics["magnetic_order_muB"] = list(self.magnetic_order_muB)
        if self.hubbard:
            from dft2mlip.dft import hubbard

            physics["hubbard"] = hubbard.physics(parse_hubbard(self.hubbard))
        extra = {
            namelist: {k: v for k, v in sorted(keys.items()) if k.lower() not in _EXTRA_NON_PHYSICS}
            for namelist, keys in sorted(self.extra.items())
        }
        if any(extra.values()):
            physics["extra"] = {k: v for k, v in extra.items() if v}
        return physics

    def settings_hash(self) -> str:
        """First 12 hex characters of sha256 of the canonical JSON of :meth:`physics_dict`."""
        canonical = json.dumps(self.physics_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:12]


def check_pseudopotentials(settings: QESettings, elements: Iterable[str]) -> None:
    """Check that every element has a configured, existing pseudopotential file.

    Parameters
    ----------
    settings
        The QE settings.
    elements
        Chemical symbols that occur in the structures.

    Raises
    ------
    ValueError
        Naming the element, the directory searched and the config key to set.
    """
    directory = settings.pseudo_path
    for element in sorted(set(elements)):
        name = settings.pseudopotentials.get(element)
        if name is None:
            raise ValueError(
                f"pseudopotential for {element} not found: no entry "
                f"{_KEY}.pseudopotentials.{element}; add one naming a UPF file in {directory}"
            )
        if not (directory / name).is_file():
            where = "" if directory.is_dir() else " (the directory does not exist)"
            raise ValueError(
                f"pseudopotential for {element}: file {name} not found in {directory}{where} "
                f"(set {_KEY}.pseudo_dir or $ESPRESSO_PSEUDO, or fix "
                f"{_KEY}.pseudopotentials.{element})"
            )
