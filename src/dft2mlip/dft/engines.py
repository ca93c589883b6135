"""One object per DFT code: what differs between Quantum ESPRESSO and VASP lives here, once.

Each engine owns its settings class, the names of its input and output files, the settings of
a convergence-study point, input writing, execution under custodian, the settings hash of a
finished directory, parsing into a :class:`~dft2mlip.data.Label`, the relaxation of the
reference cell and of fixed strained cells, and reading a finished run from elsewhere
(``dataset.import``). The rest of the code asks :func:`get_engine` for the object and never
branches on the engine's name. The objects delegate to the engine modules below them
(:mod:`~dft2mlip.dft.qe`, :mod:`~dft2mlip.dft.vasp`, :mod:`~dft2mlip.dft.execute`).

Adding a DFT code, file by file: ``dft/<code>.py`` (settings class with ``from_config``,
``settings_hash`` and ``physics_dict``; input writing; its output read into
:class:`~dft2mlip.dft.outputs.RunOutput` and parsed into a label; ``write_relax_input`` and
``read_relax`` for the reference cell; optionally the fixed-cell relaxation), importing only
from the bottom layer (see :mod:`dft2mlip.dft`); its custodian job in ``execute`` (and handlers in
``handlers``); a subclass of :class:`Engine` here, in ``_ENGINES``; its config section and the
``dft.engine`` enum (and ``dataset.import`` format, with ``importing.FORMATS``) in the
schema, ``config/README.md`` and ``envs/``; its layer in ``tests/test_layout.py``.
"""

from __future__ import annotations

import importlib
import json
import os
from collections.abc import Mapping
from pathlib import Path

from ase import Atoms

from dft2mlip.data import Label
from dft2mlip.dft.outputs import RunOutput

#: set to 1 only to run the test stand-in of VASP (tests/vasp_standin), which needs no POTCAR
STANDIN_ENV = "DFT2MLIP_VASP_STANDIN"


