"""Where each stage's files live under the results folder (config ``results_dir``).

Every function takes that folder as ``results`` and returns plain strings.
"""

from __future__ import annotations

from dft2mlip.study import study_paths


def model_dir(results: str, run: str, seed: int | str) -> str:
    """Folder of one trained model: results/train/<run>/seed<k>."""
    return f"{results}/train/{run}/seed{seed}"


def tuning_path(results: str, run: str) -> str:
    """The chosen grid point of tuned run ``run`` (rule tune_fixed)."""
    return f"{results}/train/{run}/tuning.json"


def label_path(results: str, group: str, sid: str) -> str:
    """The DFT label of structure ``sid`` of set ``group``."""
    return f"{results}/dft/{group}/{sid}/label.extxyz"


def structure_set_path(results: str, group: str, run: str | None = None) -> str:
    """The multi-frame extxyz holding one set of structures: results/structures/train.extxyz,
    elastic.extxyz, or md/<run>.extxyz (one file per set keeps the DAG linear in structures)."""
    if group == "md":
        return f"{results}/structures/md/{run}.extxyz"
    if group == "al":  # one set per active-learning generation (`run` is the generation)
        return f"{results}/structures/al/g{run}.extxyz"
    if group == "heldout":  # the held-out benchmark's frames (validation.heldout)
        return f"{results}/structures/heldout.extxyz"
    return f"{results}/structures/{group}.extxyz"


def structure_files(results: str) -> dict[str, str]:
    """Output of the `structures` job (training candidates, elastic cells), by set name."""
    return {
        "train": structure_set_path(results, "train"),
        "elastic": structure_set_path(results, "elastic"),
    }


def dataset_files(results: str) -> dict[str, str]:
    """Output of the `dataset` job (extxyz splits, label table and its summary), by name.
    (Plain paths, not rules.dataset.output: in a rule whose input also lists every label, such a
    reference makes Snakemake's DAG building quadratic in the number of labels.)"""
    d = f"{results}/dataset"
    return {
        "train": f"{d}/train.extxyz",
        "val": f"{d}/val.extxyz",
        "test": f"{d}/test.extxyz",
        "table": f"{d}/labels.parquet",
        "summary": f"{d}/summary.json",
    }


def study_files(results: str) -> dict[str, str]:
    """Output of the `study` job, by name."""
    return {name: str(path) for name, path in study_paths(f"{results}/study").items()}


def reference_files(results: str) -> dict[str, str]:
    """Output of the `relax_reference` job, by name."""
    d = f"{results}/dft/reference"
    return {"structure": f"{d}/relaxed.extxyz", "summary": f"{d}/relax.json"}


def al_files(results: str) -> dict[str, str]:
    """Output of the `al_summary` job, by name."""
    d = f"{results}/al"
    return {"summary": f"{d}/summary.md", "per_seed": f"{d}/per_seed.csv",
            "record": f"{d}/summary.json", "generations": f"{d}/al_generations.png",
            "calibration": f"{d}/al_calibration.png"}  # fmt: skip


def convergence_chosen_path(results: str) -> str:
    """The convergence study's chosen settings (every DFT input reads them when it is on)."""
    return f"{results}/convergence/chosen_settings.json"


def convergence_evidence(results: str) -> list[str]:
    """The convergence study's evidence: CSV, plot, chosen settings."""
    return [
        f"{results}/convergence/convergence.csv",
        f"{results}/convergence/convergence_study.png",
        convergence_chosen_path(results),
    ]


def convergence_point_result(results: str, point: str) -> str:
    """The result of one grid point of the convergence study."""
    return f"{results}/convergence/points/{point}/result.json"


def import_label_path(results: str, name: str) -> str:
    """The labels of dataset.import source ``name``."""
    return f"{results}/import/{name}.extxyz"


def dft_elastic_path(results: str) -> str:
    """The DFT clamped-ion elastic tensor."""
    return f"{results}/validate/dft/elastic.json"


def dft_relaxed_elastic_path(results: str) -> str:
    """The DFT relaxed-ion elastic tensor."""
    return f"{results}/validate/dft/elastic_relaxed.json"


def family_offsets_path(results: str) -> str:
    """The cross-family consistency check of the labels (:mod:`dft2mlip.validate.families`)."""
    return f"{results}/validate/dft/family_offsets.json"


def elastic_relaxed_label_path(results: str, sid: str) -> str:
    """The label of the relaxation in fixed ± strained cell ``sid`` (relaxed-ion elastic)."""
    return f"{results}/validate/dft/relax/{sid}/label.extxyz"
