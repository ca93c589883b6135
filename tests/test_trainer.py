"""Training loop: history, adaptive weights, checkpoints, calculator consistency, errors."""

from __future__ import annotations

import json
import math

import ase.io
import numpy as np
import pandas as pd
import pytest
import torch
from training_helpers import TINY_MODEL, emt_frames

from dft2mlip.calculator import MLIPCalculator, load_model
from dft2mlip.train import models, trainer
from dft2mlip.train.loss import component_losses
from dft2mlip.train.trainer import HISTORY_COLUMNS, train_run
from dft2mlip.units import EV_PER_A3_TO_GPA

pytestmark = pytest.mark.slow

ADAPTIVE = {"scheme": "softadapt", "beta": 1.1, "window": 3, "normalise": "initial"}
FIXED = {"scheme": "fixed", "weights": {"energy": 1.0, "forces": 100.0, "stress": 1.0}}
EPOCHS = 8


def train(
    tmp,
    name,
    run_cfg,
    *,
    epochs=EPOCHS,
    batch_size=3,
    train_file="train.xyz",
    val_file="val.xyz",
    lr=0.01,
    **options,
):
    return train_run(
        tmp / train_file,
        tmp / val_file,
        tmp / name,
        run_name=name,
        model_cfg=TINY_MODEL,
        run_cfg=run_cfg,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        dtype="float64",
        seed=3,
        threads=1,
        **options,
    )


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("trainer")
    train_frames = emt_frames(10, seed=1)
    del train_frames[4].info["REF_stress"]  # one structure without a stress label: masked
    ase.io.write(tmp / "train.xyz", train_frames)
    ase.io.write(tmp / "val.xyz", emt_frames(4, seed=2))
    stressless = emt_frames(6, seed=4)
    for atoms in stressless:
        del atoms.info["REF_stress"]
    ase.io.write(tmp / "train_nostress.xyz", stressless[:4])
    ase.io.write(tmp / "val_nostress.xyz", stressless[4:])
    return tmp


@pytest.fixture(scope="module")
def adaptive(data_dir):
    summary = train(data_dir, "adaptive", ADAPTIVE)
    return summary, pd.read_csv(data_dir / "adaptive" / "history.csv")


@pytest.fixture(scope="module")
def fixed(data_dir):
    summary = train(data_dir, "fixed", FIXED)
    return summary, pd.read_csv(data_dir / "fixed" / "history.csv")


def test_history_has_one_row_per_epoch_with_weights(adaptive):
    summary, hist = adaptive
    assert list(hist.columns) == list(HISTORY_COLUMNS)
    assert hist["epoch"].tolist() == list(range(1, EPOCHS + 1))
    weights = hist[["weight_energy", "weight_forces", "weight_stress"]].to_numpy()
    assert np.all(weights > 0)
    np.testing.assert_allclose(weights.sum(axis=1), 1.0, atol=1e-12)
    assert hist["wall_s"].gt(0).all()
    assert summary["epochs"] == EPOCHS and summary["n_train"] == 10


def test_adaptive_weights_change_between_epochs(adaptive):
    _, hist = adaptive
    weights = hist[["weight_energy", "weight_forces", "weight_stress"]].to_numpy()
    # uniform until two epoch losses exist, then updated every epoch
    np.testing.assert_allclose(weights[:2], 1 / 3, atol=1e-15)
    assert np.abs(np.diff(weights[2:], axis=0)).max() > 1e-3


def test_fixed_weights_stay_and_loss_decreases(fixed):
    _, hist = fixed
    assert (hist["weight_forces"] == 100.0).all() and (hist["weight_stress"] == 1.0).all()
    assert hist["loss_total"].iloc[-2:].mean() < 0.5 * hist["loss_total"].iloc[0]


def test_adaptive_raw_losses_decrease(adaptive):
    _, hist = adaptive
    for comp in ("energy", "forces", "stress"):
        col = hist[f"loss_{comp}"]
        assert col.iloc[-2:].mean() < col.iloc[0], comp


