"""The Snakemake workflow: static DAG (dry run), lint, bad config, and a tiny real end-to-end run.

The end-to-end test runs real pw.x, trains two real (tiny) MACE models, runs real MD and DFT on its
snapshots, and builds the report, all inside a temporary directory.
"""

import json
import re
import zipfile
from collections import Counter

import numpy as np
import pandas as pd
import pytest
import yaml
from tiny_run import ROOT, TINY, make_workdir, n_snapshot_labels, planned_jobs, snakemake

from dft2mlip.report.figures import REPORT_FIGURES


def expected_counts(cfg: dict) -> Counter:
    s = cfg["structures"]
    n_train = (
        len(s["hydrostatic"]["strains"])
        + s["strained"]["count"]
        + s["rattled"]["count"]
        + s["supercell"]["count"]
    )
    runs = len(cfg["training"]["runs"])
    seeds = cfg["training"]["seeds"]
    # grid points of the tuned runs: every combination of the tune lists (the tiny config's grids
    # have no two points that are equal after rescaling to unit sum)
    tuned = [r for r in cfg["training"]["runs"].values() if r.get("tune")]
    grid = sum(
        len(t["tune"].get("energy", [0])) * len(t["tune"]["forces"]) * len(t["tune"]["stress"])
        for t in tuned
    )
    n_elastic = 12  # ± strain along each of the six Voigt directions
    held = cfg["validation"].get("heldout", {})
    n_heldout_paths = len(held.get("paths", {}))  # the held-out benchmark: MD per path, DFT once
    n_heldout = n_heldout_paths * held.get("frames_per_path", 4)
    # the cross-family check: the crystal in the primitive and the conventional cell (both
    # configs here are diamond: 2 and 8 atoms), one structure set and one comparison
    new_dft = cfg["dft"].get("engine", "qe") != "none"
    n_family = 2 if new_dft and cfg["material"]["prototype"] == "diamond" else 0
    n_dft = n_train + n_elastic + n_snapshot_labels(cfg) + n_heldout + n_family
    counts = Counter(
        {
            "all": 1,
            "structures": 1,
            "dataset": 1,
            "elastic_dft": 1,
            "report": 1,
            "provenance": 1,
            "study": 1,
        }  # fmt: skip
    )
    # every run x seed is trained, then tested and checked on elastic constants and MD snapshots
    # in one job; grid points are trained and tested with the first seed; MD runs once per run
    counts.update({"train": runs * seeds + grid, "validate_model": runs * seeds})
    counts.update({"test_metrics": grid})
    n_validated = len(cfg["validation"].get("snapshot_runs") or [None])  # null: the reference run
    counts.update({"deformation_md": runs, "md_snapshots": n_validated})
    if tuned:
        counts.update({"tune_fixed": len(tuned)})
    if n_heldout_paths:
        counts.update({"heldout_md": n_heldout_paths, "heldout_frames": 1})
    counts.update({"dft_input": n_dft, "dft_run": n_dft})  # input, then run + parse
    if n_family:
        counts.update({"family_structures": 1, "family_offsets": 1})
    if cfg["material"].get("relax", True) and cfg["dft"].get("engine", "qe") != "none":
        counts.update({"relax_input": 1, "relax_reference": 1})  # the DFT-relaxed reference
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
    workdir = make_workdir(tmp_path / "w", bad)
    proc = snakemake(workdir, check=False)
    assert proc.returncode != 0
    assert "Si.does-not-exist.UPF" in proc.stderr + proc.stdout
    assert not (workdir / "results").exists()


@pytest.mark.workflow
def test_dry_run_of_the_tiny_config_plans_every_job(tmp_path):
    workdir = make_workdir(tmp_path / "w", TINY)
    assert planned_jobs(snakemake(workdir, "-n").stdout) == expected_counts(
        yaml.safe_load(TINY.read_text())
    )


@pytest.mark.workflow
def test_training_threads_come_from_the_profile(tmp_path):
    """A profile's set-threads reaches every training job (the script passes snakemake.threads
    to the trainer's torch.set_num_threads); without it the rule's default is 1."""
    workdir = make_workdir(tmp_path / "w", TINY)

    def train_threads(*args):
        proc = snakemake(workdir, "-n", *args, cores=4)
        out = proc.stdout + proc.stderr
        blocks = [b for b in re.split(r"\n\[[^\]]+\]\n", out) if "rule train:" in b]
        # Snakemake prints "threads: N" only when N > 1
        return {int((re.findall(r"threads: (\d+)", b) or [1])[0]) for b in blocks}

    assert train_threads() == {1}
    assert train_threads("--set-threads", "train=3") == {3}


