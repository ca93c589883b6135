"""The study's bookkeeping: weight grids, tuning on the validation set, mean and spread over
seeds, the verdict rule and Pareto dominance. Expected values are worked out by hand here."""

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from dft2mlip.config import ConfigError, check_config, validate_config
from dft2mlip.study import (
    compare,
    dominated_by,
    elastic_error_pct,
    grid_points,
    grid_run_names,
    resolve_run_config,
    select_tuned,
    study_paths,
    summarise,
    verdict,
    write_study,
)

ROOT_CONFIG = Path(__file__).resolve().parents[1] / "config" / "config.yaml"


def test_grid_points_are_every_combination_rescaled_to_unit_sum():
    run = {"scheme": "fixed", "tune": {"energy": [1.0], "forces": [1.0, 3.0], "stress": [1.0, 2.0]}}
    points = grid_points("t", run)
    expected = [(1, 1, 1, 3), (1, 1, 2, 4), (1, 3, 1, 5), (1, 3, 2, 6)]  # (E, F, S, sum)
    assert len(points) == 4
    for p, (e, f, s, total) in zip(points, expected, strict=True):
        assert p == pytest.approx({"energy": e / total, "forces": f / total, "stress": s / total})


def test_grid_points_drop_duplicates_after_rescaling():
    # 2x2x2 = 8 combinations; (1,1,1) and (2,2,2) are the same point once rescaled
    run = {"scheme": "fixed", "tune": {"energy": [1, 2], "forces": [1, 2], "stress": [1, 2]}}
    assert len(grid_points("t", run)) == 7
    names = grid_run_names({"t": run, "a": {"scheme": "softadapt"}})
    assert list(names) == [f"t__g{k:02d}" for k in range(7)]


def test_resolve_run_config_gives_the_trainer_plain_weights():
    runs = {
        "fn": {
            "scheme": "fixed",
            "weights": {"energy": 1, "forces": 1, "stress": 2},
            "unit_sum": True,
            "normalise": "initial",
        },  # fmt: skip
        "t": {"scheme": "fixed", "tune": {"forces": [1, 3], "stress": [1]}, "normalise": "initial"},
    }
    fn = resolve_run_config("fn", runs)
    assert fn == {"scheme": "fixed", "normalise": "initial",
                  "weights": {"energy": 0.25, "forces": 0.25, "stress": 0.5}}  # fmt: skip
    # the grid has energy 0 unless given: F:S = 1:1 and 3:1
    assert resolve_run_config("t__g01", runs)["weights"] == pytest.approx(
        {"energy": 0.0, "forces": 0.75, "stress": 0.25}
    )
    assert "weights" not in resolve_run_config("t", runs)  # not chosen yet
    chosen = resolve_run_config("t", runs, tuned_weights={"energy": 0, "forces": 2, "stress": 2})
    assert chosen["weights"] == {"energy": 0.0, "forces": 0.5, "stress": 0.5}


def _history(path, scores):
    rows = [
        {
            "epoch": i + 1,
            "val_score": s,
            "val_energy_rmse_meV_per_atom": 10 * s,
            "val_forces_rmse_meV_per_A": 20 * s,
            "val_stress_rmse_GPa": s,
        }  # fmt: skip
        for i, s in enumerate(scores)
    ]
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def test_tuning_picks_the_grid_point_with_the_lowest_best_validation_score(tmp_path):
    runs = {"t": {"scheme": "fixed", "tune": {"energy": [1], "forces": [1, 3], "stress": [1]}}}
    # point 0 reaches 0.30 at epoch 2; point 1 reaches 0.25 at epoch 3
    h0 = _history(tmp_path / "h0.csv", [0.5, 0.30, 0.35])
    h1 = _history(tmp_path / "h1.csv", [0.6, 0.40, 0.25])
    choice = select_tuned("t", runs, [h0, h1])
    assert choice["chosen"] == "t__g01"
    assert choice["weights"] == pytest.approx({"energy": 0.2, "forces": 0.6, "stress": 0.2})
    assert [g["epoch"] for g in choice["grid"]] == [2, 3]
    assert [g["val_score"] for g in choice["grid"]] == [0.30, 0.25]


def _per_seed(values: dict) -> pd.DataFrame:
    rows = []
    for run, maes in values.items():
        for seed, v in enumerate(maes):
            rows.append({"run": run, "seed": seed, "energy_mae_meV_per_atom": v,
                         "forces_mae_meV_per_A": 50.0, "stress_mae_GPa": 0.1,
                         "elastic_error_pct": math.nan, "md_stress_mae_GPa": 0.2})  # fmt: skip
    return pd.DataFrame(rows)


