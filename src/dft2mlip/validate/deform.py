"""Deformation molecular dynamics with a trained potential, and its check against DFT.

A cell is strained at a constant engineering strain rate under Langevin NVT (ASE), the
stress–strain path is recorded, snapshots along the path are picked for DFT single points, and
the model's static stress on those snapshots is compared with the DFT stress. Stresses are ASE
Voigt vectors, tension positive; files and tables use GPa and say so in the column names.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import MISSING, dataclass, fields
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from ase import Atoms, units  # noqa: E402
from ase.calculators.calculator import Calculator  # noqa: E402
from ase.calculators.singlepoint import SinglePointCalculator  # noqa: E402
from ase.constraints import FixCom  # noqa: E402
from ase.io import read, write  # noqa: E402
from ase.md.langevin import Langevin  # noqa: E402
from ase.md.velocitydistribution import Stationary  # noqa: E402

try:  # ASE >= 3.29 (MaxwellBoltzmannDistribution is deprecated there)
    from ase.md.velocitydistribution import thermalize_momenta
except ImportError:  # pragma: no cover - older ASE
    from ase.md.velocitydistribution import MaxwellBoltzmannDistribution

    def thermalize_momenta(atoms: Atoms, temperature_K: float, *, rng=None) -> None:
        MaxwellBoltzmannDistribution(atoms, temperature_K=temperature_K, rng=rng)


from dft2mlip.io import save_figure  # noqa: E402
from dft2mlip.structures import REFERENCE_CELL_KEY, bare_cell  # noqa: E402
from dft2mlip.units import EV_PER_A3_TO_GPA  # noqa: E402
from dft2mlip.validate.metrics import VOIGT_COMPONENTS, model_static_stress, voigt_stress  # noqa: E402

#: config location of the deformation-MD settings, used in error messages
CONFIG_KEY = "validation.md"
DIRECTIONS = {"x": 0, "y": 1, "z": 2}
#: shear planes (pure shear): engineering shear gamma = 2 eps_ab
SHEAR_PLANES = {"yz": (1, 2), "xz": (0, 2), "xy": (0, 1)}
MAX_TIMESTEP_FS = 5.0
MAX_STRAIN_PER_STEP = 1e-3
#: lateral boundary conditions of uniaxial deformation
LATERAL_MODES = ("fixed", "relaxed")
#: target number of recorded MD rows when record_every is not given
TARGET_ROWS = 150
SNAPSHOT_CONFIG_TYPE = "md_snapshot"


def _uniaxial(direction: str, strain: float) -> np.ndarray:
    """Uniaxial strain along one Cartesian axis; the two lateral cell dimensions are fixed."""
    f = np.eye(3)
    f[DIRECTIONS[direction], DIRECTIONS[direction]] += strain
    return f


def _shear(plane: str, gamma: float) -> np.ndarray:
    """Pure (symmetric, rotation-free) shear in a plane: eps_ab = eps_ba = gamma / 2."""
    a, b = SHEAR_PLANES[plane]
    f = np.eye(3)
    f[a, b] += 0.5 * gamma
    f[b, a] += 0.5 * gamma
    return f


def _hydrostatic(direction: str, strain: float) -> np.ndarray:
    """The same linear strain along x, y and z (``direction`` only picks the reported stress)."""
    return (1.0 + strain) * np.eye(3)


#: deformation modes: name -> (allowed directions, (direction, strain) -> F (3x3)).
#: "uniaxial": direction is the pulled axis, strain the engineering strain along it;
#: "shear": direction is the shear plane, strain the engineering shear gamma;
#: "hydrostatic": strain is the linear strain of every axis, direction names the normal stress
#: that the stress–strain curve shows (all three are equal in a cubic crystal).
DEFORMATION_MODES: dict[str, tuple[tuple[str, ...], Callable[[str, float], np.ndarray]]] = {
    "uniaxial": (tuple(DIRECTIONS), _uniaxial),
    "shear": (tuple(SHEAR_PLANES), _shear),
    "hydrostatic": (tuple(DIRECTIONS), _hydrostatic),
}


def deformation_gradient(mode: str, direction: str, strain: float) -> np.ndarray:
    """Deformation gradient F (3x3) for ``mode`` along ``direction`` at engineering ``strain``.

    A cell with lattice vectors as rows deforms as ``new_cell = cell @ F.T``; every F here is
    symmetric, so this is the project convention ``cell @ (I + eps)``.
    """
    if mode not in DEFORMATION_MODES:
        raise ValueError(
            f"deformation mode {mode!r} unknown; use one of {sorted(DEFORMATION_MODES)}"
        )
    allowed, gradient = DEFORMATION_MODES[mode]
    if direction not in allowed:
        raise ValueError(
            f"direction {direction!r} is not valid for mode {mode!r}; use one of "
            + ", ".join(allowed)
        )
    return gradient(direction, float(strain))


def perpendicular_widths(cell: np.ndarray) -> np.ndarray:
    """Distances (Å) between opposite faces of a cell (rows = lattice vectors)."""
    cell = np.asarray(cell, dtype=float)
    volume = abs(np.linalg.det(cell))
    areas = [np.linalg.norm(np.cross(cell[(i + 1) % 3], cell[(i + 2) % 3])) for i in range(3)]
    return volume / np.array(areas)


@dataclass
class DeformationSpec:
    """Settings of a deformation MD run (``validation.md`` in the config).

    Attributes
    ----------
    mode
        "uniaxial" (tension for a positive rate, compression for a negative one), "shear"
        (pure shear) or "hydrostatic".
    direction
        uniaxial: the pulled axis "x", "y" or "z"; shear: the plane "yz", "xz" or "xy";
        hydrostatic: the normal stress shown in the curve ("x" -> σ_xx).
    repeat
        Repetition of the conventional cell (used by the caller that builds the MD cell).
    temperature_K
        Langevin thermostat temperature (K).
    timestep_fs
        MD time step (fs), 0 < dt <= 5.
    strain_rate_per_ps
        Engineering strain rate (1/ps); negative compresses. |rate| * dt <= 1e-3 per step.
    max_strain
        Final |strain| (dimensionless), in (0, 0.5].
    friction_per_fs
        Langevin friction (1/fs).
    snapshots
        Number of MD snapshots that get DFT single points.
    equilibration_ps
        NVT time at zero strain before straining starts (ps; not recorded). Default 0.
    lateral
        Uniaxial only: "fixed" keeps the two lateral cell lengths at their initial values
        (uniaxial strain); "relaxed" lets them follow a Berendsen-type barostat towards zero
        lateral stress (uniaxial stress).
    barostat_time_ps
        Relaxation time τ_P of the lateral barostat (ps), at least 10 time steps.
    barostat_modulus_GPa
        Stiffness estimate M used by the barostat (GPa): each step scales a lateral length by
        ``1 - (dt / τ_P) σ_jj / M``. A poor estimate changes how fast, not where, the lateral
        stress relaxes.
    min_width_A
        Instead of ``repeat`` (at most one of the two): the MD cell is the fewest repetitions of
        the conventional cell whose perpendicular widths are all at least this (Å). Neither: the
        fewest repetitions whose cell stays wider than the model cutoff along the whole path.
        :meth:`sized` turns either into ``repeat`` once the cell (and the cutoff) is known.
    """

    mode: str
    direction: str
    repeat: tuple[int, int, int]
    temperature_K: float
    timestep_fs: float
    strain_rate_per_ps: float
    max_strain: float
    friction_per_fs: float
    snapshots: int
    equilibration_ps: float = 0.0
    lateral: str = "fixed"
    barostat_time_ps: float = 0.5
    barostat_modulus_GPa: float = 100.0
    min_width_A: float | None = None

    def __post_init__(self) -> None:
        self._check_mode()
        self._check_size()
        self._check_numbers()
        self._check_snapshots()

    def _check_mode(self) -> None:
        """``mode``, ``direction`` and ``lateral`` are known and fit together."""
        k = CONFIG_KEY
        if self.mode not in DEFORMATION_MODES:
            raise ValueError(
                f"{k}.mode = {self.mode!r} is not supported; use one of: "
                + ", ".join(sorted(DEFORMATION_MODES))
            )
        allowed = DEFORMATION_MODES[self.mode][0]
        if self.direction not in allowed:
            raise ValueError(
                f"{k}.direction = {self.direction!r} is not valid for {k}.mode = "
                f"{self.mode!r}; use one of {', '.join(allowed)}"
            )
        if self.lateral not in LATERAL_MODES:
            raise ValueError(
                f"{k}.lateral = {self.lateral!r} is not supported; use one of "
                + ", ".join(LATERAL_MODES)
            )
        if self.lateral == "relaxed" and self.mode != "uniaxial":
            raise ValueError(
                f"{k}.lateral = 'relaxed' applies to mode 'uniaxial' only (mode is "
                f"{self.mode!r}, whose whole cell follows the strain); set lateral: fixed"
            )

    def _check_numbers(self) -> None:
        """The MD's numbers are finite floats in their ranges (stored as float)."""
        k = CONFIG_KEY
        numbers = (
            "temperature_K",
            "timestep_fs",
            "strain_rate_per_ps",
            "max_strain",
            "friction_per_fs",
            "equilibration_ps",
            "barostat_time_ps",
            "barostat_modulus_GPa",
        )
        for name in numbers:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"{k}.{name} = {value!r} must be a number")
            if not math.isfinite(value):
                raise ValueError(f"{k}.{name} = {value!r} must be finite")
            setattr(self, name, float(value))
        if self.temperature_K < 0:
            raise ValueError(f"{k}.temperature_K = {self.temperature_K} K must be >= 0")
        if self.timestep_fs <= 0:
            raise ValueError(f"{k}.timestep_fs = {self.timestep_fs:g} fs must be positive")
        if self.timestep_fs > MAX_TIMESTEP_FS:
            raise ValueError(
                f"{k}.timestep_fs = {self.timestep_fs:g} fs is above {MAX_TIMESTEP_FS:g} fs; "
                "use 1-2 fs (below 1 fs for hydrogen)"
            )
        if self.strain_rate_per_ps == 0:
            raise ValueError(f"{k}.strain_rate_per_ps = 0: the cell would not deform")
        if not 0 < self.max_strain <= 0.5:
            raise ValueError(f"{k}.max_strain = {self.max_strain:g} must be in (0, 0.5]")
        if self.strain_per_step > MAX_STRAIN_PER_STEP:
            raise ValueError(
                f"{k}.strain_rate_per_ps × {k}.timestep_fs = {abs(self.strain_rate_per_ps):g}/ps × "
                f"{self.timestep_fs:g} fs = {self.strain_per_step:.3g} strain per step is above "
                f"{MAX_STRAIN_PER_STEP:g}; lower strain_rate_per_ps or timestep_fs"
            )
        if self.friction_per_fs <= 0:
            raise ValueError(f"{k}.friction_per_fs = {self.friction_per_fs:g} must be positive")
        if self.equilibration_ps < 0:
            raise ValueError(f"{k}.equilibration_ps = {self.equilibration_ps:g} must be >= 0")
        if self.barostat_time_ps * 1000.0 < 10 * self.timestep_fs:
            raise ValueError(
                f"{k}.barostat_time_ps = {self.barostat_time_ps:g} ps is shorter than 10 time "
                f"steps ({k}.timestep_fs = {self.timestep_fs:g} fs); use 0.2-2 ps"
            )
        if self.barostat_modulus_GPa <= 0:
            raise ValueError(
                f"{k}.barostat_modulus_GPa = {self.barostat_modulus_GPa:g} must be positive "
                "(an estimate of the bulk modulus, e.g. 100)"
            )

    def _check_snapshots(self) -> None:
        """``snapshots``: an integer from 1 to the number of MD steps."""
        k = CONFIG_KEY
        if isinstance(self.snapshots, bool) or int(self.snapshots) != self.snapshots:
            raise ValueError(f"{k}.snapshots = {self.snapshots!r} must be an integer")
        self.snapshots = int(self.snapshots)
        if self.snapshots < 1:
            raise ValueError(f"{k}.snapshots = {self.snapshots} must be at least 1")
        if self.snapshots > self.n_steps:
            raise ValueError(
                f"{k}.snapshots = {self.snapshots} exceeds the {self.n_steps} MD steps; "
                "lower snapshots or raise max_strain"
            )

    def _check_size(self) -> None:
        """``repeat`` (three positive integers) or ``min_width_A`` (> 0 Å), not both."""
        k = CONFIG_KEY
        if self.min_width_A is not None:
            if self.repeat is not None:
                raise ValueError(
                    f"config keys '{k}.repeat' = {list(self.repeat)} and '{k}.min_width_A' = "
                    f"{self.min_width_A} are both set; give one of them (set the other to null)"
                )
            if isinstance(self.min_width_A, bool) or not float(self.min_width_A) > 0:
                raise ValueError(f"{k}.min_width_A = {self.min_width_A!r} must be > 0 Å")
            return
        if self.repeat is None:  # sized from the model cutoff (sized)
            return
        repeat = self.repeat
        try:
            rep = tuple(int(r) for r in repeat)
        except (TypeError, ValueError):
            rep = ()
        if len(rep) != 3 or min(rep) < 1 or list(rep) != [float(r) for r in repeat]:
            raise ValueError(f"{k}.repeat = {self.repeat!r} must be three positive integers")
        self.repeat = rep

    def sized(self, conventional_cell, r_max_A: float | None = None) -> DeformationSpec:
        """This spec with ``repeat`` fixed for ``conventional_cell`` (3x3 Å): itself when
        ``repeat`` was given; ``min_width_A`` becomes the fewest repetitions that reach it;
        neither: the fewest repetitions whose cell passes :meth:`check_supercell` for the model
        cutoff ``r_max_A`` (Å) along the whole path (widths from r_max (1 + max_strain) up)."""
        from dataclasses import replace

        from dft2mlip.structures import repeats_for_width

        if self.min_width_A is not None:
            repeat = repeats_for_width(conventional_cell, float(self.min_width_A))
            return replace(self, repeat=repeat, min_width_A=None)
        if self.repeat is not None:
            return self
        if r_max_A is None:
            raise ValueError(f"{CONFIG_KEY}: neither repeat nor min_width_A is set, and no model "
                             "cutoff to size the MD cell from; set one of them")  # fmt: skip
        cell = np.asarray(conventional_cell, dtype=float)
        for margin in (1.0, 1.1, 1.25, 1.5, 2.0, 3.0):  # strain and shear narrow the cell
            repeat = repeats_for_width(cell, r_max_A * margin * (1 + abs(self.max_strain)))
            sized = replace(self, repeat=repeat)
            try:
                sized.check_supercell(np.diag(repeat) @ cell, r_max_A, r_max_key="r_max")
            except ValueError:
                continue
            return sized
        raise ValueError(
            f"{CONFIG_KEY}: no MD cell up to 3 r_max wide stays wider than the "
            f"cutoff {r_max_A:g} Å along the path; set {CONFIG_KEY}.repeat"
        )

    @classmethod
    def from_config(cls, md_cfg: Mapping) -> DeformationSpec:
        """Build from the ``validation.md`` config mapping; unknown or missing keys are errors."""
        names = [f.name for f in fields(cls)]
        unknown = sorted(set(md_cfg) - set(names))
        if unknown:
            raise ValueError(
                f"{CONFIG_KEY} has unknown key(s) {', '.join(unknown)}; known: {', '.join(names)}"
            )
        required = [f.name for f in fields(cls) if f.default is MISSING]
        missing = [n for n in required if n not in md_cfg]
        if missing:
            raise ValueError(f"{CONFIG_KEY} is missing key(s): {', '.join(missing)}")
        return cls(**dict(md_cfg))

    @property
    def strain_per_step(self) -> float:
        """|strain| increment per MD step (dimensionless)."""
        return abs(self.strain_rate_per_ps) * self.timestep_fs * 1e-3

    @property
    def n_steps(self) -> int:
        """Number of straining MD steps: round(max_strain / (|rate| * dt))."""
        return max(1, round(self.max_strain / self.strain_per_step))

    @property
    def n_equilibration_steps(self) -> int:
        """Number of zero-strain NVT steps before straining."""
        return round(self.equilibration_ps * 1000.0 / self.timestep_fs)

    @property
    def record_every(self) -> int:
        """Default recording interval (steps) giving about :data:`TARGET_ROWS` rows."""
        return max(1, math.ceil(self.n_steps / TARGET_ROWS))

    @property
    def component(self) -> str:
        """Voigt label of the stress component the curve shows ("xx" for x, "xy" for xy)."""
        return self.direction if self.mode == "shear" else 2 * self.direction

    @property
    def strain_label(self) -> str:
        """What the ``strain`` column means, for plots and reports."""
        if self.mode == "shear":
            return f"engineering shear strain γ_{self.direction}"
        if self.mode == "hydrostatic":
            return "linear strain of every axis"
        return f"engineering strain along {self.direction}"

    def check_supercell(self, cell: np.ndarray, r_max_A: float, *, r_max_key: str) -> None:
        """Reject an MD cell whose periodic images come within the model cutoff along the path.

        The smallest perpendicular width of the cell (Å), at the start and at the final strain
        (and, with a relaxed lateral boundary, with the lateral lengths shrunk by a Poisson
        ratio of 0.5), must be at least ``r_max_A``; otherwise an atom sees its own periodic
        image inside the cutoff and the MD describes an artificially periodic crystal.

        Raises
        ------
        ValueError
            Naming ``validation.md.repeat`` and ``r_max_key``.
        """
        cell = np.asarray(cell, dtype=float)
        widths = [perpendicular_widths(cell)]
        final = cell @ self.gradient_at_step(self.n_steps).T
        if self.lateral == "relaxed":
            shrink = np.full(3, 1.0 + 0.5 * abs(self.max_strain))
            shrink[DIRECTIONS[self.direction]] = 1.0
            final = final @ np.diag(1.0 / shrink)
        widths.append(perpendicular_widths(final))
        smallest = float(min(w.min() for w in widths))
        if smallest < r_max_A:
            raise ValueError(
                f"{CONFIG_KEY}.repeat = {list(self.repeat)} gives an MD cell whose smallest "
                f"perpendicular width along the deformation path is {smallest:.2f} Å, below the "
                f"model cutoff {r_max_key} = {r_max_A:g} Å: atoms would interact with their own "
                f"periodic images; raise {CONFIG_KEY}.repeat or {CONFIG_KEY}.min_width_A (or lower "
                f"{CONFIG_KEY}.max_strain)"
            )

    def strain_at_step(self, step: int) -> float:
        """Engineering strain at MD step ``step``: strain_rate_per_ps × step × timestep_fs."""
        return self.strain_rate_per_ps * step * self.timestep_fs * 1e-3

    def gradient_at_step(self, step: int) -> np.ndarray:
        """Deformation gradient F (3x3) at MD step ``step``."""
        return deformation_gradient(self.mode, self.direction, self.strain_at_step(step))


