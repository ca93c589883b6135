"""Side by side: the parameter EMA off (ema_decay 0) and on (0.99, MACE's ``--ema_decay``).

Same data, same seeds, same run (the study's adaptive SoftAdapt run), same settings otherwise;
prints and stores (``bench/results/ema.json``) the test RMSEs of each seed's best-validation
model and their mean and standard deviation. Decides whether ``training.ema_decay`` defaults to
on: it should when the EMA does not hurt any component beyond the seed-to-seed spread.

Run: ``python bench/bench_ema.py`` (about 5 minutes on 2 cores). Never asserts.
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


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--decay", type=float, default=0.99)
    a = p.parse_args()
    result = {"command": " ".join(["python", "bench/bench_ema.py", *sys.argv[1:]]), "runs": {}}
    result["date"] = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M")
    with tempfile.TemporaryDirectory(prefix="bench_ema_") as tmp:
        work = Path(tmp)
        ase.io.write(work / "train.xyz", emt_frames(40, seed=11, max_strain=0.03, rattle=0.08))
        ase.io.write(work / "val.xyz", emt_frames(10, seed=12, max_strain=0.03, rattle=0.08))
        test = emt_frames(20, seed=13, max_strain=0.03, rattle=0.08)
        for decay in (0.0, a.decay):
            settings = TrainingSettings(
                epochs=a.epochs, batch_size=4, ema_decay=decay, device="cpu"
            )
            rows = []
            for seed in range(a.seeds):
                out = work / f"ema{decay}_{seed}"
                train_run(
                    work / "train.xyz", work / "val.xyz", out, run_name="adaptive",
                    model_cfg=TINY_MODEL, run_cfg=RUN, seed=seed, settings=settings,
                    threads=1, progress=False,
                )  # fmt: skip
                rows.append(held_out_rmse(out / "model.pt", test))
                print(f"ema_decay {decay} seed {seed}: {rows[-1]}", flush=True)
            keys = rows[0]
            result["runs"][str(decay)] = {
                "per_seed": rows,
                "mean": {k: float(np.mean([r[k] for r in rows])) for k in keys},
                "std": {k: float(np.std([r[k] for r in rows], ddof=1)) for k in keys},
            }
    for decay, r in result["runs"].items():
        print(f"ema_decay {decay}: mean {r['mean']} std {r['std']}")
    out = ROOT / "bench" / "results" / "ema.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
