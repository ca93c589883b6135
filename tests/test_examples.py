"""config/examples, each run for real once with real pw.x (issue 11, item 8): a binary semiconductor
(3C-SiC), a metal with smearing (fcc Cu), a magnetic metal (bcc Fe), a hexagonal metal (hcp Mg)
and a structure read from a CIF file (rutile TiO2).

Each example's own material, pseudopotentials, smearing and magnetism are kept; only the cost is
cut (cutoff, k-points, SCF threshold, one structure per family), so a run takes seconds to a
minute. The physics checked comes from outside the code: the config's or the CIF's cell, the
label's own pw.x output text, and what a ferromagnet must do.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path

import ase.io
import numpy as np
import pytest
import yaml

sys.path.insert(0, str(Path(__file__).parent))
from tiny_run import ROOT, make_workdir, n_snapshot_labels, planned_jobs, snakemake  # noqa: E402

from dft2mlip.data import read_label  # noqa: E402
from dft2mlip.structures import training_structure_ids  # noqa: E402

EXAMPLES = ROOT / "config" / "examples"
#: the examples that run pw.x (import_only has no DFT, vasp_slurm needs VASP and a cluster)
QE_EXAMPLES = ["sic_3c.yaml", "cu_fcc.yaml", "fe_bcc.yaml", "mg_hcp.yaml", "tio2_cif.yaml"]

needs_pw = pytest.mark.skipif(
    shutil.which("pw.x") is None or not Path("/usr/share/espresso/pseudo").is_dir(),
    reason="pw.x and Debian's pseudopotentials (quantum-espresso, quantum-espresso-data) needed",
)


def tiny(example: dict) -> dict:
    """The example at a tiny cost: low cutoffs (said explicitly), a coarse mesh, loose SCF and
    relaxation thresholds and one structure per family; material, pseudopotentials, smearing
    and moments stay the example's own."""
    config = yaml.safe_load(yaml.safe_dump(example))
    qe = config["dft"]["qe"]
    ratio = qe["ecutrho_Ry"] / qe["ecutwfc_Ry"]
    qe.update(ecutwfc_Ry=30.0, ecutrho_Ry=30.0 * ratio, allow_low_cutoff=True,
              kspacing_per_A=0.8, conv_thr_Ry=1e-6)  # fmt: skip
    config["dft"]["mpi_launcher"] = ""
    config["dft"]["relax"] = {"fmax_eV_per_A": 0.05, "pressure_GPa": 0.5}  # the path, not the cell
    structures = config["structures"]
    structures["hydrostatic"]["strains"] = [0.01]
    structures["strained"]["count"] = 1
    rattled = structures["rattled"]["count"] > 0
    structures["rattled"]["count"] = 1 if rattled else 0
    structures["supercell"].update(count=0 if rattled else 1, repeat=[1, 1, 1])
    return config


def run_example(tmp_path: Path, name: str) -> tuple[Path, dict, list[str]]:
    """Run the tiny version of an example up to its training labels; (workdir, config, ids)."""
    work = make_workdir(tmp_path / "w", ROOT / "config" / "config.yaml")
    shutil.copytree(EXAMPLES / "data", work / "config" / "examples" / "data")
    config = tiny(yaml.safe_load((EXAMPLES / name).read_text()))
    (work / "tiny.yaml").write_text(yaml.safe_dump(config))
    ids = training_structure_ids(config["structures"])
    targets = [f"results/dft/train/{sid}/label.extxyz" for sid in ids]
    snakemake(work, *targets, "--configfile", "tiny.yaml")
    return work, config, ids


def label(work: Path, sid: str):
    return read_label(work / "results" / "dft" / "train" / sid / "label.extxyz")


