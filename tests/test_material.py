"""Any material a scientist brings (issue 11): a user's config stands alone, pseudopotentials are
checked before any work, collinear magnetism, one k-point mesh per structure family."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

sys.path.insert(0, str(Path(__file__).parent))
from tiny_run import ROOT, make_workdir, n_snapshot_labels, planned_jobs, snakemake  # noqa: E402

from dft2mlip.study import grid_run_names  # noqa: E402

CU = Path(__file__).parent / "workflow" / "config_cu.yaml"


@pytest.mark.workflow
def test_user_configfile_stands_alone(tmp_path):
    """`snakemake --configfile cu.yaml` plans the user's runs only: the embedded Si example (five
    runs x three seeds, 62 candidates) is not merged into it."""
    work = make_workdir(tmp_path / "w", ROOT / "config" / "config.yaml")
    user = yaml.safe_load(CU.read_text())
    proc = snakemake(work, "-n", "--configfile", str(CU))
    jobs = planned_jobs(proc.stdout + proc.stderr)
    runs, seeds = list(user["training"]["runs"]), user["training"]["seeds"]
    assert jobs["train"] == len(runs) * seeds == 1
    n_train = len(user["structures"]["hydrostatic"]["strains"]) + sum(
        user["structures"][s]["count"] for s in ("strained", "rattled", "supercell")
    )
    n_elastic, n_snapshots = 12, n_snapshot_labels(user)
    n_family = 2  # the cross-family check: fcc Cu's primitive (1 atom) and conventional (4) cell
    assert jobs["dft_input"] == jobs["dft_run"] == n_train + n_elastic + n_snapshots + n_family
    # the user's DFT settings only: the input and its settings hash name Cu's file, not Si's
    label_dir = work / "results" / "dft" / "train" / "hydro-000"
    snakemake(work, "results/dft/train/hydro-000/pw.in", "--configfile", str(CU), cores=1)
    physics = json.loads((label_dir / "settings.json").read_text())["physics"]
    assert physics["pseudopotentials"].keys() == {"Cu"}
    assert physics["ecutwfc_Ry"] == user["dft"]["qe"]["ecutwfc_Ry"]
    assert "Si" not in (label_dir / "pw.in").read_text().split("ATOMIC_SPECIES")[1]
    # without --configfile the embedded example is still the config
    default = planned_jobs(snakemake(work, "-n").stdout)
    si = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())["training"]
    grid_points = len(grid_run_names(si["runs"]))  # each trained once, with the first seed
    assert default["train"] == si["seeds"] * len(si["runs"]) + grid_points


# ---- pseudopotential headers (checked at `snakemake -n`)

PSEUDO = Path("/usr/share/espresso/pseudo")
needs_pseudo = pytest.mark.skipif(
    not (PSEUDO / "Si.pbe-nl-rrkjus_psl.1.0.0.UPF").is_file(),
    reason="Debian pseudopotentials (quantum-espresso-data) not installed",
)


def suggested_in_text(path: Path, what: str) -> float:
    """The number on the file's 'Suggested minimum cutoff for <what>:' line, read plainly."""
    for line in path.read_text().splitlines():
        if f"Suggested minimum cutoff for {what}:" in line:
            return float(line.split(":")[1].split()[0])
    raise AssertionError(f"{path} has no suggestion for {what}")


def write_upf(
    path: Path, element: str, functional: str, z: float = 4.0, wfc: float = 0, rho: float = 0
) -> Path:
    """A minimal UPF v2 header (all the checks read)."""
    path.write_text(
        '<UPF version="2.0.1">\n<PP_INFO>\n</PP_INFO>\n'
        f'<PP_HEADER element="{element}" functional="{functional}" z_valence="{z}"\n'
        f'  wfc_cutoff="{wfc}" rho_cutoff="{rho}"/>\n</UPF>\n'
    )
    return path


