"""Magnetic order and correlated materials (issue 24): per-site collinear moments, DFT+U and
pw.x pass-through keys, on antiferromagnetic NiO (config/examples/nio_qe.yaml, nio_vasp.yaml).

Expected values come from outside the code under test: the structure file's moment column, the
UPF files' ``z_valence``, the installed pw.x's own banner, pymatgen's Materials Project GGA+U
table, and pw.x's output text. One real pw.x label (AFM NiO with U, 4 atoms, tiny settings)
runs in a few seconds.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import ase.io
import numpy as np
import pytest
import yaml

from dft2mlip.config import ConfigError, check_config, validate_config
from dft2mlip.dft.labels import parse_run, run_input, write_input
from dft2mlip.dft.magnetism import order_change

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "config" / "examples"
NIO_FILE = EXAMPLES / "data" / "NiO_afm2.extxyz"
PSEUDO = Path("/usr/share/espresso/pseudo")
needs_pseudo = pytest.mark.skipif(
    not (PSEUDO / "Ni.pbe-nd-rrkjus.UPF").is_file(), reason="Debian quantum-espresso-data needed"
)
needs_pw = pytest.mark.skipif(
    shutil.which("pw.x") is None or not PSEUDO.is_dir(), reason="pw.x and its pseudopotentials"
)


def file_moments() -> list[float]:
    """The moment column of the structure file, read from its text (Properties=...magmoms)."""
    lines = NIO_FILE.read_text().splitlines()
    n = int(lines[0])
    return [float(line.split()[-1]) for line in lines[2 : 2 + n]]


def nio_config(name: str = "nio_qe.yaml") -> dict:
    config = yaml.safe_load((EXAMPLES / name).read_text())
    config["material"]["structure"] = str(NIO_FILE)  # the tests run from anywhere
    return config


def upf_z_valence(name: str) -> float:
    return float(re.search(r'z_valence="\s*(\S+)"', (PSEUDO / name).read_text()).group(1))


def parent_site(atoms) -> list[int]:
    """Index of the file site each atom of an unstrained, unrattled supercell sits on."""
    sites = ase.io.read(NIO_FILE)
    frac = np.linalg.solve(sites.cell.array.T, atoms.positions.T).T
    ref = sites.get_scaled_positions()
    out = []
    for f in frac:
        d = (f - ref + 0.5) % 1.0 - 0.5
        out.append(int(np.argmin(np.linalg.norm(d, axis=1))))
    return out


def test_every_structure_carries_its_parent_sites_moments():
    from dft2mlip.structures import conventional_cell, elastic_structures, training_structures

    material = nio_config()["material"]
    expected = file_moments()
    spec = {
        "hydrostatic": {"strains": [0.01]},
        "strained": {"count": 1, "max_strain": 0.01},
        "supercell": {"count": 1, "repeat": [2, 1, 1], "max_strain": 0.0, "rattle_A": 0.0},
        "vacancy": {"count": 1, "repeat": [1, 2, 1], "max_strain": 0.0, "rattle_A": 0.0},
    }
    built = training_structures(material, spec, seed=1)
    built.update(elastic_structures(material, 0.005))
    relaxed = ase.io.read(NIO_FILE)  # a "relaxed" reference as read back: no moments
    relaxed.set_initial_magnetic_moments(None)
    relaxed.set_cell(relaxed.cell.array * 1.01, scale_atoms=True)
    md = conventional_cell(material, [1, 1, 2], reference=relaxed)
    md.set_cell(md.cell.array / 1.01, scale_atoms=True)  # back onto the file's lattice
    built["md"] = md
    for sid, atoms in built.items():
        moments = atoms.get_initial_magnetic_moments().tolist()
        if len(atoms) == 4:  # the cell itself, strained: site by site
            assert moments == expected, sid
            continue
        assert moments == [expected[p] for p in parent_site(atoms)], sid
        assert len(atoms) in (7, 8), sid  # vacancy 7, supercell and MD cell 8


def test_a_prototype_order_from_the_config_reaches_the_conventional_cell():
    from dft2mlip.structures import conventional_cell

    material = {"prototype": "rocksalt", "elements": ["Ni", "O"], "lattice_constant_A": 4.17,
                "magnetic_order_muB": [2.0, 0.0]}  # fmt: skip
    atoms = conventional_cell(material, [1, 1, 1])
    by_symbol = {
        s: set(atoms.get_initial_magnetic_moments()[atoms.symbols == s]) for s in ("Ni", "O")
    }
    assert by_symbol == {"Ni": {2.0}, "O": {0.0}} and len(atoms) == 8


def physics_cfg(config: dict, engine: str = "qe") -> dict:
    """The engine section every label gets, as the workflow builds it (common.smk)."""
    from dft2mlip.dft.engines import get_engine
    from dft2mlip.dft.magnetism import configured_order

    order = configured_order(config["material"], config["dft"])
    return get_engine(engine).physics_config(config["dft"], order)


def written_pw_input(tmp_path, config) -> tuple[str, dict]:
    cfg = physics_cfg(config)
    atoms = ase.io.read(NIO_FILE)
    atoms.info["structure_id"] = "nio"
    record = write_input("qe", cfg, atoms, tmp_path, tmp_path / "settings.json")
    return (tmp_path / "pw.in").read_text(), record


@needs_pw
def test_qe_input_has_one_species_per_moment_and_the_u_form_of_the_installed_pw(tmp_path):
    text, _ = written_pw_input(tmp_path, nio_config())
    species = re.findall(r"^(\w+)\s+[\d.]+\s+(\S+\.UPF)$", text, re.MULTILINE)
    labels = [label for label, _ in species]
    positions = text.split("ATOMIC_POSITIONS")[1].split()
    site_labels = [positions[i] for i in range(1, 1 + 4 * 4, 4)]
    assert len(set(site_labels)) == len(labels) == 3  # Ni up, Ni down, O
    fractions = {int(i): float(v) for i, v in
                 re.findall(r"starting_magnetization\((\d+)\)\s*=\s*(\S+)", text)}  # fmt: skip
    z = {"Ni": upf_z_valence("Ni.pbe-nd-rrkjus.UPF"), "O": upf_z_valence("O.pbe-rrkjus.UPF")}
    for label, moment in zip(site_labels, file_moments(), strict=True):
        element = re.match(r"[A-Z][a-z]?", label).group(0)
        assert fractions[labels.index(label) + 1] == pytest.approx(moment / z[element])
    banner = subprocess.run(["pw.x"], input="", capture_output=True, text=True, timeout=60)
    major, minor = map(int, re.search(r"PWSCF v\.(\d+)\.(\d+)", banner.stdout).groups())
    u = nio_config()["dft"]["hubbard"]["Ni"]["U_eV"]
    if (major, minor) >= (7, 1):
        cards = re.findall(r"^U (\w+)-3d (\S+)$", text, re.MULTILINE)
        assert "HUBBARD {atomic}" in text and "lda_plus_u" not in text
        assert sorted(cards) == [(lab, f"{u:g}") for lab in labels if lab.startswith("Ni")]
    else:
        given = {int(i): float(v) for i, v in
                 re.findall(r"hubbard_u\((\d+)\)\s*=\s*(\S+)", text, re.IGNORECASE)}  # fmt: skip
        ni = [i + 1 for i, lab in enumerate(labels) if lab.startswith("Ni")]
        assert "HUBBARD" not in text and re.search(r"lda_plus_u\s*=\s*\.true\.", text)
        assert given == {i: u for i in ni}
    assert "mixing_mode" in text and "local-TF" in text  # dft.qe.extra passed through


@needs_pseudo
def test_settings_hash_covers_order_u_and_physics_extras(tmp_path):
    from dft2mlip.dft.engines import get_engine

    def hash_of(config):
        return get_engine("qe").known_settings_hash(physics_cfg(config))

    base = nio_config()
    no_u, vdw, mixing = nio_config(), nio_config(), nio_config()
    no_u["dft"]["hubbard"] = {}
    vdw["dft"]["qe"]["extra"]["system"] = {"vdw_corr": "dft-d3"}
    mixing["dft"]["qe"]["extra"]["electrons"] = {"mixing_mode": "plain"}
    ferro = _ferro_config(base, tmp_path)
    cases = {"afm": base, "fm": ferro, "no_u": no_u, "vdw": vdw, "mixing": mixing}
    hashes = {name: hash_of(c) for name, c in cases.items()}
    assert len({hashes[k] for k in ("afm", "fm", "no_u", "vdw")}) == 4, hashes
    assert hashes["mixing"] == hashes["afm"], "an SCF-only key is not physics"


def _ferro_config(config: dict, tmp_path: Path) -> dict:
    """The same cell from a file without moments, ferromagnetic through dft.magnetic_order."""
    bare = ase.io.read(NIO_FILE)
    bare.set_initial_magnetic_moments(None)
    ase.io.write(tmp_path / "NiO.extxyz", bare)
    out = yaml.safe_load(yaml.safe_dump(config))
    out["dft"]["magnetic_order"] = [abs(m) for m in file_moments()]
    out["material"]["structure"] = str(tmp_path / "NiO.extxyz")
    return out


def test_vasp_dry_run_writes_the_files_order_and_the_mp_u(tmp_path, monkeypatch):
    from pymatgen.io.vasp import Incar, Poscar
    from pymatgen.io.vasp.sets import MPRelaxSet

    monkeypatch.delenv("PMG_VASP_PSP_DIR", raising=False)
    cfg = physics_cfg(nio_config("nio_vasp.yaml"), "vasp")
    atoms = ase.io.read(NIO_FILE).repeat((1, 2, 1))
    atoms.info["structure_id"] = "nio-x2"
    write_input("vasp", cfg, atoms, tmp_path, tmp_path / "settings.json")
    incar = Incar.from_file(tmp_path / "INCAR")
    symbols = [site.specie.symbol for site in Poscar.from_file(tmp_path / "POSCAR").structure]
    assert incar["ISPIN"] == 2
    assert list(incar["MAGMOM"]) == file_moments() * 2  # the file's order, site by site
    mp = MPRelaxSet.CONFIG["INCAR"]
    species = list(dict.fromkeys(symbols))
    assert incar["LDAU"] is True and incar["LDAUTYPE"] == mp["LDAUTYPE"] == 2
    assert incar["LDAUU"][species.index("Ni")] == mp["LDAUU"]["O"]["Ni"]
    assert incar["LDAUL"][species.index("Ni")] == mp["LDAUL"]["O"]["Ni"]
    assert incar["LMAXMIX"] == 4


def refused(config: dict) -> str:
    with pytest.raises(ConfigError) as err:
        validate_config(config)
        check_config(config)
    assert "\n" not in str(err.value), "one line"
    return str(err.value)


@needs_pseudo
@pytest.mark.parametrize(
    ("change", "needles"),
    [
        ({"magnetic_moments_muB": {"Fe": 2.0}}, ["dft.magnetic_moments_muB.Fe", "not in"]),
        ({"magnetic_moments_muB": {"Ni": 3.0}}, ["dft.magnetic_moments_muB.Ni", "contradicts"]),
        ({"hubbard": {"O": {"orbital": "3d", "U_eV": 4.0}}}, ["dft.hubbard.O.orbital", "2p"]),
        ({"hubbard": {"Ni": {"orbital": "4f", "U_eV": 4.0}}}, ["dft.hubbard.Ni.orbital", "3d"]),
        ({"magnetic_order": [1.7, -1.7]}, ["dft.magnetic_order", "2 moments", "4 sites"]),
        ({"magnetic_order": [1.7, 1.7, 0, 0]}, ["dft.magnetic_order", "contradicts", "remove"]),
        ({"qe": {"extra": {"system": {"ecutwfc": 80}}}}, ["dft.qe.extra.system.ecutwfc",
                                                          "dft.qe.ecutwfc_Ry"]),
        ({"qe": {"extra": {"system": {"nspin": 1}}}}, ["dft.qe.extra.system.nspin",
                                                       "dft.magnetic_order"]),
        ({"qe": {"extra": {"control": {"tstress": False}}}}, ["dft.qe.extra.control.tstress"]),
    ],
)  # fmt: skip
def test_bad_magnetic_and_u_inputs_are_refused_before_any_work(change, needles):
    config = nio_config()
    for key, value in change.items():
        if key == "qe":
            config["dft"]["qe"]["extra"] = value["extra"]
        else:
            config["dft"][key] = value
    message = refused(config)
    for needle in needles:
        assert needle in message, message


@pytest.mark.parametrize("tag", ["MAGMOM", "LDAUU", "ISIF"])
def test_vasp_incar_may_not_set_what_the_pipeline_owns(tag):
    config = nio_config("nio_vasp.yaml")
    config["dft"]["vasp"]["incar"] = {tag: 1}
    assert f"dft.vasp.incar.{tag}" in refused(config)


def test_order_change_compares_relative_signs():
    afm, fm = [1.7, -1.7, 0.0, 0.0], [1.7, 1.7, 0.0, 0.0]
    assert order_change(afm, [-1.5, 1.5, 0.01, -0.01]) is None  # a global flip is the same order
    assert "flipped" in order_change(afm, [1.5, 1.5, 0.0, 0.0])
    assert "went from" in order_change(fm, [1.5, 0.02, 0.0, 0.0])
    assert order_change([0.0] * 4, [1.0, 1.0, 0.0, 0.0]) is None  # no order to keep


def pw_site_moments(text: str) -> tuple[list[float], float]:
    """Site moments and total magnetisation as pw.x printed them last (either version's form)."""
    block = text.rsplit("Magnetic moment per site", 1)[1].split("\n\n")[0]
    sites = [float(v) for v in re.findall(r"magn[=:]\s*(\S+)", block)]
    total = float(re.findall(r"total magnetization\s*=\s*(\S+)", text)[-1])
    return sites, total


@needs_pw
def test_afm_nio_with_u_stays_antiferromagnetic_for_real(tmp_path):
    """One real pw.x label at tiny settings (4 atoms, 25 Ry, 2x2x2 k, a few seconds)."""
    config = nio_config()
    config["dft"]["qe"].update(ecutwfc_Ry=25.0, ecutrho_Ry=200.0, kspacing_per_A=1.3,
                               conv_thr_Ry=1e-6, allow_low_cutoff=True)  # fmt: skip
    text, _ = written_pw_input(tmp_path, config)
    assert "2 2 2" in text
    cfg = physics_cfg(config)
    run = run_input("qe", tmp_path, executable="pw.x", nprocs=1, mpi_launcher="")
    structure = ase.io.read(NIO_FILE)
    label = parse_run("qe", cfg, tmp_path, structure, tmp_path / "settings.json", run)
    sites, total = pw_site_moments((tmp_path / "pw.out").read_text())
    assert label.status == "ok", label.message
    assert label.provenance["site_magnetizations_muB"] == sites
    assert sites[0] > 0.5 and sites[1] < -0.5 and abs(total) < 0.05  # AFM: opposite, total ≈ 0
    assert label.provenance["magnetic_order_check"] == "kept"
    ferro_start = structure.copy()  # the same run judged against an FM start: a flipped order
    ferro_start.set_initial_magnetic_moments([abs(m) for m in file_moments()])
    refused_label = parse_run("qe", cfg, tmp_path, ferro_start, tmp_path / "settings.json", run)
    assert refused_label.status == "failed" and "magnetic order changed" in refused_label.message
    allowed = parse_run("qe", cfg, tmp_path, ferro_start, tmp_path / "settings.json", run,
                        allow_order_change=True)  # fmt: skip
    assert allowed.status == "ok"


def test_vasp_labels_record_site_moments_and_refuse_a_flipped_order(tmp_path, monkeypatch):
    """The same checks on the VASP path. VASP is licensed: tests/vasp_standin/vasp_std is a
    STAND-IN (EMT/LJ physics, VASP's file formats) that prints VASP's per-site table when LORBIT
    >= 10, the site moments its MAGMOM's. The expected moments come from the INCAR the pipeline
    wrote and from ASE's own OUTCAR reader, not from the parser under test."""
    from pymatgen.core import SETTINGS
    from pymatgen.io.vasp import Incar

    from dft2mlip.dft.engines import STANDIN_ENV

    monkeypatch.delenv("PMG_VASP_PSP_DIR", raising=False)
    monkeypatch.delitem(SETTINGS, "PMG_VASP_PSP_DIR", raising=False)
    monkeypatch.setenv(STANDIN_ENV, "1")
    standin = f"{sys.executable} {ROOT / 'tests' / 'vasp_standin' / 'vasp_std'}"
    cfg = physics_cfg(nio_config("nio_vasp.yaml"), "vasp")
    cfg.update(executable=standin, encut_eV=400.0, kspacing_per_A=0.5)
    structure = ase.io.read(NIO_FILE)
    labels = {}
    for name, env in (("kept", {}), ("flipped", {"VASP_STANDIN_FERROMAGNETIC": "1"})):
        directory = tmp_path / name
        directory.mkdir()
        write_input("vasp", cfg, structure, directory, directory / "settings.json")
        incar = Incar.from_file(directory / "INCAR")
        assert incar["LORBIT"] == 11 and list(incar["MAGMOM"]) == file_moments()
        monkeypatch.delenv("VASP_STANDIN_FERROMAGNETIC", raising=False)
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        run = run_input("vasp", directory, executable=standin, mpi_launcher="", max_errors=1)
        labels[name] = parse_run("vasp", cfg, directory, structure, directory / "settings.json",
                                 run)  # fmt: skip
        ase_moments = ase.io.read(directory / "OUTCAR", format="vasp-out").get_magnetic_moments()
        assert labels[name].provenance["site_magnetizations_muB"] == pytest.approx(ase_moments)
    kept = labels["kept"]
    assert kept.status == "ok", kept.message
    assert kept.provenance["site_magnetizations_muB"] == pytest.approx(file_moments())
    assert kept.provenance["magnetic_order_check"] == "kept"
    flipped = labels["flipped"]
    assert flipped.provenance["site_magnetizations_muB"] == pytest.approx(
        [abs(m) for m in file_moments()])
    assert flipped.status == "failed" and "magnetic order changed" in flipped.message
    assert "dft.allow_magnetic_order_change" in flipped.message


def perpendicular_widths(cell) -> np.ndarray:
    """Distances between opposite faces of a cell (Å): V / |a_j x a_k|."""
    cell = np.asarray(cell, dtype=float)
    volume = abs(np.linalg.det(cell))
    return np.array([volume / np.linalg.norm(np.cross(cell[j], cell[k]))
                     for j, k in ((1, 2), (2, 0), (0, 1))])  # fmt: skip


@pytest.mark.parametrize("material", [
    {"prototype": "fcc", "elements": ["Ni"], "lattice_constant_A": 3.52},
    {"prototype": "rocksalt", "elements": ["Ni", "O"], "lattice_constant_A": 4.17},
])  # fmt: skip
def test_default_md_and_supercells_are_sized_from_the_model_cutoff(material):
    """Without repeat or min_width_A the MD cell, supercells and vacancy cells are the fewest
    repetitions wider than model.r_max_A (fcc Ni and NiO: the issue's trial, refused before)."""
    from dft2mlip.structures import conventional_cell, supercell_repeat, with_default_widths
    from dft2mlip.validate.deform import DeformationSpec

    r_max = 5.0
    md_cfg = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())["validation"]["md"]
    md_cfg.update(repeat=None, min_width_A=None)  # the schema's defaults
    base = conventional_cell(material, [1, 1, 1]).cell.array
    spec = DeformationSpec.from_config(md_cfg).sized(base, r_max)
    md_cell = np.diag(spec.repeat) @ base
    spec.check_supercell(md_cell, r_max, r_max_key="model.r_max_A")  # the whole path
    assert perpendicular_widths(md_cell).min() >= r_max
    for axis in range(3):  # the fewest: one repetition less along any axis is too narrow
        fewer = np.array(spec.repeat)
        if fewer[axis] > 1:
            fewer[axis] -= 1
            assert perpendicular_widths(np.diag(fewer) @ base)[axis] < r_max * 1.1
    spec_cfg = with_default_widths({"supercell": {"count": 1}, "vacancy": {"count": 1}}, r_max)
    for section in ("supercell", "vacancy"):
        repeat = supercell_repeat(material, spec_cfg[section], section=section)
        assert perpendicular_widths(np.diag(repeat) @ base).min() >= r_max
    given = with_default_widths({"supercell": {"repeat": [1, 1, 1]}}, r_max)["supercell"]
    assert given == {"repeat": [1, 1, 1]}  # a given repeat is kept as it is


