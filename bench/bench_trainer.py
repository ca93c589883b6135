"""Peer benchmark: our trainer vs MACE's own ``mace_run_train``, and the cost of each weighting.

Part 1 trains the same data with the same MACE hyperparameters, loss (E:F:S = 1:100:1 weighted
MSE with stress), optimiser (Adam, amsgrad, lr), ReduceLROnPlateau schedule, batch size, float64
and thread count, once with ``mace_run_train`` and once with :func:`dft2mlip.train.trainer.
train_run`, each in its own process, alternately ``--repeats`` times. Both validate every epoch;
both checkpoint (MACE: when the validation loss improves; ours: ``last.pt`` every epoch and
``model.pt`` when the score improves). Printed: steady-state epoch time (median over epochs 2..N)
as structures/s, the ratio ours / MACE, and each process's total wall time (start-up included).
MACE's epoch times come from the time stamps of its per-epoch log lines.

Part 2 trains every weighting scheme in one process, interleaved round by round, and prints the
median epoch time relative to ``fixed``, plus the time spent inside the scheme's own methods
(``combine``, ``update``, ``batch_step``), which is immune to the machine's noise.

Run: ``python bench/bench_trainer.py`` (about 5 minutes on 2 cores with the defaults);
``--train/--val`` take a pipeline dataset (``results/dataset/{train,val}.extxyz``) instead of the
built-in EMT-labelled Al cells. Never asserts: it prints.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
SCHEMES = {
    "fixed": {"scheme": "fixed", "weights": {"energy": 1.0, "forces": 1.0, "stress": 1.0}},
    "softadapt": {"scheme": "softadapt", "beta": 1.1, "window": 5},
    "softadapt-lw": {"scheme": "softadapt", "beta": 1.1, "window": 5, "loss_weighted": True},
    "relobralo": {"scheme": "relobralo"},
    "dwa": {"scheme": "dwa"},
    "uncertainty": {"scheme": "uncertainty"},
    "gradnorm": {"scheme": "gradnorm"},
}


def make_dataset(work: Path, n_train: int, n_val: int, seed: int) -> tuple[Path, Path]:
    """EMT-labelled 8-atom Al cells, strained and rattled (REF_* keys, stress in eV/Å³)."""
    import ase.io
    from ase.build import bulk
    from ase.calculators.emt import EMT

    rng = np.random.default_rng(seed)
    frames = []
    for _ in range(n_train + n_val):
        atoms = bulk("Al", "fcc", a=4.05, cubic=True) * (2, 1, 1)
        eps = rng.uniform(-0.03, 0.03, (3, 3))
        atoms.set_cell(atoms.cell.array @ (np.eye(3) + 0.5 * (eps + eps.T)), scale_atoms=True)
        atoms.rattle(0.08, seed=int(rng.integers(10**6)))
        atoms.calc = EMT()
        atoms.info["REF_energy"] = atoms.get_potential_energy()
        atoms.arrays["REF_forces"] = atoms.get_forces()
        atoms.info["REF_stress"] = atoms.get_stress(voigt=True)
        atoms.calc = None
        frames.append(atoms)
    ase.io.write(work / "train.xyz", frames[:n_train])
    ase.io.write(work / "val.xyz", frames[n_train:])
    return work / "train.xyz", work / "val.xyz"


def mace_command(train: Path, val: Path, model: dict, a: argparse.Namespace, work: Path) -> list:
    """``mace_run_train`` with our architecture (models.build_model) and training settings."""
    exe = Path(sys.executable).with_name("mace_run_train")
    return [
        str(exe),
        "--name", "bench",
        "--work_dir", str(work),
        "--train_file", str(train),
        "--valid_file", str(val),
        "--energy_key", "REF_energy",
        "--forces_key", "REF_forces",
        "--stress_key", "REF_stress",
        "--model", "MACE",
        "--r_max", str(model["r_max_A"]),
        "--num_channels", str(model["num_channels"]),
        "--max_L", str(model["max_L"]),
        "--max_ell", str(model["max_ell"]),
        "--correlation", str(model["correlation"]),
        "--num_interactions", str(model["num_interactions"]),
        "--num_radial_basis", str(model["num_radial_basis"]),
        "--num_cutoff_basis", str(model["num_polynomial_cutoff"]),
        "--interaction", "RealAgnosticResidualInteractionBlock",
        "--interaction_first", "RealAgnosticResidualInteractionBlock",
        "--MLP_irreps", "16x0e",
        "--radial_MLP", "[64, 64, 64]",
        "--gate", "silu",
        "--scaling", "rms_forces_scaling",
        "--E0s", "average",
        "--loss", "stress",
        "--compute_stress", "True",
        "--energy_weight", "1.0",
        "--forces_weight", "100.0",
        "--stress_weight", "1.0",
        "--error_table", "PerAtomRMSEstressvirials",
        "--batch_size", str(a.batch_size),
        "--valid_batch_size", str(a.batch_size),
        "--lr", str(a.lr),
        "--amsgrad",
        "--scheduler", "ReduceLROnPlateau",
        "--lr_factor", "0.8",
        "--scheduler_patience", "50",
        "--clip_grad", "10",
        "--max_num_epochs", str(a.epochs),
        "--patience", str(10 * a.epochs),
        "--eval_interval", "1",
        "--default_dtype", "float64",
        "--device", "cpu",
        "--seed", str(a.seed),
        "--num_workers", "0",
    ]  # fmt: skip


_STAMP = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}) .*?(Initial|Epoch (\d+)):")


def mace_epoch_times(log_dir: Path) -> list[float]:
    """Seconds between consecutive validation lines of MACE's log (one per epoch)."""
    stamps = []
    for path in sorted(log_dir.glob("*.log")):
        for line in path.read_text().splitlines():
            m = _STAMP.match(line)
            if m:
                stamps.append(dt.datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S.%f"))
    return [(b - a).total_seconds() for a, b in zip(stamps, stamps[1:], strict=False)]


_OURS = """
import json, sys
from dft2mlip.train.trainer import train_run
a = json.loads(sys.argv[1])
s = train_run(a["train"], a["val"], a["out"], run_name="bench", model_cfg=a["model"],
    run_cfg={"scheme": "fixed", "weights": {"energy": 1.0, "forces": 100.0, "stress": 1.0},
             "normalise": "none"},
    epochs=a["epochs"], batch_size=a["batch_size"], lr=a["lr"], dtype="float64", seed=a["seed"],
    lr_scheduler="plateau", lr_factor=0.8, lr_patience=50, min_lr=0.0, ema_decay=0.0,
    clip_grad_norm=10.0, device="cpu", resume=False, progress=False)
"""


def _cpu_children() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _run_mace(train, val, model, a, work: Path, epochs: int, env) -> tuple[float, float, list]:
    """(CPU s, wall s, per-epoch wall times) of one mace_run_train process."""
    b = argparse.Namespace(**{**vars(a), "epochs": epochs})
    c0, t0 = _cpu_children(), time.perf_counter()
    proc = subprocess.run(
        mace_command(train, val, model, b, work), env=env, capture_output=True, text=True
    )
    wall, cpu = time.perf_counter() - t0, _cpu_children() - c0
    if proc.returncode != 0:
        sys.exit(f"mace_run_train failed:\n{proc.stderr[-3000:]}")
    return cpu, wall, mace_epoch_times(work / "logs")


def _run_ours(train, val, model, a, work: Path, epochs: int, env) -> tuple[float, float, list]:
    """(CPU s, wall s, per-epoch wall times) of one dft2mlip training process."""
    args = {
        "train": str(train),
        "val": str(val),
        "out": str(work),
        "model": model,
        "epochs": epochs,
        "batch_size": a.batch_size,
        "lr": a.lr,
        "seed": a.seed,
    }
    c0, t0 = _cpu_children(), time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", _OURS, json.dumps(args)], env=env, capture_output=True, text=True
    )
    wall, cpu = time.perf_counter() - t0, _cpu_children() - c0
    if proc.returncode != 0:
        sys.exit(f"dft2mlip trainer failed:\n{proc.stderr[-3000:]}")
    with open(work / "history.csv") as fh:
        rows = [line.split(",") for line in fh.read().splitlines()]
    col = rows[0].index("wall_s")
    return cpu, wall, [float(row[col]) for row in rows[1:]]