@needs_pseudo
def test_upf_headers_of_the_debian_files():
    from dft2mlip.dft.pseudo import read_upf_header

    si = read_upf_header(PSEUDO / "Si.pbe-nl-rrkjus_psl.1.0.0.UPF")
    assert (si.element, si.functional, si.z_valence) == ("Si", "PBE", 4.0)
    assert si.wfc_cutoff_Ry == suggested_in_text(si.path, "wavefunctions") == 44.0
    assert si.rho_cutoff_Ry == suggested_in_text(si.path, "charge density") == 175.0
    cu = read_upf_header(PSEUDO / "Cu.pbe-kjpaw.UPF")  # UPF 2.0.0, functional as four parts
    assert (cu.element, cu.functional, cu.z_valence) == ("Cu", "PBE", 11.0)
    assert cu.wfc_cutoff_Ry == suggested_in_text(cu.path, "wavefunctions")
    lda = read_upf_header(PSEUDO / "Si.pz-vbc.UPF")  # suggests 0 Ry: no suggestion
    assert (lda.functional, lda.wfc_cutoff_Ry, lda.rho_cutoff_Ry) == ("LDA", None, None)
    v1 = PSEUDO / "Ni.rel-pbe-nd-rrkjus.UPF"  # UPF v1: values first, description after
    header = read_upf_header(v1)
    line = next(ln for ln in v1.read_text().splitlines() if "Suggested cutoff" in ln)
    assert (header.element, header.functional, header.z_valence) == ("Ni", "PBE", 10.0)
    assert [header.wfc_cutoff_Ry, header.rho_cutoff_Ry] == [float(v) for v in line.split()[:2]]
    fe = read_upf_header(PSEUDO / "Fe.pbesol-spn-kjpaw_psl.1.0.0.UPF")
    assert (fe.functional, fe.z_valence) == ("PBESOL", 16.0)


def si_config() -> dict:
    cfg = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    cfg["dft"]["qe"].update(ecutwfc_Ry=45.0, ecutrho_Ry=360.0)
    return cfg


def refused(cfg: dict) -> str:
    from dft2mlip.config import ConfigError, check_config, validate_config

    with pytest.raises(ConfigError) as err:
        validate_config(cfg)
        check_config(cfg)
    assert "\n" not in str(err.value), "one line"
    return str(err.value)


@needs_pseudo
def test_pseudopotential_for_another_element_is_refused(tmp_path):
    cfg = si_config()
    write_upf(tmp_path / "Si.mine.UPF", "Ge", "PBE")
    cfg["dft"]["qe"].update(pseudo_dir=str(tmp_path), pseudopotentials={"Si": "Si.mine.UPF"})
    message = refused(cfg)
    for needle in ("'dft.qe.pseudopotentials.Si'", "Si.mine.UPF", "for Ge, not Si"):
        assert needle in message, message


@needs_pseudo
def test_mixed_functionals_are_refused():
    from dft2mlip.config import check_config, validate_config

    cfg = si_config()
    cfg["material"].update(prototype="zincblende", elements=["Si", "C"], lattice_constant_A=4.36)
    cfg["validation"]["md"]["repeat"] = [2, 2, 2]
    cfg["dft"]["qe"]["pseudopotentials"] = {
        "Si": "Si.pbe-nl-rrkjus_psl.1.0.0.UPF",
        "C": "C.pz-rrkjus.UPF",
    }
    message = refused(cfg)
    for needle in ("'dft.qe.pseudopotentials' mixes functionals", "C: LDA", "Si: PBE"):
        assert needle in message, message
    cfg["dft"]["qe"]["pseudopotentials"]["C"] = "C.pbe-rrkjus.UPF"  # PBE written as 4 parts
    validate_config(cfg)
    check_config(cfg)


@needs_pseudo
def test_cutoff_below_the_suggestion_needs_the_explicit_key(tmp_path):
    from dft2mlip.config import check_config, validate_config

    cfg = si_config()
    cfg["dft"]["qe"].update(ecutwfc_Ry=30.0, ecutrho_Ry=240.0, allow_low_cutoff=False)
    message = refused(cfg)
    for needle in ("'dft.qe.ecutwfc_Ry' = 30 Ry", "44 Ry", "dft.qe.allow_low_cutoff: true"):
        assert needle in message, message
    cfg["dft"]["qe"].update(ecutwfc_Ry=44.0, ecutrho_Ry=176.0)  # the suggestions: 44 and 175
    validate_config(cfg)
    check_config(cfg)
    cfg["dft"]["qe"].update(ecutwfc_Ry=30.0, ecutrho_Ry=240.0, allow_low_cutoff=True)
    check_config(cfg)
    # a density cutoff below the file's (header attributes, no PP_INFO line)
    write_upf(tmp_path / "Si.hard.UPF", "Si", "PBE", wfc=20.0, rho=300.0)
    qe = {"pseudo_dir": str(tmp_path), "pseudopotentials": {"Si": "Si.hard.UPF"}}
    cfg["dft"]["qe"].update(qe, ecutwfc_Ry=45.0, ecutrho_Ry=200.0, allow_low_cutoff=False)
    assert "'dft.qe.ecutrho_Ry' = 200 Ry is below the 300 Ry that Si.hard.UPF" in refused(cfg)


