"""Checkpoint every epoch and resume: an interrupted run finishes exactly as an uninterrupted one.

On CPU, 2 epochs + interruption + resume + 2 epochs must equal 4 epochs bit for bit: losses,
weights, validation metrics, the best model and the whole training state. Covered: every kind
of state (Adam, LR schedules, EMA, SoftAdapt windows with batch intervals spanning epochs,
ReLoBRaLo's random lookback, uncertainty weighting's learnable log-variances, GradNorm's Adam
state), a real SIGKILL in the middle of an epoch, and the outputs a workflow manager deletes.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
from training_helpers import TINY_MODEL, write_dataset

from dft2mlip.train import trainer
from dft2mlip.train.trainer import train_run

pytestmark = pytest.mark.slow

CASES = {
    "softadapt": (
        {"scheme": "softadapt", "window": 2, "normalise": "initial", "update_interval_batches": 3},
        {"lr_scheduler": "plateau", "lr_patience": 0, "ema_decay": 0.9},
    ),
    "relobralo": (
        {"scheme": "relobralo", "lookback": 0.5, "normalise": "initial"},
        {"lr_scheduler": "cosine", "min_lr": 1e-3},
    ),
    "uncertainty": ({"scheme": "uncertainty"}, {"lr_scheduler": "plateau", "lr_patience": 1}),
    "gradnorm": ({"scheme": "gradnorm", "normalise": "initial"}, {"lr_scheduler": "none"}),
}


class Interrupt(Exception):
    pass


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_dataset(tmp_path_factory.mktemp("resume"))


def run(data, out, run_cfg, extra, epochs=4, **kw):
    train, val = data
    return train_run(
        train,
        val,
        out,
        run_name="r",
        model_cfg=TINY_MODEL,
        run_cfg=run_cfg,
        epochs=epochs,
        batch_size=3,
        lr=0.01,
        dtype="float64",
        seed=5,
        threads=1,
        device="cpu",
        **extra,
        **kw,
    )


def history(out):
    return pd.read_csv(out / "history.csv").drop(columns=["wall_s", "cpu_s"])


def assert_same_state(a: Path, b: Path):
    sa = torch.load(a / "last.pt", weights_only=True)
    sb = torch.load(b / "last.pt", weights_only=True)
    assert sa["epoch"] == sb["epoch"]
    assert sa["weighting"] == sb["weighting"]
    for key in sa["model_state"]:
        assert torch.equal(sa["model_state"][key], sb["model_state"][key]), key
    ma = torch.load(a / "model.pt", weights_only=True)
    mb = torch.load(b / "model.pt", weights_only=True)
    assert ma["epoch"] == mb["epoch"]
    for key in ma["model_state"]:
        assert torch.equal(ma["model_state"][key], mb["model_state"][key]), key
    oa, ob = sa["optimizer"]["state"], sb["optimizer"]["state"]
    assert oa.keys() == ob.keys()
    for i in oa:
        for name in oa[i]:
            assert torch.equal(torch.as_tensor(oa[i][name]), torch.as_tensor(ob[i][name]))


@pytest.mark.parametrize("case", list(CASES))
def test_interrupted_after_two_epochs_resumes_exactly(data, tmp_path, monkeypatch, case):
    run_cfg, extra = CASES[case]
    reference = run(data, tmp_path / "full", run_cfg, extra)

    real_log = trainer._log_epoch

    def interrupt_after_two(run_name, epoch, *args):
        real_log(run_name, epoch, *args)
        if epoch == 2:
            raise Interrupt

    monkeypatch.setattr(trainer, "_log_epoch", interrupt_after_two)
    out = tmp_path / "interrupted"
    with pytest.raises(Interrupt):
        run(data, out, run_cfg, extra)
    monkeypatch.setattr(trainer, "_log_epoch", real_log)
    assert len(pd.read_csv(out / "history.csv")) == 2
    # what Snakemake does to the declared outputs of a failed job
    for name in ("model.pt", "history.csv"):
        (out / name).unlink()

    resumed = run(data, out, run_cfg, extra)
    assert resumed["resumed_from_epoch"] == 2
    pd.testing.assert_frame_equal(history(out), history(tmp_path / "full"), check_exact=True)
    assert resumed["best_val"] == reference["best_val"]
    assert resumed["final_weights"] == reference["final_weights"]
    assert_same_state(out, tmp_path / "full")


def test_sigkill_mid_epoch_then_resume_equals_uninterrupted(data, tmp_path):
    """A real kill -9 while a batch is being computed; the rerun picks up last.pt."""
    run_cfg, extra = CASES["softadapt"]
    epochs = 6
    out = tmp_path / "killed"
    child = f"""