STRESS_VIRIAL_COLUMNS = [f"stress_virial_{c}_GPa" for c in VOIGT_COMPONENTS]
STRESS_TOTAL_COLUMNS = [f"stress_total_{c}_GPa" for c in VOIGT_COMPONENTS]


def run_deformation_md(
    atoms: Atoms,
    calc: Calculator,
    spec: DeformationSpec,
    seed: int,
    traj_path: str | Path,
    csv_path: str | Path,
    *,
    record_every: int | None = None,
) -> pd.DataFrame:
    """Strain a cell at constant rate under Langevin NVT and record the stress–strain path.

    The velocities start from a seeded Maxwell–Boltzmann distribution at ``temperature_K``
    (centre-of-mass momentum removed, kept fixed by :class:`ase.constraints.FixCom`). After an
    optional zero-strain equilibration, step ``i`` first sets the cell to
    ``cell0 @ F(strain_i).T`` with ``strain_i = strain_rate_per_ps * i * timestep_fs`` (atoms
    scaled with the cell), then advances the atoms one Langevin step. For "uniaxial" with
    ``lateral="fixed"`` only the pulled direction changes (uniaxial strain). With
    ``lateral="relaxed"`` the pulled length still follows the schedule exactly, and after every
    step (equilibration included) each lateral length L_j is rescaled by
    ``1 - (dt / barostat_time_ps) * sigma_jj / barostat_modulus_GPa`` with sigma_jj the
    instantaneous *total* stress (virial plus kinetic part: the stress a wall would feel), a
    Berendsen-type barostat acting on the lateral components only, so the lateral stress
    relaxes towards zero (uniaxial stress) while the temperature stays under the Langevin
    thermostat. As in LAMMPS ``fix deform``, the first half-kick of a step reuses the forces
    of the previous step (the affine remap changes them by O(strain per step)), so each step
    costs one force call.

    Parameters
    ----------
    atoms
        The cell to deform (not modified).
    calc
        ASE calculator (energy eV, forces eV/Å, stress eV/Å³).
    spec
        Deformation settings.
    seed
        Seed of the velocities and the Langevin noise.
    traj_path, csv_path
        Outputs: extxyz of the recorded frames (info md_strain, md_step, md_time_ps; energy,
        forces and virial stress attached; ``reference_cell``: the unstrained MD cell, the
        k-point mesh of any frame labelled by DFT) and the CSV table returned here.
    record_every
        Recording interval in steps; default :attr:`DeformationSpec.record_every`. The start
        (step 0) and the final step are always recorded.

    Returns
    -------
    pandas.DataFrame
        One row per recorded step: step, time_ps, strain, temperature_K, potential_energy_eV,
        kinetic_energy_eV, volume_A3, cell_length_{a,b,c}_A, stress_virial_<c>_GPa (static,
        from the potential) and stress_total_<c>_GPa (virial plus the kinetic ideal-gas part),
        c in xx, yy, zz, yz, xz, xy; tension positive.
    """
    every = spec.record_every if record_every is None else int(record_every)
    if every < 1:
        raise ValueError(f"record_every = {record_every} must be a positive number of steps")
    rng = np.random.default_rng(seed)
    work = atoms.copy()
    work.calc = calc
    work.set_constraint(FixCom())
    cell = _StrainedCell(work, spec)
    dyn = _thermalised_langevin(work, spec, rng)
    records: list[tuple[dict, Atoms]] = []  # (row, frame) of each recorded step

    forces = work.get_forces(md=True)
    for _ in range(spec.n_equilibration_steps):
        if cell.relaxed:
            cell.set(0)
        forces = dyn.step(forces)
        cell.barostat()
    records.append(_md_record(work, spec, 0))
    for step in range(1, spec.n_steps + 1):
        cell.set(step)
        forces = dyn.step(forces)
        cell.barostat()
        if step % every == 0 or step == spec.n_steps:
            records.append(_md_record(work, spec, step))

    return _write_md_records(records, cell.cell0, traj_path, csv_path)