def test_md_snapshots_and_active_learning_picks_keep_the_sites_moments(tmp_path):
    """A short real deformation MD (EMT, 32-atom fcc Ni with an alternating order): its
    snapshots and an active-learning pick of its frames carry each atom's initial moment."""
    import pandas as pd
    from ase.calculators.emt import EMT

    from dft2mlip.active import picked_structures
    from dft2mlip.structures import conventional_cell
    from dft2mlip.validate.deform import DeformationSpec, run_deformation_md, select_snapshots

    material = {"prototype": "fcc", "elements": ["Ni"], "lattice_constant_A": 3.52,
                "magnetic_order_muB": [0.6]}  # fmt: skip
    atoms = conventional_cell(material, [2, 2, 2])
    moments = np.where(np.arange(len(atoms)) % 2 == 0, 0.6, -0.6)  # an order to follow
    atoms.set_initial_magnetic_moments(moments)
    md = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())["validation"]["md"]
    md.update(repeat=[1, 1, 1], min_width_A=None, max_strain=0.004, strain_rate_per_ps=0.5,
              timestep_fs=1.0, equilibration_ps=0.0, snapshots=2)  # fmt: skip
    spec = DeformationSpec.from_config(md)
    traj = tmp_path / "trajectory.extxyz"
    run_deformation_md(atoms, EMT(), spec, seed=0, traj_path=traj, csv_path=tmp_path / "s.csv")
    snapshots = select_snapshots(traj, 2)
    frames = ase.io.read(traj, index=":")
    table = pd.DataFrame(
        {"path": ["p"] * len(frames), "frame": range(len(frames)), "md_strain": 0.0}
    )
    picks = picked_structures(frames, {"al-g1-000": len(frames) - 1}, table)
    for structure in [*snapshots, *picks]:
        assert structure.get_initial_magnetic_moments().tolist() == moments.tolist()


