"""Model export: the trained model in our ASE calculator and in MACE's own MACECalculator.

``model.model`` is the whole torch module saved the way ``mace_run_train`` saves ``*.model``, so
MACE's tools (MACECalculator, mace_create_lammps_model) take it on. Both calculators must give
the same energy, forces and stress (eV, eV/Å, eV/Å³ ASE Voigt, tension positive). The loss the
model was trained with (scheme, options, normalisation, weights of every epoch) travels with
both files.
"""

from __future__ import annotations

import csv
import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from ase.build import bulk
from training_helpers import TINY_MODEL, write_dataset

from dft2mlip.calculator import MLIPCalculator
from dft2mlip.train import models
from dft2mlip.train.trainer import train_run
from dft2mlip.train.weighting import SCHEME_OPTIONS

pytestmark = pytest.mark.slow

RUN_CFG = {
    "scheme": "softadapt",
    "beta": 1.0,
    "window": 2,
    "loss_weighted": True,
    "normalise": "initial",
}


def train(work, out, dtype):
    return train_run(
        work / "train.xyz",
        work / "val.xyz",
        out,
        run_name="export",
        model_cfg=TINY_MODEL,
        run_cfg=RUN_CFG,
        epochs=3,
        batch_size=3,
        lr=0.01,
        dtype=dtype,
        seed=2,
        threads=1,
        device="cpu",
    )


@pytest.fixture(scope="module", params=["float64", "float32"])
def trained(request, tmp_path_factory):
    work = tmp_path_factory.mktemp(f"export_{request.param}")
    write_dataset(work)
    summary = train(work, work / "out", request.param)
    return request.param, work / "out", summary


def structures():
    """Strained, sheared and rattled Al cells, including a supercell (other neighbour lists)."""
    rng = np.random.default_rng(4)
    out = []
    for repeat in [(1, 1, 1), (2, 1, 1)]:
        atoms = bulk("Al", "fcc", a=4.02, cubic=True) * repeat
        eps = rng.uniform(-0.03, 0.03, (3, 3))
        atoms.set_cell(atoms.cell.array @ (np.eye(3) + 0.5 * (eps + eps.T)), scale_atoms=True)
        atoms.rattle(0.08, seed=int(rng.integers(1000)))
        out.append(atoms)
    compressed = bulk("Al", "fcc", a=3.9)  # primitive, non-orthogonal cell
    out.append(compressed)
    return out


def test_mace_calculator_gives_identical_energy_forces_stress(trained):
    from mace.calculators import MACECalculator

    dtype, out, _ = trained
    ours = MLIPCalculator(out / "model.pt")
    before = torch.get_default_dtype()
    theirs = MACECalculator(model_paths=str(out / "model.model"), device="cpu", default_dtype=dtype)
    torch.set_default_dtype(before)  # MACECalculator changes torch's global default dtype
    rtol, atol = (1e-10, 1e-12) if dtype == "float64" else (1e-5, 1e-6)
    for atoms in structures():
        a, b = atoms.copy(), atoms.copy()
        a.calc, b.calc = ours, theirs
        e_a, e_b = a.get_potential_energy(), b.get_potential_energy()
        assert e_a == pytest.approx(e_b, rel=rtol, abs=atol)
        np.testing.assert_allclose(a.get_forces(), b.get_forces(), rtol=rtol, atol=atol)
        np.testing.assert_allclose(a.get_stress(), b.get_stress(), rtol=rtol, atol=atol)
        if len(atoms) > 1:  # rattled: forces are not trivially zero
            assert np.abs(a.get_forces()).max() > 1e-5
        assert np.abs(a.get_stress()).max() > 1e-6


#: the graph keys LAMMPS' pair_style mace hands to the TorchScript model (pair_mace.cpp)
LAMMPS_KEYS = (
    "batch",
    "cell",
    "edge_index",
    "node_attrs",
    "positions",
    "ptr",
    "shifts",
    "unit_shifts",
)