def _thermalised_langevin(work: Atoms, spec: DeformationSpec, rng) -> Langevin:
    """Seeded Maxwell–Boltzmann velocities at ``spec.temperature_K`` (no centre-of-mass
    momentum) and the Langevin integrator of the deformation MD (same ``rng``)."""
    thermalize_momenta(work, spec.temperature_K, rng=rng)
    Stationary(work)
    return Langevin(
        work,
        timestep=spec.timestep_fs * units.fs,
        temperature_K=spec.temperature_K,
        friction=spec.friction_per_fs / units.fs,
        fixcm=False,
        rng=rng,
    )


def _write_md_records(records: list, cell0, traj_path, csv_path) -> pd.DataFrame:
    """Write the recorded frames (each carrying the unstrained MD cell ``cell0`` as its k-point
    reference: one family) and the table; return the table."""
    df = pd.DataFrame([row for row, _ in records])
    for _, frame in records:  # one family: every frame's k-point mesh is the MD cell's
        frame.info[REFERENCE_CELL_KEY] = np.array(cell0, dtype=float)
    for path in (traj_path, csv_path):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    write(traj_path, [frame for _, frame in records], format="extxyz")
    df.to_csv(csv_path, index=False)
    return df


class _StrainedCell:
    """The cell of each step of :func:`run_deformation_md`: ``cell0 @ F(strain).T``, its lateral
    lengths rescaled by a Berendsen-type barostat when ``spec.lateral == "relaxed"``."""

    def __init__(self, work: Atoms, spec: DeformationSpec) -> None:
        self.work, self.spec = work, spec
        self.cell0 = np.array(work.cell.array)
        self.relaxed = spec.lateral == "relaxed"
        self.lateral = [j for j in range(3) if j != DIRECTIONS.get(spec.direction, -1)]
        self.scale = np.ones(3)
        self.rate = spec.timestep_fs / (1000.0 * spec.barostat_time_ps)

    def set(self, step: int) -> None:
        """Strain of ``step`` (atoms scaled with the cell), lateral scaling applied."""
        gradient = np.diag(self.scale) @ self.spec.gradient_at_step(step)
        self.work.set_cell(self.cell0 @ gradient.T, scale_atoms=True)

    def barostat(self) -> None:
        """Relaxed lateral: L_j *= 1 - (dt / tau) sigma_jj / B with the total stress (GPa)."""
        if not self.relaxed:
            return
        total = self.work.get_stress(voigt=False, include_ideal_gas=True) * EV_PER_A3_TO_GPA
        for j in self.lateral:
            self.scale[j] *= 1.0 - self.rate * total[j, j] / self.spec.barostat_modulus_GPa