class Engine:
    """The interface; :class:`QE` and :class:`VASP` implement it."""

    name: str
    input_name: str  # the file whose presence means "the input is written"
    output_name: str  # the file a run leaves behind (parsed into the label)
    #: the plane-wave cutoff's key, unit and sane range (outside: a typo or a unit mix-up),
    #: and the hint for that mix-up (:func:`dft2mlip.checks.check_dft_ranges`)
    cutoff_range: tuple[str, str, float, float]
    cutoff_hint: str
    #: the program run when ``dft.<engine>.executable`` is unset, and how to get one
    #: (:func:`dft2mlip.checks.check_executable`)
    default_executable: str
    install_hint: str

    def settings(self, engine_cfg: Mapping, chosen_path: str | os.PathLike | None = None):
        """The validated settings object every label uses (:meth:`with_choice`)."""
        return self._settings_class().from_config(self.with_choice(engine_cfg, chosen_path))

    def with_choice(self, engine_cfg: Mapping, chosen_path: str | os.PathLike | None) -> dict:
        """The config section, with the convergence study's cutoff and k-point spacing when
        ``chosen_path`` (its choice) is given."""
        if not chosen_path:
            return dict(engine_cfg)
        chosen = json.loads(Path(chosen_path).read_text())
        if chosen.get("engine") != self.name:
            raise ValueError(
                f"{chosen_path} was chosen for engine {chosen.get('engine')!r}, the config runs "
                f"{self.name!r}; rerun the convergence study"
            )
        return self.at_point(engine_cfg, chosen["cutoff"], chosen["kspacing_per_A"])

    def at_point(self, engine_cfg: Mapping, cutoff: float, kspacing_per_A: float) -> dict:
        """The config section with the cutoff and k-point spacing of one convergence point."""
        cfg = {**engine_cfg, **self._cutoff_keys(engine_cfg, float(cutoff))}
        cfg["kspacing_per_A"] = float(kspacing_per_A)
        return cfg

    def label_provenance(self, written: Mapping) -> dict:
        """Engine-specific provenance of a label, from its settings.json record."""
        return {}

    #: relaxed-ion DFT elastic constants (an ionic relaxation in each fixed strained cell):
    #: :meth:`write_fixed_cell_relax` and :meth:`parse_fixed_cell_relax`
    fixed_cell_relaxation: bool = False

    def check_config(
        self, dft: Mapping, elements: list[str], order: list[float] | None = None
    ) -> None:
        """Everything about ``config["dft"]`` this engine can check before any work (files,
        headers, moments, U); a ValueError naming the key. ``order``: the per-site magnetic
        order of the configured cell (:func:`~dft2mlip.dft.magnetism.configured_order`)."""
        raise NotImplementedError

    def physics_config(self, dft: Mapping, order: list[float] | None = None) -> dict:
        """The engine's section with what ``dft.*`` adds to every label's settings: initial
        moments (per element and the per-site ``order``) and DFT+U."""
        from dft2mlip.dft.hubbard import with_hubbard
        from dft2mlip.dft.magnetism import with_moments

        section = with_moments(dft.get(self.name, {}), dft.get("magnetic_moments_muB"), order)
        return with_hubbard(section, dft.get("hubbard"))

    def known_settings_hash(self, engine_cfg: Mapping) -> str | None:
        """The settings hash of the labels, where the config alone fixes it; else None."""
        return None

    def describe(self, engine_cfg: Mapping) -> dict[str, str]:
        """The report's lines for this engine's settings."""
        shown = {k: v for k, v in engine_cfg.items() if k not in ("executable", "potcar_dir")}
        return {"DFT": f"{self.name}: " + ", ".join(f"{k} {v}" for k, v in shown.items())}

    # implemented by each engine
    def _settings_class(self):
        raise NotImplementedError

    def _cutoff_keys(self, engine_cfg: Mapping, cutoff: float) -> dict:
        raise NotImplementedError

    def write_input(self, atoms: Atoms, settings, directory: Path) -> dict:
        """Write the input; ``{"settings_hash", "physics", "kpoint_mesh", ...}``."""
        raise NotImplementedError

    def run(self, directory: Path, **execution) -> dict:
        """Run the input under custodian; the run record (never raises for a failed run)."""
        raise NotImplementedError

    def current_hash(self, settings, directory: Path) -> str:
        """The settings hash the current config gives for the files in ``directory``."""
        raise NotImplementedError

    def parse(self, directory: Path, structure: Atoms, settings_hash: str, settings) -> Label:
        raise NotImplementedError

    # the cell + ion relaxation of the reference cell (dft2mlip.dft.relax): each engine's
    # module has write_relax_input(atoms, settings, directory, thresholds) and
    # read_relax(directory, thresholds)
    def write_relax_input(self, atoms: Atoms, settings, directory: Path, thresholds) -> dict:
        return self._module().write_relax_input(atoms, settings, directory, thresholds)

    def read_relax(self, directory: Path, thresholds):
        return self._module().read_relax(directory, thresholds)

    def _module(self):
        return importlib.import_module(f"dft2mlip.dft.{self.name}")

    # the ionic relaxation in a fixed strained cell (relaxed-ion elastic constants)
    def write_fixed_cell_relax(
        self, atoms: Atoms, settings, directory: Path, *, fmax_eV_per_A: float, max_steps: int
    ) -> str:
        """Write the relaxation input into ``directory``; the settings hash of its label."""
        raise NotImplementedError(f"no fixed-cell relaxation for dft.engine = {self.name!r}")

    def parse_fixed_cell_relax(
        self, directory: Path, structure: Atoms, settings_hash: str, *, settings,
        fmax_eV_per_A: float, max_steps: int,
    ) -> Label:  # fmt: skip
        """The label of the relaxed frame ("failed" with the cause when not relaxed)."""
        raise NotImplementedError(f"no fixed-cell relaxation for dft.engine = {self.name!r}")

    # a finished run computed elsewhere (dataset.import: dft2mlip.dft.importing)
    def import_files(self, match: Path) -> list[Path]:
        """The output files of this engine at one path an import source matches (sorted as
        read; none when the path holds no run of this engine)."""
        raise NotImplementedError

    def import_run(self, file: Path) -> tuple[Path, str]:
        """The run ``file`` (from :meth:`import_files`) belongs to, one label per run, and the
        run's name in the structure id."""
        raise NotImplementedError

    def read_run(self, file: Path) -> RunOutput:
        """Every ionic step of the run ``file`` belongs to, in the project's units."""
        raise NotImplementedError

    def import_settings(self, file: Path) -> dict:
        """The physics settings the run's output reports (what the import settings hash
        covers); ``kpoints`` None when its files do not say."""
        raise NotImplementedError


