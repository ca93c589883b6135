"""Write ./OUTCAR: ../outcar_example_1/OUTCAR (VASP 5.3.3, ISPIN = 2) edited the way VASP 5.x
prints a non-spin-polarised (ISPIN = 1) run. Not a VASP run: only the spin-dependent lines are
changed, the energies, forces and stress stay those of the spin-polarised run.

Edits (checked against a VASP 5.4.1 ISPIN = 1 OUTCAR and VASP 6.2.1's ../nonspin_v621/OUTCAR):
- ``ISPIN  =      2`` -> ``1``; ``spin polarized calculation`` -> ``non-spin polarized ...``;
- ``number of electron ... magnetization <M>`` and ``augmentation part ... magnetization <M>``:
  the moment is dropped, the line ends in ``magnetization `` (VASP prints no number for ISPIN 1);
- eigenvalues: the ``spin component 1`` header is dropped, ``spin component 2`` is removed and the
  occupations of component 1 are doubled (1.00000 -> 2.00000), as a non-spin run prints them;
- the ``spin component 2`` blocks at the end (soft charge density, pseudopotential strength,
  augmentation occupancy) are removed.

Run from this directory: ``python edit_from_outcar_example_1.py``.
"""

import re
from pathlib import Path

here = Path(__file__).parent
text = (here.parent / "outcar_example_1" / "OUTCAR").read_text()
text = text.replace("   ISPIN  =      2    spin polarized", "   ISPIN  =      1    spin polarized")
text = text.replace("\n spin polarized calculation\n", "\n non-spin polarized calculation\n")
text = re.sub(r"^( (?:number of electron|augmentation part)\s+\S+ magnetization) +\S+$",
              r"\1 ", text, flags=re.M)
# eigenvalues: one channel without a header, occupations of a doubly occupied band
head, rest = text.split("\n spin component 1\n\n", 1)
channel1, rest = rest.split("\n spin component 2\n", 1)
channel1 = re.sub(r"^(\s+\d+\s+\S+\s+)(\S+)$",
                  lambda m: m.group(1) + f"{2 * float(m.group(2)):.5f}", channel1, flags=re.M)
rest = rest[rest.index("\n\n\n---") :]
text = head + "\n" + channel1 + rest
# the second spin channel of the charge density and of the one-centre blocks
text = re.sub(r" soft charge-density along one line, spin component 2\n.*?\n(?= pseudopotential)",
              "", text, flags=re.S)
text = re.sub(r" pseudopotential strength for first ion, spin component: 2\n.*?\n"
              r"(?= total augmentation)", "", text, flags=re.S)
text = re.sub(r" total augmentation occupancy for first ion, spin component: 2\n.*?\n(?=\n)",
              "", text, flags=re.S)
(here / "OUTCAR").write_text(text)