# ---- collinear magnetism

REAL_MAGNETIC = Path(__file__).parent / "data" / "realdata" / "qe" / "magnetic_moments_v68.out"
FE_PSEUDO = "Fe.pbe-spn-rrkjus_psl.0.2.1.UPF"


def fe_config() -> dict:
    """bcc Fe, QE, spin-polarised (no DFT runs: the checks and the inputs only)."""
    cfg = si_config()
    cfg["material"] = {
        "name": "Fe",
        "prototype": "bcc",
        "elements": ["Fe"],
        "lattice_constant_A": 2.83,
    }
    cfg["dft"]["qe"].update(
        pseudopotentials={"Fe": FE_PSEUDO}, ecutwfc_Ry=65.0, ecutrho_Ry=785.0, degauss_Ry=0.02
    )
    cfg["dft"]["magnetic_moments_muB"] = {"Fe": 2.5}
    cfg["validation"]["md"]["repeat"] = [2, 2, 2]
    cfg["structures"]["rattled"]["count"] = 0  # one atom per cell: rattled supercells instead
    return cfg


def z_valence_in_text(path: Path) -> float:
    text = path.read_text()
    return float(text.split('z_valence="')[1].split('"')[0])


@needs_pseudo
def test_fe_without_a_spin_setting_is_refused_and_zero_says_on_purpose():
    from dft2mlip.config import check_config, validate_config

    cfg = fe_config()
    del cfg["dft"]["magnetic_moments_muB"]
    message = refused(cfg)
    for needle in ("'dft.magnetic_moments_muB.Fe' is missing", "{Fe: 2.5}", "or 0 if"):
        assert needle in message, message
    cfg["dft"]["magnetic_moments_muB"] = {"Fe": 0}  # non-magnetic on purpose
    validate_config(cfg)
    check_config(cfg)
    cfg["dft"]["magnetic_moments_muB"] = {"Fe": 2.5, "Co": 1.0}
    assert "'dft.magnetic_moments_muB.Co': Co is not in material.elements" in refused(cfg)
    cfg["dft"]["magnetic_moments_muB"] = {"Fe": 17.0}  # the file has 16 valence electrons
    assert "'dft.magnetic_moments_muB.Fe' = 17.0 μB exceeds the 16" in refused(cfg)


@needs_pseudo
def test_qe_spin_input_and_hash(tmp_path):
    from ase.build import bulk

    from dft2mlip.dft.magnetism import with_moments
    from dft2mlip.dft.qe import write_pw_input
    from dft2mlip.dft.settings import QESettings

    cfg = fe_config()
    qe = cfg["dft"]["qe"]
    magnetic = QESettings.from_config(with_moments(qe, {"Fe": 2.5}))
    write_pw_input(bulk("Fe", "bcc", a=2.83, cubic=True), magnetic, tmp_path / "pw.in")
    text = (tmp_path / "pw.in").read_text()
    expected = 2.5 / z_valence_in_text(PSEUDO / FE_PSEUDO)  # 2.5 μB of 16 valence electrons
    assert "nspin            = 2" in text
    line = next(ln for ln in text.splitlines() if "starting_magnetization(1)" in ln)
    assert float(line.split("=")[1]) == pytest.approx(expected)
    assert "ntyp             = 1" in text  # one species: both atoms start with the same moment
    plain = QESettings.from_config(with_moments(qe, {"Fe": 0.0}))
    assert with_moments(qe, {"Fe": 0.0}) == qe  # non-magnetic: the settings as without the key
    assert plain.settings_hash() == QESettings.from_config(qe).settings_hash()
    assert magnetic.settings_hash() != plain.settings_hash()
    other = QESettings.from_config(with_moments(qe, {"Fe": 2.0}))
    assert other.settings_hash() != magnetic.settings_hash()
    assert magnetic.physics_dict()["starting_magnetization"] == {"Fe": pytest.approx(expected)}


