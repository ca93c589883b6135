"""Report: built from small synthetic artifacts; missing or broken artifacts are named."""

import re

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from dft2mlip.report import RunArtifacts, write_report  # noqa: E402
from dft2mlip.validate.elastic import write_elastic_json  # noqa: E402
from dft2mlip.validate.metrics import write_metrics_json  # noqa: E402

COMPONENTS = ("xx", "yy", "zz", "yz", "xz", "xy")


def _cubic(c11, c12, c44):
    c = np.zeros((6, 6))
    c[:3, :3] = c12
    c[np.arange(3), np.arange(3)] = c11
    c[np.arange(3, 6), np.arange(3, 6)] = c44
    return c


def _metrics(e, f, s):
    return {
        "energy_mae_meV_per_atom": e,
        "energy_rmse_meV_per_atom": 1.5 * e,
        "forces_mae_meV_per_A": f,
        "forces_rmse_meV_per_A": 1.5 * f,
        "stress_mae_GPa": s,
        "stress_rmse_GPa": 1.5 * s,
        "n_structures": 5,
        "n_atoms": 20,
    }


def _run(tmp_path, name, metrics, weights, c, md_slope, dft_offset):
    d = tmp_path / name
    d.mkdir()
    write_metrics_json(metrics, d / "metrics.json")
    epochs = np.arange(1, 11)
    hist = pd.DataFrame({"epoch": epochs, "loss": 1.0 / epochs})
    for term, w in zip(("energy", "forces", "stress"), weights, strict=True):
        hist[f"weight_{term}"] = w if np.isscalar(w) else w(epochs)
    hist.to_csv(d / "history.csv", index=False)
    write_elastic_json(c, d / "elastic.json", name)
    strain = np.linspace(0, 0.04, 41)
    md = pd.DataFrame({"step": np.arange(41), "strain": strain})
    for comp in COMPONENTS:
        md[f"stress_virial_{comp}_GPa"] = md_slope * strain if comp == "xx" else 0.0
        md[f"stress_total_{comp}_GPa"] = md[f"stress_virial_{comp}_GPa"] - 0.01
    md.to_csv(d / "md.csv", index=False)
    snaps = pd.DataFrame(
        {
            "structure_id": [f"{name}-md-snap-{k:02d}" for k in range(3)],
            "md_strain": [0.0133, 0.0267, 0.04],
            "status": ["ok", "ok", "failed"],
        }
    )
    for comp in COMPONENTS:
        model = md_slope * snaps["md_strain"] if comp == "xx" else 0.0 * snaps["md_strain"]
        dft = model + dft_offset
        dft[snaps["status"] != "ok"] = np.nan
        snaps[f"dft_stress_{comp}_GPa"] = dft
        snaps[f"model_stress_{comp}_GPa"] = model
        snaps[f"abs_error_{comp}_GPa"] = (model - dft).abs()
    snaps.to_csv(d / "stress_validation.csv", index=False)
    fig, ax = plt.subplots()
    ax.plot([0, 1], [0, 1])
    fig.savefig(d / "parity.png")
    plt.close(fig)
    return RunArtifacts(
        metrics_json=d / "metrics.json",
        history_csv=d / "history.csv",
        elastic_json=d / "elastic.json",
        md_csv=d / "md.csv",
        stress_validation_csv=d / "stress_validation.csv",
        parity_png=d / "parity.png",
    )


