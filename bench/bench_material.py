"""One material through the pipeline, measured against published values (issue 11's closing note).

Runs the real pipeline (pw.x, training) on a config, up to what this measurement needs:

- the DFT-relaxed reference cell (lattice constant, residual pressure);
- the convergence study's choice, when the config turns it on;
- the DFT elastic tensors, clamped and relaxed ion, on the pipeline's ± strained cells;
- the trained models of one run (all seeds), whose clamped- and relaxed-ion tensors are computed
  here on exactly those DFT cells, with the same functions as the pipeline's validate_model;
- optionally the first training labels of the config (``--labels``: e.g. a magnetic label);

and prints a Markdown table side by side with published values (``--published``: a YAML file,
each value with its source). Nothing is compared with a number from this code; the published
columns come from the file. MD snapshots are not part of this measurement (their DFT cost for a
metal's 32- or 108-atom cells is out of reach on a 2-core machine).

Usage (2-core machine, nothing else running; results under --out):

    .venv/bin/python bench/bench_material.py bench/materials/sic_3c.yaml --out /tmp/mat_sic
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "tools"))

from stage_times import stage_times  # noqa: E402

from dft2mlip.config import load_config  # noqa: E402
from dft2mlip.structures import training_structure_ids  # noqa: E402
from dft2mlip.units import EV_PER_A3_TO_GPA  # noqa: E402
from dft2mlip.validate.elastic import cubic_constants, read_elastic_json  # noqa: E402

CONSTANTS = ("C11", "C12", "C44")


def targets(config: dict, run: str, n_labels: int) -> list[str]:
    """The files this measurement needs, relative to the run directory."""
    results = config["results_dir"]
    seeds = config["training"]["seeds"]
    files = [f"{results}/validate/dft/elastic.json", f"{results}/validate/dft/elastic_relaxed.json"]
    files += [f"{results}/train/{run}/seed{s}/model.pt" for s in range(seeds)]
    if config["material"]["relax"]:
        files.append(f"{results}/dft/reference/relax.json")
    ids = training_structure_ids(config["structures"])[:n_labels]
    files += [f"{results}/dft/train/{sid}/label.extxyz" for sid in ids]
    return files


def run_pipeline(config_path: Path, out: Path, files: list[str], cores: int) -> float:
    """Snakemake on ``files`` in ``out``; its console goes to out/snakemake.log. Wall seconds."""
    out.mkdir(parents=True, exist_ok=True)
    snakemake = Path(sys.executable).with_name("snakemake")
    cmd = [str(snakemake), "--snakefile", str(ROOT / "Snakefile"), "--directory", str(out),
           "--configfile", str(config_path.resolve()), "--cores", str(cores), *files]  # fmt: skip
    start = time.monotonic()
    with open(out / "snakemake.log", "w") as log:
        proc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=out)
    if proc.returncode:
        sys.exit(f"snakemake failed ({proc.returncode}); see {out / 'snakemake.log'}")
    return time.monotonic() - start


def model_constants(results: Path, out: Path, run: str, seeds: int, elastic: dict) -> dict:
    """Clamped- and relaxed-ion C11/C12/C44 of every seed's model on the DFT's strained cells,
    by the pipeline's own check (``write_model_elastic``; its JSON files under out/model_elastic).
    A relaxed-ion tensor the model could not give stops here with its recorded cause."""
    from dft2mlip.calculator import MLIPCalculator
    from dft2mlip.validate.model_checks import write_model_elastic

    per_seed = {"clamped": [], "relaxed": []}
    for seed in range(seeds):
        files = {key: out / "model_elastic" / f"seed{seed}" / f"{key}.json"
                 for key in ("elastic", "relaxed")}  # fmt: skip
        calc = MLIPCalculator(results / "train" / run / f"seed{seed}" / "model.pt")
        write_model_elastic(
            calc, results / "structures" / "elastic.extxyz", files, f"{run} seed {seed}",
            strain_magnitude=elastic["strain_magnitude"], fmax=elastic["relax_fmax_eV_per_A"],
            max_steps=elastic["relax_max_steps"],
        )  # fmt: skip
        for protocol, key in (("clamped", "elastic"), ("relaxed", "relaxed")):
            per_seed[protocol].append(cubic_constants(read_elastic_json(files[key])[0]))
    return {
        protocol: {k: [row[k] for row in rows] for k in CONSTANTS}
        for protocol, rows in per_seed.items()
    }


def _cell(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, list):
        return f"{np.mean(value):.1f} ± {np.std(value):.1f}"
    return f"{value:.1f}" if isinstance(value, float) else str(value)


def elastic_table(dft: dict, model: dict, published: dict) -> list[str]:
    """Markdown rows: DFT (ours), model (mean ± std over seeds), published, per protocol."""
    lines = ["| protocol | source | C11 | C12 | C44 |", "|---|---|---|---|---|"]
    for protocol in ("clamped", "relaxed"):
        rows = [("DFT (this run)", dft[protocol]), ("model, mean ± std (seeds)", model[protocol])]
        for entry in published.get(f"elastic_{protocol}", []):
            rows.append((entry["source"], entry))
        for source, values in rows:
            cells = " | ".join(_cell(values.get(k)) for k in CONSTANTS)
            lines.append(f"| {protocol} ion | {source} | {cells} |")
    return lines


def label_lines(results: Path, config: dict, n_labels: int) -> list[str]:
    """The first training labels as recorded: status, atoms, pressure, k-mesh, magnetisation."""
    from dft2mlip.data import read_label

    lines = []
    for sid in training_structure_ids(config["structures"])[:n_labels]:
        label = read_label(results / "dft" / "train" / sid / "label.extxyz")
        prov = label.provenance
        record = {k: v for k, v in prov.items() if "magnet" in k or "kpoint" in k}
        pressure = "-"
        if label.status == "ok":
            stress = np.asarray(label.atoms.info["REF_stress"], dtype=float)
            pressure = f"{-stress[:3].mean() * EV_PER_A3_TO_GPA:.2f} GPa"
        lines.append(
            f"- {sid}: {label.status}, {len(label.atoms)} atoms, pressure {pressure}, "
            f"wall {prov.get('wall_time_s', '-')} s, {record}"
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("config", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--run", help="training run to evaluate (default: reference_run)")
    parser.add_argument("--labels", type=int, default=0, help="first N training labels too")
    parser.add_argument("--published", type=Path, default=ROOT / "bench/materials/published.yaml")
    args = parser.parse_args()

    config = load_config(args.config)  # the schema's defaults, as the pipeline sees it
    run = args.run or config["training"]["reference_run"]
    seeds = config["training"]["seeds"]
    wall = run_pipeline(args.config, args.out, targets(config, run, args.labels), args.cores)
    results = args.out / config["results_dir"]
    model = model_constants(results, args.out, run, seeds, config["validation"]["elastic"])
    dft = {
        "clamped": cubic_constants(read_elastic_json(results / "validate/dft/elastic.json")[0]),
        "relaxed": cubic_constants(
            read_elastic_json(results / "validate/dft/elastic_relaxed.json")[0]
        ),
    }
    name = config["material"]["name"]
    published = yaml.safe_load(args.published.read_text()).get(name, {})
    report = [f"# {name}: `{args.config}` ({time.strftime('%Y-%m-%d')})", ""]
    relax_path = results / "dft/reference/relax.json"
    if relax_path.exists():
        relax = json.loads(relax_path.read_text())
        conv = relax["conventional"]
        report.append(
            f"Relaxed conventional a = {conv['final']['a_A']:.4f} Å (start "
            f"{conv['initial']['a_A']:.4f}); published: "
            + "; ".join(f"{p['a_A']} Å ({p['source']})" for p in published.get("lattice", []))
        )
        report.append(
            f"Residual pressure {relax['pressure_GPa']:.4f} GPa after {relax['n_steps']} steps "
            f"(k-mesh {relax['kpoint_mesh']}, {relax['provenance'].get('wall_time_s', '-')} s)"
        )
    chosen = results / "convergence/chosen_settings.json"
    if chosen.exists():
        report.append(f"Convergence study chose: {json.loads(chosen.read_text())}")
    report += ["", *elastic_table(dft, model, published), ""]
    report += label_lines(results, config, args.labels)
    report += ["", f"Pipeline wall time {wall / 60:.1f} min on {args.cores} cores; per stage:", ""]
    table = stage_times(args.out / "benchmarks")
    report.append("| stage | jobs | wall s (sum) | longest job s | CPU s (sum) |")
    report.append("|---|---|---|---|---|")
    for stage, row in table.iterrows():
        report.append(
            f"| {stage} | {row.jobs:.0f} | {row.total_s:.1f} | {row.max_s:.1f} | {row.cpu_s:.1f} |"
        )
    text = "\n".join(report) + "\n"
    (args.out / "material.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
