"""Variants of real DFT outputs for the import tests and bench/import_checks.py.

- :func:`settings_variants`: one QE and one VASP run directory per single change of a physics
  setting (cutoff, smearing, spin, functional, pseudopotential, k-mesh, k-shift) or of something
  that is not physics (mixing, MPI processes, the irreducible k-point count), each made by
  editing the text of a real output (tests/data) in one place.
- :func:`damaged_variants`: every test-data output whole, truncated at several points, with a
  block removed and with a number corrupted (for the import invariant).
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path

DATA = Path(__file__).parent / "data"
REALDATA = DATA / "realdata"
QE_RUN = DATA / "qe" / "si2_scf_xml"  # our pw.x 6.7 run: pw.in, pw.out and its XML
VASP_RUN = REALDATA / "vasp" / "pstress"  # ASE's vasprun.xml (VASP, PSTRESS = 1 kB)

#: (engine, change, physics?, file, old text, new text): one edit each
SETTINGS_CHANGES = [
    ("qe", "none (a copy)", False, "pw.out", "", ""),
    ("qe", "mixing beta 0.7 -> 0.3", False, "pw.out", "mixing beta               =       0.7000",
     "mixing beta               =       0.3000"),
    ("qe", "MPI processes 1 -> 4", False, "pw.out", "running on     1 processors",
     "running on     4 processors"),
    ("qe", "irreducible k-points 36 -> 40 (symmetry)", False, "pw.out",
     "number of k points=    36", "number of k points=    40"),
    ("qe", "cutoff 20 -> 25 Ry", True, "pw.out", "kinetic-energy cutoff     =      20.0000",
     "kinetic-energy cutoff     =      25.0000"),
    ("qe", "smearing width 0.01 -> 0.02 Ry", True, "pw.out", "width (Ry)=  0.0100",
     "width (Ry)=  0.0200"),
    ("qe", "spin nspin 1 -> 2", True, "pw.out", "     Exchange-correlation",
     "     Starting magnetic structure\n     Exchange-correlation"),
    ("qe", "functional PBE -> PBESOL", True, "pw.out", "Exchange-correlation= PBE",
     "Exchange-correlation= PBESOL"),
    ("qe", "pseudopotential md5", True, "pw.out", "78279d3766ecb5dbdc0623f3e93c9a23",
     "00000000000000000000000000000000"),
    ("qe", "k-mesh 4x4x4 -> 5x5x5", True, "pw.in", "4 4 4  0 0 0", "5 5 5  0 0 0"),
    ("qe", "k-shift 0 -> 1/2 step", True, "pw.in", "4 4 4  0 0 0", "4 4 4  1 1 1"),
    ("vasp", "none (a copy)", False, "vasprun.xml", "", ""),
    ("vasp", "NELM 60 -> 100", False, "vasprun.xml", 'name="NELM">    60', 'name="NELM">   100'),
    ("vasp", "AMIX 0.4 -> 0.2", False, "vasprun.xml", 'name="AMIX">      0.40000000',
     'name="AMIX">      0.20000000'),
    ("vasp", "irreducible k-point list (one point less)", False, "vasprun.xml",
     "   <v>       0.37500000       0.12500000       0.12500000 </v>\n", ""),
    ("vasp", "cutoff ENCUT 400 -> 520 eV", True, "vasprun.xml", 'name="ENMAX">    400.00000000',
     'name="ENMAX">    520.00000000'),
    ("vasp", "smearing SIGMA 0.2 -> 0.05 eV", True, "vasprun.xml",
     'name="SIGMA">      0.20000000', 'name="SIGMA">      0.05000000'),
    ("vasp", "spin ISPIN 1 -> 2", True, "vasprun.xml", 'name="ISPIN">     1<',
     'name="ISPIN">     2<'),
    ("vasp", "functional GGA -- -> PS", True, "vasprun.xml", 'name="GGA">--<', 'name="GGA">PS<'),
    ("vasp", "pseudopotential PAW C 22Mar2012 -> PAW C_s", True, "vasprun.xml",
     "PAW C 22Mar2012", "PAW C_s 06Sep2000"),
    ("vasp", "k-mesh 4x4x4 -> 5x5x5", True, "vasprun.xml",
     'name="divisions">       4        4        4', 'name="divisions">       5        5        5'),
    ("vasp", "k-shift Monkhorst-Pack -> Gamma (even mesh)", True, "vasprun.xml",
     '<generation param="Monkhorst-Pack">', '<generation param="Gamma">'),
]  # fmt: skip


def settings_variants(root: Path) -> list[tuple[str, str, bool, Path]]:
    """Write one run directory per entry of :data:`SETTINGS_CHANGES` under ``root``.

    Returns
    -------
    list
        ``(engine, change, physics, directory)``; the base run is ``root/<engine>/base``.
    """
    out = []
    bases = {"qe": QE_RUN, "vasp": VASP_RUN}
    for engine, source in bases.items():
        shutil.copytree(source, root / engine / "base")
    for k, (engine, change, physics, name, old, new) in enumerate(SETTINGS_CHANGES):
        run = root / engine / f"change{k:02d}"
        shutil.copytree(bases[engine], run)
        text = (run / name).read_text()
        if old:
            assert text.count(old) == 1, (change, old)
            (run / name).write_text(text.replace(old, new))
        out.append((engine, change, physics, run))
    return out


#: the outputs the invariant runs: (format, directory or file inside tests/data)
def _outputs() -> list[tuple[str, Path]]:
    qe = sorted((REALDATA / "qe").glob("*.out")) + [DATA / "qe" / "si2_scf.pwo",
                                                   QE_RUN / "pw.out"]  # fmt: skip
    vasp = sorted(p.parent for p in REALDATA.glob("vasp/*/*") if p.name in ("OUTCAR",
                  "vasprun.xml")) + [DATA / "vasp"]  # fmt: skip
    return [("qe", p) for p in qe] + [("vasp", d) for d in dict.fromkeys(vasp)]


_NUMBER = re.compile(r"-?\d+\.\d+")
#: fractions of a file at which it is cut (a run stopped by the walltime)
CUTS = (0.1, 0.5, 0.9, 0.99)


def _damaged(text: str) -> Iterator[tuple[str, str]]:
    """The file's text whole, cut at :data:`CUTS`, with a block of lines removed from its
    middle, and with its last number (a result) replaced by NaN and by text."""
    yield "whole", text
    for cut in CUTS:
        yield f"cut at {cut:.0%}", text[: int(len(text) * cut)]
    lines = text.splitlines(keepends=True)
    middle = len(lines) // 2
    yield "block removed", "".join(lines[: middle - 10] + lines[middle + 10 :])
    numbers = list(_NUMBER.finditer(text))
    if numbers:
        last = numbers[-len(numbers) // 3]  # a result: two thirds into the numbers
        for bad in ("NaN", "x.y"):
            yield f"number -> {bad}", text[: last.start()] + bad + text[last.end() :]


def damaged_variants(root: Path) -> list[tuple[str, str, str, Path]]:
    """Write every test-data output and its damaged copies under ``root``.

    Returns
    -------
    list
        ``(format, original name, variant, path to import)``: a QE output file, or a VASP run
        directory (each of its files damaged in turn, the others kept whole).
    """
    out = []
    for k, (fmt, path) in enumerate(_outputs()):
        if fmt == "qe":
            for j, (variant, text) in enumerate(_damaged(path.read_text(errors="replace"))):
                run = root / f"{k:02d}_{j:02d}"
                run.mkdir(parents=True)
                (run / path.name).write_text(text)
                out.append((fmt, path.name, variant, run / path.name))
            continue
        names = [n for n in ("OUTCAR", "vasprun.xml") if (path / n).is_file()]
        for name in names:
            for j, (variant, text) in enumerate(_damaged((path / name).read_text())):
                if variant == "whole" and name != names[0]:
                    continue
                run = root / f"{k:02d}_{name}_{j:02d}"
                shutil.copytree(path, run, ignore=shutil.ignore_patterns("golden_*", "*.md"))
                (run / name).write_text(text)
                label = "whole" if variant == "whole" else f"{name} {variant}"
                out.append((fmt, f"{path.parent.name}/{path.name}", label, run))
    return out
