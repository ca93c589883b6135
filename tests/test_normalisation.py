"""normalise: counts and variance (issue 25): closed forms, and a tiny real training run whose
loss is rebuilt from the extxyz files' own labels."""

from __future__ import annotations

import json

import ase.io
import numpy as np
import pandas as pd
import pytest
from training_helpers import TINY_MODEL, emt_frames, emt_labelled

from dft2mlip.train.normalisation import count_factors, label_counts, variance_refs
from dft2mlip.train.trainer import TrainingData, train_run

COMPS = ("energy", "forces", "stress")


def test_count_factors_closed_form():
    counts = {"energy": 1.0, "forces": 12.0, "stress": 6.0}
    mean = 19.0 / 3
    assert count_factors(counts, COMPS) == pytest.approx(
        {"energy": 1 / mean, "forces": 12 / mean, "stress": 6 / mean}, rel=1e-15
    )
    # only the weighted terms enter the mean
    assert count_factors(counts, ("energy", "forces")) == pytest.approx(
        {"energy": 1 / 6.5, "forces": 12 / 6.5}, rel=1e-15
    )
    with pytest.raises(ValueError, match=r"no \['stress'\] labels"):
        count_factors({**counts, "stress": 0.0}, COMPS)


def test_variance_refs_are_squared_scales_and_refuse_missing_labels():
    refs = variance_refs({"energy": 0.01, "forces": 0.3, "stress": 0.002}, COMPS)
    assert refs == pytest.approx({"energy": 1e-4, "forces": 0.09, "stress": 4e-6}, rel=1e-12)
    with pytest.raises(ValueError, match="no stress labels"):
        variance_refs({"energy": 0.01, "forces": 0.3, "stress": float("nan")}, COMPS)


@pytest.fixture(scope="module")
def mixed_sizes(tmp_path_factory):
    """Six 4-atom and two 8-atom EMT Al cells (one without stress), and a validation file."""
    tmp = tmp_path_factory.mktemp("normalisation")
    train = emt_frames(6, seed=11)
    train += [emt_labelled(a.repeat((2, 1, 1))) for a in emt_frames(2, seed=12)]
    del train[2].info["REF_stress"]
    ase.io.write(tmp / "train.xyz", train)
    ase.io.write(tmp / "val.xyz", emt_frames(3, seed=13))
    return tmp


def file_counts(path) -> dict[str, float]:
    """Label components per structure, counted from the file with ASE."""
    frames = ase.io.read(path, ":")
    return {
        "energy": 1.0,
        "forces": float(np.mean([3 * len(a) for a in frames])),
        "stress": float(np.mean([6 * ("REF_stress" in a.info) for a in frames])),
    }


def file_mean_squares(path) -> dict[str, float]:
    """Mean squares of the labels from the file: energy per atom minus the least-squares E0
    (one element: E0 = Σ N_i E_i / Σ N_i²), force components, stress components."""
    frames = ase.io.read(path, ":")
    n = np.array([len(a) for a in frames], dtype=float)
    e = np.array([a.info["REF_energy"] for a in frames])
    e0 = (n @ e) / (n @ n)
    stress = np.array([a.info["REF_stress"] for a in frames if "REF_stress" in a.info])
    forces = np.concatenate([a.arrays["REF_forces"].ravel() for a in frames])
    return {
        "energy": float(np.mean(((e - n * e0) / n) ** 2)),
        "forces": float(np.mean(forces**2)),
        "stress": float(np.mean(stress**2)),
    }


def test_label_counts_of_real_graphs_match_the_file(mixed_sizes):
    data = TrainingData.from_files(
        mixed_sizes / "train.xyz", mixed_sizes / "val.xyz", TINY_MODEL, "float64", 4
    )
    assert label_counts(data.train) == pytest.approx(file_counts(mixed_sizes / "train.xyz"))


def train(tmp, name, normalise):
    summary = train_run(
        tmp / "train.xyz", tmp / "val.xyz", tmp / name, run_name=name, model_cfg=TINY_MODEL,
        run_cfg={"scheme": "softadapt", "beta": 1.1, "window": 3, "normalise": normalise},
        epochs=2, batch_size=8, lr=0.01, dtype="float64", seed=3, threads=1,
    )  # fmt: skip
    record = json.loads((tmp / name / "model.loss.json").read_text())
    return summary, record, pd.read_csv(tmp / name / "history.csv")


@pytest.mark.slow
def test_counts_multiplies_each_term_by_its_share_of_label_components(mixed_sizes):
    """One batch per epoch: loss_total = Σ_k w_k m_k L_k / L_k^ref with m_k from the file."""
    counts = file_counts(mixed_sizes / "train.xyz")
    mean = sum(counts.values()) / 3
    m = {k: v / mean for k, v in counts.items()}
    _, record, hist = train(mixed_sizes, "counts", "counts")
    assert record["normalise"] == "counts"
    assert record["term_factors"] == pytest.approx(m, rel=1e-12)
    refs = record["reference_losses"]
    assert hist["loss_total"].iloc[0] == pytest.approx(1.0, rel=1e-10)  # Σ m_k / 3 = 1
    for _, row in hist.iterrows():
        rebuilt = sum(row[f"weight_{k}"] * m[k] * row[f"loss_{k}"] / refs[k] for k in COMPS)
        assert row["loss_total"] == pytest.approx(rebuilt, rel=1e-10)


@pytest.mark.slow
def test_variance_divides_each_term_by_its_labels_mean_square(mixed_sizes):
    expected = file_mean_squares(mixed_sizes / "train.xyz")
    _, record, hist = train(mixed_sizes, "variance", "variance")
    assert record["reference_losses"] == pytest.approx(expected, rel=1e-9)
    assert record["term_factors"] is None
    for _, row in hist.iterrows():
        rebuilt = sum(row[f"weight_{k}"] * row[f"loss_{k}"] / expected[k] for k in COMPS)
        assert row["loss_total"] == pytest.approx(rebuilt, rel=1e-8)