class QE(Engine):
    """Quantum ESPRESSO's pw.x: ``pw.in`` -> ``pw.out``."""

    name, input_name, output_name = "qe", "pw.in", "pw.out"
    fixed_cell_relaxation = True
    cutoff_range = ("ecutwfc_Ry", "Ry", 10.0, 400.0)
    cutoff_hint = " (Ry, not eV: 1 Ry = 13.6 eV)"
    default_executable = "pw.x"
    install_hint = (
        "install Quantum ESPRESSO (tools/ensure_pw.sh, apt install quantum-espresso, "
        "conda-forge qe) or load its module"
    )

    def check_config(self, dft: Mapping, elements: list[str], order=None) -> None:
        """Pseudopotentials (files; UPF headers: element, functional, suggested cutoffs),
        initial moments (a moment above a species' valence charge) and U (an orbital the
        element and its pseudopotential have)."""
        from dft2mlip.dft.hubbard import check_hubbard, check_upf_orbital
        from dft2mlip.dft.magnetism import check_magnetic_moments
        from dft2mlip.dft.pseudo import check_pseudopotential_headers
        from dft2mlip.dft.settings import check_pseudopotentials

        check_magnetic_moments(
            elements, dft.get("magnetic_moments_muB", {}), _ordered(elements, order)
        )
        entries = check_hubbard(dft.get("hubbard"), elements)
        settings = self.settings(self.physics_config(dft, order))
        check_pseudopotentials(settings, elements)
        cutoffs = {"ecutwfc_Ry": settings.ecutwfc_Ry, "ecutrho_Ry": settings.ecutrho_Ry}
        check_pseudopotential_headers(
            settings.pseudopotentials, settings.pseudo_path, elements, cutoffs,
            allow_low_cutoff=settings.allow_low_cutoff,
        )  # fmt: skip
        settings.starting_magnetization()
        for element, entry in entries.items():
            name = settings.pseudopotentials[element]
            check_upf_orbital(element, entry.orbital, settings.pseudo_path / name)

    def known_settings_hash(self, engine_cfg: Mapping) -> str | None:
        return self.settings(engine_cfg).settings_hash()

    def describe(self, engine_cfg: Mapping) -> dict[str, str]:
        c = engine_cfg
        smearing = (f" ({c['smearing']}, {c['degauss_Ry']} Ry)"
                    if c["occupations"] == "smearing" else "")  # fmt: skip
        return {
            "DFT": (
                f"qe: ecutwfc {c['ecutwfc_Ry']} Ry, ecutrho {c['ecutrho_Ry']} Ry, "
                f"k-spacing {c['kspacing_per_A']} Å⁻¹, {c['occupations']}{smearing}, "
                f"conv_thr {c['conv_thr_Ry']:g} Ry"
            ),
            "pseudopotentials": ", ".join(f"{e}: {f}" for e, f in c["pseudopotentials"].items()),
            **({"pw.x extra": "; ".join(
                f"{nl}: " + ", ".join(f"{k} = {v}" for k, v in keys.items())
                for nl, keys in c["extra"].items())} if c.get("extra") else {}),
        }  # fmt: skip

    def _settings_class(self):
        from dft2mlip.dft.settings import QESettings

        return QESettings

    def _cutoff_keys(self, engine_cfg: Mapping, cutoff: float) -> dict:
        """``ecutwfc_Ry = cutoff``; ``ecutrho_Ry`` keeps the configured ecutrho/ecutwfc ratio."""
        ratio = float(engine_cfg.get("ecutrho_Ry", 240.0)) / float(
            engine_cfg.get("ecutwfc_Ry", 30.0)
        )
        return {"ecutwfc_Ry": cutoff, "ecutrho_Ry": cutoff * ratio}

    def write_input(self, atoms: Atoms, settings, directory: Path) -> dict:
        from dft2mlip.dft.qe import write_pw_input

        mesh = write_pw_input(atoms, settings, Path(directory) / self.input_name)
        return {
            "settings_hash": settings.settings_hash(),
            "physics": settings.physics_dict(),
            "kpoint_mesh": list(mesh),  # the structure family's mesh
        }

    def run(self, directory: Path, **execution) -> dict:
        from dft2mlip.dft.execute import run_pw_custodian

        return run_pw_custodian(Path(directory) / self.input_name, **execution)

    def current_hash(self, settings, directory: Path) -> str:
        return settings.settings_hash()

    def parse(self, directory: Path, structure: Atoms, settings_hash: str, settings) -> Label:
        from dft2mlip.dft.qe import parse_pw_output

        output = Path(directory) / self.output_name
        return parse_pw_output(output, structure, settings_hash, settings=settings)

    def write_fixed_cell_relax(self, atoms, settings, directory, *, fmax_eV_per_A, max_steps):
        from dft2mlip.dft.qe import write_fixed_cell_relax_input

        path = Path(directory) / self.input_name
        write_fixed_cell_relax_input(
            atoms, settings, path, fmax_eV_per_A=fmax_eV_per_A, max_steps=max_steps
        )
        return settings.settings_hash()

    def parse_fixed_cell_relax(
        self, directory, structure, settings_hash, *, settings, fmax_eV_per_A, max_steps
    ):
        from dft2mlip.dft.qe import parse_fixed_cell_relax

        output = Path(directory) / self.output_name
        return parse_fixed_cell_relax(
            output, structure, settings_hash, settings=settings, fmax_eV_per_A=fmax_eV_per_A
        )

    def import_files(self, match: Path) -> list[Path]:
        """A pw.x output file, or ``pw.out`` in a directory."""
        if match.is_file():
            return [match]
        return [match / self.output_name] if (match / self.output_name).is_file() else []

    def import_run(self, file: Path) -> tuple[Path, str]:
        """Each output file is a run: named after its directory (``pw.out``) or its stem."""
        return file, file.parent.name if file.name == self.output_name else file.stem

    def read_run(self, file: Path) -> RunOutput:
        from dft2mlip.dft.qe import read_pw_run

        return read_pw_run(file)

    def import_settings(self, file: Path) -> dict:
        from dft2mlip.dft.qe import pw_import_settings

        return pw_import_settings(file)


