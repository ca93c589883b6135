"""Any material a scientist brings (issue 11): a user's config stands alone, pseudopotentials are
checked before any work, collinear magnetism, one k-point mesh per structure family."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).parent))
from tiny_run import ROOT, make_workdir, planned_jobs, snakemake  # noqa: E402

from dft2mlip.study import grid_run_names  # noqa: E402

CU = Path(__file__).parent / "workflow" / "config_cu.yaml"


@pytest.mark.workflow
def test_user_configfile_stands_alone(tmp_path):
    """`snakemake --configfile cu.yaml` plans the user's runs only: the embedded Si example (five
    runs x three seeds, 62 candidates) is not merged into it."""
    work = make_workdir(tmp_path / "w", ROOT / "config" / "config.yaml")
    user = yaml.safe_load(CU.read_text())
    proc = snakemake(work, "-n", "--configfile", str(CU))
    jobs = planned_jobs(proc.stdout + proc.stderr)
    runs, seeds = list(user["training"]["runs"]), user["training"]["seeds"]
    assert jobs["train"] == len(runs) * seeds == 1
    n_train = len(user["structures"]["hydrostatic"]["strains"]) + sum(
        user["structures"][s]["count"] for s in ("strained", "rattled", "supercell")
    )
    n_elastic, n_snapshots = 12, len(runs) * user["validation"]["md"]["snapshots"]
    assert jobs["dft_input"] == jobs["dft_run"] == n_train + n_elastic + n_snapshots
    # without --configfile the embedded example is still the config
    default = planned_jobs(snakemake(work, "-n").stdout)
    si = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())["training"]
    grid_points = len(grid_run_names(si["runs"]))  # each trained once, with the first seed
    assert default["train"] == si["seeds"] * len(si["runs"]) + grid_points
