"""Reproducibility: what a change reruns is visible in a dry run, DFT inputs can be rendered and
inspected before anything runs, the provenance manifest is right, and running again gives the same
dataset and (on CPU, same seed) the same training metrics.

The dry-run checks share one complete tiny run (session fixture ``completed_tiny_run``: through
SLURM where possible, else local); what a change reruns is compared with what forcing the
corresponding rule reruns, so the expectation comes from the DAG itself, not from a hand count.
"""

import json
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml
from tiny_run import TINY, make_workdir, n_snapshot_labels, planned_jobs, snakemake

from dft2mlip.data import read_label, reproducible_provenance
from dft2mlip.dft.settings import QESettings, file_md5
from dft2mlip.provenance import config_sha256, file_sha256

pytestmark = [pytest.mark.slow, pytest.mark.workflow]

DFT_RULES = ("dft_input", "dft_run")


def dry_run(run, *args: str, configfile: Path | None = None):
    extra = ["--configfile", str(configfile)] if configfile else []
    out = snakemake(run.workdir, "-n", *extra, *run.config_args, *args)
    return planned_jobs(out.stdout)


def changed_config(run, tmp_path: Path, change) -> Path:
    cfg = yaml.safe_load((run.workdir / "config" / "config.yaml").read_text())
    change(cfg)
    path = tmp_path / "changed.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))  # key order is part of params
    return path


def cfg_epochs(run) -> int:
    cfg = yaml.safe_load((run.workdir / "config" / "config.yaml").read_text())
    return cfg["training"]["epochs"]


def test_a_complete_run_leaves_nothing_to_do(completed_tiny_run):
    assert dry_run(completed_tiny_run) == {}


def test_changing_a_dft_setting_reruns_every_dft_job_and_everything_downstream(
    completed_tiny_run, tmp_path
):
    def higher_cutoff(cfg):
        cfg["dft"]["qe"]["ecutwfc_Ry"] += 2.0

    run = completed_tiny_run
    planned = dry_run(run, configfile=changed_config(run, tmp_path, higher_cutoff))
    everything = dry_run(run, "--forceall")
    # every job depends on the DFT settings: the structures too, since they are built from the
    # cell relaxed with those settings (material.relax, on in the tiny config)
    assert planned == everything
    assert all(planned[rule] == everything[rule] for rule in DFT_RULES)


def test_changing_a_training_setting_reruns_training_and_validation_but_no_training_dft(
    completed_tiny_run, tmp_path
):
    def more_epochs(cfg):
        cfg["training"]["epochs"] += 1

    run = completed_tiny_run
    planned = dry_run(run, configfile=changed_config(run, tmp_path, more_epochs))
    assert planned == dry_run(run, "--forcerun", "train")
    cfg = yaml.safe_load((run.workdir / "config" / "config.yaml").read_text())
    n_runs = len(cfg["training"]["runs"])
    # every run x seed, and the first seed of each grid point of the tuned run
    tune = cfg["training"]["runs"]["fixed"]["tune"]
    n_grid = len(tune["energy"]) * len(tune["forces"]) * len(tune["stress"])
    assert planned["train"] == n_runs * cfg["training"]["seeds"] + n_grid
    for rule in ("test_metrics", "deformation_md", "validate_model", "report"):
        assert planned[rule] >= 1, rule
    for rule in ("structures", "dataset", "elastic_dft"):
        assert rule not in planned, rule
    # DFT reruns only for the snapshots of the new MD path (validation), never a training label
    n_md = n_snapshot_labels(cfg)
    assert all(planned[rule] == n_md for rule in DFT_RULES), planned


def test_changing_how_dft_runs_reruns_no_computation(completed_tiny_run, tmp_path):
    """Launcher, executable and recovery budget are machine settings, not label physics: only the
    bookkeeping that records the whole config (provenance manifest, report) is redone."""

    def other_machine(cfg):
        cfg["dft"]["mpi_launcher"] = "srun -n {nprocs}"
        cfg["dft"]["qe"]["executable"] = shutil.which(cfg["dft"]["qe"].get("executable", "pw.x"))
        cfg["dft"]["max_errors"] = cfg["dft"].get("max_errors", 3) + 2

    run = completed_tiny_run
    planned = dry_run(run, configfile=changed_config(run, tmp_path, other_machine))
    assert set(planned) <= {"provenance", "report", "all"}, planned