@pytest.fixture(scope="module")
def lammps_model(trained, tmp_path_factory):
    """``mace_create_lammps_model model.model --dtype <dtype>`` (mace-torch's CLI), loaded with
    ``torch.jit.load`` as LAMMPS loads it."""
    dtype, out, _ = trained
    work = tmp_path_factory.mktemp(f"lammps_{dtype}")
    shutil.copy(out / "model.model", work / "model.model")
    exe = Path(sys.executable).with_name("mace_create_lammps_model")
    proc = subprocess.run(
        [str(exe), str(work / "model.model"), "--dtype", dtype],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return torch.jit.load(str(work / "model.model-lammps.pt"))


def lammps_call(lammps, atoms, out_dir, dtype):
    """Energy (eV), forces (eV/Å) and virial (eV, 3x3) from the LAMMPS model, called as
    mace/calculators/lammps_mace.py's ``LAMMPS_MACE.forward``: a graph dict, every atom local,
    ``compute_virials=True``."""
    info = torch.load(out_dir / "model.pt", weights_only=True)["metadata"]
    configs = models.atoms_to_configs([atoms], with_labels=False)
    data = models.configs_to_data(configs, info["atomic_numbers"], info["r_max_A"], dtype)
    batch = next(iter(models.make_loader(data, batch_size=1, shuffle=False))).to_dict()
    graph = {k: batch[k] for k in LAMMPS_KEYS}
    graph["positions"] = graph["positions"].clone().requires_grad_(True)
    local_or_ghost = torch.ones(len(atoms), dtype=graph["positions"].dtype)
    with models.default_dtype(dtype):
        result = lammps(graph, local_or_ghost, compute_virials=True)
    return (
        float(result["total_energy_local"].detach()[0]),
        result["forces"].detach().numpy(),
        result["virials"].detach().numpy().reshape(3, 3),
    )


def test_lammps_model_gives_our_energy_forces_and_virial(trained, lammps_model):
    """The TorchScript model mace_create_lammps_model makes of model.model gives our ASE
    calculator's energy and forces, and virial W = -σ V (σ: ASE stress, tension positive)."""
    dtype, out, _ = trained
    ours = MLIPCalculator(out / "model.pt")
    rtol, atol = (1e-9, 1e-10) if dtype == "float64" else (1e-4, 1e-5)
    for atoms in structures():
        atoms.calc = ours
        energy, forces, virial = lammps_call(lammps_model, atoms, out, dtype)
        assert energy == pytest.approx(atoms.get_potential_energy(), rel=rtol, abs=atol)
        np.testing.assert_allclose(forces, atoms.get_forces(), rtol=rtol, atol=atol)
        expected = -atoms.get_stress(voigt=False) * atoms.get_volume()
        np.testing.assert_allclose(virial, expected, rtol=rtol, atol=atol * len(atoms))
        assert np.abs(virial).max() > 1e-4  # strained cells: a non-trivial virial


def test_exported_model_is_the_best_checkpoint(trained):
    """model.model holds the same parameters as model.pt (the best validation epoch)."""
    _, out, _ = trained
    ckpt = torch.load(out / "model.pt", weights_only=True)
    whole = torch.load(out / "model.model", weights_only=False)
    state = whole.state_dict()
    assert set(state) == set(ckpt["model_state"])
    for key, value in ckpt["model_state"].items():
        assert torch.equal(state[key].cpu(), value), key
    assert float(whole.r_max) == TINY_MODEL["r_max_A"]
    assert [int(z) for z in whole.atomic_numbers] == [13]


def history_weights(path):
    """history.csv's epoch and weight columns, parsed exactly (Python floats)."""
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    out = {"epoch": [int(r["epoch"]) for r in rows]}
    for k in ("energy", "forces", "stress"):
        out[k] = [float(r[f"weight_{k}"]) for r in rows]
    return out


def test_loss_record_travels_with_both_model_files(trained):
    """model.pt (weights_only), model.loss.json and model.model's attribute hold the same
    record: the run config's scheme and options, the normalisation references and the
    weights of every epoch, equal to history.csv's weight columns."""
    _, out, summary = trained
    ckpt = torch.load(out / "model.pt", weights_only=True)
    record = ckpt["loss"]
    assert json.loads((out / "model.loss.json").read_text()) == record
    assert summary["loss_record_path"] == str(out / "model.loss.json")
    whole = torch.load(out / "model.model", weights_only=False)
    assert whole.dft2mlip_loss == record

    assert record["scheme"] == RUN_CFG["scheme"]
    assert record["options"] == {k: RUN_CFG.get(k) for k in SCHEME_OPTIONS["softadapt"]}
    assert record["normalise"] == RUN_CFG["normalise"]
    assert record["update_interval_batches"] == 0
    assert record["components"] == ["energy", "forces", "stress"]
    assert record["reference_losses"] == ckpt["normalisation"]["refs"]
    assert all(math.isfinite(v) and v > 0 for v in record["reference_losses"].values())
    assert record["model_epoch"] == ckpt["epoch"] == summary["best_epoch"]
    assert record["final_weights"] == summary["final_weights"]

    trajectory = record["weight_trajectory"]
    assert trajectory == history_weights(out / "history.csv")
    assert trajectory["epoch"] == [1, 2, 3]
    assert trajectory["energy"][0] == pytest.approx(1 / 3, rel=1e-12)  # uniform first epoch
    sums = np.sum([trajectory[k] for k in ("energy", "forces", "stress")], axis=0)
    np.testing.assert_allclose(sums, 1.0, rtol=1e-12)
    assert len(set(trajectory["stress"])) > 1  # the weights moved


def test_loss_record_restored_from_the_training_state(trained, tmp_path):
    """Outputs deleted after the last epoch (as Snakemake does after a failure): the rerun
    restores them from last.pt without training, with the same loss record."""
    dtype, out, _ = trained
    copy = tmp_path / "out"
    shutil.copytree(out, copy)
    for name in ("model.pt", "model.model", "model.loss.json", "history.csv"):
        (copy / name).unlink()
    again = train(out.parent, copy, dtype)
    assert again["resumed_from_epoch"] == 3
    before = json.loads((out / "model.loss.json").read_text())
    assert json.loads((copy / "model.loss.json").read_text()) == before
    assert torch.load(copy / "model.pt", weights_only=True)["loss"] == before