@pytest.mark.slow
@pytest.mark.workflow
def test_tiny_end_to_end_run_produces_the_report(completed_tiny_run):
    """The shared complete tiny run (tests/tiny_run.py: real pw.x, MACE training, MD, DFT on the
    snapshots; through SLURM where possible) produced every result and the report."""
    workdir = completed_tiny_run.workdir
    cfg = yaml.safe_load((workdir / "config" / "config.yaml").read_text())
    planned = expected_counts(cfg)

    results = workdir / "results"
    table = pd.read_parquet(results / "dataset" / "labels.parquet")
    n_family = 2  # the cross-family check's labels (diamond Si: primitive and conventional cell)
    assert len(table) == planned["dft_run"] - 12 - n_snapshot_labels(cfg) - n_family
    assert set(table["status"]) == {"ok"}
    assert table["settings_hash"].nunique() == 1

    summary = (results / "report" / "summary.md").read_text()
    # the cross-family check ran on real labels and the report shows its verdict
    families = json.loads((results / "validate" / "dft" / "family_offsets.json").read_text())
    assert {k: f["status"] for k, f in families["families"].items()} == {
        "primitive": "ok", "conventional": "ok"}
    assert "## Are the labels of different cells consistent?" in summary
    assert families["verdict"] in summary
    n_snapshots = n_snapshot_labels(cfg)
    for run in cfg["training"]["runs"]:
        assert run in summary
        for seed in range(cfg["training"]["seeds"]):
            validate = results / "validate" / run / f"seed{seed}"
            metrics = json.loads((validate / "metrics.json").read_text())
            assert metrics["stress_rmse_GPa"] >= 0 and metrics["n_structures"] >= 1
            history = pd.read_csv(results / "train" / run / f"seed{seed}" / "history.csv")
            assert len(history) == cfg["training"]["epochs"]
            # every model is checked on the same snapshots (the validated paths')
            assert len(pd.read_csv(validate / "md_stress.csv")) == n_snapshots
        md = pd.read_csv(results / "md" / run / "stress_strain.csv")
        assert md["strain"].iloc[-1] == pytest.approx(
            cfg["validation"]["md"]["max_strain"], rel=0.05
        )
    # the study: one row per run x seed, and a verdict sentence per metric
    per_seed = pd.read_csv(results / "study" / "per_seed.csv")
    assert len(per_seed) == len(cfg["training"]["runs"]) * cfg["training"]["seeds"]
    assert "Verdict (reference run: adaptive)" in summary

    # snakemake --report carries every figure of the run, each with a non-empty caption
    # (that nothing is left to do after the run is tests/test_reproducibility.py's first test)
    snakemake(workdir, "--report", "report.zip", *completed_tiny_run.config_args)
    with zipfile.ZipFile(workdir / "report.zip") as archive:
        page = archive.read("report/report.html").decode()
    runs = cfg["training"]["runs"]
    figures = [f"results/report/{name}" for name in REPORT_FIGURES]
    figures += [
        f"results/validate/{r}/seed{k}/{n}"
        for r in runs
        for k in range(cfg["training"]["seeds"])
        for n in ("parity.png", "md_stress.png")
    ]
    figures += [f"results/md/{r}/stress_strain.png" for r in runs]
    for figure in figures:
        entry = re.search(re.escape(f'"{figure}": {{') + r'[^}]*?}?[^}]*?"caption": "<p>\w', page)
        assert entry, f"{figure} is not in the Snakemake report with a caption"


def test_working_reference_never_falls_back_to_the_configured_cell(tmp_path):
    """With material.relax on, a job without the relaxed reference among its inputs raises (it
    used to get None and build the configured cell); with it off, a reference given is refused
    and None (the configured cell) is the answer; a relaxed reference is returned as written."""
    from types import SimpleNamespace

    from ase.build import bulk
    from ase.io import write

    from dft2mlip.dft.relax import working_reference

    none = SimpleNamespace(reference=[], reference_summary=[])
    with pytest.raises(RuntimeError, match="material.relax is on.*reference_inputs"):
        working_reference(none, relax=True)
    with pytest.raises(RuntimeError, match="material.relax is on"):
        working_reference(SimpleNamespace(model="m.pt"), relax=True)  # no such input at all
    assert working_reference(none, relax=False) is None
    relaxed = bulk("Si", "diamond", a=5.47)
    write(tmp_path / "relaxed.extxyz", relaxed, format="extxyz")
    (tmp_path / "relax.json").write_text(json.dumps({"status": "ok", "message": "relaxed"}))
    given = SimpleNamespace(reference=[str(tmp_path / "relaxed.extxyz")],
                            reference_summary=[str(tmp_path / "relax.json")])  # fmt: skip
    assert np.allclose(working_reference(given, relax=True).cell.array, relaxed.cell.array)
    with pytest.raises(RuntimeError, match="material.relax is off"):
        working_reference(given, relax=False)
