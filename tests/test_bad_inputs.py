"""The bad-input matrix: every bad input is refused before any work, with one clear message.

Each case asserts that the message names the key (or the file), says what is wrong and says how to
fix it. Cases the config alone shows are refused by the config checks (which the Snakefile runs
while it builds the DAG, i.e. at ``snakemake -n`` time); a few representative ones go through the
real ``snakemake -n`` command line and must leave no results directory behind. Cases already
covered elsewhere (run-name collisions, unknown weighting scheme, missing pseudopotential, bad
fractions sum, MD time step, MD supercell smaller than the cutoff) are listed in
docs/reliability.md with the test that proves them. A DFT program or MPI launcher that is not
on PATH is refused where the job runs, not here (tests/test_console.py).
"""

from __future__ import annotations

import sys
from pathlib import Path

import ase.io
import pytest
import yaml
from ase.build import bulk

from dft2mlip.checks import check_results_dir
from dft2mlip.config import ConfigError, check_config, validate_config
from dft2mlip.data import Label, build_dataset, write_label

sys.path.insert(0, str(Path(__file__).parent))
from tiny_run import TINY, make_workdir, snakemake  # noqa: E402


@pytest.fixture()
def config() -> dict:
    with open(TINY) as fh:
        return yaml.safe_load(fh)


def rejected(config: dict) -> str:
    """The message of the ConfigError that validate_config + check_config raise."""
    with pytest.raises(ConfigError) as err:
        validate_config(config)
        check_config(config)
    return str(err.value)


def assert_clear(message: str, *needles: str) -> None:
    """The message holds every needle (key or file, what is wrong, how to fix)."""
    for needle in needles:
        assert needle in message, f"{needle!r} missing from: {message}"


SIC = {
    "name": "SiC",
    "prototype": "zincblende",
    "elements": ["Si", "C"],
    "lattice_constant_A": 4.36,
}
FE = {"name": "Fe", "prototype": "bcc", "elements": ["Fe"], "lattice_constant_A": 2.87}
CU = {"name": "Cu", "prototype": "fcc", "elements": ["Cu"], "lattice_constant_A": 3.615}
FE_PSEUDO = "Fe.pbe-spn-rrkjus_psl.0.2.1.UPF"