def test_changing_one_training_run_retrains_only_that_run(completed_tiny_run, tmp_path):
    cfg = yaml.safe_load((completed_tiny_run.workdir / "config" / "config.yaml").read_text())

    def sharper_softmax(cfg):
        cfg["training"]["runs"]["adaptive"]["beta"] += 0.5

    run = completed_tiny_run
    planned = dry_run(run, configfile=changed_config(run, tmp_path, sharper_softmax))
    snapshots = cfg["validation"]["md"]["snapshots"]
    assert planned["train"] == cfg["training"]["seeds"]  # its seeds, no other run, no grid point
    assert planned["deformation_md"] == 1
    assert all(planned[rule] == snapshots for rule in DFT_RULES), planned


def test_dft_inputs_target_writes_every_input_without_running_dft(tmp_path):
    cfg = yaml.safe_load(TINY.read_text())
    cfg["structures"] = {
        "hydrostatic": {"strains": [-0.01]},
        "strained": {"count": 2, "max_strain": 0.01},
        "rattled": {"count": 0},
        "supercell": {"count": 0},
    }
    config = tmp_path / "small.yaml"
    config.write_text(yaml.safe_dump(cfg))
    workdir = make_workdir(tmp_path / "w", config)
    snakemake(workdir, "dft_inputs")

    # with the DFT-relaxed reference on (the default), the labels' cells depend on the
    # relaxation's result: only the relaxation's input is written, nothing runs
    dft = workdir / "results" / "dft"
    assert sorted(p.relative_to(dft).as_posix() for p in dft.rglob("pw.in")) == ["reference/pw.in"]
    assert not list(dft.rglob("pw.out")), "dft_inputs must not run pw.x"
    # without the relaxation every label's input is known before anything runs
    cfg["material"]["relax"] = False
    config.write_text(yaml.safe_dump(cfg))
    workdir = make_workdir(tmp_path / "unrelaxed", config)
    snakemake(workdir, "dft_inputs")
    dft = workdir / "results" / "dft"
    inputs = sorted(dft.glob("*/*/pw.in"))
    assert {p.parent.parent.name for p in inputs} == {"train", "elastic"}
    assert len(inputs) == 3 + 12
    assert not list(dft.glob("*/*/pw.out")), "dft_inputs must not run pw.x"
    for pw_in in inputs:
        text = pw_in.read_text()
        ecut = float(re.search(r"ecutwfc\s*=\s*([0-9.eEdD+-]+)", text).group(1).replace("d", "e"))
        assert ecut == cfg["dft"]["qe"]["ecutwfc_Ry"]
    # the rendered inputs are what the full run will use: nothing to redo for them
    planned = planned_jobs(snakemake(workdir, "-n").stdout)
    n_md = n_snapshot_labels(cfg)
    n_family = 2  # the cross-family check (diamond Si: primitive and conventional cell)
    assert planned["dft_input"] == n_md + n_family
    assert planned["dft_run"] == 3 + 12 + n_md + n_family


def test_provenance_manifest_records_versions_settings_and_output_hashes(completed_tiny_run):
    workdir = completed_tiny_run.workdir
    manifest = json.loads((workdir / "results" / "provenance.json").read_text())
    from importlib.metadata import version

    assert manifest["dft2mlip"]["version"] == version("dft2mlip")
    assert manifest["packages"]["torch"] == version("torch")
    assert manifest["packages"]["mace-torch"] == version("mace-torch")
    assert manifest["config_sha256"] == config_sha256(manifest["config"])
    cfg = yaml.safe_load((workdir / "config" / "config.yaml").read_text())
    assert manifest["config"]["dft"]["qe"]["ecutwfc_Ry"] == cfg["dft"]["qe"]["ecutwfc_Ry"]

    # DFT code version and pseudopotential checksum, checked against pw.out and the UPF file
    pw_out = next((workdir / "results" / "dft" / "train").glob("*/pw.out")).read_text()
    assert manifest["dft"]["code_versions"] == [re.search(r"PWSCF v\.(\S+)", pw_out).group(1)]
    settings = QESettings.from_config(cfg["dft"]["qe"])
    pseudo = cfg["dft"]["qe"]["pseudopotentials"]["Si"]
    assert manifest["dft"]["pseudopotentials"]["Si"] == [
        {"file": pseudo, "md5": file_md5(settings.pseudo_path / pseudo)}
    ]
    assert len(manifest["dft"]["settings_hashes"]) == 1

    # every label, dataset file, model and metric is hashed, and the hashes are right
    outputs = manifest["outputs"]
    labels = [str(p.relative_to(workdir)) for p in workdir.glob("results/dft/*/*/label.extxyz")]
    assert set(labels) <= set(outputs)
    assert "results/dataset/train.extxyz" in outputs
    assert any(k.endswith("model.pt") for k in outputs)
    for path, sha in outputs.items():
        assert file_sha256(workdir / path) == sha, path


