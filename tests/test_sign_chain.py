"""The units/sign chain end to end on real pw.x runs of uniformly compressed and expanded Si:
QE pressure > 0 for a compressed cell -> parsed REF_stress diagonal < 0 -> a model trained on
compressed/expanded cells predicts a negative stress diagonal there (the opposite when expanded).
"""

import numpy as np
import pytest

from dft2mlip.calculator import MLIPCalculator
from dft2mlip.data import build_dataset, write_label
from dft2mlip.dft.qe import parse_pw_output, reported_pressure_kbar, write_pw_input
from dft2mlip.dft.run import run_pw
from dft2mlip.dft.settings import QESettings
from dft2mlip.structures import apply_voigt_strain, primitive_cell
from dft2mlip.train.trainer import train_run

SI = {"name": "Si", "prototype": "diamond", "elements": ["Si"], "lattice_constant_A": 5.431}
CHEAP_QE = {
    "pseudopotentials": {"Si": "Si.pbe-nl-rrkjus_psl.1.0.0.UPF"},
    "ecutwfc_Ry": 20.0,
    "ecutrho_Ry": 160.0,
    "kspacing_per_A": 0.7,
    "conv_thr_Ry": 1e-8,
}
STRAINS = [-0.03, -0.02, -0.01, 0.0, 0.01, 0.02, 0.03]


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    """Real pw.x labels of hydrostatically strained Si, and a tiny model trained on them."""
    root = tmp_path_factory.mktemp("sign_chain")
    settings = QESettings.from_config(CHEAP_QE)
    rng = np.random.default_rng(0)
    labels, pressures = {}, {}
    for i, eps in enumerate(STRAINS):
        atoms = apply_voigt_strain(primitive_cell(SI), [eps, eps, eps, 0, 0, 0])
        atoms.positions += rng.normal(0, 0.01, atoms.positions.shape)
        atoms.info.update(structure_id=f"hydro-{i:03d}", config_type="hydrostatic")
        run_dir = root / f"hydro-{i:03d}"
        run_dir.mkdir()
        write_pw_input(atoms, settings, run_dir / "pw.in")
        run_pw(run_dir / "pw.in", run_dir / "pw.out", nprocs=1, mpi_launcher="")
        label = parse_pw_output(run_dir / "pw.out", atoms, settings.settings_hash())
        assert label.status == "ok", label.message
        write_label(label, run_dir / "label.extxyz")
        labels[eps] = label
        pressures[eps] = reported_pressure_kbar(run_dir / "pw.out")
    paths = [root / f"hydro-{i:03d}" / "label.extxyz" for i in range(len(STRAINS))]
    build_dataset(paths, {"train": 0.72, "val": 0.14, "test": 0.14}, 0, root / "dataset")
    train_run(
        root / "dataset" / "train.extxyz",
        root / "dataset" / "val.extxyz",
        root / "model",
        run_name="sign",
        model_cfg={
            "r_max_A": 4.0,
            "num_channels": 8,
            "max_L": 0,
            "correlation": 2,
            "num_interactions": 1,
            "max_ell": 2,
            "num_radial_basis": 6,
            "num_polynomial_cutoff": 5,
        },
        run_cfg={
            "scheme": "fixed",
            "weights": {"energy": 1.0, "forces": 1.0, "stress": 1.0},
            "normalise": "initial",
        },
        epochs=40,
        batch_size=2,
        lr=0.01,
        dtype="float64",
        seed=0,
        threads=1,
    )
    return labels, pressures, MLIPCalculator(root / "model" / "model.pt")


@pytest.mark.slow
def test_qe_pressure_positive_and_parsed_stress_negative_when_compressed(chain):
    labels, pressures, _ = chain
    for eps in (-0.03, -0.02):
        assert pressures[eps] > 0
        assert np.all(labels[eps].atoms.info["REF_stress"][:3] < 0)
    for eps in (0.02, 0.03):
        assert pressures[eps] < 0
        assert np.all(labels[eps].atoms.info["REF_stress"][:3] > 0)


@pytest.mark.slow
def test_model_trained_on_qe_labels_has_the_same_sign(chain):
    labels, _, calc = chain
    for eps, sign in ((-0.02, -1.0), (0.02, 1.0)):
        atoms = labels[eps].atoms.copy()
        atoms.calc = calc
        assert np.all(sign * atoms.get_stress()[:3] > 0), (eps, atoms.get_stress())