def write_text(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


def write_cell(path: Path, element: str) -> str:
    ase.io.write(path, bulk(element, "diamond", a=5.658), format="vasp")
    return str(path)


def write_upf(directory: Path, name: str, element: str, functional: str) -> str:
    """A minimal UPF v2 header: what the pseudopotential checks read."""
    (directory / name).write_text(
        f'<UPF version="2.0.1">\n<PP_HEADER element="{element}" functional="{functional}" '
        'z_valence="4.0" wfc_cutoff="0" rho_cutoff="0"/>\n</UPF>\n'
    )
    return name


def use_pseudo(config: dict, directory: Path, files: dict, real: bool = False) -> None:
    """Point dft.qe at ``files`` (in ``directory``, or Debian's directory when ``real``)."""
    if not real:
        config["dft"]["qe"]["pseudo_dir"] = str(directory)
    config["dft"]["qe"]["pseudopotentials"] = files


def write_extxyz_source(config: dict, path: Path) -> None:
    config["dataset"]["import"] = [{"name": "old", "path": str(path), "format": "extxyz"}]


# (id, mutation, what the message must hold: key, what is wrong, the fix)
SCHEMA_CASES = [
    (
        "unknown-nested-key",
        lambda c, t: c["training"].update(epoch=5),
        ["'training'", "'epoch' was unexpected", "allowed keys", "epochs"],
    ),
    (
        "number-given-as-string",
        lambda c, t: c["model"].update(r_max_A="4.5"),
        ["'model.r_max_A'", "is not of type 'number'", "config/README.md"],
    ),
    (
        "elements-not-a-list",
        lambda c, t: c["material"].update(elements="Si"),
        ["'material.elements'", "is not of type 'array'"],
    ),
    (
        "unknown-prototype",
        lambda c, t: c["material"].update(prototype="perovskite"),
        ["'material.prototype'", "'perovskite' is not one of", "diamond", "wurtzite"],
    ),
    (
        "negative-lattice-constant",
        lambda c, t: c["material"].update(lattice_constant_A=-5.431),
        ["'material.lattice_constant_A'", "less than or equal to the minimum of 0"],
    ),
    (
        "negative-cutoff",
        lambda c, t: c["dft"]["qe"].update(ecutwfc_Ry=-30.0),
        ["'dft.qe.ecutwfc_Ry'", "-30.0 is less than or equal to the minimum of 0"],
    ),
    (
        "absurd-strain-range",
        lambda c, t: c["structures"]["strained"].update(max_strain=0.5),
        ["'structures.strained.max_strain'", "0.5 is greater than the maximum of 0.2"],
    ),
    (
        "absurd-hydrostatic-strain",
        lambda c, t: c["structures"]["hydrostatic"].update(strains=[-0.02, 0.5]),
        ["'structures.hydrostatic.strains.1'", "greater than the maximum of 0.2"],
    ),
    (
        "fractions-leave-a-split-empty",
        lambda c, t: c["dataset"].update(fractions={"train": 1.0, "val": 0.0, "test": 0.0}),
        ["'dataset.fractions.test'", "'dataset.fractions.val'", "minimum of 0"],
    ),
    (
        "md-snapshots-zero",
        lambda c, t: c["validation"]["md"].update(snapshots=0),
        ["'validation.md.snapshots'", "less than the minimum of 1"],
    ),
]

SEMANTIC_CASES = [
    (
        "unknown-element",
        lambda c, t: c["material"].update(elements=["Xx"]),
        ["'material.elements'", "'Xx' is not a chemical element", "e.g. [Si]"],
    ),
    (
        "prototype-needs-two-elements",
        lambda c, t: c["material"].update(prototype="zincblende"),
        ["material.prototype='zincblende'", "Please specify 2 atoms", "Use a prototype"],
    ),
    (
        "overlapping-atoms-lattice-in-wrong-unit",
        lambda c, t: c["material"].update(lattice_constant_A=1.0),
        ["'material.lattice_constant_A' = 1.0", "overlapping atoms", "in Å"],
    ),
    (
        "lattice-constant-in-bohr",
        lambda c, t: c["material"].update(lattice_constant_A=10.263),
        ["'material.lattice_constant_A' = 10.263", "far too large", "in bohr", "in Å"],
    ),
    (
        "lattice-constant-absurdly-large",
        lambda c, t: c["material"].update(lattice_constant_A=54.31),
        ["'material.lattice_constant_A' = 54.31", "far too large", "in Å"],
    ),
    (
        "structure-file-missing",
        lambda c, t: c["material"].update(structure=str(t / "Si.cif")),
        ["'material.structure'", "Si.cif", "no such file"],
    ),
    (
        "structure-file-does-not-parse",
        lambda c, t: c["material"].update(structure=write_text(t / "Si.cif", "data_x\n_cell 1\n")),
        ["'material.structure'", "does not parse", "CIF, POSCAR or extxyz"],
    ),
    (
        "structure-file-other-species",
        lambda c, t: c["material"].update(structure=write_cell(t / "POSCAR", "Ge")),
        ["'material.structure'", "holds ['Ge']", "material.elements = ['Si']"],
    ),
    (
        "species-without-pseudopotential",
        lambda c, t: c["material"].update(prototype="zincblende", elements=["Si", "Ge"]),
        ["pseudopotential for Ge", "dft.qe.pseudopotentials.Ge", "add one"],
    ),
    (
        "pseudopotential-of-another-element",
        lambda c, t: use_pseudo(c, t, {"Si": write_upf(t, "Si.x.UPF", "Ge", "PBE")}),
        ["'dft.qe.pseudopotentials.Si' = 'Si.x.UPF'", "for Ge, not Si", "name a Si UPF"],
    ),
    (
        "mixed-functionals",
        lambda c, t: use_pseudo(
            c.update(material=SIC) or c,
            t,
            {"Si": write_upf(t, "Si.x.UPF", "Si", "PBE"), "C": write_upf(t, "C.x.UPF", "C", "PZ")},
        ),
        ["'dft.qe.pseudopotentials' mixes functionals", "C: LDA", "Si: PBE", "same functional"],
    ),
    (
        "magnetic-element-without-spin-setting",
        lambda c, t: use_pseudo(c.update(material=FE) or c, t, {"Fe": FE_PSEUDO}, real=True),
        ["'dft.magnetic_moments_muB.Fe' is missing", "{Fe: 2.5}", "non-magnetic on purpose"],
    ),
    (
        "one-atom-cell-rattled",
        lambda c, t: use_pseudo(c.update(material=CU) or c, t, {"Cu": "Cu.pbe-kjpaw.UPF"}, True),
        ["'structures.rattled.count' = 2", "only translates", "structures.supercell"],
    ),
    (
        "potcar-dir-missing",
        lambda c, t: c["dft"].update(engine="vasp", vasp={"potcar_dir": str(t / "nope")}),
        ["'dft.vasp.potcar_dir'", "is not a directory", "PMG_VASP_PSP_DIR"],
    ),
    (
        "cutoff-in-eV-not-Ry",
        lambda c, t: c["dft"]["qe"].update(ecutwfc_Ry=520.0, ecutrho_Ry=4160.0),
        ["'dft.qe.ecutwfc_Ry' = 520.0 Ry", "outside the sane range", "not eV"],
    ),
    (
        "vasp-cutoff-in-Ry-not-eV",
        lambda c, t: c["dft"].update(
            engine="vasp", vasp={"executable": sys.executable, "encut_eV": 40.0}
        ),
        ["'dft.vasp.encut_eV' = 40.0 eV", "outside the sane range", "not Ry"],
    ),
    (
        "absurd-kspacing",
        lambda c, t: c["dft"]["qe"].update(kspacing_per_A=0.001),
        ["'dft.qe.kspacing_per_A' = 0.001", "astronomically dense", "0.15-0.3"],
    ),
    (
        "absurd-convergence-grid",
        lambda c, t: c["dft"].update(convergence={"enabled": True, "kspacings_per_A": [0.5, 5.0]}),
        ["'dft.convergence.kspacings_per_A[1]' = 5.0", "only Γ", "typical"],
    ),
    (
        "md-strain-per-step-too-large",
        lambda c, t: c["validation"]["md"].update(strain_rate_per_ps=5.0),
        ["validation.md.strain_rate_per_ps", "above 0.001", "lower strain_rate_per_ps"],
    ),
    (
        "mpi-launcher-bad-template",
        lambda c, t: c["dft"].update(mpi_launcher="mpirun -np {n}"),
        ["dft.mpi_launcher", "not a valid template", "{nprocs}"],
    ),
    (
        "results-dir-absolute",
        lambda c, t: c.update(results_dir=str(t / "elsewhere")),
        ["'results_dir'", "absolute path", "relative path"],
    ),
    (
        "results-dir-escapes-with-dotdot",
        lambda c, t: c.update(results_dir="sub/../../out"),
        ["'results_dir'", "leaves the working directory", "inside it"],
    ),
    (
        "import-glob-matches-nothing",
        lambda c, t: write_extxyz_source(c, t / "missing-*.extxyz"),
        ["'dataset.import' entry 'old'", "no extxyz data found", "a glob"],
    ),
]


@pytest.mark.parametrize(
    ("mutate", "needles"), [c[1:] for c in SCHEMA_CASES], ids=[c[0] for c in SCHEMA_CASES]
)
def test_schema_rejects(config, tmp_path, mutate, needles):
    mutate(config, tmp_path)
    message = rejected(config)
    assert message.startswith("invalid configuration")
    assert_clear(message, *needles)


@pytest.mark.parametrize(
    ("mutate", "needles"), [c[1:] for c in SEMANTIC_CASES], ids=[c[0] for c in SEMANTIC_CASES]
)
def test_semantic_checks_reject(config, tmp_path, monkeypatch, mutate, needles):
    monkeypatch.chdir(tmp_path)
    mutate(config, tmp_path)
    message = rejected(config)
    assert "\n" not in message, "one message, not a list or a traceback"
    assert_clear(message, *needles)


def test_import_file_that_does_not_parse(config, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    bad = tmp_path / "old.extxyz"
    bad.write_text('2\nLattice="garbage\nSi 0 0 0\n')
    write_extxyz_source(config, bad)
    assert_clear(rejected(config), str(bad), "does not parse as extended XYZ", "fix the file")


def test_import_file_with_overlapping_atoms(config, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    good = bulk("Si", "diamond", a=5.431)
    squashed = good.copy()
    squashed.positions[1] = squashed.positions[0] + [0.2, 0.0, 0.0]
    path = tmp_path / "old.extxyz"
    ase.io.write(path, [good, squashed], format="extxyz")
    write_extxyz_source(config, path)
    message = rejected(config)
    assert_clear(message, str(path), "frame 1", "0.200 Å apart", "overlapping", "fix or drop")


def test_results_dir_blocked_by_a_file(config, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "results").write_text("not a directory")
    assert_clear(rejected(config), "'results_dir'", "is not a directory", "remove it")


def test_unwritable_results_dir():
    # sysfs refuses regular files even to root: a real unwritable directory on every Linux host
    if not Path("/sys").is_dir():
        pytest.skip("needs /sys")
    with pytest.raises(ValueError) as err:
        check_results_dir("results", workdir="/sys")
    assert_clear(str(err.value), "'results_dir'", "cannot write in /sys", "make it writable")


def test_empty_dataset_after_filtering_stops_before_training(tmp_path):
    paths = []
    for k, status in enumerate(("failed", "scf_not_converged", "failed")):
        label = Label(
            structure_id=f"s{k}",
            config_type="strained",
            status=status,
            message=f"reason {k}",
            atoms=bulk("Si", "diamond", a=5.431),
            settings_hash="abc",
        )
        write_label(label, tmp_path / f"s{k}.extxyz")
        paths.append(tmp_path / f"s{k}.extxyz")
    with pytest.raises(ValueError) as err:
        build_dataset(paths, {"train": 0.6, "val": 0.2, "test": 0.2}, 0, tmp_path / "ds")
    assert_clear(str(err.value), "dataset would be empty", "s1 (scf_not_converged: reason 1)")
    assert not (tmp_path / "ds" / "train.extxyz").exists()


# ---- through the real command line: `snakemake -n` refuses, and writes nothing


def dry_run_refuses(tmp_path: Path, cfg_text: str) -> str:
    bad = tmp_path / "bad.yaml"
    bad.write_text(cfg_text)
    work = make_workdir(tmp_path / "w", bad)
    proc = snakemake(work, "-n", check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out[-2000:]
    assert not (work / "results").exists(), "a refused dry run must not create results/"
    assert "Traceback (most recent call last)" not in out, out[-2000:]
    return out


@pytest.mark.workflow
@pytest.mark.parametrize(
    ("edit", "needles"),
    [
        (lambda c: c.update(results_dir="../outside"), ["results_dir", "leaves the working"]),
        (lambda c: c["material"].update(elements=["Qq"]), ["material.elements", "'Qq'"]),
        (lambda c: c.update(trainig={"epochs": 3}), ["trainig", "Additional properties"]),
        (
            lambda c: use_pseudo(c.update(material=FE) or c, None, {"Fe": FE_PSEUDO}, real=True),
            ["dft.magnetic_moments_muB.Fe", "non-magnetic on purpose"],
        ),
        (
            lambda c: c["material"].update(structure="inputs/Si.cif"),
            ["material.structure", "inputs/Si.cif", "no such file"],
        ),
    ],
    ids=[
        "results-dir-escapes",
        "unknown-element",
        "typo-top-level-key",
        "magnetic-element-without-spin",
        "structure-file-missing",
    ],
)
def test_dry_run_refuses_bad_config(tmp_path, edit, needles):
    cfg = yaml.safe_load(open(TINY))
    edit(cfg)
    assert_clear(dry_run_refuses(tmp_path, yaml.safe_dump(cfg)), *needles)


@pytest.mark.workflow
def test_dry_run_refuses_config_that_is_not_yaml(tmp_path):
    text = Path(TINY).read_text().replace("seed: 7", "seed: [7")
    assert "seed: [7" in text
    out = dry_run_refuses(tmp_path, text)
    # Snakemake's own message (it reads the file): it names the configfile line of the Snakefile
    assert_clear(out, "Config file is not valid JSON or YAML", 'Snakefile", line')
