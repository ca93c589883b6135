"""Peer benchmark: our trainer vs MACE's own ``mace_run_train`` on the same network, data and dtype.

Part 1 (the peer). Both trainers build the identical ``ScaleShiftMACE``: the architecture of
``config/config.yaml``'s ``model:`` with a residual first interaction block (mace-torch 0.3.16's
``--model MACE`` would swap it for the non-residual one, so the peer gets
``--model ScaleShiftMACE --interaction_first RealAgnosticResidualInteractionBlock``), E0s by
least squares (``--E0s average``), scale = RMS force and shift = mean interaction energy per atom
(``--scaling rms_forces_scaling``), no weight decay (``--weight_decay 0``), no EMA, Adam with
amsgrad, the same lr, batch size, gradient clipping (10), a plateau schedule whose patience
exceeds the epochs (constant lr), one thread, validation every epoch. After the first
repeat's short runs the script checks that the two trained networks have the same parameter
count, the same state-dict keys and sizes, the same E0s, scale, shift, average neighbour count
and cutoff, and that our network loaded with MACE's weights gives MACE's energies, forces and
stresses; when they differ it stops, and no timing is stored. MACE's training loader drops the
last incomplete batch (its statistics too): use a training-set size divisible by the batch
size.

Left different, on purpose: the loss. Both use E:F:S = 1:100:1 with per-atom energy MSE and
force-component MSE; MACE's stress MSE runs over the 9 tensor components, ours over the 6 Voigt
ones; MACE's plateau schedule watches its validation loss, ours the validation score (idle here).
Each side selects its best-validation model.

Measured, for each trainer and dtype, ``--repeats`` times (seed + repeat; the order of the
cases rotates from repeat to repeat): CPU time per epoch = (CPU(long run) − CPU(short run)) /
(epochs − short epochs), so start-up, data preparation and model building cancel, and CPU time
of single-threaded processes is much less sensitive than wall time to other jobs on the machine;
throughput = training structures per CPU second. The ratio to MACE float64 is formed within each
repeat (the runs closest in time), and reported as the geometric mean over repeats with a 95 %
t interval; a target is "met" when the whole interval is at or above it, "missed" when the whole
interval is below it, else "not established". Test-set RMSEs (energy meV/atom, forces meV/Å,
stress GPa) of each long run's model, computed by the same code for both trainers, and our
float32 minus float64 RMSEs paired by repeat (same seed), with their 95 % t interval. Load
averages (``/proc/loadavg``) before and after.

Results go to ``bench/results/trainer_peer.json`` (everything, with the command, machine and
date) and one markdown line appended to ``bench/results/trainer_peer.md``.

Part 2 (``--schemes``) trains every weighting scheme in one process, interleaved round by round,
and prints the median epoch time relative to ``fixed``, plus the time spent inside the scheme's
own methods (``combine``, ``update``, ``batch_step``).

Run: ``python bench/bench_trainer.py`` (about 15 CPU minutes with the defaults);
``--train/--val/--test`` take a pipeline dataset instead of the built-in EMT-labelled Al cells.
Never asserts: it prints and stores.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
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
RESULTS = ROOT / "bench" / "results"
SCHEMES = {
    "fixed": {"scheme": "fixed", "weights": {"energy": 1.0, "forces": 1.0, "stress": 1.0}},
    "softadapt": {"scheme": "softadapt", "beta": 1.1, "window": 5},
    "softadapt-lw": {"scheme": "softadapt", "beta": 1.1, "window": 5, "loss_weighted": True},
    "relobralo": {"scheme": "relobralo"},
    "dwa": {"scheme": "dwa"},
    "uncertainty": {"scheme": "uncertainty"},
    "gradnorm": {"scheme": "gradnorm"},
}
#: (trainer, dtype) pairs timed in part 1 (``--peer-float32`` adds MACE in float32)
CASES = (("mace", "float64"), ("ours", "float64"), ("ours", "float32"))
#: targets of issue 12: ours / MACE-float64 throughput
TARGETS = {("ours", "float64"): 1.0, ("ours", "float32"): 1.5}


def make_dataset(work: Path, n: dict[str, int], seed: int) -> dict[str, Path]:
    """EMT-labelled 8-atom Al cells, strained and rattled (REF_* keys, stress in eV/Å³)."""
    import ase.io
    from ase.build import bulk
    from ase.calculators.emt import EMT

    rng = np.random.default_rng(seed)
    paths = {}
    for split, count in n.items():
        frames = []
        for _ in range(count):
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
        paths[split] = work / f"{split}.xyz"
        ase.io.write(paths[split], frames)
    return paths


def mace_command(data: dict, model: dict, a: argparse.Namespace, work: Path, dtype: str) -> list:
    """``mace_run_train`` building our network (see the module docstring) with our settings."""
    exe = Path(sys.executable).with_name("mace_run_train")
    return [
        str(exe),
        "--name", "bench",
        "--work_dir", str(work),
        "--model_dir", str(work),
        "--train_file", str(data["train"]),
        "--valid_file", str(data["val"]),
        "--energy_key", "REF_energy",
        "--forces_key", "REF_forces",
        "--stress_key", "REF_stress",
        "--model", "ScaleShiftMACE",
        "--interaction", "RealAgnosticResidualInteractionBlock",
        "--interaction_first", "RealAgnosticResidualInteractionBlock",
        "--r_max", str(model["r_max_A"]),
        "--num_channels", str(model["num_channels"]),
        "--max_L", str(model["max_L"]),
        "--max_ell", str(model["max_ell"]),
        "--correlation", str(model["correlation"]),
        "--num_interactions", str(model["num_interactions"]),
        "--num_radial_basis", str(model["num_radial_basis"]),
        "--num_cutoff_basis", str(model["num_polynomial_cutoff"]),
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
        "--weight_decay", "0.0",
        "--amsgrad",
        "--scheduler", "ReduceLROnPlateau",
        "--lr_factor", "0.8",
        "--scheduler_patience", str(10 * a.epochs),
        "--clip_grad", "10",
        "--max_num_epochs", str(a.epochs),
        "--patience", str(10 * a.epochs),
        "--eval_interval", "1",
        "--default_dtype", dtype,
        "--device", "cpu",
        "--seed", str(a.seed),
        "--num_workers", "0",
    ]  # fmt: skip


#: our side of the peer comparison: MACE's fixed 1:100:1 on raw MSEs
OURS_RUN_CFG = {
    "scheme": "fixed",
    "weights": {"energy": 1.0, "forces": 100.0, "stress": 1.0},
    "normalise": "none",
}


def ours_settings(epochs: int, batch_size: int, lr: float, dtype: str) -> dict:
    """``TrainingSettings`` of our side: MACE's optimiser settings, constant lr (a plateau
    schedule whose patience exceeds the epochs), no EMA, gradient clipping 10, on the CPU."""
    return {
        "epochs": epochs, "batch_size": batch_size, "lr": lr, "dtype": dtype, "device": "cpu",
        "lr_scheduler": "plateau", "lr_factor": 0.8, "lr_patience": 10 * epochs, "min_lr": 0.0,
        "ema_decay": 0.0, "clip_grad_norm": 10.0,
    }  # fmt: skip


_OURS = """
import json, sys
from dft2mlip.train.settings import TrainingSettings
from dft2mlip.train.trainer import train_run
a = json.loads(sys.argv[1])
train_run(a["train"], a["val"], a["out"], run_name="bench", model_cfg=a["model"],
    run_cfg=a["run_cfg"], seed=a["seed"], settings=TrainingSettings(**a["settings"]),
    resume=False, progress=False)