def test_final_magnetisation_of_a_real_spin_polarised_output():
    from dft2mlip.dft.magnetism import qe_magnetization

    text = REAL_MAGNETIC.read_text()
    lines = text.splitlines()
    total = [ln for ln in lines if "total magnetization" in ln][-1]
    absolute = [ln for ln in lines if "absolute magnetization" in ln][-1]
    start = max(i for i, ln in enumerate(lines) if "Magnetic moment per site" in ln)
    sites = []
    for ln in lines[start + 1 :]:
        if "magn=" not in ln:
            break
        sites.append(float(ln.split("magn=")[1]))
    got = qe_magnetization(text)
    assert got["total_magnetization_muB"] == float(total.split("=")[1].split()[0])
    assert got["absolute_magnetization_muB"] == float(absolute.split("=")[1].split()[0])
    assert got["site_magnetizations_muB"] == sites and len(sites) == 2
    assert qe_magnetization("no spin here") == {}


def test_vasp_spin_incar_and_hash(tmp_path, monkeypatch):
    from ase.build import bulk

    from dft2mlip.dft.magnetism import vasp_magnetization, with_moments
    from dft2mlip.dft.vasp import VaspSettings, write_vasp_input

    monkeypatch.delenv("PMG_VASP_PSP_DIR", raising=False)
    monkeypatch.setattr("pymatgen.core.SETTINGS", {}, raising=False)
    atoms = bulk("FeAl", "cesiumchloride", a=2.9).repeat((2, 1, 1))  # Fe Al Fe Al
    settings = VaspSettings.from_config(with_moments({}, {"Fe": 2.5, "Al": 0.0}))
    write_vasp_input(atoms, settings, tmp_path)
    incar = (tmp_path / "INCAR").read_text()
    assert "ISPIN = 2" in incar
    magmom = next(ln for ln in incar.splitlines() if ln.startswith("MAGMOM"))
    expanded = []
    for item in magmom.split("=")[1].split():
        count, value = item.split("*") if "*" in item else (1, item)
        expanded += [float(value)] * int(count)
    assert expanded == [2.5, 0.0, 2.5, 0.0]
    plain = VaspSettings.from_config({})
    assert settings.settings_hash() != plain.settings_hash()
    assert VaspSettings.from_config(with_moments({}, {"Fe": 0})).settings_hash() == (
        plain.settings_hash()
    )
    with pytest.raises(ValueError, match="dft.magnetic_moments_muB"):
        VaspSettings.from_config({"ispin": 2})
    outcar = " number of electron      16.0000000 magnetization       4.4123456\n"
    assert vasp_magnetization(outcar) == {"total_magnetization_muB": 4.4123456}


@needs_pseudo
def test_label_records_its_kpoint_mesh(tmp_path):
    """settings.json and the parsed label's provenance hold the mesh the input was written with
    (the committed real pw.x fixture: 4x4x4 in its K_POINTS line)."""
    import json
    import shutil

    from conftest import TINY_QE, fixture_structure

    from dft2mlip.dft.labels import parse_run, write_input

    data = Path(__file__).parent / "data" / "qe"
    pwi = (data / "si2_scf.pwi").read_text().splitlines()
    expected = [int(v) for v in pwi[pwi.index("K_POINTS automatic") + 1].split()[:3]]
    atoms = fixture_structure()
    record = write_input("qe", TINY_QE, atoms, tmp_path, tmp_path / "settings.json")
    assert record["kpoint_mesh"] == expected
    assert json.loads((tmp_path / "settings.json").read_text())["kpoint_mesh"] == expected
    shutil.copy(data / "si2_scf.pwo", tmp_path / "pw.out")
    label = parse_run("qe", TINY_QE, tmp_path, atoms, tmp_path / "settings.json")
    assert label.status == "ok", label.message
    assert label.provenance["kpoint_mesh"] == expected
    assert "total_magnetization_muB" not in label.provenance  # nspin = 1