def test_normalised_total_loss_uses_initial_references(data_dir):
    """normalise: initial -> loss = Σ_k w_k L_k / L_k^ref with L_k^ref the initial model's
    training loss. With one batch per epoch, epoch 1 sees the initial model, so its raw losses
    equal the references and its total loss equals Σ_k w_k = 1."""
    summary = train(data_dir, "one_batch", ADAPTIVE, epochs=3, batch_size=10)
    hist = pd.read_csv(data_dir / "one_batch" / "history.csv")
    refs = summary["normalisation_refs"]
    for k in ("energy", "forces", "stress"):
        assert hist[f"loss_{k}"].iloc[0] == pytest.approx(refs[k], rel=1e-10)
    assert hist["loss_total"].iloc[0] == pytest.approx(1.0, rel=1e-10)
    for _, row in hist.iterrows():
        rebuilt = sum(row[f"weight_{k}"] * row[f"loss_{k}"] / refs[k] for k in refs)
        assert row["loss_total"] == pytest.approx(rebuilt, rel=1e-10)


def test_checkpoint_loads_weights_only_and_is_best_epoch(adaptive, data_dir):
    summary, hist = adaptive
    ckpt = torch.load(data_dir / "adaptive" / "model.pt", weights_only=True)
    json.dumps(ckpt["metadata"])  # plain JSON-able metadata
    json.dumps(ckpt["weighting"])
    assert ckpt["epoch"] == int(hist.loc[hist["val_score"].idxmin(), "epoch"])
    assert ckpt["epoch"] == summary["best_epoch"]
    assert hist.loc[hist["epoch"] == ckpt["epoch"], "best"].item() == 1
    assert ckpt["normalisation"]["mode"] == "initial"
    assert set(ckpt["normalisation"]["refs"]) == {"energy", "forces", "stress"}
    state = torch.load(data_dir / "adaptive" / "last.pt", weights_only=True)
    assert state["epoch"] == EPOCHS and len(state["history"]) == EPOCHS
    assert {"optimizer", "rng", "weighting", "normalisation", "model_state"} <= set(state)
    before = torch.get_default_dtype()
    model, info = load_model(data_dir / "adaptive" / "model.pt")
    assert torch.get_default_dtype() == before
    assert info["dtype"] == "float64" and info["atomic_numbers"] == [13]
    assert not any(p.requires_grad for p in model.parameters())


def test_calculator_reproduces_trainer_validation_metrics(adaptive, data_dir):
    """RMSEs recomputed through the ASE calculator equal the best epoch's history row."""
    _, hist = adaptive
    assert_calculator_matches_best_row(data_dir, data_dir / "adaptive", hist)


def assert_calculator_matches_best_row(data_dir, out, hist):
    best = hist.loc[hist["val_score"].idxmin()]
    calc = MLIPCalculator(out / "model.pt")
    de, df, ds = [], [], []
    for atoms in ase.io.read(data_dir / "val.xyz", ":"):
        atoms.calc = calc
        de.append((atoms.get_potential_energy() - atoms.info["REF_energy"]) / len(atoms))
        df.append(atoms.get_forces() - atoms.arrays["REF_forces"])
        ds.append(atoms.get_stress(voigt=True) - atoms.info["REF_stress"])
    rmse_e = 1000 * np.sqrt(np.mean(np.square(de)))
    rmse_f = 1000 * np.sqrt(np.mean(np.square(np.concatenate(df))))
    rmse_s = EV_PER_A3_TO_GPA * np.sqrt(np.mean(np.square(ds)))
    assert rmse_e == pytest.approx(best["val_energy_rmse_meV_per_atom"], rel=1e-8)
    assert rmse_f == pytest.approx(best["val_forces_rmse_meV_per_A"], rel=1e-8)
    assert rmse_s == pytest.approx(best["val_stress_rmse_GPa"], rel=1e-8)


def test_same_seed_gives_same_history(data_dir):
    a = train(data_dir, "repeat_a", FIXED, epochs=2)
    b = train(data_dir, "repeat_b", FIXED, epochs=2)
    ha = pd.read_csv(data_dir / "repeat_a" / "history.csv").drop(columns=["wall_s", "cpu_s"])
    hb = pd.read_csv(data_dir / "repeat_b" / "history.csv").drop(columns=["wall_s", "cpu_s"])
    pd.testing.assert_frame_equal(ha, hb, check_exact=True)
    assert a["best_val"] == b["best_val"]


