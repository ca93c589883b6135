"""Units and sign conventions shared by the whole library.

Inside dft2mlip and in every file it writes: energy eV, forces eV/Å, stress eV/Å³ in ASE Voigt
order ``[xx, yy, zz, yz, xz, xy]``, tension positive (ASE: σ = (1/V) ∂E/∂ε). Reports show GPa.
Conversions happen once, at the parser boundary (see ``dft2mlip.dft``).
"""

from ase.units import GPa

#: multiply a stress in eV/Å³ by this to get GPa
EV_PER_A3_TO_GPA = 1.0 / GPa
#: multiply a stress in GPa by this to get eV/Å³
GPA_TO_EV_PER_A3 = GPa
#: VASP/QE "kbar" (kB) in GPa
KBAR_TO_GPA = 0.1