@needs_pw
def test_reading_the_pw_version_leaves_no_file_where_it_was_asked(tmp_path, monkeypatch):
    """pw.x started without input writes input_tmp.in (and CRASH) in its working directory: the
    version check at `snakemake -n` must not leave them in the user's project."""
    from dft2mlip.dft.hubbard import pw_version

    monkeypatch.chdir(tmp_path)
    pw_version.cache_clear()
    major, _ = pw_version("pw.x")
    assert major >= 6
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_hubbard_card_form_for_pw_7_1_and_later():
    """From pw.x 7.1 the U goes in the HUBBARD card (QE's INPUT_PW: ``HUBBARD {atomic}`` then
    ``U <label>-<orbital> <value>`` per species), never in the removed lda_plus_u keys."""
    from dft2mlip.dft.hubbard import parse_hubbard, qe_hubbard_input

    entries = parse_hubbard({"Ni": {"orbital": "3d", "U_eV": 6.2, "J_eV": 1.0}})
    species = [("Ni", "Ni"), ("Ni1", "Ni"), ("O", "O")]
    system, cards = qe_hubbard_input(species, entries, (7, 2))
    assert system == {} and cards == ["HUBBARD {atomic}", "U Ni-3d 5.2", "U Ni1-3d 5.2"]
    system, cards = qe_hubbard_input(species, entries, (7, 0))
    assert cards == [] and system == {"lda_plus_u": True, "lda_plus_u_kind": 0,
                                      "Hubbard_U(1)": 5.2, "Hubbard_U(2)": 5.2}  # fmt: skip