@needs_pseudo
@pytest.mark.skipif(shutil.which("pw.x") is None, reason="pw.x not installed")
def test_tiny_spin_polarised_pw_run(tmp_path):
    """bcc Fe (one atom, 25 Ry, Γ-heavy mesh: about a second): pw.x takes the input and the label
    records the final magnetisation pw.x printed; it stays ferromagnetic."""
    from ase.build import bulk

    from dft2mlip.dft.magnetism import with_moments
    from dft2mlip.dft.qe import parse_pw_output, write_pw_input
    from dft2mlip.dft.run import run_pw
    from dft2mlip.dft.settings import QESettings

    qe = {
        "pseudopotentials": {"Fe": "Fe.pbe-nd-rrkjus.UPF"},
        "ecutwfc_Ry": 25.0,
        "ecutrho_Ry": 200.0,
        "kspacing_per_A": 0.9,
        "degauss_Ry": 0.02,
        "conv_thr_Ry": 1e-6,
    }
    settings = QESettings.from_config(with_moments(qe, {"Fe": 2.5}))
    atoms = bulk("Fe", "bcc", a=2.83)
    atoms.info.update(structure_id="fe1", config_type="test")
    write_pw_input(atoms, settings, tmp_path / "pw.in")
    run_pw(tmp_path / "pw.in", tmp_path / "pw.out", nprocs=1, mpi_launcher="", timeout_s=120)
    label = parse_pw_output(tmp_path / "pw.out", atoms, settings.settings_hash(), settings=settings)
    assert label.status == "ok", label.message
    printed = [
        ln for ln in (tmp_path / "pw.out").read_text().splitlines() if "total magnetiz" in ln
    ]
    expected = float(printed[-1].split("=")[1].split()[0])
    assert label.provenance["total_magnetization_muB"] == expected
    assert expected > 1.0  # ferromagnetic (Bohr mag/cell)


def test_potcar_titles_are_checked():
    from dft2mlip.dft.vasp import check_potcar_titles

    def single(title: str, lexch: str) -> str:
        header = f"  {title}\n 8.0\n parameters from PSCTR are:\n"
        return header + f"   LEXCH  = {lexch}\n   TITEL  = {title}\n"

    fe, al = single("PAW_PBE Fe_pv 02Aug2007", "PE"), single("PAW_PBE Al 04Jan2001", "PE")
    check_potcar_titles(fe + al, ["Fe", "Al"])
    check_potcar_titles(single("PAW_PBE H1.25 07Sep2000", "PE"), ["H"])
    with pytest.raises(ValueError, match=r"'dft.vasp.potcars.Al'.*titled 'Fe_pv'"):
        check_potcar_titles(fe + fe, ["Fe", "Al"])
    lda = single("PAW Al 17Apr2000", "CA")
    with pytest.raises(
        ValueError, match=r"'dft.vasp.potcars' mixes functionals \(Fe: PBE, Al: LDA\)"
    ):
        check_potcar_titles(fe + lda, ["Fe", "Al"])
    with pytest.raises(ValueError, match="holds 1 pseudopotentials for 2 species"):
        check_potcar_titles(fe, ["Fe", "Al"])


def test_vasp_uses_the_family_mesh(tmp_path, monkeypatch):
    """VASP sizes the mesh from KSPACING per cell unless a KPOINTS file exists: the elastic ±
    pair of fcc Cu gets the primitive cell's mesh in KPOINTS (and in the record)."""
    from dft2mlip.dft.vasp import VaspSettings, write_vasp_input
    from dft2mlip.structures import elastic_structures, primitive_cell

    monkeypatch.delenv("PMG_VASP_PSP_DIR", raising=False)
    monkeypatch.setattr("pymatgen.core.SETTINGS", {}, raising=False)
    cu = {"prototype": "fcc", "elements": ["Cu"], "lattice_constant_A": 3.615}
    recip = np.linalg.inv(primitive_cell(cu).cell.array).T
    spacing = 2 * np.pi * np.linalg.norm(recip[0]) / 15.003  # own-cell meshes: 15 vs 16
    expected = [int(np.ceil(2 * np.pi * np.linalg.norm(b) / spacing)) for b in recip]
    settings = VaspSettings.from_config({"kspacing_per_A": spacing})
    for sid in ("elastic-e1p", "elastic-e1m"):
        atoms = elastic_structures(cu, 0.005)[sid]
        written = write_vasp_input(atoms, settings, tmp_path / sid)
        assert list(written["kpoint_mesh"]) == expected
        lines = (tmp_path / sid / "KPOINTS").read_text().splitlines()
        assert lines[2] == "Gamma" and [int(v) for v in lines[3].split()] == expected


@needs_pseudo
def test_md_cell_too_narrow_suggests_a_repeat_that_is_wide_enough():
    """fcc Cu: the 3.615 Å conventional cell is narrower than r_max = 4.5 Å; twice it (7.23 Å)
    is wide enough, and the suggested repeat passes the same check."""
    from dft2mlip.config import check_config, validate_config

    cfg = yaml.safe_load(CU.read_text())
    cfg["validation"]["md"]["repeat"] = [1, 1, 1]
    validate_config(cfg)
    n = int(np.ceil(cfg["model"]["r_max_A"] / cfg["material"]["lattice_constant_A"]))
    assert f"e.g. validation.md.repeat: {[n, n, n]} is wide enough" in refused(cfg)
    cfg["validation"]["md"]["repeat"] = [n, n, n]
    check_config(cfg)