def _md_record(work: Atoms, spec: DeformationSpec, step: int) -> tuple[dict, Atoms]:
    """The table row (units in the column names) and the extxyz frame of ``work`` at ``step``."""
    strain = spec.strain_at_step(step)
    virial = np.asarray(work.get_stress(voigt=True, include_ideal_gas=False), dtype=float)
    total = np.asarray(work.get_stress(voigt=True, include_ideal_gas=True), dtype=float)
    energy = float(work.get_potential_energy())
    row = {
        "step": step,
        "time_ps": step * spec.timestep_fs * 1e-3,
        "strain": strain,
        "temperature_K": float(work.get_temperature()),
        "potential_energy_eV": energy,
        "kinetic_energy_eV": float(work.get_kinetic_energy()),
        "volume_A3": float(work.get_volume()),
    }
    lengths = work.cell.lengths()
    row.update({f"cell_length_{v}_A": float(x) for v, x in zip("abc", lengths, strict=True)})
    row.update(dict(zip(STRESS_VIRIAL_COLUMNS, virial * EV_PER_A3_TO_GPA, strict=True)))
    row.update(dict(zip(STRESS_TOTAL_COLUMNS, total * EV_PER_A3_TO_GPA, strict=True)))
    frame = Atoms(
        numbers=work.numbers,
        positions=work.positions,
        cell=work.cell,
        pbc=work.pbc,
        momenta=work.get_momenta(),
        magmoms=work.arrays.get("initial_magmoms"),  # a magnetic order goes with the sites
    )
    frame.info.update(
        {
            "md_strain": strain,
            "md_step": step,
            "md_time_ps": row["time_ps"],
            "md_mode": spec.mode,
            "md_direction": spec.direction,
            "md_lateral": spec.lateral,
        }
    )
    frame.calc = SinglePointCalculator(
        frame, energy=energy, forces=work.get_forces(), stress=virial
    )
    return row, frame


