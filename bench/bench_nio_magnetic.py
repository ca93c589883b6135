"""AFM vs FM and U vs no U for NiO at tiny settings, real pw.x (issue 24, item 5).

The 4-site AFM-II cell of ``config/examples/data/NiO_afm2.extxyz`` with the settings of
``config/examples/nio_qe.yaml`` cut to the cost of ``tests/test_magnetic_order.py`` (25/200 Ry,
2x2x2 k, conv_thr 1e-6 Ry, serial pw.x). Four labels, each through the pipeline's own
``write_input``/``run_input``/``parse_run``: AFM (the file's order) and FM (``dft.magnetic_order``
with every Ni moment positive), each with U(Ni 3d) = 6.2 eV and with no U. Tiny settings: the
numbers show the mechanics (orders kept, moments, energy ordering), not converged physics.

Usage: ``nice -n 10 python bench/bench_nio_magnetic.py``; stores
``bench/results/nio_magnetic.json`` and ``.md``.
"""

from __future__ import annotations

import datetime as dt
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import ase.io
import yaml

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "results"
NIO = ROOT / "config" / "examples" / "data" / "NiO_afm2.extxyz"
TINY = {"ecutwfc_Ry": 25.0, "ecutrho_Ry": 200.0, "kspacing_per_A": 1.3, "conv_thr_Ry": 1e-6,
        "allow_low_cutoff": True}  # fmt: skip


def case_config(order: str, u_eV: float, tmp: Path) -> dict:
    config = yaml.safe_load((ROOT / "config" / "examples" / "nio_qe.yaml").read_text())
    config["dft"]["qe"].update(TINY)
    config["dft"]["hubbard"] = {"Ni": {"orbital": "3d", "U_eV": u_eV}} if u_eV else {}
    config["material"]["structure"] = str(NIO)
    if order == "FM":  # the same cell from a file without moments, ordered by the config
        bare = ase.io.read(NIO)
        moments = [abs(m) for m in bare.get_initial_magnetic_moments()]
        bare.set_initial_magnetic_moments(None)
        ase.io.write(tmp / "NiO_bare.extxyz", bare)
        config["material"]["structure"] = str(tmp / "NiO_bare.extxyz")
        config["dft"]["magnetic_order"] = moments
    return config


def run_case(order: str, u_eV: float, tmp: Path) -> dict:
    from dft2mlip.dft.engines import get_engine
    from dft2mlip.dft.labels import parse_run, run_input, write_input
    from dft2mlip.dft.magnetism import configured_order
    from dft2mlip.structures import primitive_cell

    config = case_config(order, u_eV, tmp)
    cfg = get_engine("qe").physics_config(
        config["dft"], configured_order(config["material"], config["dft"])
    )
    material = dict(config["material"])
    if config["dft"].get("magnetic_order"):
        material["magnetic_order_muB"] = config["dft"]["magnetic_order"]
    atoms = primitive_cell(material)
    atoms.info["structure_id"] = f"nio-{order}-U{u_eV:g}"
    directory = tmp / atoms.info["structure_id"]
    record = write_input("qe", cfg, atoms, directory, directory / "settings.json")
    start = time.perf_counter()
    run = run_input("qe", directory, executable="pw.x", nprocs=1, mpi_launcher="")
    wall = time.perf_counter() - start
    label = parse_run("qe", cfg, directory, atoms, directory / "settings.json", run)
    prov = label.provenance
    return {
        "order": order,
        "U_Ni_3d_eV": u_eV,
        "status": label.status,
        "message": label.message,
        "settings_hash": record["settings_hash"],
        "initial_site_moments_muB": prov.get("initial_site_moments_muB"),
        "site_moments_muB": prov.get("site_magnetizations_muB"),
        "total_magnetization_muB": prov.get("total_magnetization_muB"),
        "absolute_magnetization_muB": prov.get("absolute_magnetization_muB"),
        "energy_eV": float(label.atoms.info["REF_energy"]) if label.status == "ok" else None,
        "n_scf": prov.get("n_scf_iterations"),
        "pw_version": prov.get("code_version"),
        "wall_time_s": round(wall, 2),
    }


def markdown(rows: list[dict], meta: dict) -> str:
    lines = [
        "# NiO AFM vs FM, U vs no U (tiny settings, real pw.x)",
        "",
        f"Command: `{meta['command']}`; {meta['date']}; {meta['machine']}.",
        f"Settings: {meta['settings']}.",
        "",
        "| order | U (eV) | status | site moments (μB) | total / abs (μB) | E (eV) | "
        "E - E(AFM, same U) (meV/f.u.) | SCF | wall (s) | hash |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    afm = {r["U_Ni_3d_eV"]: r["energy_eV"] for r in rows if r["order"] == "AFM"}
    for r in rows:
        sites = ", ".join(f"{m:+.3f}" for m in r["site_moments_muB"] or [])
        de = (r["energy_eV"] - afm[r["U_Ni_3d_eV"]]) * 1000 / 2 if r["energy_eV"] else None
        lines.append(
            f"| {r['order']} | {r['U_Ni_3d_eV']:g} | {r['status']} | {sites} | "
            f"{r['total_magnetization_muB']} / {r['absolute_magnetization_muB']} | "
            f"{r['energy_eV']:.4f} | {de:+.1f} | {r['n_scf']} | {r['wall_time_s']} | "
            f"{r['settings_hash']} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    sys.path.insert(0, str(ROOT / "src"))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for order in ("AFM", "FM"):
            for u in (6.2, 0.0):
                rows.append(run_case(order, u, Path(tmp)))
                print(json.dumps(rows[-1]), flush=True)
    meta = {
        "command": "nice -n 10 python bench/bench_nio_magnetic.py",
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.node()}: 2-core dev machine shared with other engineers' jobs "
        "at the time (wall times are indicative only)",
        "settings": "4-site AFM-II cell a = 4.17 Å, Ni.pbe-nd-rrkjus.UPF + O.pbe-rrkjus.UPF, "
        "25/200 Ry, 2x2x2 k, mv 0.01 Ry, conv_thr 1e-6 Ry, serial pw.x, Dudarev U on Ni 3d",
    }
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "nio_magnetic.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    (OUT / "nio_magnetic.md").write_text(markdown(rows, meta))
    print(markdown(rows, meta))


if __name__ == "__main__":
    main()