"""


def _cpu_children() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_trainer(kind: str, dtype: str, data, model, a, work: Path, epochs: int, env) -> dict:
    """One training process; its CPU and wall seconds and the path of its exported model."""
    b = argparse.Namespace(**{**vars(a), "epochs": epochs})
    if kind == "mace":
        cmd = mace_command(data, model, b, work, dtype)
        model_path = work / "bench.model"
    else:
        args = {
            "train": str(data["train"]),
            "val": str(data["val"]),
            "out": str(work),
            "model": model,
            "run_cfg": OURS_RUN_CFG,
            "settings": ours_settings(epochs, a.batch_size, a.lr, dtype),
            "seed": a.seed,
        }
        cmd = [sys.executable, "-c", _OURS, json.dumps(args)]
        model_path = work / "model.model"
    c0, t0 = _cpu_children(), time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall, cpu = time.perf_counter() - t0, _cpu_children() - c0
    if proc.returncode != 0:
        sys.exit(f"{kind} trainer failed:\n{proc.stderr[-3000:]}")
    return {"cpu_s": cpu, "wall_s": wall, "model": str(model_path)}


def _load_whole(path: str, dtype: str):
    """A whole-module ``.model`` file, loaded by MACE's own calculator."""
    import torch
    from mace.calculators import MACECalculator

    from dft2mlip.train import models  # imports mace before e3nn

    before = torch.get_default_dtype()
    model = MACECalculator(model_paths=path, device="cpu", default_dtype=dtype).models[0]
    torch.set_default_dtype(before)  # MACECalculator changes torch's global default dtype
    return model.to(models.torch_dtype(dtype)).eval()