import time
from pathlib import Path
from dft2mlip.train import trainer
real = trainer.component_sums
def slow(pred, batch):
    time.sleep(0.05)
    return real(pred, batch)
trainer.component_sums = slow
trainer.train_run({str(data[0])!r}, {str(data[1])!r}, {str(out)!r}, run_name="r",
    model_cfg={TINY_MODEL!r}, run_cfg={run_cfg!r}, epochs={epochs}, batch_size=3, lr=0.01,
    dtype="float64", seed=5, threads=1, device="cpu", **{extra!r})
"""
    proc = subprocess.Popen([sys.executable, "-c", child], env=dict(os.environ))
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            if (out / "last.pt").exists():
                state = torch.load(out / "last.pt", weights_only=True)
                if state["epoch"] >= 2:
                    time.sleep(0.12)  # inside the next epoch's batches
                    break
            time.sleep(0.05)
        assert proc.poll() is None, "the child finished before it could be killed"
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    killed_at = torch.load(out / "last.pt", weights_only=True)["epoch"]
    assert 2 <= killed_at < epochs

    resumed = run(data, out, run_cfg, extra, epochs=epochs)
    assert resumed["resumed_from_epoch"] == killed_at
    run(data, tmp_path / "full", run_cfg, extra, epochs=epochs)
    pd.testing.assert_frame_equal(history(out), history(tmp_path / "full"), check_exact=True)
    assert_same_state(out, tmp_path / "full")


def test_state_of_other_settings_is_not_resumed(data, tmp_path):
    run_cfg, extra = CASES["relobralo"]
    out = tmp_path / "changed"
    run(data, out, run_cfg, extra, epochs=2)
    summary = run(data, out, run_cfg, dict(extra, min_lr=2e-3), epochs=2)
    assert summary["resumed_from_epoch"] is None
    assert history(out)["epoch"].tolist() == [1, 2]


def test_finished_run_is_restored_without_training(data, tmp_path):
    """Killed after the last epoch (outputs deleted): rerunning restores them, trains nothing."""
    run_cfg, extra = CASES["uncertainty"]
    out = tmp_path / "done"
    first = run(data, out, run_cfg, extra, epochs=2)
    before = history(out)
    model_before = torch.load(out / "model.pt", weights_only=True)
    for name in ("model.pt", "model.model", "history.csv"):
        (out / name).unlink()
    again = run(data, out, run_cfg, extra, epochs=2)
    assert again["resumed_from_epoch"] == 2 and again["best_val"] == first["best_val"]
    pd.testing.assert_frame_equal(history(out), before, check_exact=True)
    model_after = torch.load(out / "model.pt", weights_only=True)
    for key, value in model_before["model_state"].items():
        assert torch.equal(value, model_after["model_state"][key])
    assert (out / "model.model").exists()


def test_resume_false_starts_afresh(data, tmp_path):
    run_cfg, extra = CASES["gradnorm"]
    out = tmp_path / "fresh"
    run(data, out, run_cfg, extra, epochs=1)
    summary = run(data, out, run_cfg, extra, epochs=1, resume=False)
    assert summary["resumed_from_epoch"] is None