@pytest.mark.workflow
@pytest.mark.parametrize("name", QE_EXAMPLES)
def test_example_dry_run(tmp_path, name):
    """Every QE example passes every check at `snakemake -n` and plans its own DFT jobs: its
    training structures, the 12 elastic strains and the MD snapshots of the reference run's path."""
    example = yaml.safe_load((EXAMPLES / name).read_text())
    work = make_workdir(tmp_path / "w", ROOT / "config" / "config.yaml")
    shutil.copytree(EXAMPLES / "data", work / "config" / "examples" / "data")
    jobs = planned_jobs(snakemake(work, "-n", "--configfile", str(EXAMPLES / name)).stdout)
    n_train = len(training_structure_ids(example["structures"]))
    n_snapshots = n_snapshot_labels({"training": {}, **example})  # the schema's runs
    # the cross-family check: the crystal in the primitive and the conventional cell, where the
    # two differ (a structure file is used as it is: one cell)
    n_family = 0 if "structure" in example["material"] else 2
    assert jobs["dft_run"] == n_train + 12 + n_snapshots + n_family


@pytest.mark.workflow
@needs_pw
@pytest.mark.parametrize("name", QE_EXAMPLES)
def test_example_runs_for_real(tmp_path, name):
    """Every label of the tiny run is ok, and it is the example's material: species, cell shape,
    the smearing of the metals and the moment of the magnet, read back from the label and from
    pw.x's own output."""
    work, config, ids = run_example(tmp_path, name)
    labels = {sid: label(work, sid) for sid in ids}
    for sid, lab in labels.items():
        assert lab.status == "ok", (sid, lab.message)
        assert set(lab.atoms.get_chemical_symbols()) == set(config["material"]["elements"])
        assert np.isfinite(lab.atoms.info["REF_energy"])
        assert np.isfinite(lab.atoms.info["REF_stress"]).all()
    pw_out = (work / "results" / "dft" / "train" / ids[0] / "pw.out").read_text()
    if config["dft"]["qe"].get("occupations", "smearing") == "smearing":
        assert "smearing" in pw_out.lower()
    # a hydrostatic strain keeps the cell's shape: the angles and axis ratios of the reference
    hydro = labels["hydro-000"].atoms.cell.cellpar()
    if "structure" in config["material"]:
        cif = ase.io.read(ROOT / config["material"]["structure"]).cell.cellpar()
        np.testing.assert_allclose(hydro[3:], cif[3:], atol=1e-6)  # tetragonal: 90, 90, 90
        assert hydro[0] == pytest.approx(hydro[1], abs=1e-6)  # a = b
    if config["material"].get("c_over_a"):
        # hcp: the relaxation keeps the hexagonal symmetry; the hydrostatic strain keeps the
        # relaxed cell's c/a (at these tiny settings the relaxed c/a is far from the
        # configured one: a coarse mesh for a metal; it is printed, not judged)
        relaxed = json.loads((work / "results" / "dft" / "reference" / "relax.json").read_text())
        final = relaxed["final"]
        print(f"{name}: relaxed c/a {final['c_A'] / final['a_A']:.4f} "
              f"(configured {config['material']['c_over_a']})")  # fmt: skip
        assert hydro[3:] == pytest.approx([90, 90, 120], abs=1e-6)
        assert hydro[0] == pytest.approx(hydro[1], rel=1e-9)
        assert hydro[2] / hydro[0] == pytest.approx(final["c_A"] / final["a_A"], rel=1e-6)
    if config["dft"].get("magnetic_moments_muB"):
        assert_ferromagnetic(work, labels)


def assert_ferromagnetic(work: Path, labels: dict) -> None:
    """bcc Fe: every label records the total magnetisation pw.x printed, and it stays
    ferromagnetic: about 2.2 μB per atom in PBE at equilibrium; > 1 here, where the tiny
    cutoff's relaxed cell is about 9 % smaller in a (a large Pulay stress) and the moment ~1.4."""
    for sid, lab in labels.items():
        out = (work / "results" / "dft" / "train" / sid / "pw.out").read_text()
        printed = float(re.findall(r"total magnetization\s+=\s+([-\d.]+)", out)[-1])
        recorded = lab.provenance["total_magnetization_muB"]
        assert recorded == pytest.approx(printed, abs=1e-6)
        assert recorded / len(lab.atoms) > 1.0, (sid, recorded)
