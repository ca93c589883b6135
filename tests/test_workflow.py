"""The Snakemake workflow: static DAG (dry run), lint, bad config, and a tiny real end-to-end run.

The end-to-end test runs real pw.x, trains two real (tiny) MACE models, runs real MD and DFT on its
snapshots, and builds the report, all inside a temporary directory.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest
import yaml

from dft2mlip.report import REPORT_FIGURES

ROOT = Path(__file__).resolve().parents[1]
TINY = Path(__file__).parent / "workflow" / "config_tiny.yaml"
SNAKEMAKE = [sys.executable, "-m", "snakemake"]


def make_workdir(path: Path, config: Path) -> Path:
    """A working directory with the workflow linked in and `config` as config/config.yaml."""
    for name in ("Snakefile", "workflow", "scripts", "envs", "profiles"):
        (path / name).symlink_to(ROOT / name)
    (path / "config").mkdir()
    shutil.copy(config, path / "config" / "config.yaml")
    return path


def snakemake(workdir: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.run(
        [*SNAKEMAKE, "--cores", "2", *args], cwd=workdir, capture_output=True, text=True, env=env
    )
    if check and proc.returncode != 0:
        pytest.fail(
            f"snakemake {' '.join(args)} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
        )
    return proc


def planned_jobs(output: str) -> Counter:
    """Job counts per rule from the table `snakemake -n` prints."""
    table = output.split("Job stats:")[1].split("\n\n")[0]
    counts = Counter()
    for line in table.splitlines():
        m = re.match(r"^(\w+)\s+(\d+)\s*$", line.strip())
        if m and m.group(1) != "total":
            counts[m.group(1)] = int(m.group(2))
    return counts


def expected_counts(cfg: dict) -> Counter:
    s = cfg["structures"]
    n_train = (
        len(s["hydrostatic"]["strains"])
        + s["strained"]["count"]
        + s["rattled"]["count"]
        + s["supercell"]["count"]
    )
    runs = len(cfg["training"]["runs"])
    n_elastic = 12  # ± strain along each of the six Voigt directions
    n_dft = n_train + n_elastic + runs * cfg["validation"]["md"]["snapshots"]
    per_run = (
        "train",
        "test_metrics",
        "elastic_model",
        "deformation_md",
        "md_snapshots",
        "stress_validation",
    )
    counts = Counter(
        {"all": 1, "structures": 1, "dataset": 1, "elastic_dft": 1, "report": 1, "provenance": 1}
    )
    counts.update({r: runs for r in per_run})
    counts.update({"dft_input": n_dft, "dft_run": n_dft, "dft_parse": n_dft})
    if cfg["dft"].get("engine", "qe") == "qe":
        # relaxed-ion elastic constants: one pw.x relaxation per strained cell, one fit
        counts.update({"elastic_dft_relax": n_elastic, "elastic_dft_relaxed": 1})
    return counts


@pytest.mark.workflow
def test_dry_run_lists_every_dft_job_of_the_default_config(tmp_path):
    workdir = make_workdir(tmp_path, ROOT / "config" / "config.yaml")
    out = snakemake(workdir, "-n").stdout
    cfg = yaml.safe_load(open(ROOT / "config" / "config.yaml"))
    assert planned_jobs(out) == expected_counts(cfg)
    assert not (workdir / "results").exists(), "a dry run must not write results"


@pytest.mark.workflow
def test_lint_is_clean(tmp_path):
    workdir = make_workdir(tmp_path, ROOT / "config" / "config.yaml")
    proc = snakemake(workdir, "--lint", check=False)
    text = proc.stdout + proc.stderr
    assert "Congratulations, your workflow is in a good condition!" in text, text[-3000:]


@pytest.mark.workflow
def test_bad_config_fails_before_any_job_naming_the_key(tmp_path):
    cfg = yaml.safe_load(open(TINY))
    cfg["dft"]["qe"]["pseudopotentials"] = {"Si": "Si.does-not-exist.UPF"}
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(cfg))
    (tmp_path / "w").mkdir()
    workdir = make_workdir(tmp_path / "w", bad)
    proc = snakemake(workdir, check=False)
    assert proc.returncode != 0
    assert "Si.does-not-exist.UPF" in proc.stderr + proc.stdout
    assert not (workdir / "results").exists()


@pytest.mark.slow
@pytest.mark.workflow
def test_tiny_end_to_end_run_produces_the_report(tmp_path):
    workdir = make_workdir(tmp_path, TINY)
    cfg = yaml.safe_load(open(TINY))
    planned = planned_jobs(snakemake(workdir, "-n").stdout)
    assert planned == expected_counts(cfg)

    snakemake(workdir)

    results = workdir / "results"
    table = pd.read_parquet(results / "dataset" / "labels.parquet")
    assert len(table) == planned["dft_parse"] - 12 - 2 * cfg["validation"]["md"]["snapshots"]
    assert set(table["status"]) == {"ok"}
    assert table["settings_hash"].nunique() == 1

    summary = (results / "report" / "summary.md").read_text()
    for run in cfg["training"]["runs"]:
        assert run in summary
        metrics = json.loads((results / "validate" / run / "metrics.json").read_text())
        assert metrics["stress_rmse_GPa"] >= 0 and metrics["n_structures"] >= 1
        history = pd.read_csv(results / "train" / run / "history.csv")
        assert len(history) == cfg["training"]["epochs"]
        md = pd.read_csv(results / "md" / run / "stress_strain.csv")
        assert md["strain"].iloc[-1] == pytest.approx(
            cfg["validation"]["md"]["max_strain"], rel=0.05
        )
        sv = pd.read_csv(results / "validate" / run / "md_stress.csv")
        assert len(sv) == cfg["validation"]["md"]["snapshots"]

    # after a complete run the DAG is satisfied: nothing left to do
    rerun = snakemake(workdir, "-n")
    assert "Nothing to be done" in rerun.stdout + rerun.stderr

    # snakemake --report carries every figure of the run, each with a non-empty caption
    snakemake(workdir, "--report", "report.zip")
    with zipfile.ZipFile(workdir / "report.zip") as archive:
        page = archive.read("report/report.html").decode()
    runs = cfg["training"]["runs"]
    figures = [f"results/report/{name}" for name in REPORT_FIGURES]
    figures += [f"results/validate/{r}/{n}" for r in runs for n in ("parity.png", "md_stress.png")]
    figures += [f"results/md/{r}/stress_strain.png" for r in runs]
    for figure in figures:
        entry = re.search(re.escape(f'"{figure}": {{') + r'[^}]*?}?[^}]*?"caption": "<p>\w', page)
        assert entry, f"{figure} is not in the Snakemake report with a caption"