def test_dataset_is_identical_when_built_again_from_scratch(tmp_path):
    """Two runs from scratch (structures -> pw.x -> dataset) give byte-identical dataset files:
    extxyz splits, label table and summary. Run times stay in each label's provenance only."""
    cfg = yaml.safe_load(TINY.read_text())
    cfg["structures"] = {
        "hydrostatic": {"strains": [-0.01, 0.01]},
        "strained": {"count": 2, "max_strain": 0.02},
        "rattled": {"count": 1, "max_strain": 0.01, "rattle_A": 0.05},
        "supercell": {"count": 0},
    }
    config = tmp_path / "cfg.yaml"
    config.write_text(yaml.safe_dump(cfg))
    datasets = []
    for name in ("a", "b"):
        workdir = make_workdir(tmp_path / name, config)
        snakemake(workdir, "--until", "dataset")
        datasets.append(workdir / "results" / "dataset")
    a, b = datasets
    files = sorted(p.name for p in a.iterdir())
    assert files == sorted(p.name for p in b.iterdir())
    assert {"train.extxyz", "val.extxyz", "test.extxyz", "labels.parquet", "summary.json"} <= set(
        files
    )
    for name in files:
        assert file_sha256(a / name) == file_sha256(b / name), name
    assert len(pd.read_parquet(a / "labels.parquet")) == 5
    # the labels themselves differ only in what was measured while pw.x ran
    labels_a = sorted((a.parent / "dft").glob("*/*/label.extxyz"))
    assert len(labels_a) == 5
    for path in labels_a:
        la, lb = read_label(path), read_label(str(path).replace(str(a.parent), str(b.parent)))
        assert la.atoms.info["REF_energy"] == lb.atoms.info["REF_energy"]
        assert la.provenance["wall_time_s"] > 0 and la.provenance["run"]["wall_time_s"] > 0
        assert reproducible_provenance(la.provenance) == reproducible_provenance(lb.provenance)


def test_training_twice_on_cpu_with_the_same_seed_gives_identical_metrics(
    completed_tiny_run, tmp_path
):
    copy = tmp_path / "again"
    shutil.copytree(completed_tiny_run.workdir, copy, symlinks=True)
    run = "fixed"
    target = f"results/validate/{run}/seed0/metrics.json"
    out = snakemake(copy, target, "--forcerun", "train", *completed_tiny_run.config_args)
    assert "rule train:" in out.stdout + out.stderr
    original = completed_tiny_run.workdir / "results"
    again = copy / "results"
    # every loss, weight and validation error per epoch is bit-identical; only wall_s/cpu_s differ
    first = pd.read_csv(original / "train" / run / "seed0" / "history.csv")
    second = pd.read_csv(again / "train" / run / "seed0" / "history.csv")
    timing = [c for c in first.columns if c in ("wall_s", "cpu_s")]
    assert len(first) == cfg_epochs(completed_tiny_run) and len(first.columns) > 5
    pd.testing.assert_frame_equal(
        first.drop(columns=timing), second.drop(columns=timing), check_exact=True
    )
    assert json.loads(
        (again / "validate" / run / "seed0" / "metrics.json").read_text()
    ) == json.loads((original / "validate" / run / "seed0" / "metrics.json").read_text())