def held_out_errors(model_path: str, test_path: Path, dtype: str, r_max: float) -> dict:
    """Test RMSEs (meV/atom, meV/Å, GPa) of a whole-module model, by our evaluation code."""
    import ase.io

    from dft2mlip.train import models, trainer
    from dft2mlip.units import EV_PER_A3_TO_GPA

    model = _load_whole(model_path, dtype)
    model.requires_grad_(False)
    frames = ase.io.read(test_path, ":")
    zs = [int(z) for z in model.atomic_numbers]
    with models.default_dtype(dtype):
        data = models.configs_to_data(models.atoms_to_configs(frames), zs, r_max, dtype)
        rmse = trainer.evaluate(
            model, models.make_loader(data, 8, shuffle=False), compute_stress=True
        )
    rmse = rmse["rmse"]
    return {
        "energy_meV_per_atom": 1000 * rmse["energy"],
        "forces_meV_per_A": 1000 * rmse["forces"],
        "stress_GPa": EV_PER_A3_TO_GPA * rmse["stress"],
    }


def same_network(ours_path: str, mace_path: str, test_path: Path, r_max: float) -> dict:
    """Parameter count, state-dict layout, E0s, scale/shift, neighbour count, cutoff, and one
    forward pass of our network with MACE's weights against MACE's (float64)."""
    import copy

    import ase.io
    import torch

    from dft2mlip.train import models

    ours, theirs = _load_whole(ours_path, "float64"), _load_whole(mace_path, "float64")
    so, st = ours.state_dict(), theirs.state_dict()
    check = {
        "class": [type(ours).__name__, type(theirs).__name__],
        "first_interaction": [type(m.interactions[0]).__name__ for m in (ours, theirs)],
        "n_parameters": [sum(p.numel() for p in m.parameters()) for m in (ours, theirs)],
        "same_state_keys_and_sizes": {k: v.numel() for k, v in so.items()}
        == {k: v.numel() for k, v in st.items()},
    }
    for key in ("atomic_energies_fn.atomic_energies", "scale_shift.scale", "scale_shift.shift"):
        check[key] = [so[key].reshape(-1).tolist(), st[key].reshape(-1).tolist()]
    check["avg_num_neighbors"] = [
        float(m.interactions[0].avg_num_neighbors) for m in (ours, theirs)
    ]
    check["r_max"] = [float(m.r_max) for m in (ours, theirs)]
    # mace_run_train stores E0s per head ((1, n) vs our (n,)) and scale/shift as (1,) vs ();
    # same values, same arithmetic: reshaped to our layout
    check["storage_shapes_differ"] = sorted(k for k in so if so[k].shape != st[k].shape)
    mixed = copy.deepcopy(ours)
    mixed.load_state_dict({k: v.reshape(so[k].shape) for k, v in st.items()})
    frames = ase.io.read(test_path, ":")
    with models.default_dtype("float64"):
        data = models.configs_to_data(models.atoms_to_configs(frames), [13], r_max, "float64")
        batch = next(iter(models.make_loader(data, len(data), shuffle=False)))
        a = models.predict(mixed, batch, training=False)
        b = models.predict(theirs, batch, training=False)
    check["forward_max_abs_diff"] = {
        k: float(torch.max(torch.abs(a[k] - b[k]))) for k in ("energy", "forces", "stress")
    }
    check["identical"] = bool(
        check["n_parameters"][0] == check["n_parameters"][1]
        and check["same_state_keys_and_sizes"]
        and check["first_interaction"][0] == check["first_interaction"][1]
        and all(
            np.allclose(*check[k], rtol=1e-6)
            for k in ("avg_num_neighbors", "r_max", "scale_shift.scale", "scale_shift.shift")
        )
        and np.allclose(*check["atomic_energies_fn.atomic_energies"], rtol=1e-6)
        and max(check["forward_max_abs_diff"].values()) < 1e-9
    )
    return check