@needs_pseudo
def test_the_issues_trial_file_order_with_a_matching_element_map_is_antiferromagnetic():
    """The issue's trial: AFM moments in the extxyz file and dft.magnetic_moments_muB
    {Ni: 1.7, O: 0}. The order of the file is used (it was dropped for FM before)."""
    config = nio_config()
    config["dft"]["magnetic_moments_muB"] = {"Ni": 1.7, "O": 0.0}
    validate_config(config)
    check_config(config)
    assert physics_cfg(config)["magnetic_order_muB"] == file_moments()


def neighbour_alignment(atoms, element: str) -> tuple[int, int]:
    """(parallel, antiparallel) nearest neighbours of the first ``element`` site among the
    sites of that element, from the geometry alone."""
    from ase.neighborlist import neighbor_list

    big = atoms.repeat((3, 3, 3))
    i, j, d = neighbor_list("ijd", big, 1.01 * min(
        big.get_distance(0, k, mic=True) for k in range(1, len(big)) if big[k].symbol == element
    ))  # fmt: skip
    moments = big.get_initial_magnetic_moments()
    mine = [jj for ii, jj in zip(i, j, strict=True) if ii == 0 and big[jj].symbol == element]
    parallel = sum(moments[jj] * moments[0] > 0 for jj in mine)
    return int(parallel), len(mine) - int(parallel)