def run_peer(train, val, model, a, work: Path) -> dict:
    """Per repeat: MACE and ours, each with --short-epochs and --epochs, alternating.

    Per-epoch CPU time = (CPU(long) − CPU(short)) / (epochs − short epochs): start-up, data
    preparation and model building cancel, and CPU time (single-threaded processes) is far less
    sensitive than wall time to other jobs sharing the machine.
    """
    env = dict(os.environ, OMP_NUM_THREADS=str(a.threads), MKL_NUM_THREADS=str(a.threads))
    runners = {"mace": _run_mace, "ours": _run_ours}
    result = {k: {"epoch_cpu": [], "epochs": [], "wall": []} for k in runners}
    for r in range(a.repeats):
        for key, runner in runners.items():
            cpu_short, _, _ = runner(
                train, val, model, a, work / f"{key}_{r}_s", a.short_epochs, env
            )
            cpu_long, wall, epochs = runner(
                train, val, model, a, work / f"{key}_{r}_l", a.epochs, env
            )
            result[key]["epoch_cpu"].append((cpu_long - cpu_short) / (a.epochs - a.short_epochs))
            result[key]["epochs"].append(epochs)
            result[key]["wall"].append(wall)
    return result


def steady(epoch_lists: list[list[float]]) -> float:
    """Median epoch time over all repeats, leaving out each run's first epoch (warm-up)."""
    return statistics.median(t for times in epoch_lists for t in times[1:])