def run_peer(data, model, a, work: Path) -> dict:
    """Every case of :data:`CASES`, short and long run, ``a.repeats`` times; the order of the
    cases rotates from repeat to repeat, so no trainer always runs first or last."""
    env = dict(os.environ, OMP_NUM_THREADS=str(a.threads), MKL_NUM_THREADS=str(a.threads))
    cases = CASES + ((("mace", "float32"),) if a.peer_float32 else ())
    runs: dict[str, list] = {f"{k}-{d}": [] for k, d in cases}
    identity = None
    for r in range(a.repeats):
        b = argparse.Namespace(**{**vars(a), "seed": a.seed + r})
        for kind, dtype in cases[r % len(cases) :] + cases[: r % len(cases)]:  # rotated order
            name = f"{kind}-{dtype}"
            short = run_trainer(
                kind, dtype, data, model, b, work / f"{name}_{r}_s", a.short_epochs, env
            )
            long = run_trainer(kind, dtype, data, model, b, work / f"{name}_{r}_l", a.epochs, env)
            epoch_cpu = (long["cpu_s"] - short["cpu_s"]) / (a.epochs - a.short_epochs)
            errors = held_out_errors(long["model"], data["test"], dtype, float(model["r_max_A"]))
            runs[name].append(
                {"seed": b.seed, "epoch_cpu_s": epoch_cpu, "wall_s": long["wall_s"], "test": errors}
            )
            print(f"  repeat {r} {name:14s} CPU s/epoch {epoch_cpu:.3f}  test {errors}", flush=True)
        if identity is None:
            identity = same_network(
                str(work / f"ours-float64_{r}_s" / "model.model"),
                str(work / f"mace-float64_{r}_s" / "bench.model"),
                data["test"],
                float(model["r_max_A"]),
            )
            print(f"  same network: {identity['identical']} {identity}", flush=True)
            if not identity["identical"]:
                sys.exit("the two trainers built different networks: no timing is stored")
    return {"runs": runs, "same_network": identity}


def paired_interval(values: list[float], log: bool = False) -> dict:
    """Mean and 95 % t interval of paired per-repeat values (``log``: geometric, for ratios)."""
    from dft2mlip.study import t_interval

    t = t_interval(np.log(values) if log else values)
    back = np.exp if log else float
    return {"mean": float(back(t["mean"])), "low": float(back(t["low"])),
            "high": float(back(t["high"])), "n": len(values)}  # fmt: skip


def verdict(interval: dict, target: float) -> str:
    """'met' when the whole interval is at or above the target, 'missed' when it is all below,
    else 'not established' (the noise of this machine covers the target)."""
    if interval["low"] >= target:
        return "met"
    return "missed" if interval["high"] < target else "not established"


def summarise(peer: dict, n_train: int) -> dict:
    """Per case: median CPU s/epoch and throughput; the throughput ratio to MACE float64 paired
    by repeat (geometric mean, 95 % t interval); test RMSE mean and spread; float32 minus
    float64 test RMSEs of ours, paired by repeat (same seed)."""
    out = {}
    runs = peer["runs"]
    base = [r["epoch_cpu_s"] for r in runs["mace-float64"]]
    for name, case in runs.items():
        cpu = [r["epoch_cpu_s"] for r in case]
        tests = {k: [r["test"][k] for r in case] for k in case[0]["test"]}
        ratios = [b / c for b, c in zip(base, cpu, strict=True)]
        out[name] = {
            "cpu_s_per_epoch": statistics.median(cpu),
            "structures_per_cpu_s": n_train / statistics.median(cpu),
            "throughput_vs_mace_float64": (
                None if name == "mace-float64" else paired_interval(ratios, log=True)
            ),
            "test_mean": {k: float(np.mean(v)) for k, v in tests.items()},
            "test_std": {
                k: float(np.std(v, ddof=1)) if len(v) > 1 else None for k, v in tests.items()
            },
        }
    out["float32_minus_float64"] = {
        k: paired_interval([a["test"][k] - b["test"][k] for a, b in
                            zip(runs["ours-float32"], runs["ours-float64"], strict=True)])
        for k in runs["ours-float64"][0]["test"]
    }  # fmt: skip
    return out