class VASP(Engine):
    """VASP: INCAR, POSCAR, KPOINTS, POTCAR -> vasprun.xml (and OUTCAR)."""

    name, input_name, output_name = "vasp", "INCAR", "vasprun.xml"
    fixed_cell_relaxation = True
    cutoff_range = ("encut_eV", "eV", 100.0, 3000.0)
    cutoff_hint = " (eV, not Ry)"
    default_executable = "vasp_std"
    install_hint = "load the VASP module (VASP is licensed; dft2mlip cannot install it)"

    def check_config(self, dft: Mapping, elements: list[str], order=None) -> None:
        """The POTCAR directory, initial moments, U (an orbital the element has), and each
        element's POTCAR (title, functional) where a POTCAR library is configured."""
        from dft2mlip.dft.hubbard import check_hubbard
        from dft2mlip.dft.magnetism import check_magnetic_moments
        from dft2mlip.dft.vasp import check_potcar_library

        potcar_dir = dft.get("vasp", {}).get("potcar_dir")
        if potcar_dir and not Path(potcar_dir).expanduser().is_dir():
            raise ValueError(
                f"config key 'dft.vasp.potcar_dir' = {potcar_dir!r} is not a directory; point it "
                "at the POTCAR library as pymatgen expects it (with POT_GGA_PAW_PBE_64/ etc.) or "
                "set it to null to use PMG_VASP_PSP_DIR"
            )
        check_magnetic_moments(
            elements, dft.get("magnetic_moments_muB", {}), _ordered(elements, order)
        )
        check_hubbard(dft.get("hubbard"), elements)
        settings = self.settings(self.physics_config(dft, order))
        check_potcar_library(settings, list(dict.fromkeys(elements)))

    def _settings_class(self):
        from dft2mlip.dft.vasp import VaspSettings

        return VaspSettings

    def _cutoff_keys(self, engine_cfg: Mapping, cutoff: float) -> dict:
        return {"encut_eV": cutoff}

    def write_input(self, atoms: Atoms, settings, directory: Path) -> dict:
        from dft2mlip.dft.vasp import write_vasp_input

        written = write_vasp_input(atoms, settings, directory)
        hashes = written["potcar_sha256"]
        return {
            "settings_hash": settings.settings_hash(hashes),
            "physics": settings.physics_dict(hashes),
            "potcar_spec": written["potcar_spec"],
            "kpoint_mesh": list(written["kpoint_mesh"]),  # the structure family's mesh
        }

    def run(self, directory: Path, **execution) -> dict:
        from dft2mlip.dft.execute import run_vasp_custodian

        standin = os.environ.get(STANDIN_ENV) == "1"
        return run_vasp_custodian(directory, allow_potcar_spec=standin, **execution)

    def current_hash(self, settings, directory: Path) -> str:
        from dft2mlip.dft.vasp import potcar_hashes_from_file

        potcar = Path(directory) / "POTCAR"
        return settings.settings_hash(potcar_hashes_from_file(potcar) if potcar.is_file() else None)

    def parse(self, directory: Path, structure: Atoms, settings_hash: str, settings) -> Label:
        from dft2mlip.dft.vasp import parse_vasp_output

        return parse_vasp_output(directory, structure, settings_hash, settings=settings)

    def label_provenance(self, written: Mapping) -> dict:
        return {
            "potcar_sha256": written["physics"].get("potcar_sha256", {}),
            "potcar_spec": written.get("potcar_spec", False),
        }

    def write_fixed_cell_relax(self, atoms, settings, directory, *, fmax_eV_per_A, max_steps):
        from dft2mlip.dft.vasp import write_fixed_cell_relax_input

        written = write_fixed_cell_relax_input(
            atoms, settings, directory, fmax_eV_per_A=fmax_eV_per_A, max_steps=max_steps
        )
        return written["settings_hash"]

    def parse_fixed_cell_relax(
        self, directory, structure, settings_hash, *, settings, fmax_eV_per_A, max_steps
    ):
        from dft2mlip.dft.outputs import check_relaxed_forces
        from dft2mlip.dft.vasp import parse_fixed_cell_relax

        label = parse_fixed_cell_relax(
            directory, structure, settings_hash, settings=settings, max_steps=max_steps
        )
        return check_relaxed_forces(label, fmax_eV_per_A)

    def import_files(self, match: Path) -> list[Path]:
        """``vasprun.xml`` and ``OUTCAR`` of a run directory (the first one present is read)."""
        return [match / name for name in ("vasprun.xml", "OUTCAR") if (match / name).is_file()]

    def import_run(self, file: Path) -> tuple[Path, str]:
        """The run is the directory, named after it."""
        return file.parent, file.parent.name

    def read_run(self, file: Path) -> RunOutput:
        from dft2mlip.dft.vasp import read_vasp_run

        return read_vasp_run(file.parent)

    def import_settings(self, file: Path) -> dict:
        from dft2mlip.dft.vasp import vasp_settings

        return vasp_settings(file.parent)


def _ordered(elements: list[str], order: list[float] | None) -> list[str]:
    """The elements a per-site order gives moments to (all of the cell's, when there is one)."""
    return list(elements) if order is not None else []


_ENGINES: dict[str, Engine] = {engine.name: engine for engine in (QE(), VASP())}
#: the DFT codes the pipeline runs (dft.engine; "none" means import only, no engine)
ENGINES = tuple(_ENGINES)


def get_engine(name: str) -> Engine:
    """The engine object of ``dft.engine``; a clear error for any other name."""
    try:
        return _ENGINES[name]
    except KeyError:
        raise ValueError(f"dft.engine must be one of {ENGINES}, got {name!r}") from None