@pytest.fixture
def artifacts(tmp_path):
    labels = pd.DataFrame(
        {
            "structure_id": ["hydro-00", "hydro-01", "strained-00", "rattled-00", "md-x"],
            "config_type": ["hydrostatic", "hydrostatic", "strained", "rattled", "md_snapshot"],
            "status": ["ok", "ok", "ok", "scf_not_converged", "failed"],
            "message": ["", "", "", "no convergence in 100 steps", "pw.x crashed"],
        }
    )
    labels.to_parquet(tmp_path / "labels.parquet")
    write_elastic_json(
        _cubic(160.0, 64.0, 76.0), tmp_path / "dft_elastic.json", "DFT", strain_magnitude=0.005
    )
    runs = {
        "adaptive": _run(
            tmp_path,
            "adaptive",
            _metrics(2.0, 80.0, 0.10),
            (lambda e: 0.3 + 0.01 * e, lambda e: 0.4 - 0.02 * e, lambda e: 0.3 + 0.01 * e),
            _cubic(168.0, 64.0, 76.0),  # C11 +5 %
            120.0,
            0.05,
        ),
        "fixed": _run(
            tmp_path,
            "fixed",
            _metrics(1.0, 90.0, 0.50),
            (1.0, 100.0, 1.0),
            _cubic(176.0, 64.0, 76.0),  # C11 +10 %
            110.0,
            0.30,
        ),
        "no-stress": RunArtifacts(
            metrics_json=tmp_path / "no-stress" / "metrics.json",  # never written
            history_csv=None,
        ),
    }
    return tmp_path, runs


def test_report_tables_figures_and_best_runs(artifacts):
    tmp_path, runs = artifacts
    out = tmp_path / "report"
    summary = write_report(
        out,
        dataset_table=tmp_path / "labels.parquet",
        runs=runs,
        dft_elastic_json=tmp_path / "dft_elastic.json",
        run_descriptions={"adaptive": "SoftAdapt", "fixed": "E:F:S = 1:100:1"},
    )
    text = summary.read_text()
    for run in runs:
        assert run in text
    # every linked figure exists; the expected ones are there
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert {"dataset.png", "loss_weights.png", "test_errors.png", "stress_strain.png"} <= set(links)
    assert "parity_adaptive.png" in links and "parity_fixed.png" in links
    for link in links:
        assert (out / link).read_bytes()[:4] == b"\x89PNG"
    # dataset: counts and excluded labels with their status
    assert "| hydrostatic | 0 | 2 | 0 | 2 |" in text  # columns: failed, ok, scf_not_converged
    assert "rattled-00" in text and "scf_not_converged" in text and "pw.x crashed" in text
    # test errors, elastic % errors derived from the synthetic tensors, clamped ion stated
    assert "| adaptive | 5 | 2.00 | 3.00 | 80.0 | 120 | 0.100 | 0.150 |" in text
    assert "168.0 (+5.0%)" in text and "176.0 (+10.0%)" in text
    assert "Clamped-ion" in text and "±δ = 0.005" in text
    # stress validation: MAE over ok snapshots, the failed one named as missing
    assert "| adaptive | 2/3 | 0.0500 | 0.0500 |" in text
    assert "adaptive-md-snap-02 (failed)" in text
    # best run per metric, from the numbers above
    assert "Test energy MAE: **fixed** (1.00 meV/atom; adaptive 2.00)" in text
    assert "Test force MAE: **adaptive**" in text
    assert "Test stress MAE: **adaptive**" in text
    assert "Mean |error| of C11, C12, C44 vs DFT: **adaptive** (1.67 %" in text
    # the run with no artifacts is reported, not fatal
    assert "no-stress: test metrics: missing" in text
    assert "no-stress: elastic tensor: not provided" in text
    html = (out / "report.html").read_text()
    assert "<table>" in html and 'src="stress_strain.png"' in html


def test_missing_and_broken_artifacts_do_not_crash(artifacts):
    tmp_path, runs = artifacts
    (tmp_path / "fixed" / "metrics.json").write_text("{not json")
    summary = write_report(
        tmp_path / "r2",
        dataset_table=tmp_path / "nope.parquet",
        runs=runs,
        dft_elastic_json=None,
        write_html=False,
    )
    text = summary.read_text()
    assert "dataset label table: missing" in text
    assert "DFT elastic tensor: not provided" in text
    assert "fixed: test metrics: unreadable" in text
    assert "| fixed | missing |" in text
    assert not (tmp_path / "r2" / "report.html").exists()
    assert not (tmp_path / "r2" / "dataset.png").exists()