@pytest.mark.parametrize(
    "run_cfg", [FIXED, ADAPTIVE, {"scheme": "uncertainty"}, {"scheme": "gradnorm"}]
)
def test_stress_weight_without_stress_labels_is_an_error(data_dir, run_cfg):
    with pytest.raises(ValueError, match=r"run nostress.*REF_stress"):
        train_run(
            data_dir / "train_nostress.xyz",
            data_dir / "val_nostress.xyz",
            data_dir / "nostress",
            run_name="nostress",
            model_cfg=TINY_MODEL,
            run_cfg=run_cfg,
            epochs=1,
            batch_size=2,
            lr=0.01,
            dtype="float64",
            seed=0,
        )


def test_zero_stress_weight_trains_without_stress_labels(data_dir):
    run_cfg = {"scheme": "fixed", "weights": {"energy": 1.0, "forces": 100.0, "stress": 0.0}}
    summary = train(
        data_dir,
        "no-stress",
        run_cfg,
        epochs=2,
        train_file="train_nostress.xyz",
        val_file="val_nostress.xyz",
    )
    hist = pd.read_csv(data_dir / "no-stress" / "history.csv")
    assert hist["loss_stress"].isna().all() and hist["val_stress_rmse_GPa"].isna().all()
    assert summary["score_components"] == ["energy", "forces"]


def test_nan_loss_raises_and_keeps_last_good_checkpoint(data_dir, monkeypatch):
    real = trainer.component_sums
    calls = {"n": 0}
    n_batches = math.ceil(10 / 3)

    def poisoned(pred, batch):
        out = real(pred, batch)
        calls["n"] += 1
        if calls["n"] > n_batches:  # the first batch of epoch 2 turns NaN
            sse, count = out["forces"]
            out["forces"] = (sse * float("nan"), count)
        return out

    monkeypatch.setattr(trainer, "component_sums", poisoned)
    with pytest.raises(FloatingPointError, match=r"epoch 2, batch 0.*last\.pt.*epoch 1"):
        train(data_dir, "nan", {"scheme": "fixed", "weights": {"energy": 1.0, "forces": 1.0}})
    ckpt = torch.load(data_dir / "nan" / "model.pt", weights_only=True)
    assert ckpt["epoch"] == 1
    assert torch.load(data_dir / "nan" / "last.pt", weights_only=True)["epoch"] == 1
    assert len(pd.read_csv(data_dir / "nan" / "history.csv")) == 1


def test_component_losses_mask_missing_stress():
    """Hand-computed MSEs for a two-structure batch where only one has a stress label."""
    frames = emt_frames(2, seed=9)
    del frames[1].info["REF_stress"]
    configs = models.atoms_to_configs(frames)
    data = models.configs_to_data(configs, [13], 4.0, "float64")
    batch = next(iter(models.make_loader(data, batch_size=2, shuffle=False)))
    rng = np.random.default_rng(0)
    e_pred = np.array([a.info["REF_energy"] for a in frames]) + rng.normal(0, 0.1, 2)
    f_ref = np.concatenate([a.arrays["REF_forces"] for a in frames])
    f_pred = f_ref + rng.normal(0, 0.1, f_ref.shape)
    s_pred = np.stack([frames[0].info["REF_stress"], np.zeros(6)]) + rng.normal(0, 0.01, (2, 6))
    pred = {
        "energy": torch.tensor(e_pred),
        "forces": torch.tensor(f_pred),
        "stress": torch.tensor(s_pred),
    }
    losses = component_losses(pred, batch)
    n = np.array([len(a) for a in frames])
    e_ref = np.array([a.info["REF_energy"] for a in frames])
    assert float(losses["energy"]) == pytest.approx(np.mean(((e_pred - e_ref) / n) ** 2), rel=1e-12)
    assert float(losses["forces"]) == pytest.approx(np.mean((f_pred - f_ref) ** 2), rel=1e-12)
    s_expected = np.mean((s_pred[0] - frames[0].info["REF_stress"]) ** 2)
    assert float(losses["stress"]) == pytest.approx(s_expected, rel=1e-12)


