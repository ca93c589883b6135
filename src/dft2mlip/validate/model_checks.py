"""Every check of one trained model, each writing its own files: test-set metrics and parity,
elastic tensors on the DFT cells, static stress against DFT on the MD snapshots, and the errors
on the held-out frames at the validation conditions.

The workflow runs them together in one job per model (rule ``validate_model``): loading torch and
mace-torch costs about 5 s per process, more than the checks themselves on a small model.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping, Sequence

from ase.calculators.calculator import Calculator
from ase.io import read

from dft2mlip.data import read_label
from dft2mlip.validate.deform import (
    DeformationSpec,
    plot_stress_strain,
    stress_validation,
    stress_validation_summary,
)
from dft2mlip.validate.elastic import (
    elastic_from_structures,
    write_elastic_failure,
    write_elastic_json,
)
from dft2mlip.validate.metrics import component_metrics, heldout_metrics, plot_parity, predict

log = logging.getLogger(__name__)
PathLike = str | os.PathLike


def write_test_metrics(
    calc: Calculator, test_path: PathLike, out: Mapping[str, PathLike], run: str, seed: int
) -> dict:
    """Test-set MAE/RMSE per component (``out["metrics"]``), per-structure predictions
    (``out["predictions"]``) and the parity plot (``out["parity"]``); returns the metrics."""
    predictions = predict(calc, read(test_path, ":"))
    metrics = component_metrics(predictions)
    with open(out["metrics"], "w") as fh:
        json.dump({"run": run, "seed": seed, **metrics}, fh, indent=2)
    predictions.per_structure.to_csv(out["predictions"], index=False)
    plot_parity(predictions, out["parity"], title=f"{run} seed {seed}: test set")
    log.info("%s seed %d test metrics: %s", run, seed, metrics)
    return metrics


def write_model_elastic(
    calc: Calculator,
    structures_path: PathLike,
    out: Mapping[str, PathLike],
    name: str,
    *,
    strain_magnitude: float,
    fmax: float,
    max_steps: int,
) -> None:
    """Clamped-ion (``out["elastic"]``) and relaxed-ion (``out["relaxed"]``) elastic tensors on
    the DFT's ± strained cells. A relaxation that does not converge (a poor model) is a result,
    written as a failure with its cause, not an error."""
    structures = read(structures_path, index=":", format="extxyz")
    C = elastic_from_structures(structures, calc=calc)
    write_elastic_json(C, out["elastic"], label=name, strain_magnitude=strain_magnitude)
    log.info("%s clamped-ion elastic tensor (GPa):\n%s", name, C.round(1))
    relaxed = {"protocol": "relaxed_ion", "relax_fmax_eV_per_A": fmax}
    try:
        C_rel = elastic_from_structures(
            structures, calc=calc, relax_fmax_eV_per_A=fmax, relax_max_steps=max_steps
        )
    except RuntimeError as err:
        write_elastic_failure(out["relaxed"], name, message=str(err), **relaxed)
        log.warning("%s relaxed-ion elastic tensor not computed: %s", name, err)
        return
    write_elastic_json(
        C_rel, out["relaxed"], label=name, strain_magnitude=strain_magnitude, **relaxed
    )
    log.info("%s relaxed-ion elastic tensor (GPa):\n%s", name, C_rel.round(1))


def write_stress_validation(
    calc: Calculator,
    label_paths: Sequence[PathLike],
    md_csv: PathLike,
    out: Mapping[str, PathLike],
    md_config: Mapping,
    run: str,
    seed: int,
) -> dict:
    """Static stress of the model vs DFT on the snapshots of the validated MD paths (the same
    frames for every model): ``out["table"]``, ``out["summary"]``, and ``out["plot"]`` with the
    model's own run's path and its snapshots, if its path is validated. Returns the summary."""
    spec = DeformationSpec.from_config(md_config)
    labels = [read_label(path) for path in label_paths]
    for lab in labels:
        lab.atoms.info["status"] = lab.status
    table = stress_validation([lab.atoms for lab in labels], calc)
    table.to_csv(out["table"], index=False)
    summary = stress_validation_summary(table)
    with open(out["summary"], "w") as fh:
        json.dump({"run": run, "seed": seed, "component": spec.component, **summary}, fh, indent=2)
    own_path = table["structure_id"].str.startswith(f"{run}__snap")
    title = (f"{run} seed {seed}: MD stress vs DFT at its path's snapshots" if own_path.any()
             else f"{run} seed {seed}: MD stress (no DFT snapshots on this path)")  # fmt: skip
    plot_stress_strain(
        md_csv,
        out["plot"],
        dft_points=table[own_path],
        component=spec.component,
        title=title,
        strain_label=spec.strain_label,
    )
    log.info("%s seed %d stress validation: %s", run, seed, summary)
    return summary


def write_heldout_scores(
    calc: Calculator,
    label_paths: Sequence[PathLike],
    out: Mapping[str, PathLike],
    run: str,
    seed: int,
    n_bins: int,
) -> dict:
    """Errors on the held-out stress benchmark (frames at the validation conditions, labelled by
    DFT once, never trained on): ``out["heldout_table"]`` (one row per frame: path, strain,
    status, predictions) and ``out["heldout"]`` (:func:`heldout_metrics`, plus ``n_frames``,
    ``n_ok`` and ``missing``). No frames (benchmark off, or no new DFT): NaN errors."""
    labels = [read_label(path) for path in label_paths]
    ok = [lab for lab in labels if lab.status == "ok"]
    record = {"run": run, "seed": seed, "n_frames": len(labels), "n_ok": len(ok),
              "missing": [f"{lab.structure_id} ({lab.status})" for lab in labels
                          if lab.status != "ok"]}  # fmt: skip
    if ok:
        predictions = predict(calc, [lab.atoms for lab in ok])
        table = predictions.per_structure
        table.insert(1, "path", [str(lab.atoms.info.get("heldout_path", "")) for lab in ok])
        table.insert(2, "md_strain", [float(lab.atoms.info["md_strain"]) for lab in ok])
        record.update(heldout_metrics(predictions, table["md_strain"].to_numpy(), n_bins))
        table.to_csv(out["heldout_table"], index=False)
    else:
        record.update(stress_mae_GPa=float("nan"), forces_mae_meV_per_A=float("nan"),
                      energy_mae_meV_per_atom=float("nan"), strain_bins=[])  # fmt: skip
        with open(out["heldout_table"], "w") as fh:
            fh.write("structure_id,path,md_strain\n")
    with open(out["heldout"], "w") as fh:
        json.dump(record, fh, indent=2)
    log.info("%s seed %d held-out frames: %s", run, seed, record)
    return record
