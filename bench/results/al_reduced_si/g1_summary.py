"""Generation-1 summary of the reduced run (the run continues to generations 2-3): the same
dft2mlip.active.write_summary the al_summary rule calls, restricted to generation 1."""
import sys
from pathlib import Path

from dft2mlip import active

out_dir = Path(sys.argv[1])
out_dir.mkdir(parents=True, exist_ok=True)
R = "results"
models = [(name, k) for name in ("adaptive", "adaptive__al1", "adaptive__rand1") for k in range(3)]
v = [f"{R}/validate/{m}/seed{k}" for m, k in models]
inp = {"metrics": [f"{d}/metrics.json" for d in v],
       "elastic": [f"{d}/elastic_relaxed.json" for d in v],
       "md_stress": [f"{d}/md_stress.json" for d in v],
       "heldout": [f"{d}/heldout.json" for d in v],
       "dft_elastic": [f"{R}/validate/dft/elastic.json"],
       "dft_elastic_relaxed": [f"{R}/validate/dft/elastic_relaxed.json"],
       "calibration": [f"{R}/al/g1/calibration.csv"],
       "selection": [f"{R}/al/g1/selection.json"],
       "labels": [f"{R}/al/adaptive__{x}1/labels.csv" for x in ("al", "rand")]}
out = {"summary": out_dir / "summary.md", "per_seed": out_dir / "per_seed.csv",
       "record": out_dir / "summary.json", "generations": out_dir / "al_generations.png",
       "calibration": out_dir / "al_calibration.png"}
import yaml
settings = yaml.safe_load(open("config/config.yaml"))["active_learning"]
active.write_summary(inp, out, models=models, base="adaptive", generations=1,
                     settings=settings, n_seeds=3)
print(out["summary"].read_text())