def test_bad_training_arguments_are_rejected(data_dir):
    with pytest.raises(ValueError, match="epochs"):
        train(data_dir, "bad", FIXED, epochs=0)
    with pytest.raises(ValueError, match=r"training\.runs\.bad\.normalise"):
        train(data_dir, "bad", dict(FIXED, normalise="sometimes"))


# ------------------------------------------------------------------------------------------
# the other weighting schemes, LR schedules, EMA, early stopping, progress bar, settings


@pytest.mark.parametrize("scheme", ["relobralo", "dwa", "uncertainty", "gradnorm"])
def test_every_scheme_trains_with_positive_finite_weights(data_dir, scheme):
    run_cfg = {"scheme": scheme, "normalise": "initial"}
    summary = train(data_dir, scheme, run_cfg, epochs=4)
    hist = pd.read_csv(data_dir / scheme / "history.csv")
    weights = hist[["weight_energy", "weight_forces", "weight_stress"]].to_numpy()
    assert np.all(np.isfinite(weights)) and np.all(weights > 0)
    assert hist["loss_forces"].iloc[-1] < hist["loss_forces"].iloc[0]
    state = torch.load(data_dir / scheme / "last.pt", weights_only=True)["weighting"]
    assert state["scheme"] == scheme
    if scheme == "uncertainty":
        # the log-variances are trained by the optimiser: they moved away from 0
        assert np.abs(state["log_variances"]).min() > 1e-3
    else:
        np.testing.assert_allclose(weights.sum(axis=1), 1.0, atol=1e-12)
    if scheme in ("gradnorm", "dwa", "relobralo"):
        assert np.ptp(weights, axis=0).max() > 1e-3  # the weights moved during training
    assert summary["scheme"] == scheme


def test_cosine_schedule_follows_formula(data_dir):
    epochs, lr0, min_lr = 5, 0.01, 1e-3
    train(data_dir, "cosine", FIXED, epochs=epochs, lr_scheduler="cosine", min_lr=min_lr)
    lr = pd.read_csv(data_dir / "cosine" / "history.csv")["lr"].to_numpy()
    e = np.arange(epochs)
    expected = min_lr + (lr0 - min_lr) * (1 + np.cos(np.pi * e / epochs)) / 2
    np.testing.assert_allclose(lr, expected, rtol=1e-12)


def test_plateau_schedule_lowers_lr_only_after_no_improvement(data_dir):
    train(
        data_dir, "plateau", ADAPTIVE, epochs=10, lr_scheduler="plateau", lr_patience=0,
        lr_factor=0.5, min_lr=0.0,
    )  # fmt: skip
    hist = pd.read_csv(data_dir / "plateau" / "history.csv")
    lr = hist["lr"].to_numpy()
    assert lr[0] == 0.01 and np.all(np.diff(lr) <= 0)
    for i in np.flatnonzero(np.diff(lr) < 0):
        assert hist["best"].iloc[i] == 0  # lowered after an epoch that did not improve
        assert lr[i + 1] == pytest.approx(0.5 * lr[i], rel=1e-12)
    assert (np.diff(lr) < 0).any(), "10 epochs at lr 0.01 should see a non-improving epoch"


def test_ema_model_is_validated_and_saved(data_dir):
    """With EMA the best model is the averaged one: the calculator reproduces its metrics, and
    it differs from the raw parameters kept for training."""
    out = data_dir / "ema"
    train(data_dir, "ema", ADAPTIVE, epochs=4, ema_decay=0.9)
    hist = pd.read_csv(out / "history.csv")
    assert_calculator_matches_best_row(data_dir, out, hist)
    state = torch.load(out / "last.pt", weights_only=True)
    params = [k for k, v in state["model_state"].items() if v.is_floating_point()]
    assert len(state["ema"]["shadow"]) > 0 and state["ema"]["num_updates"] == 4 * 4
    best = torch.load(out / "model.pt", weights_only=True)["model_state"]
    assert any(not torch.equal(best[k], state["model_state"][k]) for k in params)