def machine() -> dict:
    """nproc, CPU model, platform and library versions."""
    import mace
    import torch

    model = next(
        (line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
         if line.startswith("model name")),
        platform.processor(),
    )  # fmt: skip
    return {
        "nproc": os.cpu_count(),
        "cpu_model": model,
        "platform": platform.platform(),
        "torch": torch.__version__,
        "mace_torch": mace.__version__,
    }


def loadavg() -> list[float]:
    return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]


def _ratio_cell(summary: dict, name: str, verdicts: dict) -> str:
    s = summary[name]
    r = s["throughput_vs_mace_float64"]
    return (
        f"{s['structures_per_cpu_s']:.1f} ({r['mean']:.2f}x [{r['low']:.2f}, {r['high']:.2f}], "
        f"{verdicts[name]})"
    )


def store(result: dict, results: Path) -> None:
    """``results``/trainer_peer.json (the latest run) and one line in trainer_peer.md."""
    results.mkdir(parents=True, exist_ok=True)
    (results / "trainer_peer.json").write_text(json.dumps(result, indent=1) + "\n")
    s, verdicts = result["summary"], result["verdicts"]
    mace32 = f"{s['mace-float32']['structures_per_cpu_s']:.1f}" if "mace-float32" in s else "-"
    f32 = s["float32_minus_float64"]
    accuracy = ", ".join(
        f"{k.split('_')[0][0].upper()} {v['mean']:+.3g} [{v['low']:+.3g}, {v['high']:+.3g}]"
        for k, v in f32.items()
    )
    line = (
        f"| {result['date']} | {result['machine']['nproc']} x {result['machine']['cpu_model']} | "
        f"load {result['load_before'][0]:.1f} -> {result['load_after'][0]:.1f} | "
        f"{result['settings']['repeats']} x {result['settings']['epochs']} ep | "
        f"{s['mace-float64']['structures_per_cpu_s']:.1f} | "
        f"{_ratio_cell(s, 'ours-float64', verdicts)} | "
        f"{_ratio_cell(s, 'ours-float32', verdicts)} | "
        f"{mace32} | same network: {result['same_network']['identical']}; ours f32 - f64 test "
        f"RMSE (meV/atom, meV/Å, GPa) {accuracy} | `{result['command']}` |\n"
    )
    md = results / "trainer_peer.md"
    if not md.exists():
        md.write_text(
            "# Trainer vs mace_run_train (bench/bench_trainer.py)\n\n"
            "Throughput in training structures per CPU second (single thread); in brackets the "
            "ratio to MACE float64 paired by repeat (geometric mean, 95 % t interval) and the "
            "verdict on the target. Test errors are in trainer_peer.json.\n\n"
            "| date (UTC) | machine | load avg (1 min) | runs | MACE f64 | ours f64 | ours f32 "
            "| MACE f32 | check | command |\n|---|---|---|---|---|---|---|---|---|---|\n"
        )
    with open(md, "a") as fh:
        fh.write(line)


def print_table(summary: dict) -> None:
    print(
        "\ntrainer-dtype    CPU s/epoch  structures/s  vs MACE f64 [95 %]     "
        "test RMSE E meV/at  F meV/A  S GPa"
    )
    for name, s in summary.items():
        if name == "float32_minus_float64":
            continue
        t, r = s["test_mean"], s["throughput_vs_mace_float64"]
        ratio = f"{r['mean']:.2f}x [{r['low']:.2f}, {r['high']:.2f}]" if r else "1 (the base)"
        print(
            f"{name:15s}  {s['cpu_s_per_epoch']:11.3f}  {s['structures_per_cpu_s']:12.1f}  "
            f"{ratio:22s} {t['energy_meV_per_atom']:18.3f}  "
            f"{t['forces_meV_per_A']:7.2f}  {t['stress_GPa']:.4f}"
        )
    print("ours float32 minus float64, test RMSE paired by repeat [95 %]:")
    for k, v in summary["float32_minus_float64"].items():
        print(f"  {k:22s} {v['mean']:+.4g} [{v['low']:+.4g}, {v['high']:+.4g}]")