def test_mean_spread_and_the_two_standard_error_rule():
    per_seed = _per_seed(
        {"adaptive": [1.0, 2.0, 3.0], "far": [4.0, 5.0, 6.0], "near": [1.5, 2.5, 3.5]}
    )
    summary = summarise(per_seed)
    row = summary.set_index("run").loc["adaptive"]
    assert row["energy_mae_meV_per_atom_mean"] == 2.0
    assert row["energy_mae_meV_per_atom_std"] == pytest.approx(1.0)  # sample std of 1, 2, 3
    # difference -3 against a standard error sqrt(1/3 + 1/3) = 0.816: beyond 2 SE
    far = compare(summary, "adaptive", "far", "energy_mae_meV_per_atom")
    assert far["diff"] == -3.0 and far["se"] == pytest.approx(math.sqrt(2 / 3))
    assert far["judged"] and far["real"]
    # difference -0.5 < 2 x 0.816: within the seed spread
    near = compare(summary, "adaptive", "near", "energy_mae_meV_per_atom")
    assert near["judged"] and not near["real"]
    energy_sentence = verdict(summary)[0]
    assert "lower than far" in energy_sentence
    assert "not distinguishable from near" in energy_sentence
    # identical values for F (std 0): differences of 0 are not "real"
    assert "not distinguishable" in verdict(summary)[1]


def test_one_seed_cannot_be_judged():
    summary = summarise(_per_seed({"adaptive": [1.0], "other": [9.0]}))
    assert not compare(summary, "adaptive", "other", "energy_mae_meV_per_atom")["judged"]
    assert "cannot be judged with one seed" in verdict(summary)[0]


def test_pareto_dominance_needs_no_worse_on_all_three_and_better_on_one():
    me = {"energy_mae_meV_per_atom": 2.0, "forces_mae_meV_per_A": 50.0, "stress_mae_GPa": 0.2}
    others = {
        "better_all": {"energy_mae_meV_per_atom": 1.0, "forces_mae_meV_per_A": 40.0,
                       "stress_mae_GPa": 0.1},
        "equal_but_one": {"energy_mae_meV_per_atom": 2.0, "forces_mae_meV_per_A": 50.0,
                          "stress_mae_GPa": 0.19},
        "trade_off": {"energy_mae_meV_per_atom": 1.0, "forces_mae_meV_per_A": 60.0,
                      "stress_mae_GPa": 0.1},
        "identical": dict(me),
    }  # fmt: skip
    assert dominated_by(me, others) == ["better_all", "equal_but_one"]


def test_elastic_error_is_the_relative_frobenius_norm():
    dft = np.diag([100.0, 100.0, 100.0, 50.0, 50.0, 50.0])
    model = dft.copy()
    model[0, 0] += 10.0
    # ||dft||_F = sqrt(3 * 100^2 + 3 * 50^2) = sqrt(37500)
    assert elastic_error_pct(model, dft) == pytest.approx(100 * 10 / math.sqrt(37500))


def test_write_study_files_and_pareto_standing(tmp_path):
    per_seed = _per_seed({"adaptive": [1.0, 2.0, 3.0], "fixed": [4.0, 5.0, 6.0]})
    grid = pd.DataFrame(
        [
            {"run": "t__g00", "energy_mae_meV_per_atom": 0.5, "forces_mae_meV_per_A": 40.0,
             "stress_mae_GPa": 0.05},  # dominates every adaptive seed
            {"run": "t__g01", "energy_mae_meV_per_atom": 1.5, "forces_mae_meV_per_A": 40.0,
             "stress_mae_GPa": 0.05},  # dominates seeds 1 and 2 (E 2, 3), not seed 0 (E 1)
        ]
    )  # fmt: skip
    out = study_paths(tmp_path)
    record = write_study(per_seed, grid, [], out)
    assert [s["dominated_by"] for s in record["pareto"]] == [
        ["t__g00"],
        ["t__g00", "t__g01"],
        ["t__g00", "t__g01"],
    ]
    assert all(p.is_file() and p.stat().st_size > 0 for p in out.values())
    assert len(pd.read_csv(out["summary"])) == 2


def _config(path=ROOT_CONFIG):
    with open(path) as fh:
        return validate_config(yaml.safe_load(fh))


#: the example with the tuned weight grid (the default config has no tuned run)
WEIGHT_GRID_CONFIG = ROOT_CONFIG.parent / "examples" / "weight_grid.yaml"


@pytest.mark.parametrize(
    "change, key",
    [
        (lambda r: r["tuned-fixed"].update(weights={"energy": 1.0}), "tuned-fixed"),
        (lambda r: r["adaptive"].update(tune={"forces": [1, 2]}), "adaptive.tune"),
        (lambda r: r.update({"bad__name": {"scheme": "dwa"}}), "bad__name"),
        (lambda r: r["tuned-fixed"].update(tune={"forces": [1.0]}), "tuned-fixed.tune"),
    ],
)
def test_bad_study_settings_are_refused_naming_the_key(change, key):
    cfg = _config(WEIGHT_GRID_CONFIG)
    change(cfg["training"]["runs"])
    with pytest.raises(ConfigError, match=key):
        check_config(cfg)


def test_reference_run_must_exist():
    cfg = _config()
    cfg["training"]["reference_run"] = "nope"
    with pytest.raises(ConfigError, match="training.reference_run"):
        check_config(cfg)