def run_nve(
    atoms: Atoms,
    calc: Calculator,
    *,
    temperature_K: float,
    timestep_fs: float,
    n_steps: int,
    seed: int,
) -> pd.DataFrame:
    """Velocity-Verlet NVE run from seeded Maxwell–Boltzmann velocities; the energy trace.

    A check of a potential rather than a production run: with forces that are the exact
    gradient of the energy, the total energy is conserved up to O(dt²) fluctuations.

    Parameters
    ----------
    atoms
        Periodic cell (not modified).
    calc
        ASE calculator (eV, eV/Å).
    temperature_K, timestep_fs, n_steps, seed
        Initial temperature (K), time step (fs), number of steps, velocity seed.

    Returns
    -------
    pandas.DataFrame
        One row per step (step 0 included): step, time_ps, potential_energy_eV,
        kinetic_energy_eV, total_energy_eV, temperature_K.
    """
    from ase.md.verlet import VelocityVerlet

    work = atoms.copy()
    work.calc = calc
    thermalize_momenta(work, temperature_K, rng=np.random.default_rng(seed))
    Stationary(work)
    dyn = VelocityVerlet(work, timestep=timestep_fs * units.fs)
    rows = []

    def record() -> None:
        epot = float(work.get_potential_energy())
        ekin = float(work.get_kinetic_energy())
        rows.append(
            {
                "step": dyn.nsteps,
                "time_ps": dyn.nsteps * timestep_fs * 1e-3,
                "potential_energy_eV": epot,
                "kinetic_energy_eV": ekin,
                "total_energy_eV": epot + ekin,
                "temperature_K": float(work.get_temperature()),
            }
        )

    dyn.attach(record, interval=1)
    dyn.run(int(n_steps))
    return pd.DataFrame(rows)