def test_early_stopping(data_dir):
    summary = train(data_dir, "early", FIXED, epochs=40, lr=0.05, early_stopping_patience=2)
    hist = pd.read_csv(data_dir / "early" / "history.csv")
    assert summary["stopped_early"] and len(hist) < 40
    assert hist["best"].iloc[-2:].sum() == 0  # the last two epochs did not improve
    assert summary["best_epoch"] == len(hist) - 2


def test_progress_bar_on_request(data_dir, capfd):
    train(data_dir, "bar", FIXED, epochs=2, progress=True)
    err = capfd.readouterr().err
    assert "train bar" in err and "2/2" in err


def test_float32_run(data_dir):
    summary = train_run(
        data_dir / "train.xyz",
        data_dir / "val.xyz",
        data_dir / "f32",
        run_name="f32",
        model_cfg=TINY_MODEL,
        run_cfg=FIXED,
        epochs=2,
        batch_size=3,
        lr=0.01,
        dtype="float32",
        seed=3,
        threads=1,
    )
    ckpt = torch.load(data_dir / "f32" / "model.pt", weights_only=True)
    assert ckpt["metadata"]["dtype"] == "float32"
    assert all(
        v.dtype == torch.float32 for v in ckpt["model_state"].values() if v.is_floating_point()
    )
    assert math.isfinite(summary["best_val_score"])


def test_device_auto_is_cuda_only_when_available():
    assert trainer.resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert trainer.resolve_device("cpu").type == "cpu"
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match=r"training\.device.*CUDA is not available"):
            trainer.resolve_device("cuda")


@pytest.mark.parametrize(
    "options, match",
    [
        ({"lr_scheduler": "step"}, r"training\.lr_scheduler"),
        ({"ema_decay": 1.0}, r"training\.ema_decay"),
        ({"early_stopping_patience": -1}, r"training\.early_stopping_patience"),
        ({"device": "tpu"}, r"training\.device"),
    ],
)
def test_bad_trainer_options_are_rejected(data_dir, options, match):
    with pytest.raises(ValueError, match=match):
        train(data_dir, "bad_options", FIXED, epochs=1, **options)


def test_collate_builds_the_batches_mace_builds(data_dir):
    """Our one-cat-per-key collation equals MACE's Batch.from_data_list, key by key."""
    from mace.tools import torch_geometric

    frames = ase.io.read(data_dir / "train.xyz", ":")  # one frame lacks REF_stress
    frames[2] = frames[2].repeat((2, 1, 1))  # graphs of different sizes
    data = models.configs_to_data(models.atoms_to_configs(frames), [13], 4.0, "float64")
    ours = list(models.make_loader(data, 3, shuffle=True, seed=4))
    theirs = list(
        torch_geometric.DataLoader(
            data, batch_size=3, shuffle=True, generator=torch.Generator().manual_seed(4)
        )
    )
    assert len(ours) == len(theirs) == 4
    for a, b in zip(ours, theirs, strict=True):
        da, db = a.to_dict(), b.to_dict()
        assert da.keys() == db.keys()
        for key in da:
            assert da[key].dtype == db[key].dtype and torch.equal(da[key], db[key]), key
        assert a.num_graphs == b.num_graphs


def test_to_device_moves_only_batches_that_are_elsewhere(data_dir):
    """A CPU batch bound for the CPU is returned as is (no per-key walk); any other target gets
    ``Batch.to``: here torch's shape-only ``meta`` device, which every machine has."""
    frames = ase.io.read(data_dir / "train.xyz", ":")
    data = models.configs_to_data(models.atoms_to_configs(frames), [13], 4.0, "float64")
    batch = next(iter(models.make_loader(data, 2, shuffle=False)))
    assert models.to_device(batch, torch.device("cpu")) is batch
    assert models.to_device(batch, "cpu") is batch
    assert models.to_device(batch, None) is batch
    moved = models.to_device(batch, "meta")
    assert moved.positions.device.type == "meta" and moved.edge_index.device.type == "meta"
    assert moved.positions.shape == batch.positions.shape
