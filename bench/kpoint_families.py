"""Are labels from different cell families consistent? Energy per atom and pressure of the SAME
perfect crystal computed in each family's cell with the mesh the pipeline gives it.

The pipeline gives every structure family one k-point mesh, taken from the family's reference
cell at ``dft.qe.kspacing_per_A`` (strains of one cell share it). Within a family the sampling
error is the same for every label and cancels in energy differences; ACROSS families (the
2-atom primitive cells of the hydrostatic/strained/rattled sets against the 8-atom conventional
cells of the supercells, MD frames, snapshots, held-out frames and active-learning picks) it
does not: one potential is trained on both, so their offset is an error no training can remove.

For each k-point spacing this writes the pipeline's own pw.x inputs (``dft2mlip.dft.labels``
``write_input``: same cutoffs, smearing, pseudopotential as the config) for the perfect primitive
and conventional cells, runs real pw.x (serial) and reports the energy per atom and pressure
against the densest spacing's primitive cell, and the offset between the two families.

Usage (what made ``bench/results/kpoint_families.md``)::

    python bench/kpoint_families.py --lattice-constant 5.467564088 --kspacings 0.5 0.35 0.2
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))

from bench_trainer import machine  # noqa: E402

from dft2mlip.dft.engines import get_engine  # noqa: E402
from dft2mlip.dft.labels import parse_run, run_input, write_input  # noqa: E402
from dft2mlip.units import EV_PER_A3_TO_GPA  # noqa: E402
from dft2mlip.validate.families import FAMILIES, family_cells  # noqa: E402


def single_point(physics: dict, atoms, work: Path) -> dict:
    """One real pw.x single point through the pipeline's own input writer and parser."""
    work.mkdir(parents=True)
    write_input("qe", physics, atoms, work, work / "settings.json")
    start = time.perf_counter()
    run = run_input("qe", work, executable=physics.get("executable", "pw.x"), nprocs=1,
                    mpi_launcher="")  # fmt: skip
    label = parse_run("qe", physics, work, atoms, work / "settings.json", run)
    if label.status != "ok":
        raise RuntimeError(f"{atoms.info['structure_id']}: {label.status}: {label.message}")
    stress = label.atoms.info["REF_stress"]
    return {"n_atoms": len(atoms), "k_mesh": label.provenance.get("kpoint_mesh"),
            "energy_eV_per_atom": float(label.atoms.info["REF_energy"]) / len(atoms),
            "pressure_GPa": -float(sum(stress[:3])) / 3 * EV_PER_A3_TO_GPA,
            "wall_s": round(time.perf_counter() - start, 1)}  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", type=Path, default=ROOT / "config" / "config.yaml")
    p.add_argument("--lattice-constant", type=float, help="Å (default: the config's)")
    p.add_argument("--kspacings", type=float, nargs="+", default=[0.5, 0.35, 0.2],
                   help="Å⁻¹; the last (densest) is the reference")  # fmt: skip
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "kpoint_families")
    a = p.parse_args()
    config = yaml.safe_load(a.config.read_text())
    material = dict(config["material"])
    if a.lattice_constant:
        material["lattice_constant_A"] = a.lattice_constant
    # the pipeline's own check cells (the conventional 1x1x1: the supercells' and MD cells' family)
    cells = dict(zip(FAMILIES, family_cells(material, None), strict=True))
    rows = []
    with tempfile.TemporaryDirectory(prefix="kfam_") as tmp:
        for spacing in a.kspacings:
            dft = {**config["dft"], "qe": {**config["dft"]["qe"], "kspacing_per_A": spacing}}
            physics = get_engine("qe").physics_config(dft)
            for family, atoms in cells.items():
                work = Path(tmp) / f"{family}-{spacing}"
                rows.append({"kspacing_per_A": spacing, "family": family,
                             **single_point(physics, atoms, work)})  # fmt: skip
                print(rows[-1], flush=True)
    ref = next(r for r in rows if r["kspacing_per_A"] == a.kspacings[-1]
               and r["family"] == "primitive")  # fmt: skip
    for r in rows:
        r["dE_meV_per_atom"] = 1e3 * (r["energy_eV_per_atom"] - ref["energy_eV_per_atom"])
        r["dP_GPa"] = r["pressure_GPa"] - ref["pressure_GPa"]
    result = {"command": " ".join(["python", "bench/kpoint_families.py", *sys.argv[1:]]),
              "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M"), "machine": machine(),
              "material": material, "rows": rows}  # fmt: skip
    lines = ["| k-spacing (Å⁻¹) | family | atoms | k-mesh | E − E_ref (meV/atom) | "
             "P − P_ref (GPa) | conventional − primitive: ΔE (meV/atom), ΔP (GPa) | wall s |",
             "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for spacing in a.kspacings:
        pair = {r["family"]: r for r in rows if r["kspacing_per_A"] == spacing}
        gap = (pair["conventional"]["dE_meV_per_atom"] - pair["primitive"]["dE_meV_per_atom"],
               pair["conventional"]["dP_GPa"] - pair["primitive"]["dP_GPa"])  # fmt: skip
        for family in FAMILIES:
            r = pair[family]
            cross = f"{gap[0]:+.2f}, {gap[1]:+.3f}" if family == "conventional" else ""
            lines.append(f"| {spacing:g} | {family} | {r['n_atoms']} | {r['k_mesh']} | "
                         f"{r['dE_meV_per_atom']:+.2f} | {r['dP_GPa']:+.3f} | {cross} | "
                         f"{r['wall_s']} |")  # fmt: skip
    head = (f"# Cross-family consistency of the labels (bench/kpoint_families.py)\n\n"
            f"`{result['command']}` on {result['date']} UTC, {result['machine']['nproc']} x "
            f"{result['machine']['cpu_model']}; material {material['name']} at "
            f"a = {material['lattice_constant_A']} Å; reference: the primitive cell at "
            f"{a.kspacings[-1]} Å⁻¹. Real pw.x, the config's cutoffs, smearing and "
            f"pseudopotential.\n\n")  # fmt: skip
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.with_suffix(".json").write_text(json.dumps(result, indent=1) + "\n")
    a.out.with_suffix(".md").write_text(head + "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
