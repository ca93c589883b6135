"""Report: built from small synthetic artifacts; missing or broken artifacts are named."""

import json
import re

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from dft2mlip.report.artifacts import RunArtifacts  # noqa: E402
from dft2mlip.report.figures import REPORT_FIGURES  # noqa: E402
from dft2mlip.report.settings import report_settings  # noqa: E402
from dft2mlip.report.write import write_report  # noqa: E402
from dft2mlip.validate.elastic import write_elastic_failure, write_elastic_json  # noqa: E402
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


def _run(tmp_path, name, metrics, weights, c, md_slope, dft_offset, c_relaxed=None):
    d = tmp_path / name
    d.mkdir()
    write_metrics_json(metrics, d / "metrics.json")
    epochs = np.arange(1, 11)
    hist = pd.DataFrame({"epoch": epochs, "loss": 1.0 / epochs})
    for term, w in zip(("energy", "forces", "stress"), weights, strict=True):
        hist[f"weight_{term}"] = w if np.isscalar(w) else w(epochs)
    hist.to_csv(d / "history.csv", index=False)
    write_elastic_json(c, d / "elastic.json", name)
    if c_relaxed is not None:
        write_elastic_json(c_relaxed, d / "elastic_relaxed.json", name, protocol="relaxed_ion")
    strain = np.linspace(0, 0.04, 41)
    md = pd.DataFrame({"step": np.arange(41), "strain": strain})
    for comp in COMPONENTS:
        md[f"stress_virial_{comp}_GPa"] = md_slope * strain if comp == "xx" else 0.0
        md[f"stress_total_{comp}_GPa"] = md[f"stress_virial_{comp}_GPa"] - 0.01
    md.to_csv(d / "md.csv", index=False)
    snaps = pd.DataFrame(
        {
            # the pipeline's ids: the same frames, from adaptive's path, for every run
            "structure_id": [f"adaptive__snap{k:02d}" for k in range(3)],
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
        elastic_relaxed_json=d / "elastic_relaxed.json" if c_relaxed is not None else None,
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
    write_elastic_json(
        _cubic(160.0, 64.0, 50.0),
        tmp_path / "dft_elastic_relaxed.json",
        "DFT",
        protocol="relaxed_ion",
        strain_magnitude=0.005,
        relax_fmax_eV_per_A=0.002,
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
            c_relaxed=_cubic(160.0, 64.0, 60.0),  # C44 +20 %
        ),
        "fixed": _run(
            tmp_path,
            "fixed",
            _metrics(1.0, 90.0, 0.50),
            (1.0, 100.0, 1.0),
            _cubic(176.0, 64.0, 76.0),  # C11 +10 %
            110.0,
            0.30,
            c_relaxed=_cubic(160.0, 64.0, 55.0),  # C44 +10 %
        ),
        "no-stress": RunArtifacts(
            metrics_json=tmp_path / "no-stress" / "metrics.json",  # never written
            history_csv=None,
        ),
    }
    return tmp_path, runs


def test_report_tables_and_figures(artifacts):
    tmp_path, runs = artifacts
    out = tmp_path / "report"
    summary = write_report(
        out,
        dataset_table=tmp_path / "labels.parquet",
        runs=runs,
        dft_elastic_json=tmp_path / "dft_elastic.json",
        dft_elastic_relaxed_json=tmp_path / "dft_elastic_relaxed.json",
        run_descriptions={"adaptive": "SoftAdapt", "fixed": "E:F:S = 1:100:1"},
    )
    text = summary.read_text()
    for run in runs:
        assert run in text
    # the first screen: whether the stress can be trusted where the MD goes (no benchmark here)
    assert text.split("\n## ")[1].startswith("Can the stress be trusted where the MD goes?")
    # every linked figure exists; the expected ones are there
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
    assert set(REPORT_FIGURES) - {"convergence.png", "pareto.png"} <= set(links)
    assert "parity_adaptive.png" in links and "parity_fixed.png" in links
    for link in links:
        assert (out / link).read_bytes()[:4] == b"\x89PNG"
    # dataset: counts and excluded labels with their status
    assert "| hydrostatic | 0 | 2 | 0 | 2 |" in text  # columns: failed, ok, scf_not_converged
    assert "rattled-00" in text and "scf_not_converged" in text and "pw.x crashed" in text
    # test errors, elastic % errors derived from the synthetic tensors, clamped ion stated
    assert "| adaptive | 5 | 2.00 | 3.00 | 80.0 | 120 | 0.100 | 0.150 |" in text
    assert "168.0 (+5.0%)" in text and "176.0 (+10.0%)" in text
    assert "±δ = 0.005" in text
    # relaxed ion: its own table with the force threshold, % errors vs the relaxed DFT tensor
    clamped_part, relaxed_part = text.split("### Relaxed ion (GPa)")
    assert "### Clamped ion (GPa)" in clamped_part and "0.002 eV/Å" in relaxed_part
    assert "| C44 (GPa) | 50.0 | 60.0 (+20.0%) | 55.0 (+10.0%) | missing |" in relaxed_part
    assert "| C44 (GPa) | 76.0 | 76.0 (+0.0%) | 76.0 (+0.0%) | missing |" in clamped_part
    # no convergence study in this run: said so, not linked
    assert "No convergence study was run" in text and "convergence.png" not in links
    # stress validation: MAE over ok snapshots, the failed one named as missing
    assert "| adaptive | 2/3 | 0.0500 | 0.0500 |" in text
    assert "adaptive__snap02 (failed)" in text
    assert "the same DFT snapshots, taken along the MD path of adaptive (" in " ".join(text.split())
    # no study folder given: said so, no verdict invented from the first seed
    assert "The study's files are missing: no verdict." in text
    # per-component errors on the MD snapshots (GPa): 0.05 offset on every component
    assert "| adaptive | MAE | 0.0500 | 0.0500 | 0.0500 | 0.0500 | 0.0500 | 0.0500 |" in text
    # the run with no artifacts is reported, not fatal
    assert "no-stress: test metrics: missing" in text
    assert "no-stress: elastic tensor: not provided" in text
    html = (out / "report.html").read_text()
    assert "<table>" in html and 'src="stress_strain.png"' in html


def test_missing_and_broken_artifacts_do_not_crash(artifacts):
    tmp_path, runs = artifacts
    (tmp_path / "fixed" / "metrics.json").write_text("{not json")
    write_elastic_failure(
        tmp_path / "fixed" / "elastic_relaxed.json",
        "fixed",
        protocol="relaxed_ion",
        message="relaxing e4p did not converge",
    )
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
    assert "relaxed_ion tensor not computed: relaxing e4p did not converge" in text
    assert "| fixed | missing |" in text
    assert not (tmp_path / "r2" / "report.html").exists()
    # every figure a workflow declares exists (placeholders), but missing data are not linked
    for name in REPORT_FIGURES:
        assert (tmp_path / "r2" / name).read_bytes()[:4] == b"\x89PNG"
    assert "dataset.png" not in text


def test_convergence_study_is_rendered_when_present(artifacts):
    tmp_path, runs = artifacts
    conv = tmp_path / "convergence"
    conv.mkdir()
    pd.DataFrame(
        {
            "ecutwfc_Ry": [20, 30, 40, 50],
            "stress_error_GPa": [0.3, 0.05, 0.01, 0.0],
            "force_error_meV_per_A": [20.0, 4.0, 1.0, 0.0],
        }
    ).to_csv(conv / "cutoff.csv", index=False)
    summary = write_report(
        tmp_path / "r3",
        dataset_table=tmp_path / "labels.parquet",
        runs=runs,
        dft_elastic_json=tmp_path / "dft_elastic.json",
        convergence_dir=conv,
    )
    text = summary.read_text()
    section = text.split("## DFT convergence evidence")[1].split("\n## ")[0]
    assert "**cutoff** (`cutoff.csv`, 4 rows)" in section
    assert "| ecutwfc_Ry | stress_error_GPa | force_error_meV_per_A |" in section
    assert "| 30 | 0.0500 | 4.00 |" in section
    assert "![DFT convergence study](convergence.png)" in section
    assert (tmp_path / "r3" / "convergence.png").read_bytes()[:4] == b"\x89PNG"


def test_convergence_choice_and_the_study_figure_are_used(artifacts):
    tmp_path, runs = artifacts
    conv = tmp_path / "convergence"
    conv.mkdir()
    pd.DataFrame({"cutoff": [20.0, 30.0], "stress_err_GPa": [0.2, 0.0]}).to_csv(
        conv / "convergence.csv", index=False
    )
    (conv / "chosen_settings.json").write_text(
        '{"engine": "qe", "cutoff": 30.0, "kspacing_per_A": 0.35, "point": "c30-k0.35", '
        '"reference": "c40-k0.25", "errors": {"stress_err_GPa": 0.012}, '
        '"tolerances": {"stress_GPa": 0.05}, "warning": null}'
    )
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    fig.savefig(conv / "convergence_study.png")
    plt.close(fig)
    summary = write_report(
        tmp_path / "r4",
        dataset_table=tmp_path / "labels.parquet",
        runs=runs,
        dft_elastic_json=None,
        convergence_dir=conv,
    )
    text = summary.read_text()
    assert "**Chosen settings** (qe): cutoff 30.0, k-spacing 0.350 1/Å (point `c30-k0.35`" in text
    assert "stress_err_GPa 0.0120 within the tolerances stress_GPa 0.0500" in text
    copied = (tmp_path / "r4" / "convergence.png").read_bytes()
    assert copied == (conv / "convergence_study.png").read_bytes()


def test_study_section_gives_mean_spread_tuning_and_verdict(artifacts):
    from dft2mlip.study import study_paths, write_study

    tmp_path, runs = artifacts
    rows = []
    # adaptive E MAE 1, 2, 3 (mean 2, sample std 1); fixed 4, 5, 6 (mean 5, std 1): the
    # difference -3 exceeds 2 standard errors, 2·sqrt(1/3 + 1/3) = 1.63
    for run, energies in (("adaptive", (1.0, 2.0, 3.0)), ("fixed", (4.0, 5.0, 6.0))):
        for seed, e in enumerate(energies):
            rows.append({"run": run, "seed": seed, "energy_mae_meV_per_atom": e,
                         "forces_mae_meV_per_A": 80.0, "stress_mae_GPa": 0.1,
                         "elastic_error_pct": 5.0, "md_stress_mae_GPa": 0.05})  # fmt: skip
    tuning = {"run": "fixed", "criterion": "lowest validation score", "chosen": "fixed__g01",
              "weights": {"energy": 0.2, "forces": 0.6, "stress": 0.2},
              "grid": [{"name": "fixed__g00", "weights": {"energy": 1 / 3, "forces": 1 / 3,
                                                          "stress": 1 / 3},
                        "val_score": 0.3, "epoch": 2},
                       {"name": "fixed__g01", "weights": {"energy": 0.2, "forces": 0.6,
                                                          "stress": 0.2},
                        "val_score": 0.25, "epoch": 3}]}  # fmt: skip
    study = tmp_path / "study"
    study.mkdir()
    out = study_paths(study)
    write_study(pd.DataFrame(rows), pd.DataFrame(), [tuning], out)
    record = {"format": "dft2mlip-loss-record-v1", "scheme": "softadapt",
              "options": {"beta": 1.1, "window": 5, "loss_weighted": False},
              "normalise": "initial",
              "reference_losses": {"energy": 0.25, "forces": 0.5, "stress": 2e-5},
              "final_weights": {"energy": 0.3, "forces": 0.3, "stress": 0.4},
              "model_epoch": 7}  # fmt: skip
    (tmp_path / "loss.json").write_text(json.dumps(record))
    runs["adaptive"].loss_json = tmp_path / "loss.json"
    summary = write_report(
        tmp_path / "report",
        dataset_table=tmp_path / "labels.parquet",
        runs=runs,
        dft_elastic_json=tmp_path / "dft_elastic.json",
        study_dir=study,
    )
    text = summary.read_text()
    assert "| adaptive | 3 | 2.00 ± 1.0 [3] | 80.0 ± 0 [3] |" in text
    assert "| fixed | 3 | 5.00 ± 1.0 [3] |" in text
    assert "| fixed__g01 ✓ | 0.2:0.6:0.2 | 0.250 | 3 |" in text
    assert "test E MAE: adaptive is lower than fixed (Δ -3 ± 0.82 meV/atom)" in text
    assert "test F MAE: adaptive is not distinguishable from fixed" in text
    assert "![test-set errors of every run and seed, with the grid](pareto.png)" in text
    # the loss stored with the model, read back from its record
    assert (
        "| adaptive | softadapt (beta=1.1, window=5, loss_weighted=False) | initial | "
        "0.25 / 0.5 / 2e-05 | 0.300 / 0.300 / 0.400 | 7 |"
    ) in text


def test_mixed_settings_are_shown_with_what_differs(tmp_path):
    settings_a = json.dumps({"engine": "qe", "ecutwfc_Ry": 30.0, "nspin": 1})
    settings_b = json.dumps({"engine": "qe", "ecutwfc_Ry": 45.0, "nspin": 1})
    table = pd.DataFrame(
        [
            {"structure_id": f"old__{i}", "config_type": "imported", "status": "ok",
             "split": "train", "settings_hash": "import-aaa", "source": "old",
             "settings": settings_a, "excluded_reason": ""}
            for i in range(3)
        ]
        + [
            {"structure_id": "new__0", "config_type": "imported", "status": "ok",
             "split": "test", "settings_hash": "import-bbb", "source": "new",
             "settings": settings_b, "excluded_reason": ""},
            {"structure_id": "new__1", "config_type": "imported", "status": "ok",
             "split": "excluded", "settings_hash": "import-bbb", "source": "new",
             "settings": settings_b, "excluded_reason": "duplicate of old__0"},
        ]
    )  # fmt: skip
    text = write_report(tmp_path, dataset_table=table, runs={}, dft_elastic_json=None).read_text()
    assert "**The trained labels mix 2 DFT settings hashes**" in text
    assert "| import-aaa | old | 3 | 3 |" in text and "| import-bbb | new | 2 | 1 |" in text
    # only the key that differs is shown, with each hash's value
    assert "| settings hash | ecutwfc_Ry |" in text
    assert "| import-aaa | 30.0 |" in text and "| import-bbb | 45.0 |" in text
    # an ok label left out of the splits says why
    assert "| new__1 | imported | ok | duplicate of old__0 |" in text


def test_settings_name_the_material_as_configured():
    """A structure file is named, never the schema's unused prototype and lattice constant; a
    hexagonal prototype shows its c/a."""
    from dft2mlip.config import validate_config

    config = validate_config({"material": {"elements": ["Ti", "O"]}})  # the schema's defaults
    config["material"].update(structure="config/examples/data/TiO2_rutile.cif", name="TiO2")
    line = report_settings(config)["material"]
    assert "TiO2_rutile.cif" in line
    assert config["material"]["prototype"] not in line
    config["material"].update(structure=None, prototype="hcp", c_over_a=1.62)
    assert "hcp" in report_settings(config)["material"]
    assert "c/a = 1.62" in report_settings(config)["material"]
    # the schema's 3 snapshots, on the reference run's path (validation.snapshot_runs: null)
    md_line = report_settings(config)["deformation MD"]
    assert md_line.endswith("3 DFT snapshots on the path of adaptive")


def test_first_screen_gives_heldout_beside_test_error_with_a_verdict(tmp_path):
    """The first section after the title: per run, the held-out MD-condition stress MAE beside
    the test-set stress MAE (mean ± std over seeds, from the models' own files), the held-out
    worst component's MAE and the plain verdict: yes when that component is within the
    tolerance and the held-out error within 2× the test error, no otherwise, saying which."""
    import json

    from dft2mlip.report.document import render_markdown
    from dft2mlip.report.sections.trust import trust_section as _trust_section
    from dft2mlip.report.sections.trust import trust_table

    # (test MAE, held-out MAE over six components, held-out σ_xx MAE); the other five
    # components' MAE is 0.05 GPa in every file
    values = {("good", 0): (0.10, 0.15, 0.40), ("good", 1): (0.12, 0.21, 0.30),
              # small on average, but σ_xx (what a tension path loads) is 0.9 GPa off
              ("diluted", 0): (0.10, 0.19, 0.85), ("diluted", 1): (0.12, 0.19, 0.95),
              ("far", 0): (0.10, 0.30, 0.45), ("far", 1): (0.10, 0.30, 0.45),
              # as wrong where the MD goes as on the test set: consistent, but not small
              ("poor", 0): (1.9, 1.5, 2.0), ("poor", 1): (2.1, 1.7, 2.2)}  # fmt: skip
    models, metrics, heldout = [], [], []
    for (run, seed), (test, held, xx) in values.items():
        models.append((run, seed))
        metrics.append(tmp_path / f"{run}{seed}m.json")
        heldout.append(tmp_path / f"{run}{seed}h.json")
        metrics[-1].write_text(json.dumps({"stress_mae_GPa": test}))
        components = {f"stress_mae_{c}_GPa": 0.05 for c in ("yy", "zz", "yz", "xz", "xy")}
        heldout[-1].write_text(json.dumps({"stress_mae_GPa": held, "n_ok": 4,
                                           "stress_mae_xx_GPa": xx, **components}))
    blocks: list = []
    _trust_section(trust_table(models, metrics, heldout, stress_tol_GPa=0.5), blocks)
    first = render_markdown(blocks)
    assert first.startswith("## Can the stress be trusted where the MD goes?")
    good = (
        f"| good | 2 | 0.110 ± {np.std([0.10, 0.12], ddof=1):.2g} | 0.180 ± "
        f"{np.std([0.15, 0.21], ddof=1):.2g} | σ_xx: 0.350 ± {np.std([0.4, 0.3], ddof=1):.2g} | "
        f"yes: within 0.5 GPa and {0.18 / 0.11:.1f}× its test error"
    )
    assert good in first
    # 0.19 / 0.11 = 1.7x its test error, yet σ_xx 0.9 GPa: not trusted, and the cause named
    assert "| diluted | 2 | 0.110 ± " in first
    assert "| no: σ_xx 0.900 GPa, above the 0.5 GPa tolerance |" in first
    assert "| far | 2 | 0.100 ± 0 | 0.300 ± 0 | σ_xx: 0.450 ± 0 | no: 3.0× its test error" in first
    assert "| no: σ_xx 2.10 GPa, above the 0.5 GPa tolerance |" in first  # poor
    blocks = []
    _trust_section(None, blocks)
    assert "No held-out benchmark in this run" in render_markdown(blocks)


def test_a_section_is_worded_by_its_template_from_plain_data():
    """The first screen rendered from a hand-made data object through ``sections/trust.j2``, in
    both formats: the numbers formatted as worked out here, the verdict from the worst
    component against the tolerance and the ratio of means."""
    from dft2mlip.report.document import render_section
    from dft2mlip.report.sections.trust import TrustData, TrustRun

    nan = float("nan")
    runs = [TrustRun("adaptive", 3, (0.2, 0.05), (0.3, 0.1), (0.5, 0.1), "xx", 0.6),
            TrustRun("fixed", 1, (0.05, nan), (0.3, 0.0), (0.4, 0.0), "zz", 0.6),
            TrustRun("consistent", 1, (1.0, nan), (0.5, 0.0), (0.8, 0.0), "xy", 0.6)]  # fmt: skip
    data = TrustData(n_frames=6, runs=runs, tolerance_GPa=0.6)
    md = render_section("trust", data, "md")
    assert md.startswith("## Can the stress be trusted where the MD goes?\n\nStress MAE on 6 ")
    assert "at most 0.6 GPa (validation.heldout.stress_tol_GPa) and the held-out error" in md
    # 0.5 ≤ 0.6 and 0.3 / 0.2 = 1.5 ≤ 2: yes; 0.3 / 0.05 = 6 > 2: no; σ_xy 0.8 > 0.6: no;
    # one seed: no spread
    assert ("| adaptive | 3 | 0.200 ± 0.050 | 0.300 ± 0.10 | σ_xx: 0.500 ± 0.10 | yes: within "
            "0.6 GPa and 1.5× its test error (within 2×) |") in md  # fmt: skip
    fixed = "| fixed | 1 | 0.0500 | 0.300 | σ_zz: 0.400 | no: 6.0× its test error (more than 2×) |"
    assert fixed in md
    consistent = "| consistent | 1 | 1.00 | 0.500 | σ_xy: 0.800 | no: σ_xy 0.800 GPa, above the 0.6"
    assert consistent in md
    html = render_section("trust", data, "html")
    assert "<td>adaptive</td><td>3</td><td>0.200 ± 0.050</td>" in html
    assert "No held-out benchmark" in render_section("trust", TrustData(n_frames=0), "md")


def test_run_description_names_every_normalisation_and_the_anchor():
    """Each normalise mode gets its own words (counts and variance are not raw MSEs), and an
    anchored SoftAdapt run shows the user's ratio."""
    from dft2mlip.report.settings import describe_run

    base = {"scheme": "softadapt", "beta": 1.1, "window": 5}
    texts = {m: describe_run({**base, "normalise": m})
             for m in ("initial", "counts", "variance", "none")}  # fmt: skip
    assert len(set(texts.values())) == 4
    assert "raw MSEs" in texts["none"]
    assert not any("raw MSEs" in texts[m] for m in ("initial", "counts", "variance"))
    anchored = describe_run({**base, "normalise": "counts",
                             "anchor": {"energy": 1.0, "forces": 4.0, "stress": 1.0}})  # fmt: skip
    assert "E:F:S = 1:4:1" in anchored


def test_dft_line_shows_smearing_only_with_smearing():
    """An insulator with fixed occupations (config/examples/sic_3c.yaml) has no smearing to show;
    the default (mv, 0.01 Ry) shows it."""
    from pathlib import Path

    import yaml

    from dft2mlip.config import validate_config
    from dft2mlip.dft.engines import get_engine

    root = Path(__file__).resolve().parents[1]
    qe = get_engine("qe")
    for name, expected in (("examples/sic_3c.yaml", ", fixed, conv_thr"),
                           ("config.yaml", ", smearing (mv, 0.01 Ry), conv_thr")):  # fmt: skip
        config = validate_config(yaml.safe_load((root / "config" / name).read_text()))
        assert expected in qe.describe(qe.physics_config(config["dft"]))["DFT"], name