@pytest.mark.parametrize(
    ("prototype", "elements", "name", "alignment"),
    [  # textbook neighbour counts of each order (12 fcc / 8 bcc magnetic neighbours)
        ("rocksalt", ["Ni", "O"], "AFM-II", (6, 6)),
        ("rocksalt", ["Ni", "O"], "AFM-I", (4, 8)),
        ("fcc", ["Mn"], "AFM-I", (4, 8)),
        ("bcc", ["Cr"], "AFM", (0, 8)),
    ],
)
def test_named_orders_build_their_cell_with_the_prototypes_density(
    prototype, elements, name, alignment
):
    from ase.build import bulk

    from dft2mlip.dft.magnetism import material_with_order
    from dft2mlip.structures import conventional_cell, primitive_cell

    a = 4.17 if prototype == "rocksalt" else 2.88 if prototype == "bcc" else 3.6
    material = {"prototype": prototype, "elements": elements, "lattice_constant_A": a}
    dft = {"magnetic_order": name, "magnetic_moments_muB": {elements[0]: 2.0}}
    given = material_with_order(material, dft)
    cell = primitive_cell(given)
    reference = bulk("".join(elements), prototype, a=a, cubic=True)
    assert cell.get_volume() / len(cell) == pytest.approx(reference.get_volume() / len(reference))
    assert sorted(cell.get_chemical_symbols()) == sorted(
        reference.get_chemical_symbols()[: len(cell)]
    )
    assert neighbour_alignment(cell, elements[0]) == alignment
    assert sorted(set(np.abs(cell.get_initial_magnetic_moments())) - {0.0}) == [2.0]
    repeated = conventional_cell(given, [1, 1, 2])  # supercells repeat the order's own cell
    assert len(repeated) == 2 * len(cell)
    assert (
        repeated.get_initial_magnetic_moments().tolist()
        == 2 * cell.get_initial_magnetic_moments().tolist()
    )


