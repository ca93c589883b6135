"""Import only (dft.engine: none): the shipped example trains on a user's own train/val/test files
without any new DFT, keeps the user's test set as the test set, validates what needs no DFT and
says in the report what was not checked. Its data are fcc Cu labelled with ASE's EMT
(tools/make_emt_dataset.py), a stand-in for a finished DFT dataset."""

import shutil
from pathlib import Path

import ase.io
import pandas as pd
import pytest
import yaml
from tiny_run import ROOT, make_workdir, planned_jobs, snakemake

EXAMPLE = ROOT / "config" / "examples" / "import_only.yaml"
DATA = ROOT / "config" / "examples" / "data"

pytestmark = pytest.mark.workflow


def _workdir(tmp_path: Path, change=None) -> Path:
    tmp_path.mkdir(parents=True, exist_ok=True)
    cfg = yaml.safe_load(EXAMPLE.read_text())
    if change:
        change(cfg)
    path = tmp_path / "import_only.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    workdir = make_workdir(tmp_path / "w", path)
    shutil.copytree(DATA, workdir / "config" / "examples" / "data")
    return workdir


def _frames(name: str) -> int:
    return len(ase.io.read(DATA / name, index=":"))


def test_import_only_dry_run_plans_no_dft(tmp_path):
    planned = planned_jobs(snakemake(_workdir(tmp_path), "-n").stdout)
    cfg = yaml.safe_load(EXAMPLE.read_text())
    models = len(cfg["training"]["runs"]) * cfg["training"]["seeds"]
    assert planned["train"] == models and planned["validate_model"] == models
    assert planned["deformation_md"] == 3
    for rule in ("dft_input", "dft_run", "elastic_dft", "elastic_dft_relax", "md_snapshots"):
        assert rule not in planned, rule
    assert planned["import_data"] == 3 and planned["study"] == 1


def test_labels_with_other_settings_are_refused_at_dry_run_naming_the_key(tmp_path):
    # one source declares other DFT settings (its own settings hash): never trained with the rest
    ext = tmp_path / "other.extxyz"
    frames = ase.io.read(DATA / "cu_emt_val.extxyz", index=":")
    for atoms in frames:
        atoms.info["settings_hash"] = "another-code-0001"
    ase.io.write(ext, frames, format="extxyz")

    def add_source(cfg):
        cfg["dataset"]["import"].append({"name": "other", "path": str(ext), "format": "extxyz"})

    proc = snakemake(_workdir(tmp_path, add_source), "-n", check=False)
    assert proc.returncode != 0
    assert "dataset.allow_mixed_settings" in proc.stdout + proc.stderr

    def allow(cfg):
        add_source(cfg)
        cfg["dataset"]["allow_mixed_settings"] = True

    snakemake(_workdir(tmp_path / "allowed", allow), "-n")


def test_every_structure_count_zero_without_imports_is_refused(tmp_path):
    def no_imports(cfg):
        cfg["dataset"]["import"] = []

    proc = snakemake(_workdir(tmp_path, no_imports), "-n", check=False)
    assert proc.returncode != 0 and "dft.engine" in proc.stdout + proc.stderr


@pytest.mark.slow
def test_import_only_run_keeps_the_users_test_set_and_reports(tmp_path):
    def tiny(cfg):
        cfg["training"].update(epochs=3, seeds=2, batch_size=8)
        cfg["training"]["runs"] = {
            "adaptive": cfg["training"]["runs"]["adaptive"],
            "mace-like": cfg["training"]["runs"]["mace-like"],
        }
        cfg["model"].update(num_channels=8, max_L=0, num_interactions=1)
        cfg["validation"]["md"].update(max_strain=0.005, strain_rate_per_ps=0.5,
                                       equilibration_ps=0.02)  # fmt: skip

    workdir = _workdir(tmp_path, tiny)
    snakemake(workdir, "--cores", "2")
    results = workdir / "results_import_only"
    # the user's split is kept exactly: every frame of the test file is a test frame
    table = pd.read_parquet(results / "dataset" / "labels.parquet")
    counts = table.groupby("split").size().to_dict()
    assert counts == {
        "train": _frames("cu_emt_train.extxyz"),
        "val": _frames("cu_emt_val.extxyz"),
        "test": _frames("cu_emt_test.extxyz"),
    }
    test_ids = set(table.loc[table["split"] == "test", "structure_id"])
    assert all(sid.startswith("cu-test__") for sid in test_ids)
    summary = (results / "report" / "summary.md").read_text()
    assert "none run here: every label is imported" in summary
    per_seed = pd.read_csv(results / "study" / "per_seed.csv")
    assert len(per_seed) == 4 and per_seed["elastic_error_pct"].isna().all()
    assert per_seed["stress_mae_GPa"].notna().all()
    assert not (results / "dft").exists()