def test_potcar_library_is_checked_at_dry_run(tmp_path, monkeypatch):
    """With dft.vasp.potcar_dir set, check_config finds each element's POTCAR as pymatgen would
    and refuses a missing one or one titled for another element, before any input exists."""
    from dft2mlip.config import check_config, validate_config

    monkeypatch.chdir(tmp_path)
    library = tmp_path / "psp" / "POT_PAW_PBE_64"
    (library / "Fe_pv").mkdir(parents=True)
    cfg = yaml.safe_load(CU.read_text())
    cfg["material"] = {
        "name": "Fe",
        "prototype": "bcc",
        "elements": ["Fe"],
        "lattice_constant_A": 2.83,
    }
    cfg["dft"] = {
        "engine": "vasp",
        "magnetic_moments_muB": {"Fe": 2.5},
        "vasp": {"potcar_dir": str(tmp_path / "psp")},
    }
    validate_config(cfg)
    assert "no POTCAR 'Fe_pv' (PBE_64)" in refused(cfg)
    potcar = library / "Fe_pv" / "POTCAR"
    potcar.write_text("  PAW_PBE Al 04Jan2001\n   LEXCH  = PE\n   TITEL  = PAW_PBE Al 04Jan2001\n")
    assert "'dft.vasp.potcars.Fe': the POTCAR chosen for Fe is titled 'Al'" in refused(cfg)
    potcar.write_text(
        "  PAW_PBE Fe_pv 02Aug2007\n   LEXCH  = PE\n   TITEL  = PAW_PBE Fe_pv 02Aug2007\n"
    )
    check_config(cfg)


def test_files_that_are_not_upf_are_named(tmp_path):
    from dft2mlip.dft.pseudo import read_upf_header

    (tmp_path / "Si.bhs").write_text("'PZ'\n'Si',4.0,2,2,3,.f.,2,.t.\n")  # an old, non-UPF format
    with pytest.raises(ValueError, match=r"Si.bhs has no <PP_HEADER>: not a UPF file"):
        read_upf_header(tmp_path / "Si.bhs")
    (tmp_path / "cut.UPF").write_text("<PP_INFO>\n</PP_INFO>\n<PP_HEADER>\n   0  Version\n")
    with pytest.raises(ValueError, match="not closed"):
        read_upf_header(tmp_path / "cut.UPF")
    write_upf(tmp_path / "noz.UPF", "Si", "PBE", z=0.0)
    with pytest.raises(ValueError, match="z_valence"):
        read_upf_header(tmp_path / "noz.UPF")


SIGE_CIF = """data_SiGe
_symmetry_space_group_name_H-M   'F d -3 m :1'
_symmetry_Int_Tables_number      227
_cell_length_a   5.54
_cell_length_b   5.54
_cell_length_c   5.54
_cell_angle_alpha 90
_cell_angle_beta  90
_cell_angle_gamma 90
loop_
_atom_site_label
_atom_site_type_symbol
_atom_site_fract_x
_atom_site_fract_y
_atom_site_fract_z
_atom_site_occupancy
"""


def test_partial_occupancies_are_refused_naming_the_sites(tmp_path):
    """Si0.5Ge0.5 on one site (ASE reads it as Ge only): refused at the config check that
    `snakemake -n` runs, naming the sites, with an ordered model (SQS) as the way out."""
    cfg = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    (tmp_path / "sige.cif").write_text(SIGE_CIF + "Si1 Si 0 0 0 0.5\nGe1 Ge 0 0 0 0.50(2)\n")
    cfg["material"] = {"name": "SiGe", "elements": ["Si", "Ge"],
                       "structure": str(tmp_path / "sige.cif")}  # fmt: skip
    message = refused(cfg)
    for needle in ("material.structure", "Si1 (Si 0.5)", "Ge1 (Ge 0.5)", "special quasirandom"):
        assert needle in message, message
    from dft2mlip.structures import read_structure_file

    (tmp_path / "si.cif").write_text(SIGE_CIF + "Si1 Si 0 0 0 0.9999\n")
    atoms = read_structure_file({"elements": ["Si"], "structure": str(tmp_path / "si.cif")})
    assert atoms.get_chemical_formula() == "Si8"
