"""dft2mlip: from high-convergence DFT labels to a stress-validated MACE potential."""

__version__ = "0.1.0"