@needs_pseudo
def test_a_named_order_runs_the_config_checks_and_names_what_is_missing():
    config = nio_config()
    config["material"] = {"name": "NiO", "prototype": "rocksalt", "elements": ["Ni", "O"],
                          "lattice_constant_A": 4.17}  # fmt: skip
    config["dft"].update(magnetic_order="AFM-II", magnetic_moments_muB={"Ni": 1.7, "O": 0.0})
    validate_config(config)
    check_config(config)
    assert physics_cfg(config)["magnetic_order_muB"] == [1.7, -1.7, 0.0, 0.0]
    config["dft"]["magnetic_moments_muB"] = {"O": 0.0}
    assert "dft.magnetic_moments_muB.Ni" in refused(config)
    config["dft"].update(magnetic_order="AFM-III", magnetic_moments_muB={"Ni": 1.7})
    assert "AFM-II (rocksalt)" in refused(config)


def test_a_magnetic_cif_gives_its_collinear_moments():
    """The moments of a magnetic CIF (pymatgen's CifWriter output for the NiO cell), read as
    signed site moments; expected from the file's text: |sum of m_i along unit crystal axes|."""
    from ase.geometry import cellpar_to_cell

    from dft2mlip.structures import read_structure_file

    path = Path(__file__).parent / "data" / "NiO_afm2_pymatgen.mcif"
    text = path.read_text()
    keys = ("length_a", "length_b", "length_c", "angle_alpha", "angle_beta", "angle_gamma")
    par = [float(re.search(rf"_cell_{k}\s+(\S+)", text).group(1)) for k in keys]
    axes = cellpar_to_cell(par)
    axes /= np.linalg.norm(axes, axis=1)[:, None]
    rows = re.findall(r"^\s*(Ni\d)\s+(\S+)\s+(\S+)\s+(\S+)\s*$", text, re.MULTILINE)
    vectors = [np.array(r[1:], dtype=float) @ axes for r in rows]
    sizes = [np.linalg.norm(v) for v in vectors]
    relative = np.sign(vectors[0] @ vectors[1])
    atoms = read_structure_file({"structure": str(path), "elements": ["Ni", "O"]})
    moments = atoms.get_initial_magnetic_moments()
    ni = [i for i, s in enumerate(atoms.get_chemical_symbols()) if s == "Ni"]
    assert np.abs(moments[ni]) == pytest.approx(sizes, abs=1e-6)
    assert np.sign(moments[ni[0]] * moments[ni[1]]) == relative == -1
    assert moments[[i for i in range(len(atoms)) if i not in ni]].tolist() == [0.0, 0.0]


def test_a_poscar_takes_the_magmom_of_the_incar_beside_it(tmp_path):
    """VASP's own way to give an order: MAGMOM in the INCAR next to the POSCAR (``N*value``)."""
    from dft2mlip.structures import read_structure_file

    ase.io.write(tmp_path / "POSCAR", ase.io.read(NIO_FILE), format="vasp")
    (tmp_path / "INCAR").write_text("ISPIN = 2\nMAGMOM = 1.7 -1.7 2*0\n")
    material = {"structure": str(tmp_path / "POSCAR"), "elements": ["Ni", "O"]}
    assert read_structure_file(material).get_initial_magnetic_moments().tolist() == [
        1.7, -1.7, 0.0, 0.0
    ]  # fmt: skip
    (tmp_path / "INCAR").write_text("MAGMOM = 1.7 -1.7\n")
    with pytest.raises(ValueError, match="MAGMOM .* has 2 values for 4 sites"):
        read_structure_file(material)