def peer_benchmark(a: argparse.Namespace, model: dict, work: Path) -> None:
    """Part 1: run, summarise, print and store."""
    import ase.io

    if a.train:
        data = {"train": a.train, "val": a.val, "test": a.test}
    else:
        data = make_dataset(work, {"train": a.n_train, "val": a.n_val, "test": a.n_test}, a.seed)
    n_train = len(ase.io.read(data["train"], ":"))
    print(f"data: {n_train} training structures, {data}\nmodel: {model}")
    before, t0 = loadavg(), time.time()
    peer = run_peer(data, model, a, work)
    after = loadavg()
    summary = summarise(peer, n_train)
    print_table(summary)
    verdicts = {
        f"{k}-{d}": verdict(summary[f"{k}-{d}"]["throughput_vs_mace_float64"], target)
        for (k, d), target in TARGETS.items()
    }
    print(f"targets (>= {dict((f'{k}-{d}', t) for (k, d), t in TARGETS.items())}): {verdicts}")
    print(f"load average before {before}, after {after}")
    store(
        {
            "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M"),
            "command": " ".join(["python", "bench/bench_trainer.py", *sys.argv[1:]]),
            "machine": machine(),
            "load_before": before,
            "load_after": after,
            "elapsed_s": time.time() - t0,
            "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(a).items()},
            "model": model,
            "n_train": n_train,
            "same_network": peer["same_network"],
            "summary": summary,
            "targets": {f"{k}-{d}": t for (k, d), t in TARGETS.items()},
            "verdicts": verdicts,
            "runs": peer["runs"],
        },
        a.results_dir,
    )


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
                    seed=a.seed,
                    epochs=a.scheme_epochs,
                    batch_size=a.batch_size,
                    lr=a.lr,
                    dtype="float64",
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


def scheme_benchmark(a: argparse.Namespace, model: dict, work: Path) -> None:
    """Part 2: the cost of each weighting scheme relative to fixed weights."""
    data = make_dataset(work / "schemes", {"train": a.n_train, "val": a.n_val}, a.seed)
    res = run_schemes(data["train"], data["val"], model, a, work)
    base = steady(res["times"]["fixed"])
    base_own = statistics.median(res["own"]["fixed"])
    print(
        f"\nweighting schemes ({a.scheme_rounds} interleaved rounds x {a.scheme_epochs} epochs, "
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


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--train", type=Path, help="training extxyz (default: EMT Al cells)")
    p.add_argument("--val", type=Path)
    p.add_argument("--test", type=Path)
    p.add_argument("--n-train", type=int, default=48)
    p.add_argument("--n-val", type=int, default=8)
    p.add_argument("--n-test", type=int, default=16)
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--short-epochs", type=int, default=2)
    p.add_argument("--repeats", type=int, default=4, help="at least 2 (the interval needs 2)")
    p.add_argument("--peer-float32", action="store_true", help="also time MACE in float32")
    p.add_argument("--schemes", action="store_true", help="also run part 2")
    p.add_argument("--results-dir", type=Path, default=RESULTS, help="where results are stored")
    p.add_argument("--skip-peer", action="store_true")
    p.add_argument("--scheme-epochs", type=int, default=5)
    p.add_argument("--scheme-rounds", type=int, default=2)
    a = p.parse_args()
    if a.repeats < 2:
        p.error("--repeats must be at least 2: the paired ratio's interval needs two repeats")
    model = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())["model"]
    with tempfile.TemporaryDirectory(prefix="bench_trainer_") as tmp:
        if not a.skip_peer:
            peer_benchmark(a, model, Path(tmp))
        if a.schemes:
            scheme_benchmark(a, model, Path(tmp))


if __name__ == "__main__":
    main()