class _Timed:
    """Accumulates the CPU time of a scheme's own methods (combine, update, batch_step)."""

    def __init__(self) -> None:
        self.seconds = 0.0

    def wrap(self, cls, name):
        original = getattr(cls, name)
        timer = self

        def timed(self, *args, **kwargs):
            t0 = time.thread_time()  # CPU time of this thread: immune to other jobs
            try:
                return original(self, *args, **kwargs)
            finally:
                timer.seconds += time.thread_time() - t0

        setattr(cls, name, timed)
        return original


def run_schemes(train, val, model, a, work: Path) -> dict:
    """Every scheme, interleaved over rounds (order rotated), in this process."""
    import torch

    from dft2mlip.train import trainer, weighting

    torch.set_num_threads(a.threads)
    times = {name: [] for name in SCHEMES}
    own = {name: [] for name in SCHEMES}
    names = list(SCHEMES)
    for r in range(a.scheme_rounds):
        order = names[r % len(names) :] + names[: r % len(names)]
        for name in order:
            timer = _Timed()
            originals = []
            for cls in {
                type(weighting.make_weighting(name, SCHEMES[name])),
                weighting.WeightingScheme,
            }:
                for meth in ("combine", "update", "batch_step"):
                    if meth in cls.__dict__:
                        originals.append((cls, meth, timer.wrap(cls, meth)))
            try:
                s = trainer.train_run(
                    train,
                    val,
                    work / f"scheme_{name}_{r}",
                    run_name=name,
                    model_cfg=model,
                    run_cfg=dict(SCHEMES[name], normalise="initial"),
                    epochs=a.scheme_epochs,
                    batch_size=a.batch_size,
                    lr=a.lr,
                    dtype="float64",
                    seed=a.seed,
                    lr_scheduler="plateau",
                    device="cpu",
                    resume=False,
                    progress=False,
                )
            finally:
                for cls, meth, original in originals:
                    setattr(cls, meth, original)
            with open(s["history_path"]) as fh:
                rows = [line.split(",") for line in fh.read().splitlines()]
            col = rows[0].index("cpu_s")
            times[name].append([float(row[col]) for row in rows[1:]])
            own[name].append(timer.seconds / a.scheme_epochs)
    return {"times": times, "own": own}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--train", type=Path, help="training extxyz (default: EMT Al cells)")
    p.add_argument("--val", type=Path)
    p.add_argument("--n-train", type=int, default=48)
    p.add_argument("--n-val", type=int, default=8)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--short-epochs", type=int, default=2)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--scheme-epochs", type=int, default=5)
    p.add_argument("--scheme-rounds", type=int, default=2)
    p.add_argument("--skip-peer", action="store_true")
    a = p.parse_args()
    model = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())["model"]

    with tempfile.TemporaryDirectory(prefix="bench_trainer_") as tmp:
        work = Path(tmp)
        if a.train:
            train, val = a.train, a.val
        else:
            train, val = make_dataset(work, a.n_train, a.n_val, a.seed)
        import ase.io

        n_train = len(ase.io.read(train, ":"))
        n_atoms = sum(len(x) for x in ase.io.read(train, ":"))
        print(f"data: {n_train} training structures ({n_atoms} atoms), {train}")
        print(f"model: {model}")
        print(
            f"settings: {a.short_epochs} and {a.epochs} epochs, batch {a.batch_size}, lr {a.lr}, "
            f"float64, CPU, {a.threads} thread(s), {a.repeats} repeats alternating\n"
        )
        if not a.skip_peer:
            peer = run_peer(train, val, model, a, work)
            print(
                "trainer          CPU s/epoch   structures/s (CPU)   wall s/epoch (median)   "
                "process wall s"
            )
            cpu = {}
            for label, key in (("mace_run_train", "mace"), ("dft2mlip", "ours")):
                cpu[key] = statistics.median(peer[key]["epoch_cpu"])
                wall = steady(peer[key]["epochs"])
                walls = " / ".join(f"{w:.1f}" for w in peer[key]["wall"])
                print(
                    f"{label:15s}  {cpu[key]:11.3f}  {n_train / cpu[key]:19.1f}   "
                    f"{wall:21.3f}   {walls}"
                )
            print(
                f"throughput ratio dft2mlip / MACE: {cpu['mace'] / cpu['ours']:.3f} by CPU time "
                f"per epoch, {steady(peer['mace']['epochs']) / steady(peer['ours']['epochs']):.3f}"
                " by wall time per epoch (>= 1.0: ours at least as fast)\n"
            )

        res = run_schemes(train, val, model, a, work)
        base = steady(res["times"]["fixed"])
        base_own = statistics.median(res["own"]["fixed"])
        print(
            f"weighting schemes ({a.scheme_rounds} interleaved rounds x {a.scheme_epochs} epochs, "
            "normalise: initial)"
        )
        print("scheme         CPU s/epoch (median)   overhead vs fixed   own s/epoch (% of fixed)")
        for name in SCHEMES:
            t = steady(res["times"][name])
            own = statistics.median(res["own"][name])
            print(
                f"{name:13s}  {t:20.3f}  {100 * (t / base - 1):+17.1f} %   "
                f"{own:.4f} ({100 * (own - base_own) / base:+.2f} %)"
            )


if __name__ == "__main__":
    main()
