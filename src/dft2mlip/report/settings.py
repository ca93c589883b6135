"""The settings at the top of the report and the one-line description of each run."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: how each ``training.runs.<run>.normalise`` mode scales the loss terms, in the report's words
NORMALISATION_TEXT = {
    "initial": "terms divided by their first-epoch loss",
    "counts": "terms divided by their first-epoch loss, times their number of label components",
    "variance": "terms divided by the mean square of their training labels",
    "none": "raw MSEs",
}


def describe_run(run_cfg: Mapping[str, Any]) -> str:
    """One line saying how a training run weighs its loss terms."""
    norm = run_cfg.get("normalise", "none")
    norm_text = NORMALISATION_TEXT[norm]
    if run_cfg["scheme"] == "fixed" and run_cfg.get("tune"):
        from dft2mlip.study import grid_points

        n = len(grid_points("run", run_cfg))
        return (
            f"fixed weights tuned on the validation set over a grid of {n} E:F:S points "
            f"(first seed; {norm_text}); the chosen point is in the study section"
        )
    if run_cfg["scheme"] == "fixed":
        w = run_cfg["weights"]
        if run_cfg.get("unit_sum"):
            from dft2mlip.study import unit_sum

            w = unit_sum(w)
        ratio = ":".join(f"{w.get(k, 0):.3g}" for k in ("energy", "forces", "stress"))
        unit = "; stress in eV/Å³" if norm == "none" else ""
        return f"fixed weights E:F:S = {ratio} ({norm_text}{unit})"
    if run_cfg["scheme"] == "target":
        t = run_cfg.get("targets") or {}
        return (
            f"target: each term divided by its squared target RMSE (E {t.get('energy')} "
            f"meV/atom, F {t.get('forces')} meV/Å, S {t.get('stress')} GPa), the term furthest "
            f"from its target weighed most, (RMSE/target)^β with β = {run_cfg.get('beta')}"
        )
    variant = " (loss-weighted)" if run_cfg.get("loss_weighted") else ""
    if anchor := run_cfg.get("anchor"):
        ratio = ":".join(f"{anchor.get(k, 0):.3g}" for k in ("energy", "forces", "stress"))
        variant += f" anchored to E:F:S = {ratio}"
    return (
        f"{run_cfg['scheme']}{variant}, β = {run_cfg.get('beta')}, window {run_cfg.get('window')} "
        f"epochs ({norm_text})"
    )


def _dft_settings(config: Mapping[str, Any]) -> dict[str, str]:
    """The DFT lines of the report's settings: the engine's key settings, or what replaces them."""
    engine = config["dft"]["engine"]
    if engine == "none":
        names = ", ".join(s["name"] for s in config["dataset"]["import"])
        return {
            "DFT": f"none run here: every label is imported ({names}); elastic constants and "
            "MD stresses are not checked against DFT"
        }
    from dft2mlip.dft import hubbard, magnetism
    from dft2mlip.dft.engines import get_engine

    lines = get_engine(engine).describe(config["dft"][engine])
    order = magnetism.configured_order(config["material"], config["dft"])
    if spin := magnetism.describe(config["dft"].get("magnetic_moments_muB"), order):
        lines["magnetism"] = spin
    if entries := hubbard.parse_hubbard(config["dft"].get("hubbard")):
        lines["DFT+U"] = hubbard.describe(entries)
    return lines


def _material_line(mat: Mapping[str, Any]) -> str:
    """The configured starting cell: a structure file by name, else prototype and lattice
    (the relaxed cell has its own section)."""
    if mat.get("structure"):
        return f"{mat['name']} (structure file {mat['structure']})"
    hexagonal = mat["prototype"] in ("hcp", "wurtzite")
    c_over_a = f", c/a = {mat.get('c_over_a') or 'ideal'}" if hexagonal else ""
    return f"{mat['name']} ({mat['prototype']}, a = {mat['lattice_constant_A']} Å{c_over_a})"


def report_settings(config: Mapping[str, Any]) -> dict[str, object]:
    """The settings a reader needs at the top of the report, from the run's config."""
    from dft2mlip.dag.structures import snapshot_runs

    mat, md = config["material"], config["validation"]["md"]
    el = config["validation"]["elastic"]
    lateral = f", lateral {md.get('lateral', 'fixed')}" if md["mode"] == "uniaxial" else ""
    return {
        "material": _material_line(mat),
        **_dft_settings(config),
        "elastic constants": (
            f"±{el['strain_magnitude']} strain along each Voigt direction, clamped ion and "
            f"relaxed ion (max |F| < {el.get('relax_fmax_eV_per_A', '?')} eV/Å), same cells "
            "for DFT and models"
        ),
        "deformation MD": (
            f"{md['mode']} {md['direction']}{lateral}, {md['temperature_K']} K Langevin "
            f"(friction {md['friction_per_fs']}/fs), "
            f"{md['strain_rate_per_ps']}/ps to strain {md['max_strain']}, "
            f"dt {md['timestep_fs']} fs, supercell {md['repeat']} conventional cells, "
            f"{md['snapshots']} DFT snapshots on the path of {', '.join(snapshot_runs(config))}"
        ),
    }