def md_reference_cell(frame: Atoms, where: str | Path) -> np.ndarray:
    """The unstrained MD cell an MD frame was strained from (3x3 Å): the k-point mesh of every
    DFT label of that path (one family, see :func:`dft2mlip.structures.kpoint_reference_cell`).

    Raises
    ------
    ValueError
        If the frame does not carry it (a trajectory written before frames recorded it):
        never the frame's own strained cell, whose mesh can differ.
    """
    cell = frame.info.get(REFERENCE_CELL_KEY)
    if cell is None:
        raise ValueError(f"{where}: an MD frame without info['{REFERENCE_CELL_KEY}'] (the "
                         "unstrained MD cell); rerun the MD that wrote it")  # fmt: skip
    return np.asarray(cell, dtype=float).reshape(3, 3)


def select_snapshots(traj_path: str | Path, n: int, *, id_prefix: str = "md-snap") -> list[Atoms]:
    """Pick ``n`` frames of an MD path evenly spaced in strain for DFT single points.

    The targets are ``final_strain * k / n`` for k = 1..n: the unstrained start is excluded and
    the final frame is included; each target takes the nearest recorded frame.

    Returns
    -------
    list of ase.Atoms
        Bare structures (no calculator, no momenta) with info ``structure_id``
        ``f"{id_prefix}-{k:02d}"`` (k = 0..n-1 in order of strain), ``config_type``
        "md_snapshot", ``md_strain``, ``md_step``, ``md_time_ps``.
    """
    frames = read(traj_path, index=":", format="extxyz")
    if not frames or any("md_strain" not in f.info for f in frames):
        raise ValueError(f"{traj_path}: not a deformation-MD trajectory (frames need md_strain)")
    strains = np.array([float(f.info["md_strain"]) for f in frames])
    if n < 1:
        raise ValueError(f"number of snapshots n = {n} must be at least 1")
    candidates = np.flatnonzero(np.abs(strains) > 0)
    final = strains[-1]
    targets = final * np.arange(1, n + 1) / n
    picked = [int(candidates[np.argmin(np.abs(strains[candidates] - t))]) for t in targets]
    if len(set(picked)) != n:
        raise ValueError(
            f"{traj_path} has {len(candidates)} strained frames; cannot pick {n} distinct "
            "snapshots evenly spaced in strain; record more often or ask for fewer snapshots"
        )
    snapshots = []
    for k, i in enumerate(picked):
        f = frames[i]
        snap = bare_cell(f)  # keeps the sites' magnetic order
        snap.info.update(
            {
                "structure_id": f"{id_prefix}-{k:02d}",
                "config_type": SNAPSHOT_CONFIG_TYPE,
                "md_strain": float(f.info["md_strain"]),
                "md_step": int(f.info["md_step"]),
                "md_time_ps": float(f.info["md_time_ps"]),
                REFERENCE_CELL_KEY: md_reference_cell(f, traj_path),
            }
        )
        snapshots.append(snap)
    return snapshots


