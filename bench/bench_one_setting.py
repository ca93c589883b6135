"""Side by side: one training setting varied, everything else equal (data, seeds, run).

The study's adaptive SoftAdapt run is trained with each value of ``--key`` for ``--seeds``
seeds on EMT-labelled Al cells; printed and stored (``bench/results/<key>.json``): the test
RMSEs of each seed's best-validation model, their mean and standard deviation, and the paired
differences (value minus the first value, seed by seed).

- ``--key ema_decay --values 0 0.99`` decides whether the parameter EMA is on by default: it
  should be when it does not hurt any component beyond the seed-to-seed spread. (The first
  result, ``bench/results/ema.json``, came from this script's first version, ``bench_ema.py``,
  with the tiny test model.)
- ``--key dtype --values float64 float32 --model config`` checks float32 accuracy against
  float64 on the project's default model.

Run: ``python bench/bench_one_setting.py --key ema_decay --values 0 0.99`` (about 5 minutes on
2 cores with the tiny model). Never asserts.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import tempfile
from pathlib import Path

import ase.io
import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from training_helpers import TINY_MODEL, emt_frames  # noqa: E402

from dft2mlip.calculator import MLIPCalculator  # noqa: E402
from dft2mlip.train.settings import TrainingSettings  # noqa: E402
from dft2mlip.train.trainer import train_run  # noqa: E402
from dft2mlip.units import EV_PER_A3_TO_GPA  # noqa: E402

RUN = {"scheme": "softadapt", "beta": 1.1, "window": 5, "normalise": "initial"}


def held_out_rmse(model_path: Path, frames: list) -> dict[str, float]:
    """Energy (meV/atom), force (meV/Å) and stress (GPa) RMSE through the ASE calculator."""
    calc = MLIPCalculator(model_path)
    de, df, ds = [], [], []
    for atoms in frames:
        atoms = atoms.copy()
        atoms.calc = calc
        de.append((atoms.get_potential_energy() - atoms.info["REF_energy"]) / len(atoms))
        df.append(atoms.get_forces() - atoms.arrays["REF_forces"])
        ds.append(atoms.get_stress() - atoms.info["REF_stress"])
    return {
        "energy_meV_per_atom": 1000 * float(np.sqrt(np.mean(np.square(de)))),
        "forces_meV_per_A": 1000 * float(np.sqrt(np.mean(np.square(np.concatenate(df))))),
        "stress_GPa": EV_PER_A3_TO_GPA * float(np.sqrt(np.mean(np.square(ds)))),
    }


def parse_value(text: str) -> float | str:
    try:
        return float(text)
    except ValueError:
        return text


def side_by_side(a: argparse.Namespace, model: dict, work: Path) -> dict:
    """Train every value x seed; test RMSEs per seed, mean, std and paired differences."""
    ase.io.write(work / "train.xyz", emt_frames(a.n_train, seed=11, max_strain=0.03, rattle=0.08))
    ase.io.write(work / "val.xyz", emt_frames(10, seed=12, max_strain=0.03, rattle=0.08))
    test = emt_frames(20, seed=13, max_strain=0.03, rattle=0.08)
    runs = {}
    for value in a.values:
        settings = TrainingSettings(epochs=a.epochs, batch_size=4, device="cpu").replace(
            **{a.key: value}
        )
        rows = []
        for seed in range(a.seeds):
            out = work / f"{a.key}{value}_{seed}"
            train_run(
                work / "train.xyz", work / "val.xyz", out, run_name="adaptive",
                model_cfg=model, run_cfg=RUN, seed=seed, settings=settings, threads=1,
                progress=False,
            )  # fmt: skip
            rows.append(held_out_rmse(out / "model.pt", test))
            print(f"{a.key} {value} seed {seed}: {rows[-1]}", flush=True)
        keys = rows[0]
        runs[str(value)] = {
            "per_seed": rows,
            "mean": {k: float(np.mean([r[k] for r in rows])) for k in keys},
            "std": {k: float(np.std([r[k] for r in rows], ddof=1)) for k in keys},
        }
    first = runs[str(a.values[0])]["per_seed"]
    for value in a.values[1:]:
        rows = runs[str(value)]["per_seed"]
        runs[str(value)]["paired_difference"] = {
            k: [r[k] - f[k] for r, f in zip(rows, first, strict=True)] for k in first[0]
        }
    return runs


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--key", default="ema_decay", help="a TrainingSettings field")
    p.add_argument("--values", nargs="+", type=parse_value, default=[0.0, 0.99])
    p.add_argument("--model", choices=["tiny", "config"], default="tiny")
    p.add_argument("--n-train", type=int, default=40)
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--seeds", type=int, default=3)
    a = p.parse_args()
    model = (
        TINY_MODEL
        if a.model == "tiny"
        else yaml.safe_load((ROOT / "config" / "config.yaml").read_text())["model"]
    )
    result = {
        "command": " ".join(["python", "bench/bench_one_setting.py", *sys.argv[1:]]),
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M"),
        "load_before": Path("/proc/loadavg").read_text().split()[:3],
        "model": model,
        "run": RUN,
    }
    with tempfile.TemporaryDirectory(prefix="bench_setting_") as tmp:
        result["runs"] = side_by_side(a, model, Path(tmp))
    result["load_after"] = Path("/proc/loadavg").read_text().split()[:3]
    for value, r in result["runs"].items():
        print(f"{a.key} {value}: mean {r['mean']} std {r['std']}")
    out = ROOT / "bench" / "results" / f"{a.key}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