#: config_type and id prefix of the held-out benchmark's frames (validation.heldout)
HELDOUT = "heldout"


def heldout_ids(paths: list[str], n: int) -> list[str]:
    """Structure ids of the held-out frames, known from the config: ``heldout-<path>-<kk>``."""
    return [f"{HELDOUT}-{path}-{k:02d}" for path in paths for k in range(int(n))]


def heldout_frames(trajectories: Mapping[str, str | Path], n: int) -> list[Atoms]:
    """The held-out benchmark's frames: ``n`` per MD path ({path name: trajectory}), evenly
    spaced in strain up to the path's final strain (:func:`select_snapshots`), ids
    :func:`heldout_ids`, ``config_type`` "heldout", ``heldout_path``, and the path's MD cell as
    ``reference_cell`` (one k-point mesh per path)."""
    frames = []
    for path, traj in trajectories.items():
        for atoms in select_snapshots(traj, n, id_prefix=f"{HELDOUT}-{path}"):
            atoms.info.update(config_type=HELDOUT, heldout_path=path)
            frames.append(atoms)
    return frames


def stress_validation(dft_atoms_list: list[Atoms], calc: Calculator) -> pd.DataFrame:
    """Compare DFT stress with the model's static stress on MD snapshots.

    Parameters
    ----------
    dft_atoms_list
        DFT-labelled snapshots (REF_stress in eV/Å³ when status is "ok").
    calc
        The model calculator (static stress, no kinetic part).

    Returns
    -------
    pandas.DataFrame
        One row per snapshot, ordered by md_strain: structure_id, md_strain, status,
        dft_stress_<c>_GPa, model_stress_<c>_GPa, abs_error_<c>_GPa (c in xx, yy, zz, yz, xz,
        xy). A snapshot without an "ok" DFT label keeps its row with NaN DFT stress and errors.
        No snapshots (no DFT in an import-only run): the columns without rows.
    """
    columns = ["structure_id", "md_strain", "status"] + [
        f"{kind}_{c}_GPa"
        for c in VOIGT_COMPONENTS
        for kind in ("dft_stress", "model_stress", "abs_error")
    ]
    rows = []
    for i, atoms in enumerate(dft_atoms_list):
        status = str(atoms.info.get("status", "ok"))
        if status == "ok" and "REF_stress" in atoms.info:
            dft = voigt_stress(atoms.info["REF_stress"]) * EV_PER_A3_TO_GPA
        else:
            dft = np.full(6, np.nan)
            if status == "ok":
                status = "no_REF_stress"
        model = model_static_stress(atoms, calc) * EV_PER_A3_TO_GPA
        row = {
            "structure_id": str(atoms.info.get("structure_id", f"#{i}")),
            "md_strain": float(atoms.info.get("md_strain", np.nan)),
            "status": status,
        }
        for j, c in enumerate(VOIGT_COMPONENTS):
            row[f"dft_stress_{c}_GPa"] = dft[j]
            row[f"model_stress_{c}_GPa"] = model[j]
            row[f"abs_error_{c}_GPa"] = abs(model[j] - dft[j])
        rows.append(row)
    df = pd.DataFrame(rows, columns=columns)
    return df.sort_values("md_strain", kind="stable").reset_index(drop=True)


def stress_validation_summary(df: pd.DataFrame) -> dict:
    """Summarise :func:`stress_validation`: errors in GPa over the snapshots with a DFT label.

    Returns
    -------
    dict
        n_snapshots, n_ok, missing (list of "id (status)"), mae_<c>_GPa and max_error_<c>_GPa
        per component, mae_GPa and max_error_GPa over all components (NaN when n_ok is 0).
    """
    ok = df[df["status"] == "ok"]
    out: dict = {
        "n_snapshots": int(len(df)),
        "n_ok": int(len(ok)),
        "missing": [f"{r.structure_id} ({r.status})" for r in df.itertuples() if r.status != "ok"],
    }
    cols = [f"abs_error_{c}_GPa" for c in VOIGT_COMPONENTS]
    for c, col in zip(VOIGT_COMPONENTS, cols, strict=True):
        out[f"mae_{c}_GPa"] = float(ok[col].mean()) if len(ok) else float("nan")
        out[f"max_error_{c}_GPa"] = float(ok[col].max()) if len(ok) else float("nan")
    values = ok[cols].to_numpy().ravel()
    out["mae_GPa"] = float(values.mean()) if values.size else float("nan")
    out["max_error_GPa"] = float(values.max()) if values.size else float("nan")
    return out


def _running_mean(y: np.ndarray, window: int) -> np.ndarray:
    return pd.Series(y).rolling(window, center=True, min_periods=1).mean().to_numpy()


def draw_stress_strain(
    ax,
    md: pd.DataFrame | str | Path,
    dft_points: pd.DataFrame | None = None,
    component: str = "xx",
    *,
    label: str | None = None,
    color: str | None = None,
    strain_label: str = "engineering strain",
) -> None:
    """Draw one MD stress–strain curve (virial, GPa) with DFT and model points on ``ax``."""
    if component not in VOIGT_COMPONENTS:
        raise ValueError(f"component {component!r} is not one of {', '.join(VOIGT_COMPONENTS)}")
    df = pd.read_csv(md) if isinstance(md, str | Path) else md
    x = df["strain"].to_numpy()
    y = df[f"stress_virial_{component}_GPa"].to_numpy()
    (line,) = ax.plot(x, y, lw=0.6, alpha=0.35, color=color)
    color = line.get_color()
    window = max(1, len(df) // 20)
    prefix = f"{label}: " if label else ""
    ax.plot(x, _running_mean(y, window), lw=1.8, color=color, label=f"{prefix}MD (virial)")
    if dft_points is not None and len(dft_points):
        ok = dft_points["status"] == "ok" if "status" in dft_points else slice(None)
        pts = dft_points[ok]
        ax.scatter(
            pts["md_strain"],
            pts[f"dft_stress_{component}_GPa"],
            marker="o",
            s=50,
            facecolors="none",
            edgecolors=color,
            linewidths=1.6,
            label=f"{prefix}DFT at snapshots",
            zorder=3,
        )
        ax.scatter(
            dft_points["md_strain"],
            dft_points[f"model_stress_{component}_GPa"],
            marker="x",
            s=40,
            color=color,
            label=f"{prefix}model static at snapshots",
            zorder=3,
        )
    ax.axhline(0.0, color="0.6", lw=0.8)
    ax.set_xlabel(strain_label)
    ax.set_ylabel(f"stress σ_{component} (GPa, tension > 0)")


def plot_stress_strain(
    md_csv: str | Path,
    path: str | Path,
    dft_points: pd.DataFrame | None,
    component: str = "xx",
    *,
    title: str | None = None,
    strain_label: str = "engineering strain",
) -> Path:
    """Plot the MD stress–strain curve (virial, GPa) with DFT and model stresses at snapshots.

    ``dft_points`` is a :func:`stress_validation` table (or None). The thin line is the raw MD
    stress, the thick line a running mean over ~5% of the path.
    """
    fig, ax = plt.subplots(figsize=(6.4, 4.6))
    draw_stress_strain(ax, md_csv, dft_points, component, strain_label=strain_label)
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    return save_figure(fig, path)
